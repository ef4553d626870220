/* Richardson-Lucy deconvolution on a backend, as skimage.restoration.richardson_lucy (0.19):
 *   est = 0.5
 *   repeat: conv = convolve(est, psf, 'same') + 1e-12
 *           ratio = (conv < filter_epsilon) ? 0 : y / conv
 *           est  *= convolve(ratio, flip(psf), 'same')
 *
 * A 'same' convolution is a correlation with the flipped kernel, which the backend runs
 * as im2col (one image, one channel) followed by a [1 x kk] x [kk x pixels] gemm. scipy
 * centres a kernel of size k on index (k-1)/2; an even size is made odd by putting a
 * zero row/column after the flipped kernel, which keeps that centring with the symmetric
 * padding im2col applies. The column matrix is kk times the image, so tall images are cut
 * into row strips that keep it under a byte budget; a strip that touches the top or
 * bottom edge is first copied into a zero-padded staging buffer. */
#include <math.h>

#include "internal.h"
#include "deconv/restore.h"

#define RL_EPS 1e-12f
/* Default im2col budget: the backend's scratch_bytes. On the CPU (4 MB), strips whose column
 * matrix stays in cache ran about ten times faster than one whole-image matrix (512 x 512
 * image, 11 x 11 and 25 x 25 PSFs); a GPU prefers fewer, larger launches (32 MB), which is
 * also the fallback for a backend that names none. */
#define DEVICE_COLS_BYTES ((size_t)32 << 20)

void dc_rl_options_default(dc_rl_options *o) {
    if (!o) return;
    o->iterations = 50;
    o->filter_epsilon = 0.0f;
    o->clip = 1;
    o->max_cols_bytes = 0;
}

/* Everything one 'same' convolution of an h x w plane needs on the device. */
typedef struct conv_plan {
    int h, w;
    int kh, kw;       /* odd (padded) kernel size */
    int ph, pw;       /* (kh-1)/2, (kw-1)/2 */
    int strip_rows;   /* output rows per im2col; >= h means one pass over the whole plane */
    dc_buffer *cols;  /* [kh*kw, strip_rows*w] */
    dc_buffer *stage; /* [(strip_rows + 2ph) * w] zero-padded input rows, or NULL */
} conv_plan;

static void plan_release(dc_backend *be, conv_plan *p) {
    if (p->cols) DC_BE(be, free, p->cols);
    if (p->stage) DC_BE(be, free, p->stage);
    p->cols = p->stage = NULL;
}

/* Correlation weights (odd kh x kw) for convolving with `kernel` (kh0 x kw0), scipy
 * centring: wt[i][j] = kernel[kh0-1-i][kw0-1-j], zero in the padded last row/column. */
static void correlation_weights(const float *kernel, int kh0, int kw0, int flip_input,
                                float *wt, int kh, int kw) {
    memset(wt, 0, sizeof(float) * kh * kw);
    for (int i = 0; i < kh0; i++)
        for (int j = 0; j < kw0; j++) {
            /* flip_input: the kernel is itself the flipped PSF (RL's psf_mirror). */
            int si = flip_input ? i : kh0 - 1 - i, sj = flip_input ? j : kw0 - 1 - j;
            wt[i * kw + j] = kernel[si * kw0 + sj];
        }
}

static dc_status plan_create(dc_backend *be, int h, int w, int kh0, int kw0, size_t budget,
                             conv_plan *p, dc_error *err) {
    memset(p, 0, sizeof *p);
    p->h = h;
    p->w = w;
    p->kh = kh0 | 1;
    p->kw = kw0 | 1;
    p->ph = (p->kh - 1) / 2;
    p->pw = (p->kw - 1) / 2;
    if (!budget) budget = be->scratch_bytes ? be->scratch_bytes : DEVICE_COLS_BYTES;
    const size_t kk = (size_t)p->kh * p->kw;
    size_t rows = budget / (kk * (size_t)w * sizeof(float));
    if (rows < 1) rows = 1;
    /* gemm takes int sizes */
    const size_t int_rows = (size_t)INT32_MAX / (kk > (size_t)w ? kk : (size_t)w) / (size_t)w;
    if (rows > int_rows) rows = int_rows;
    if (rows < 1)
        return dc_set_error(err, DC_ERR_SHAPE, "image width %d with a %d x %d PSF is too large",
                            w, kh0, kw0);
    p->strip_rows = rows >= (size_t)h ? h : (int)rows;
    dc_status s = DC_BE(be, alloc, kk * (size_t)p->strip_rows * w * sizeof(float), &p->cols);
    if (s == DC_OK && p->strip_rows < h)
        s = DC_BE(be, alloc, (size_t)(p->strip_rows + 2 * p->ph) * w * sizeof(float),
                           &p->stage);
    if (s != DC_OK) {
        plan_release(be, p);
        return dc_set_error(err, s, "convolution buffers for a %d x %d image, %d x %d PSF: %s", h,
                            w, kh0, kw0, be->err.msg);
    }
    return DC_OK;
}

/* dst = src correlated with the odd weights `wt` (device, kh*kw), zero boundaries. */
static dc_status conv_run(dc_backend *be, const conv_plan *p, dc_ptr wt, dc_ptr src, dc_ptr dst) {
    const int h = p->h, w = p->w, kk = p->kh * p->kw;
    dc_ptr cols = {p->cols, 0};
    if (p->strip_rows >= h) {
        dc_win2d g = {1, 1, h, w, p->kh, p->kw, 1, 1, p->ph, p->pw, h, w};
        DC_TRY(DC_BE(be, im2col, &g, 0, 1, src, cols));
        return DC_BE(be, gemm, 0, 0, 1, h * w, kk, 1.0f, wt, kk, cols, h * w, 0.0f, dst, h * w);
    }
    for (int y0 = 0; y0 < h; y0 += p->strip_rows) {
        const int rows = y0 + p->strip_rows <= h ? p->strip_rows : h - y0;
        const int in_rows = rows + 2 * p->ph, top = y0 - p->ph; /* first input row */
        dc_ptr in;
        if (top >= 0 && top + in_rows <= h) {
            in = dc_ptr_at(src, (size_t)top * w); /* interior strip: read the plane in place */
        } else {
            in.buf = p->stage;
            in.off = 0;
            const int first = top < 0 ? 0 : top, last = top + in_rows > h ? h : top + in_rows;
            DC_TRY(DC_BE(be, fill, in, (size_t)in_rows * w, 0.0f));
            if (last > first)
                DC_TRY(DC_BE(be, copy, dc_ptr_at(in, (size_t)(first - top) * w),
                             dc_ptr_at(src, (size_t)first * w), (size_t)(last - first) * w));
        }
        dc_win2d g = {1, 1, in_rows, w, p->kh, p->kw, 1, 1, 0, p->pw, rows, w};
        DC_TRY(DC_BE(be, im2col, &g, 0, 1, in, cols));
        DC_TRY(DC_BE(be, gemm, 0, 0, 1, rows * w, kk, 1.0f, wt, kk, cols, rows * w, 0.0f,
                     dc_ptr_at(dst, (size_t)y0 * w), rows * w));
    }
    return DC_OK;
}

static dc_status wrap_backend(dc_backend *be, dc_status s, const char *step, dc_error *err) {
    return dc_set_error(err, s, "%s on the %s backend: %s", step, be->ops->name,
                        be->err.msg[0] ? be->err.msg : dc_status_name(s));
}

dc_status dc_convolve_same_backend(dc_backend *be, const dc_fimage *image, const dc_fimage *psf,
                                   size_t max_cols_bytes, dc_fimage **out, dc_error *err) {
    if (!be || !out) return dc_set_error(err, DC_ERR_ARG, "dc_convolve_same_backend: NULL argument");
    *out = NULL;
    DC_TRY(dc_psf_check(psf, image, err));
    const int h = image->h, w = image->w;
    const size_t hw = (size_t)h * w;
    conv_plan plan;
    DC_TRY(plan_create(be, h, w, psf->h, psf->w, max_cols_bytes, &plan, err));
    const size_t kk = (size_t)plan.kh * plan.kw;
    float *wt = malloc(kk * sizeof *wt);
    dc_buffer *buf = NULL;
    dc_status s = wt ? DC_OK : dc_set_error(err, DC_ERR_OOM, "convolution: out of memory");
    if (s == DC_OK) s = dc_fimage_create(h, w, image->c, out, err);
    if (s == DC_OK && (s = DC_BE(be, alloc, (2 * hw + kk) * sizeof(float), &buf)) != DC_OK)
        s = wrap_backend(be, s, "convolution buffers", err);
    if (s == DC_OK) {
        dc_ptr x = {buf, 0}, y = {buf, hw}, wptr = {buf, 2 * hw};
        correlation_weights(psf->data, psf->h, psf->w, 0, wt, plan.kh, plan.kw);
        s = DC_BE(be, write, wptr, wt, kk * sizeof(float));
        for (int c = 0; c < image->c && s == DC_OK; c++) {
            s = DC_BE(be, write, x, dc_fimage_plane(image, c), hw * sizeof(float));
            if (s == DC_OK) s = conv_run(be, &plan, wptr, x, y);
            if (s == DC_OK) s = DC_BE(be, read, y, dc_fimage_plane(*out, c), hw * sizeof(float));
        }
        if (s != DC_OK) s = wrap_backend(be, s, "convolution", err);
    }
    if (buf) DC_BE(be, free, buf);
    plan_release(be, &plan);
    free(wt);
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}

dc_status dc_richardson_lucy(dc_backend *be, const dc_fimage *image, const dc_fimage *psf,
                             const dc_rl_options *opt, dc_fimage **out, dc_error *err) {
    if (!be || !out) return dc_set_error(err, DC_ERR_ARG, "dc_richardson_lucy: NULL argument");
    *out = NULL;
    dc_rl_options def;
    if (!opt) {
        dc_rl_options_default(&def);
        opt = &def;
    }
    DC_TRY(dc_psf_check(psf, image, err));
    if (opt->iterations < 0)
        return dc_set_error(err, DC_ERR_ARG, "Richardson-Lucy: iterations must be >= 0, got %d",
                            opt->iterations);
    if (!(opt->filter_epsilon >= 0.0f) || !isfinite(opt->filter_epsilon))
        return dc_set_error(err, DC_ERR_ARG,
                            "Richardson-Lucy: filter epsilon must be finite and >= 0, got %g",
                            (double)opt->filter_epsilon);

    const int h = image->h, w = image->w;
    const size_t hw = (size_t)h * w;
    conv_plan plan;
    DC_TRY(plan_create(be, h, w, psf->h, psf->w, opt->max_cols_bytes, &plan, err));
    const size_t kk = (size_t)plan.kh * plan.kw;

    /* One device buffer: observed, two estimates (ping-pong, so no kernel writes the
     * buffer it reads), two temporaries, and the two weight sets. */
    float *wt = malloc(2 * kk * sizeof *wt);
    dc_buffer *buf = NULL;
    dc_status s = wt ? DC_OK : dc_set_error(err, DC_ERR_OOM, "Richardson-Lucy: out of memory");
    if (s == DC_OK) s = dc_fimage_create(h, w, image->c, out, err);
    if (s == DC_OK && (s = DC_BE(be, alloc, (5 * hw + 2 * kk) * sizeof(float), &buf)) != DC_OK)
        s = wrap_backend(be, s, "Richardson-Lucy buffers", err);
    if (s != DC_OK) goto done;

    dc_ptr observed = {buf, 0}, est = {buf, hw}, next = {buf, 2 * hw}, blurred = {buf, 3 * hw},
           ratio = {buf, 4 * hw}, w_psf = {buf, 5 * hw}, w_mirror = {buf, 5 * hw + kk};
    /* convolve(., psf) and convolve(., flip(psf)) as correlations */
    correlation_weights(psf->data, psf->h, psf->w, 0, wt, plan.kh, plan.kw);
    correlation_weights(psf->data, psf->h, psf->w, 1, wt + kk, plan.kh, plan.kw);
    const char *step = "uploading the PSF";
    if ((s = DC_BE(be, write, w_psf, wt, 2 * kk * sizeof(float))) != DC_OK) goto backend_fail;
    const float threshold = opt->filter_epsilon; /* 0: no filtering, as in scikit-image */
    for (int c = 0; c < image->c; c++) {
        step = "uploading the image";
        if ((s = DC_BE(be, write, observed, dc_fimage_plane(image, c), hw * sizeof(float))))
            goto backend_fail;
        if ((s = DC_BE(be, fill, est, hw, 0.5f))) goto backend_fail;
        for (int it = 0; it < opt->iterations; it++) {
            step = "blurring the estimate";
            if ((s = conv_run(be, &plan, w_psf, est, blurred))) goto backend_fail;
            step = "relative blur";
            if ((s = DC_BE(be, div_filtered, ratio, observed, blurred, hw, RL_EPS, threshold)))
                goto backend_fail;
            step = "correlating the relative blur";
            if ((s = conv_run(be, &plan, w_mirror, ratio, blurred))) goto backend_fail;
            step = "updating the estimate";
            if ((s = DC_BE(be, binary, 1, next, est, blurred, hw))) goto backend_fail;
            dc_ptr t = est;
            est = next;
            next = t;
        }
        step = "reading the result";
        float *dst = dc_fimage_plane(*out, c);
        if ((s = DC_BE(be, read, est, dst, hw * sizeof(float)))) goto backend_fail;
        if (opt->clip)
            for (size_t p = 0; p < hw; p++)
                dst[p] = dst[p] > 1.0f ? 1.0f : (dst[p] < -1.0f ? -1.0f : dst[p]);
    }
    s = dc_fimage_check_finite(*out, "Richardson-Lucy result", err);
    goto done;
backend_fail:
    {
        char what[160];
        snprintf(what, sizeof what, "Richardson-Lucy (%s)", step);
        s = wrap_backend(be, s, what, err);
    }
done:
    if (buf) DC_BE(be, free, buf);
    plan_release(be, &plan);
    free(wt);
    if (s != DC_OK) {
        dc_fimage_free(*out);
        *out = NULL;
    }
    return s;
}
