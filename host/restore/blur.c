/* Blurring (scipy.signal.convolve2d mode='same' with zero boundaries, on the host) and
 * seeded Gaussian / Poisson noise. */
#include <math.h>

#include "internal.h"
#include "deconv/restore.h"

dc_status dc_convolve_same(const dc_fimage *image, const dc_fimage *psf, dc_fimage **out,
                           dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_convolve_same: out is NULL");
    *out = NULL;
    DC_TRY(dc_psf_check(psf, image, err));
    const int h = image->h, w = image->w, kh = psf->h, kw = psf->w;
    /* scipy's 'same' keeps the centred part of the full convolution: the PSF entry at
     * ((kh-1)/2, (kw-1)/2) lands on the output pixel. */
    const int ci = (kh - 1) / 2, cj = (kw - 1) / 2;
    DC_TRY(dc_fimage_create(h, w, image->c, out, err));
    double *acc = malloc((size_t)h * w * sizeof *acc);
    if (!acc) {
        dc_fimage_free(*out);
        *out = NULL;
        return dc_set_error(err, DC_ERR_OOM, "blur: out of memory for a %d x %d image", h, w);
    }
    for (int c = 0; c < image->c; c++) {
        const float *src = dc_fimage_plane(image, c);
        float *dst = dc_fimage_plane(*out, c);
#pragma omp parallel for schedule(static)
        for (int y = 0; y < h; y++) {
            double *row = acc + (size_t)y * w;
            for (int x = 0; x < w; x++) row[x] = 0.0;
            for (int i = 0; i < kh; i++) {
                const int iy = y + ci - i;
                if (iy < 0 || iy >= h) continue;
                const float *srow = src + (size_t)iy * w;
                for (int j = 0; j < kw; j++) {
                    const double wt = psf->data[i * kw + j];
                    if (wt == 0.0) continue;
                    /* out[x] += wt * src[x + cj - j] for the x that stay inside the row */
                    const int shift = cj - j;
                    int x0 = shift < 0 ? -shift : 0, x1 = shift > 0 ? w - shift : w;
                    for (int x = x0; x < x1; x++) row[x] += wt * srow[x + shift];
                }
            }
            for (int x = 0; x < w; x++) dst[(size_t)y * w + x] = (float)row[x];
        }
    }
    free(acc);
    return DC_OK;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double uniform53(dc_rng *rng) {
    return (double)(dc_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Poisson sample: multiplication method for small means, Hormann's transformed
 * rejection (PTRS, 1993) for lam >= 10. */
static double poisson_sample(dc_rng *rng, double lam) {
    if (lam <= 0) return 0;
    if (lam < 10) {
        const double limit = exp(-lam);
        double prod = uniform53(rng);
        int k = 0;
        while (prod > limit) {
            k++;
            prod *= uniform53(rng);
        }
        return k;
    }
    const double slam = sqrt(lam), loglam = log(lam);
    const double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
    const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        const double u = uniform53(rng) - 0.5, v = uniform53(rng);
        const double us = 0.5 - fabs(u);
        const double k = floor((2 * a / us + b) * u + lam + 0.43);
        if (us >= 0.07 && v <= vr) return k;
        if (k < 0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -lam + k * loglam - lgamma(k + 1))
            return k;
    }
}

dc_status dc_add_noise(dc_fimage *im, dc_noise_kind kind, float std, dc_rng *rng,
                       dc_error *err) {
    if (!im || !rng) return dc_set_error(err, DC_ERR_ARG, "dc_add_noise: NULL argument");
    if (!(std >= 0.0f) || !isfinite(std))
        return dc_set_error(err, DC_ERR_ARG, "noise std must be >= 0, got %g", (double)std);
    const size_t n = dc_fimage_numel(im);
    switch (kind) {
    case DC_NOISE_NONE: return DC_OK;
    case DC_NOISE_GAUSSIAN:
        for (size_t i = 0; i < n; i++) im->data[i] += std * dc_rng_normal(rng);
        return DC_OK;
    case DC_NOISE_POISSON: {
        if (std == 0.0f) return DC_OK; /* infinitely many photons */
        const double q = (double)std * std;
        for (size_t i = 0; i < n; i++) {
            double x = im->data[i] > 0 ? im->data[i] : 0.0;
            im->data[i] = (float)(poisson_sample(rng, x / q) * q);
        }
        return DC_OK;
    }
    }
    return dc_set_error(err, DC_ERR_ARG, "unknown noise kind %d", (int)kind);
}

dc_status dc_noise_kind_parse(const char *name, dc_noise_kind *out, dc_error *err) {
    if (!name || !out) return dc_set_error(err, DC_ERR_ARG, "dc_noise_kind_parse: NULL argument");
    if (!strcmp(name, "none")) *out = DC_NOISE_NONE;
    else if (!strcmp(name, "gaussian")) *out = DC_NOISE_GAUSSIAN;
    else if (!strcmp(name, "poisson")) *out = DC_NOISE_POISSON;
    else
        return dc_set_error(err, DC_ERR_ARG, "unknown noise '%s' (use none, gaussian or poisson)",
                            name);
    return DC_OK;
}
