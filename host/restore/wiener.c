/* Wiener-Hunt deconvolution in the Fourier domain, as skimage.restoration.wiener (0.19):
 *   x = irfft2( conj(H) / (|H|^2 + balance |D|^2) * rfft2(y) )
 * with H the transfer function of the PSF placed at the origin (uft.ir2tf: zero-pad to
 * the image size, roll by -floor(k/2) on each axis) and D the Laplacian's (uft.laplacian).
 * scikit-image uses unitary transforms; their two 1/sqrt(MN) factors make the 1/(MN) that
 * FFTW's unnormalised pair needs, so the result is the same. The filter is formed in
 * double; the FFTs are single precision (fftw3f). */
#include <complex.h>
#include <fftw3.h>
#include <math.h>

#include "internal.h"
#include "deconv/restore.h"

void dc_wiener_options_default(dc_wiener_options *o) {
    if (!o) return;
    o->balance = 0.05f;
    o->reg = DC_WIENER_REG_LAPLACIAN;
    o->clip = 1;
}

/* |D|^2 of the 4-neighbour Laplacian [0 -1 0; -1 4 -1; 0 -1 0] centred at the origin:
 * D(ky, kx) = 4 - 2 cos(2 pi ky / M) - 2 cos(2 pi kx / N), which is real. */
static double laplacian_tf2(int ky, int kx, int m, int n) {
    const double two_pi = 6.283185307179586476925;
    double d = 4.0 - 2.0 * cos(two_pi * ky / m) - 2.0 * cos(two_pi * kx / n);
    return d * d;
}

dc_status dc_wiener(const dc_fimage *image, const dc_fimage *psf, const dc_wiener_options *opt,
                    dc_fimage **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_wiener: out is NULL");
    *out = NULL;
    dc_wiener_options def;
    if (!opt) {
        dc_wiener_options_default(&def);
        opt = &def;
    }
    DC_TRY(dc_psf_check(psf, image, err));
    if (!(opt->balance >= 0.0f) || !isfinite(opt->balance))
        return dc_set_error(err, DC_ERR_ARG, "Wiener: balance must be finite and >= 0, got %g",
                            (double)opt->balance);
    if (opt->reg != DC_WIENER_REG_LAPLACIAN && opt->reg != DC_WIENER_REG_IDENTITY)
        return dc_set_error(err, DC_ERR_ARG, "Wiener: unknown regulariser %d", (int)opt->reg);

    const int m = image->h, n = image->w, nh = n / 2 + 1;
    const size_t real_n = (size_t)m * n, spec_n = (size_t)m * nh;
    float *real = fftwf_malloc(real_n * sizeof *real);
    fftwf_complex *spec = fftwf_malloc(spec_n * sizeof *spec);
    fftwf_complex *filter = fftwf_malloc(spec_n * sizeof *filter);
    fftwf_plan fwd = NULL, inv = NULL;
    dc_status s = DC_OK;
    if (!real || !spec || !filter) {
        s = dc_set_error(err, DC_ERR_OOM, "Wiener: out of memory for a %d x %d image", m, n);
        goto done;
    }
    /* Plan before filling: FFTW_ESTIMATE does not touch the arrays, but be explicit. */
    fwd = fftwf_plan_dft_r2c_2d(m, n, real, spec, FFTW_ESTIMATE);
    inv = fftwf_plan_dft_c2r_2d(m, n, spec, real, FFTW_ESTIMATE);
    if (!fwd || !inv) {
        s = dc_set_error(err, DC_ERR_UNSUPPORTED, "Wiener: FFTW could not plan a %d x %d transform",
                         m, n);
        goto done;
    }

    /* Transfer function: the PSF with its centre (kh/2, kw/2) rolled to (0, 0). */
    memset(real, 0, real_n * sizeof *real);
    for (int i = 0; i < psf->h; i++)
        for (int j = 0; j < psf->w; j++) {
            int y = ((i - psf->h / 2) % m + m) % m, x = ((j - psf->w / 2) % n + n) % n;
            real[(size_t)y * n + x] += psf->data[i * psf->w + j];
        }
    fftwf_execute(fwd);
    for (int ky = 0; ky < m; ky++)
        for (int kx = 0; kx < nh; kx++) {
            const size_t k = (size_t)ky * nh + kx;
            const double re = crealf(spec[k]), im = cimagf(spec[k]);
            const double reg2 =
                opt->reg == DC_WIENER_REG_LAPLACIAN ? laplacian_tf2(ky, kx, m, n) : 1.0;
            const double den = re * re + im * im + (double)opt->balance * reg2;
            if (!(den > 0.0)) {
                s = dc_set_error(err, DC_ERR_NUMERIC,
                                 "Wiener filter divides by zero at frequency (%d, %d): the PSF's "
                                 "transfer function vanishes there; use a balance > 0",
                                 ky, kx);
                goto done;
            }
            filter[k] = (float)(re / den) - I * (float)(im / den);
        }

    s = dc_fimage_create(m, n, image->c, out, err);
    if (s != DC_OK) goto done;
    const float norm = (float)(1.0 / (double)real_n);
    for (int c = 0; c < image->c; c++) {
        memcpy(real, dc_fimage_plane(image, c), real_n * sizeof *real);
        fftwf_execute(fwd);
        for (size_t k = 0; k < spec_n; k++) spec[k] *= filter[k];
        fftwf_execute(inv);
        float *dst = dc_fimage_plane(*out, c);
        for (size_t p = 0; p < real_n; p++) {
            float v = real[p] * norm;
            if (opt->clip) v = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : v);
            dst[p] = v;
        }
    }
    s = dc_fimage_check_finite(*out, "Wiener result", err);
done:
    if (fwd) fftwf_destroy_plan(fwd);
    if (inv) fftwf_destroy_plan(inv);
    fftwf_free(real);
    fftwf_free(spec);
    fftwf_free(filter);
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}
