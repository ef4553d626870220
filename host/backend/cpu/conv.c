/* CPU convolutions: im2col / col2im plumbing, bias add and its gradient, and the fused
 * convolutions that run whole images per thread (3x3 stride 1 may go to winograd.c). */

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

/* ---- convolution plumbing ---- */
/* The output columns ox whose input column ix = ox * sw - pw + j lies inside [0, w):
 * [*ox0, *ox1), possibly empty. */
static void valid_cols(const dc_win2d *g, int j, int *ox0, int *ox1) {
    const int lo = g->pw - j, hi = g->w + g->pw - j; /* need lo <= ox * sw < hi */
    int a = lo <= 0 ? 0 : (lo + g->sw - 1) / g->sw;
    int b = hi <= 0 ? 0 : (hi + g->sw - 1) / g->sw;
    if (b > g->ow) b = g->ow;
    if (a > b) a = b;
    *ox0 = a;
    *ox1 = b;
}

/* One row of the column matrix: kernel offset (i, j) of one channel plane, oh*ow values,
 * zero where the window reads padding. Shared by the batched im2col and the fused conv.
 * The valid range is computed once per row and the copies are plain loops the compiler
 * vectorizes (rows are 7-64 floats: a memcpy call per row cost more than the copy). */
static void im2col_row(const dc_win2d *g, const float *plane, int i, int j, int oy0, int oy1,
                       float *dst) {
    int ox0, ox1;
    valid_cols(g, j, &ox0, &ox1);
    const int sw = g->sw, off = j - g->pw;
    for (int oy = oy0; oy < oy1; oy++) {
        const int iy = oy * g->sh - g->ph + i;
        float *restrict drow = dst + (size_t)(oy - oy0) * g->ow;
        if (iy < 0 || iy >= g->h) {
            for (int ox = 0; ox < g->ow; ox++) drow[ox] = 0.0f;
            continue;
        }
        const float *restrict srow = plane + (size_t)iy * g->w + off;
        for (int ox = 0; ox < ox0; ox++) drow[ox] = 0.0f;
        if (sw == 1) {
#pragma omp simd
            for (int ox = ox0; ox < ox1; ox++) drow[ox] = srow[ox];
        } else {
            for (int ox = ox0; ox < ox1; ox++) drow[ox] = srow[ox * sw];
        }
        for (int ox = ox1; ox < g->ow; ox++) drow[ox] = 0.0f;
    }
}

/* The inverse of one row (output rows [oy0, oy1)): plane += fold(row). */
static void col2im_row(const dc_win2d *g, const float *src, int i, int j, int oy0, int oy1,
                       float *plane) {
    int ox0, ox1;
    valid_cols(g, j, &ox0, &ox1);
    const int sw = g->sw, off = j - g->pw;
    for (int oy = oy0; oy < oy1; oy++) {
        const int iy = oy * g->sh - g->ph + i;
        if (iy < 0 || iy >= g->h) continue;
        float *restrict drow = plane + (size_t)iy * g->w + off;
        const float *restrict srow = src + (size_t)(oy - oy0) * g->ow;
        if (sw == 1) {
#pragma omp simd
            for (int ox = ox0; ox < ox1; ox++) drow[ox] += srow[ox];
        } else {
            for (int ox = ox0; ox < ox1; ox++) drow[ox * sw] += srow[ox];
        }
    }
}

/* One image, one thread, output rows [oy0, oy1): columns [c*kh*kw, (oy1-oy0)*ow]. */
static void im2col_block(const dc_win2d *g, const float *src0, int oy0, int oy1, float *dst0) {
    const size_t bp = (size_t)(oy1 - oy0) * g->ow, plane = (size_t)g->h * g->w;
    for (int ci = 0; ci < g->c; ci++)
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++)
                im2col_row(g, src0 + ci * plane, i, j, oy0, oy1,
                           dst0 + ((size_t)(ci * g->kh + i) * g->kw + j) * bp);
}

/* One image, one thread: x += fold(columns of output rows [oy0, oy1)). */
static void col2im_block(const dc_win2d *g, const float *src0, int oy0, int oy1, float *dst0) {
    const size_t bp = (size_t)(oy1 - oy0) * g->ow, plane = (size_t)g->h * g->w;
    for (int ci = 0; ci < g->c; ci++)
        for (int i = 0; i < g->kh; i++)
            for (int j = 0; j < g->kw; j++)
                col2im_row(g, src0 + ((size_t)(ci * g->kh + i) * g->kw + j) * bp, i, j, oy0, oy1,
                           dst0 + ci * plane);
}

dc_status dc_cpu_im2col(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                        dc_ptr cols) {
    (void)be;
    const float *px = F(x);
    float *pc = F(cols);
    const int rows = g->c * g->kh * g->kw;
    const size_t ohw = (size_t)g->oh * g->ow, ncols = (size_t)nb * ohw;
    const size_t plane = (size_t)g->h * g->w;
#pragma omp parallel for schedule(static) collapse(2)
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < nb; n++) {
            const int ci = r / (g->kh * g->kw), i = (r / g->kw) % g->kh, j = r % g->kw;
            im2col_row(g, px + ((size_t)(n0 + n) * g->c + ci) * plane, i, j, 0, g->oh,
                       pc + (size_t)r * ncols + (size_t)n * ohw);
        }
    return DC_OK;
}

dc_status dc_cpu_col2im(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                        dc_ptr x) {
    (void)be;
    float *px = F(x);
    const float *pc = F(cols);
    const size_t ohw = (size_t)g->oh * g->ow, ncols = (size_t)nb * ohw;
    const size_t plane = (size_t)g->h * g->w;
    /* Each (image, channel) plane is owned by one thread: deterministic, no atomics. */
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < nb; n++)
        for (int ci = 0; ci < g->c; ci++)
            for (int i = 0; i < g->kh; i++)
                for (int j = 0; j < g->kw; j++) {
                    const int r = (ci * g->kh + i) * g->kw + j;
                    col2im_row(g, pc + (size_t)r * ncols + (size_t)n * ohw, i, j, 0, g->oh,
                               px + ((size_t)(n0 + n) * g->c + ci) * plane);
                }
    return DC_OK;
}

dc_status dc_cpu_cm_to_nchw(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0,
                            int nb, int c, int hw, float beta) {
    (void)be;
    const float *ps = F(src);
    const float *pb = bias.buf ? F(bias) : NULL;
    float *pd = F(dst);
    const size_t ncols = (size_t)nb * hw;
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < nb; n++)
        for (int ch = 0; ch < c; ch++) {
            const float *s = ps + (size_t)ch * ncols + (size_t)n * hw;
            float *d = pd + ((size_t)(n0 + n) * c + ch) * hw;
            const float b = pb ? pb[ch] : 0.0f;
            if (beta == 0.0f)
                for (int p = 0; p < hw; p++) d[p] = s[p] + b;
            else
                for (int p = 0; p < hw; p++) d[p] = beta * d[p] + s[p] + b;
        }
    return DC_OK;
}

dc_status dc_cpu_nchw_to_cm(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c,
                            int hw) {
    (void)be;
    const float *ps = F(src);
    float *pd = F(dst);
    const size_t ncols = (size_t)nb * hw;
#pragma omp parallel for schedule(static) collapse(2)
    for (int n = 0; n < nb; n++)
        for (int ch = 0; ch < c; ch++)
            memcpy(pd + (size_t)ch * ncols + (size_t)n * hw, ps + ((size_t)(n0 + n) * c + ch) * hw,
                   sizeof(float) * hw);
    return DC_OK;
}

dc_status dc_cpu_bias_add(dc_backend *be, dc_ptr y, dc_ptr bias, int n, int c, int hw) {
    (void)be;
    float *py = F(y);
    const float *pb = F(bias);
#pragma omp parallel for schedule(static) collapse(2) if ((size_t)n * c * hw > 65536)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            float *d = py + ((size_t)i * c + ch) * hw;
            for (int p = 0; p < hw; p++) d[p] += pb[ch];
        }
    return DC_OK;
}

dc_status dc_cpu_bias_grad(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw) {
    cpu_backend *cb = (cpu_backend *)be;
    float *pdb = F(db);
    const float *pdy = F(dy);
    if (hw == 1) {
        /* a dense layer's bias: rows of c values, summed down the rows in double, in row
         * order, vectorized across the columns (one tiny plane per value was 1.9 ms) */
#pragma omp parallel for schedule(static) if ((size_t)n * c > 65536)
        for (int c0 = 0; c0 < c; c0 += 256) {
            const int c1 = c0 + 256 < c ? c0 + 256 : c;
            double acc[256] = {0};
            for (int i = 0; i < n; i++) {
                const float *restrict row = pdy + (size_t)i * c;
#pragma omp simd
                for (int ch = c0; ch < c1; ch++) acc[ch - c0] += row[ch];
            }
            for (int ch = c0; ch < c1; ch++) pdb[ch] += (float)acc[ch - c0];
        }
        return DC_OK;
    }
    const int planes = n * c;
    double *part = dc_cpu_red_buffer(cb, (size_t)planes);
    if (!part) return dc_set_error(&be->err, DC_ERR_OOM, "cpu bias_grad: out of memory");
#pragma omp parallel for schedule(static) if ((size_t)planes * hw > 65536)
    for (int pl = 0; pl < planes; pl++)
        part[pl] = dc_cpu_plane_sum(pdy + (size_t)pl * hw, (size_t)hw);
    for (int ch = 0; ch < c; ch++) pdb[ch] += (float)dc_cpu_channel_total(part, n, c, ch);
    return DC_OK;
}

/* ---- fused convolution, parallel over images ----
 * Each thread takes whole images: im2col of one image into its own cache-sized buffer,
 * then single-threaded GEMMs straight on the NCHW slices (no layout copies). Weight
 * gradients go to per-thread accumulators summed in thread order, so results are
 * deterministic for a given thread count. */
float *dc_cpu_scratch(cpu_backend *b, size_t per_thread, int threads) {
    size_t need = per_thread * (size_t)threads;
    if (need > b->scratch_elems) {
        float *p = realloc(b->scratch, need * sizeof(float));
        if (!p) return NULL;
        b->scratch = p;
        b->scratch_elems = need;
    }
    return b->scratch;
}

/* Output rows per block so that one block's columns (K x rows*ow floats) stay in the
 * per-core L2 cache (1 MB here): a whole image's columns (1.2 MB for a 32x32 layer with
 * K = 288) spill to L3 between im2col and the GEMM that reads them. Smaller blocks lose
 * more in GEMM efficiency (N shrinks) than they gain: 256 KB was 2% slower than 640 KB.
 * Blocks are made equal. */
#define CONV_COLS_BYTES (640 * 1024)
static int block_rows(int K, int oh, int ow) {
    int rows = (int)(CONV_COLS_BYTES / sizeof(float) / ((size_t)K * ow));
    if (rows < 1) rows = 1;
    if (rows >= oh) return oh;
    const int nb = (oh + rows - 1) / rows;
    return (oh + nb - 1) / nb;
}

dc_status dc_cpu_conv2d_fwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                            dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    if (dc_cpu_wino_ok(cb, g, oc))
        return dc_cpu_wino_fwd(cb, g, oc, F(x), F(w), bias.buf ? F(bias) : NULL, F(y), act);
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow, T = omp_get_max_threads();
    const int br = block_rows(K, g->oh, g->ow);
    float *scr = dc_cpu_scratch(cb, (size_t)K * br * g->ow, T);
    if (!scr) return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv2d: out of memory");
    const float *pw = F(w), *pb = bias.buf ? F(bias) : NULL, *px = F(x);
    float *py = F(y);
    const size_t in_img = (size_t)g->c * g->h * g->w, out_img = (size_t)oc * ohw;
    dc_win2d one = *g;
    one.n = 1;
#pragma omp parallel num_threads(T)
    {
        float *cols = scr + (size_t)omp_get_thread_num() * K * br * g->ow;
#pragma omp for schedule(static)
        for (int n = 0; n < g->n; n++) {
            float *yn = py + (size_t)n * out_img;
            for (int oy0 = 0; oy0 < g->oh; oy0 += br) {
                const int oy1 = oy0 + br < g->oh ? oy0 + br : g->oh, bp = (oy1 - oy0) * g->ow;
                /* y_n[:, block] = W [oc, K] cols [K, block] */
                im2col_block(&one, px + (size_t)n * in_img, oy0, oy1, cols);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, bp, K, 1.0f, pw, K, cols,
                            bp, 0.0f, yn + (size_t)oy0 * g->ow, ohw);
            }
            dc_cpu_bias_act_rows(yn, pb, oc, (size_t)ohw, act);
        }
    }
    return DC_OK;
}

dc_status dc_cpu_conv2d_bwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                            dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                            const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow, T = omp_get_max_threads();
    if (dc_cpu_wino_ok(cb, g, oc)) {
        if (db.buf && !act) dc_cpu_bias_grad(be, db, dy, g->n, oc, ohw);
        return dc_cpu_wino_bwd(cb, g, oc, F(x), F(w), act ? F(y) : NULL, F(dy),
                               dx.buf ? F(dx) : NULL, F(dw), db.buf ? F(db) : NULL, act);
    }
    const int br = block_rows(K, g->oh, g->ow);
    const size_t out_img = (size_t)oc * ohw, in_img = (size_t)g->c * g->h * g->w;
    /* per thread: one block's columns, the weight-gradient accumulator, and with a fused
     * activation the image's pre-activation gradient */
    const size_t ncols = (size_t)K * br * g->ow, per = ncols + (size_t)oc * K + (act ? out_img : 0);
    float *scr = dc_cpu_scratch(cb, per, T);
    if (!scr) return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv2d: out of memory");
    const float *pw = F(w), *pdy = F(dy), *px = F(x), *py = act ? F(y) : NULL;
    float *pdw = F(dw);
    double *part = NULL;
    if (db.buf && act && !(part = dc_cpu_red_buffer(cb, (size_t)g->n * oc)))
        return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv2d: out of memory");
    if (db.buf && !act) dc_cpu_bias_grad(be, db, dy, g->n, oc, ohw);
    dc_win2d one = *g;
    one.n = 1;
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        float *cols = scr + (size_t)t * per, *acc = cols + ncols, *dpre = acc + (size_t)oc * K;
        memset(acc, 0, sizeof(float) * oc * K);
#pragma omp for schedule(static)
        for (int n = 0; n < g->n; n++) {
            const float *dyn = dc_cpu_image_grad(act, act ? py + (size_t)n * out_img : NULL,
                                          pdy + (size_t)n * out_img, dpre, oc, (size_t)ohw,
                                          part ? part + (size_t)n * oc : NULL);
            for (int oy0 = 0; oy0 < g->oh; oy0 += br) {
                const int oy1 = oy0 + br < g->oh ? oy0 + br : g->oh, bp = (oy1 - oy0) * g->ow;
                const float *dyb = dyn + (size_t)oy0 * g->ow;
                /* dW += dy_n[:, block] cols^T; dcols = W^T dy_n[:, block], folded into dx_n */
                im2col_block(&one, px + (size_t)n * in_img, oy0, oy1, cols);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, K, bp, 1.0f, dyb, ohw,
                            cols, bp, 1.0f, acc, K);
                if (dx.buf) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, bp, oc, 1.0f, pw, K,
                                dyb, ohw, 0.0f, cols, bp);
                    col2im_block(&one, cols, oy0, oy1, F(dx) + (size_t)n * in_img);
                }
            }
        }
    }
    /* fixed-order reductions: per-thread weight gradients, per-image bias sums */
    for (int t = 0; t < T; t++) {
        const float *acc = scr + (size_t)t * per + ncols;
        for (size_t i = 0; i < (size_t)oc * K; i++) pdw[i] += acc[i];
    }
    if (part)
        for (int o = 0; o < oc; o++) F(db)[o] += (float)dc_cpu_channel_total(part, g->n, oc, o);
    return DC_OK;
}

dc_status dc_cpu_conv_t2d_fwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                              dc_ptr w, dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow, T = omp_get_max_threads();
    const int br = block_rows(R, g->oh, g->ow);
    float *scr = dc_cpu_scratch(cb, (size_t)R * br * g->ow, T);
    if (!scr) return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv_transpose2d: out of memory");
    const float *pw = F(w), *px = F(x), *pb = bias.buf ? F(bias) : NULL;
    float *py = F(y);
    const size_t in_img = (size_t)cin * hw, big = (size_t)g->h * g->w, out_img = (size_t)g->c * big;
    dc_win2d one = *g;
    one.n = 1;
#pragma omp parallel num_threads(T)
    {
        float *cols = scr + (size_t)omp_get_thread_num() * R * br * g->ow;
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            float *yi = py + (size_t)i * out_img;
            memset(yi, 0, sizeof(float) * out_img);
            for (int oy0 = 0; oy0 < g->oh; oy0 += br) {
                const int oy1 = oy0 + br < g->oh ? oy0 + br : g->oh, bp = (oy1 - oy0) * g->ow;
                /* cols [R, block] = W[cin, R]^T x_i[:, block], folded into the output */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, bp, cin, 1.0f, pw, R,
                            px + (size_t)i * in_img + (size_t)oy0 * g->ow, hw, 0.0f, cols, bp);
                col2im_block(&one, cols, oy0, oy1, yi);
            }
            dc_cpu_bias_act_rows(yi, pb, g->c, big, act);
        }
    }
    return DC_OK;
}

dc_status dc_cpu_conv_t2d_bwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                              dc_ptr w, dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                              const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow, T = omp_get_max_threads();
    const int br = block_rows(R, g->oh, g->ow);
    const size_t in_img = (size_t)cin * hw, big = (size_t)g->h * g->w, out_img = (size_t)g->c * big;
    const size_t ncols = (size_t)R * br * g->ow,
                 per = ncols + (size_t)cin * R + (act ? out_img : 0);
    float *scr = dc_cpu_scratch(cb, per, T);
    if (!scr) return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv_transpose2d: out of memory");
    const float *pw = F(w), *px = F(x), *pdy = F(dy), *py = act ? F(y) : NULL;
    float *pdw = F(dw);
    double *part = NULL;
    if (db.buf && act && !(part = dc_cpu_red_buffer(cb, (size_t)n * g->c)))
        return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv_transpose2d: out of memory");
    if (db.buf && !act) dc_cpu_bias_grad(be, db, dy, n, g->c, (int)big);
    dc_win2d one = *g;
    one.n = 1;
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        float *cols = scr + (size_t)t * per, *acc = cols + ncols, *dpre = acc + (size_t)cin * R;
        memset(acc, 0, sizeof(float) * cin * R);
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *dyi = dc_cpu_image_grad(act, act ? py + (size_t)i * out_img : NULL,
                                          pdy + (size_t)i * out_img, dpre, g->c, big,
                                          part ? part + (size_t)i * g->c : NULL);
            for (int oy0 = 0; oy0 < g->oh; oy0 += br) {
                const int oy1 = oy0 + br < g->oh ? oy0 + br : g->oh, bp = (oy1 - oy0) * g->ow;
                const size_t boff = (size_t)i * in_img + (size_t)oy0 * g->ow;
                im2col_block(&one, dyi, oy0, oy1, cols);
                /* dW[cin, R] += x_i[:, block] cols^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cin, R, bp, 1.0f, px + boff,
                            hw, cols, bp, 1.0f, acc, R);
                if (dx.buf) /* dx_i[:, block] += W [cin, R] cols [R, block] */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cin, bp, R, 1.0f, pw, R,
                                cols, bp, 1.0f, F(dx) + boff, hw);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        const float *acc = scr + (size_t)t * per + ncols;
        for (size_t i = 0; i < (size_t)cin * R; i++) pdw[i] += acc[i];
    }
    if (part)
        for (int o = 0; o < g->c; o++) F(db)[o] += (float)dc_cpu_channel_total(part, n, g->c, o);
    return DC_OK;
}
