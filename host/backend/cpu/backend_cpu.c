/* CPU backend: buffers are host memory, GEMM is OpenBLAS's cblas_sgemm, everything
 * else is loops parallelised with OpenMP. It is the reference every other backend is
 * compared with, so reductions accumulate in double and run in a fixed order (static
 * OpenMP schedules), which makes results bit-identical run to run for one thread count. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "cpu_internal.h"

static dc_status cpu_alloc(dc_backend *be, size_t bytes, dc_buffer **out) {
    *out = NULL;
    dc_buffer *b = calloc(1, sizeof *b);
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    if (!b || !(b->data = aligned_alloc(64, rounded))) {
        free(b);
        return dc_set_error(&be->err, DC_ERR_OOM, "cpu: cannot allocate %zu bytes", bytes);
    }
    memset(b->data, 0, rounded);
    b->bytes = bytes;
    be->bytes_allocated += bytes;
    if (be->bytes_allocated > be->bytes_peak) be->bytes_peak = be->bytes_allocated;
    *out = b;
    return DC_OK;
}

static void cpu_free(dc_backend *be, dc_buffer *b) {
    if (!b) return;
    be->bytes_allocated -= b->bytes;
    free(b->data);
    free(b);
}

static dc_status check_range(dc_backend *be, dc_ptr p, size_t bytes, const char *what) {
    if (!p.buf) return dc_set_error(&be->err, DC_ERR_ARG, "cpu %s: NULL buffer", what);
    if (p.off * 4 + bytes > p.buf->bytes)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "cpu %s: %zu bytes at element %zu overrun a %zu-byte buffer", what,
                            bytes, p.off, p.buf->bytes);
    return DC_OK;
}

static dc_status cpu_write(dc_backend *be, dc_ptr dst, const void *src, size_t bytes) {
    DC_TRY(check_range(be, dst, bytes, "write"));
    memcpy(F(dst), src, bytes);
    return DC_OK;
}

static dc_status cpu_read(dc_backend *be, dc_ptr src, void *dst, size_t bytes) {
    DC_TRY(check_range(be, src, bytes, "read"));
    memcpy(dst, F(src), bytes);
    return DC_OK;
}

static dc_status cpu_copy(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n) {
    DC_TRY(check_range(be, dst, n * 4, "copy"));
    DC_TRY(check_range(be, src, n * 4, "copy"));
    memmove(F(dst), F(src), n * 4);
    return DC_OK;
}

static dc_status cpu_sync(dc_backend *be) {
    (void)be;
    return DC_OK;
}

static dc_status cpu_fill(dc_backend *be, dc_ptr dst, size_t n, float v) {
    (void)be;
    float *d = F(dst);
    if (v == 0.0f) {
        memset(d, 0, n * 4);
        return DC_OK;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] = v;
    return DC_OK;
}

static dc_status cpu_scale(dc_backend *be, dc_ptr dst, size_t n, float a) {
    (void)be;
    float *d = F(dst);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] *= a;
    return DC_OK;
}

static dc_status cpu_axpy(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float a) {
    (void)be;
    float *py = F(y);
    const float *px = F(x);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) py[i] += a * px[i];
    return DC_OK;
}

static dc_status cpu_binary(dc_backend *be, int op, dc_ptr y, dc_ptr a, dc_ptr b, size_t n) {
    float *py = F(y);
    const float *pa = F(a), *pb = F(b);
    switch (op) {
    case 0:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
        break;
    case 1:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) py[i] = pa[i] * pb[i];
        break;
    case 2:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) py[i] += pa[i] * pb[i];
        break;
    default: return dc_set_error(&be->err, DC_ERR_ARG, "cpu binary: unknown op %d", op);
    }
    return DC_OK;
}

static dc_status cpu_div_filtered(dc_backend *be, dc_ptr y, dc_ptr a, dc_ptr b, size_t n,
                                  float eps, float threshold) {
    (void)be;
    float *py = F(y);
    const float *pa = F(a), *pb = F(b);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float d = pb[i] + eps;
        py[i] = (threshold > 0.0f && d < threshold) ? 0.0f : pa[i] / d;
    }
    return DC_OK;
}

static dc_status cpu_gemm(dc_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                          dc_ptr a, int lda, dc_ptr b, int ldb, float beta, dc_ptr c, int ldc) {
    (void)be;
    if (m <= 0 || n <= 0) return DC_OK;
    if (k <= 0) {
        /* C = beta*C: BLAS would do this too, but be explicit for k == 0. */
        float *pc = F(c);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) pc[(size_t)i * ldc + j] *= beta;
        return DC_OK;
    }
    /* One threading runtime: OpenBLAS runs single-threaded and OpenMP splits the product
     * into column (or row) panels, one per thread. Two runtimes on the same cores make
     * each spin while the other computes (measured: 44% of a training step in libgomp's
     * spin loop with OpenBLAS's own threads). */
    const float *pa = F(a), *pb = F(b);
    float *pc = F(c);
    const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    const int threads = omp_get_max_threads();
    const double work = 2.0 * m * n * k;
    if (threads <= 1 || work < 4e6) {
        cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        return DC_OK;
    }
    if (n >= m) {
        /* split the columns of C (and of op(B)) into panels, multiples of 16 */
        const int panel = ((n + threads - 1) / threads + 15) & ~15;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < threads; t++) {
            const int n0 = t * panel, n1 = n0 + panel < n ? n0 + panel : n;
            if (n0 >= n) continue;
            const float *bp = tb ? pb + (size_t)n0 * ldb : pb + n0;
            cblas_sgemm(CblasRowMajor, TA, TB, m, n1 - n0, k, alpha, pa, lda, bp, ldb, beta,
                        pc + n0, ldc);
        }
    } else {
        const int panel = ((m + threads - 1) / threads + 15) & ~15;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < threads; t++) {
            const int m0 = t * panel, m1 = m0 + panel < m ? m0 + panel : m;
            if (m0 >= m) continue;
            const float *ap = ta ? pa + m0 : pa + (size_t)m0 * lda;
            cblas_sgemm(CblasRowMajor, TA, TB, m1 - m0, n, k, alpha, ap, lda, pb, ldb, beta,
                        pc + (size_t)m0 * ldc, ldc);
        }
    }
    return DC_OK;
}

static dc_status cpu_reduce_sum(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int squares) {
    (void)be;
    const float *px = F(x);
    double s = 0;
    if (squares) {
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
        for (size_t i = 0; i < n; i++) s += (double)px[i] * px[i];
    } else {
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
        for (size_t i = 0; i < n; i++) s += px[i];
    }
    F(out)[0] = (float)s;
    return DC_OK;
}

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

static dc_status cpu_im2col(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
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

static dc_status cpu_col2im(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
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

static dc_status cpu_cm_to_nchw(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0,
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

static dc_status cpu_nchw_to_cm(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c,
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

static dc_status cpu_bias_add(dc_backend *be, dc_ptr y, dc_ptr bias, int n, int c, int hw) {
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

/* ---- per-channel reductions over NCHW tensors ----
 * A channel's sum runs over n planes of hw values. Each plane is summed in float SIMD lanes
 * (blocks of at most 4096 values, carried in double between blocks), the planes in
 * parallel; the plane sums are then added in double in image order. The result does not
 * depend on the thread count, and the lanes replace a serial double add chain that ran
 * at one element per ~4 cycles. */
#define RED_BLOCK 4096

double *dc_cpu_red_buffer(cpu_backend *b, size_t need) {
    if (need > b->red_elems) {
        double *p = realloc(b->red, need * sizeof(double));
        if (!p) return NULL;
        b->red = p;
        b->red_elems = need;
    }
    return b->red;
}

double dc_cpu_plane_sum(const float *restrict d, size_t hw) {
    double total = 0;
    for (size_t b0 = 0; b0 < hw; b0 += RED_BLOCK) {
        const size_t b1 = b0 + RED_BLOCK < hw ? b0 + RED_BLOCK : hw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t p = b0; p < b1; p++) s += d[p];
        total += s;
    }
    return total;
}

/* sum of (d - m)^2 over one plane */
static double plane_sqdev(const float *restrict d, size_t hw, float m) {
    double total = 0;
    for (size_t b0 = 0; b0 < hw; b0 += RED_BLOCK) {
        const size_t b1 = b0 + RED_BLOCK < hw ? b0 + RED_BLOCK : hw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t p = b0; p < b1; p++) s += (d[p] - m) * (d[p] - m);
        total += s;
    }
    return total;
}

/* sums of dy and of dy * (x - m) over one plane */
static void plane_dy_dyx(const float *restrict dy, const float *restrict x, size_t hw, float m,
                         double *sdy, double *sdyx) {
    double t0 = 0, t1 = 0;
    for (size_t b0 = 0; b0 < hw; b0 += RED_BLOCK) {
        const size_t b1 = b0 + RED_BLOCK < hw ? b0 + RED_BLOCK : hw;
        float s0 = 0.0f, s1 = 0.0f;
#pragma omp simd reduction(+ : s0, s1)
        for (size_t p = b0; p < b1; p++) {
            s0 += dy[p];
            s1 += dy[p] * (x[p] - m);
        }
        t0 += s0;
        t1 += s1;
    }
    *sdy = t0;
    *sdyx = t1;
}

/* out[ch] = sum over images of part[i * c + ch], in image order */
double dc_cpu_channel_total(const double *part, int n, int c, int ch) {
    double s = 0;
    for (int i = 0; i < n; i++) s += part[(size_t)i * c + ch];
    return s;
}

static dc_status cpu_bias_grad(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw) {
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
    for (int pl = 0; pl < planes; pl++) part[pl] = dc_cpu_plane_sum(pdy + (size_t)pl * hw, (size_t)hw);
    for (int ch = 0; ch < c; ch++) pdb[ch] += (float)dc_cpu_channel_total(part, n, c, ch);
    return DC_OK;
}

/* ---- pooling ---- */
static dc_status cpu_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y,
                                 dc_ptr sw) {
    (void)be;
    const float *px = F(x);
    float *py = F(y);
    int32_t *ps = IP(sw);
    const int planes = g->n * g->c;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
        /* the common 2x2/2 pool: no bounds tests, window order (0,0) (0,1) (1,0) (1,1) and
         * first-maximum ties as in the general loop (measured 9% of a training step before) */
#pragma omp parallel for schedule(static)
        for (int pl = 0; pl < planes; pl++) {
            const float *src = px + pl * in_plane;
            float *dst = py + pl * out_plane;
            int32_t *sws = ps + pl * out_plane;
            for (int oy = 0; oy < g->oh; oy++) {
                const float *restrict r0 = src + (size_t)(2 * oy) * g->w, *restrict r1 = r0 + g->w;
                float *restrict drow = dst + (size_t)oy * g->ow;
                int32_t *restrict srow = sws + (size_t)oy * g->ow;
                const int32_t base = 2 * oy * g->w, w = g->w;
                /* selects, no branches: the loop vectorizes (a branch per tap mispredicts
                 * on every other window) */
#pragma omp simd
                for (int ox = 0; ox < g->ow; ox++) {
                    const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox],
                                d = r1[2 * ox + 1];
                    const int tb = b > a;
                    const float m1 = tb ? b : a;
                    const int32_t k1 = tb ? 1 : 0;
                    const int tc = c > m1;
                    const float m2 = tc ? c : m1;
                    const int32_t k2 = tc ? w : k1;
                    const int td = d > m2;
                    const float best = td ? d : m2;
                    const int32_t k = td ? w + 1 : k2;
                    drow[ox] = best;
                    srow[ox] = base + 2 * ox + k;
                }
            }
        }
        return DC_OK;
    }
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *src = px + pl * in_plane;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                float best = -INFINITY;
                int32_t arg = -1;
                for (int i = 0; i < g->kh; i++) {
                    const int iy = oy * g->sh - g->ph + i;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int j = 0; j < g->kw; j++) {
                        const int ix = ox * g->sw - g->pw + j;
                        if (ix < 0 || ix >= g->w) continue;
                        const float v = src[iy * g->w + ix];
                        if (v > best || arg < 0) {
                            best = v;
                            arg = iy * g->w + ix;
                        }
                    }
                }
                const size_t o = pl * out_plane + (size_t)oy * g->ow + ox;
                py[o] = arg >= 0 ? best : 0.0f;
                ps[o] = arg;
            }
    }
    return DC_OK;
}

static dc_status cpu_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                 dc_ptr dx) {
    (void)be;
    const float *pdy = F(dy);
    const int32_t *ps = IP(sw);
    float *pdx = F(dx);
    const int planes = g->n * g->c;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        for (size_t o = 0; o < out_plane; o++) {
            const int32_t a = ps[pl * out_plane + o];
            if (a >= 0) pdx[pl * in_plane + a] += pdy[pl * out_plane + o];
        }
    return DC_OK;
}

static dc_status cpu_unpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw,
                                dc_ptr y) {
    (void)be;
    const float *px = F(x);
    const int32_t *ps = IP(sw);
    float *py = F(y);
    const int planes = g->n * g->c;
    const size_t big = (size_t)g->h * g->w, small = (size_t)g->oh * g->ow;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *d = py + pl * big;
        memset(d, 0, big * sizeof(float));
        /* overlapping windows can share a switch: the first window (row-major) writes the
         * pixel, so walk backwards and let it write last; the backward matches this */
        for (size_t o = small; o-- > 0;) {
            const int32_t a = ps[pl * small + o];
            if (a >= 0) d[a] = px[pl * small + o];
        }
    }
    return DC_OK;
}

/* With overlapping windows several pooled values can share a switch; unpool writes that
 * pixel once, so only the first window (in row-major order) that points at a pixel is its
 * writer and receives the gradient. */
static int first_window_with_switch(const dc_win2d *g, const int32_t *sw_plane, int oy, int ox,
                                    int32_t a) {
    const int iy = a / g->w, ix = a % g->w;
    int y0 = iy + g->ph - g->kh + 1, x0 = ix + g->pw - g->kw + 1;
    y0 = y0 <= 0 ? 0 : (y0 + g->sh - 1) / g->sh;
    x0 = x0 <= 0 ? 0 : (x0 + g->sw - 1) / g->sw;
    for (int y = y0; y <= oy; y++)
        for (int x = x0; x < g->ow && (y < oy || x < ox); x++) {
            if ((x * g->sw - g->pw) > ix) break;
            if (sw_plane[y * g->ow + x] == a) return 0;
        }
    return 1;
}

static dc_status cpu_unpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                dc_ptr dx) {
    (void)be;
    const float *pdy = F(dy);
    const int32_t *ps = IP(sw);
    float *pdx = F(dx);
    const int planes = g->n * g->c;
    const size_t big = (size_t)g->h * g->w, small = (size_t)g->oh * g->ow;
    const int overlap = g->kh > g->sh || g->kw > g->sw;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                const size_t i = pl * small + (size_t)oy * g->ow + ox;
                const int32_t a = ps[i];
                if (a < 0) continue;
                if (overlap && !first_window_with_switch(g, ps + pl * small, oy, ox, a)) continue;
                pdx[i] += pdy[pl * big + a];
            }
    return DC_OK;
}

static dc_status cpu_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) {
    (void)be;
    const float *px = F(x);
    float *py = F(y);
#pragma omp parallel for schedule(static) if ((size_t)nc * hw > 65536)
    for (int i = 0; i < nc; i++) {
        double s = 0;
        for (int p = 0; p < hw; p++) s += px[(size_t)i * hw + p];
        py[i] = (float)(s / hw);
    }
    return DC_OK;
}

static dc_status cpu_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) {
    (void)be;
    const float *pdy = F(dy);
    float *pdx = F(dx);
#pragma omp parallel for schedule(static) if ((size_t)nc * hw > 65536)
    for (int i = 0; i < nc; i++) {
        const float g = pdy[i] / (float)hw;
        for (int p = 0; p < hw; p++) pdx[(size_t)i * hw + p] += g;
    }
    return DC_OK;
}

/* ---- activations ---- */
/* ReLU (y = x > 0 ? x : 0) or leaky ReLU (alpha x below 0) over n values; y may be x. */
static void relu_apply(int kind, float alpha, const float *x, float *y, size_t n) {
    if (kind == DC_ACT_RELU) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
    }
}

/* The ReLU / leaky ReLU backward rule of `mode` (dc_relu_mode) over n values: d = rule, or
 * d += rule when acc. s is positive exactly where the activation's input is: the input
 * itself, or the activated output when alpha >= 0 (fused activations). Written as selects
 * of loaded values and a multiply so that the loops vectorize (`x > 0 ? dy : neg * dy`
 * stays a branch per element, mispredicted on every sign change); dy * 1 == dy, so the
 * values are those of the branchy form. */
static void relu_grad(int kind, float alpha, int mode, const float *restrict s,
                      const float *restrict dy, float *restrict d, size_t n, int acc) {
    const float neg = kind == DC_ACT_RELU ? 0.0f : alpha;
    if (mode == DC_RELU_GUIDED) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = ((s[i] > 0.0f) & (dy[i] > 0.0f)) ? dy[i] : 0.0f;
            d[i] = acc ? d[i] + g : g;
        }
    } else if (mode == DC_RELU_DECONVNET) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = dy[i] > 0.0f ? dy[i] : 0.0f;
            d[i] = acc ? d[i] + g : g;
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = dy[i] * (s[i] > 0.0f ? 1.0f : neg);
            d[i] = acc ? d[i] + g : g;
        }
    }
}

/* elementwise passes over large tensors run in chunks of this many values per task */
#define ACT_CHUNK ((size_t)16384)
static dc_status cpu_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    const float *px = F(x);
    float *py = F(y);
    switch (kind) {
    case DC_ACT_RELU:
    case DC_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t c0 = 0; c0 < n; c0 += ACT_CHUNK)
            relu_apply(kind, alpha, px + c0, py + c0, n - c0 < ACT_CHUNK ? n - c0 : ACT_CHUNK);
        break;
    case DC_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = tanhf(px[i]);
        break;
    case DC_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = 1.0f / (1.0f + expf(-px[i]));
        break;
    case DC_ACT_SILU:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = px[i] / (1.0f + expf(-px[i]));
        break;
    default: return dc_set_error(&be->err, DC_ERR_ARG, "cpu act_fwd: unknown kind %d", kind);
    }
    return DC_OK;
}

static dc_status cpu_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                             dc_ptr dy, dc_ptr dx, size_t n) {
    const float *px = F(x), *py = F(y), *pdy = F(dy);
    float *pdx = F(dx);
    switch (kind) {
    case DC_ACT_RELU:
    case DC_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t c0 = 0; c0 < n; c0 += ACT_CHUNK)
            relu_grad(kind, alpha, mode, px + c0, pdy + c0, pdx + c0,
                      n - c0 < ACT_CHUNK ? n - c0 : ACT_CHUNK, 1);
        break;
    case DC_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) pdx[i] += pdy[i] * (1.0f - py[i] * py[i]);
        break;
    case DC_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) pdx[i] += pdy[i] * py[i] * (1.0f - py[i]);
        break;
    case DC_ACT_SILU:
        /* d/dx x*s(x) = s + x*s*(1-s), from the input (y = x*s loses s where x = 0) */
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            const float s = 1.0f / (1.0f + expf(-px[i]));
            pdx[i] += pdy[i] * (s * (1.0f + px[i] * (1.0f - s)));
        }
        break;
    default: return dc_set_error(&be->err, DC_ERR_ARG, "cpu act_bwd: unknown kind %d", kind);
    }
    return DC_OK;
}

/* ---- batch norm ---- */
static dc_status cpu_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                              int hw) {
    cpu_backend *cb = (cpu_backend *)be;
    const float *px = F(x);
    float *pm = F(mean), *pv = F(var);
    const int planes = n * c;
    const double cnt = (double)n * hw;
    double *part = dc_cpu_red_buffer(cb, (size_t)planes);
    if (!part) return dc_set_error(&be->err, DC_ERR_OOM, "cpu bn_stats: out of memory");
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) part[pl] = dc_cpu_plane_sum(px + (size_t)pl * hw, (size_t)hw);
    for (int ch = 0; ch < c; ch++) pm[ch] = (float)(dc_cpu_channel_total(part, n, c, ch) / cnt);
    /* two passes: the variance is summed around the mean, not as E[x^2] - m^2 */
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        part[pl] = plane_sqdev(px + (size_t)pl * hw, (size_t)hw, pm[pl % c]);
    for (int ch = 0; ch < c; ch++) pv[ch] = (float)(dc_cpu_channel_total(part, n, c, ch) / cnt);
    return DC_OK;
}

static dc_status cpu_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var,
                                  dc_ptr gamma, dc_ptr beta, dc_ptr y, int n, int c, int hw,
                                  float eps, const dc_fused_act *act) {
    (void)be;
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pb = F(beta);
    float *py = F(y);
#pragma omp parallel for schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float a = pg[ch] / sqrtf(pv[ch] + eps), b = pb[ch] - a * pm[ch];
            const float *s = px + ((size_t)i * c + ch) * hw;
            float *d = py + ((size_t)i * c + ch) * hw;
            for (int p = 0; p < hw; p++) d[p] = a * s[p] + b;
            if (act) dc_cpu_bias_act_rows(d, NULL, 1, (size_t)hw, act); /* the plane is in cache */
        }
    return DC_OK;
}

static dc_status cpu_bn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                              dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps) {
    return cpu_bn_apply_act(be, x, mean, var, gamma, beta, y, n, c, hw, eps, NULL);
}

static dc_status cpu_bn_bwd_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                                int c, int hw, float eps, const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pdy = F(dy);
    const float *py = act ? F(y) : NULL;
    float *pdx = F(dx), *pdg = F(dgamma), *pdb = F(dbeta);
    const int planes = n * c;
    const double M = (double)n * hw;
    double *part = dc_cpu_red_buffer(cb, (size_t)planes * 2 + (size_t)c * 3);
    /* with an activation, each thread rebuilds one plane's pre-activation gradient */
    float *scr = act ? dc_cpu_scratch(cb, (size_t)hw, omp_get_max_threads()) : NULL;
    if (!part || (act && !scr)) return dc_set_error(&be->err, DC_ERR_OOM, "cpu bn_bwd: out of memory");
    double *part_dyx = part + planes, *coef = part + 2 * (size_t)planes;
#define PLANE_GRAD(pl)                                                                        \
    (act ? (relu_grad(act->kind, act->alpha, act->mode, py + (size_t)(pl) * hw,              \
                      pdy + (size_t)(pl) * hw, scr + (size_t)omp_get_thread_num() * hw,       \
                      (size_t)hw, 0),                                                         \
            (const float *)(scr + (size_t)omp_get_thread_num() * hw))                         \
         : pdy + (size_t)(pl) * hw)
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        plane_dy_dyx(PLANE_GRAD(pl), px + (size_t)pl * hw, (size_t)hw, pm[pl % c], &part[pl],
                     &part_dyx[pl]);
    /* dx = k (M dy - sum dy - xhat sum dy xhat), k = gamma rstd / M, written as
     * A dy + B (x - m) + C per channel */
    for (int ch = 0; ch < c; ch++) {
        const double rstd = 1.0 / sqrt((double)pv[ch] + eps);
        const double sdy = dc_cpu_channel_total(part, n, c, ch);
        const double sdyx = dc_cpu_channel_total(part_dyx, n, c, ch) * rstd;
        pdg[ch] += (float)sdyx;
        pdb[ch] += (float)sdy;
        const double k = pg[ch] * rstd / M;
        coef[3 * ch] = pg[ch] * rstd;
        coef[3 * ch + 1] = -k * rstd * sdyx;
        coef[3 * ch + 2] = -k * sdy;
    }
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const int ch = pl % c;
        const float A = (float)coef[3 * ch], B = (float)coef[3 * ch + 1],
                    C = (float)coef[3 * ch + 2], m = pm[ch];
        const float *restrict d = PLANE_GRAD(pl), *restrict xs = px + (size_t)pl * hw;
        float *restrict o = pdx + (size_t)pl * hw;
#pragma omp simd
        for (int p = 0; p < hw; p++) o[p] += A * d[p] + B * (xs[p] - m) + C;
    }
#undef PLANE_GRAD
    return DC_OK;
}

static dc_status cpu_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                            float eps) {
    return cpu_bn_bwd_act(be, x, mean, var, gamma, dc_null_ptr(), dy, dx, dgamma, dbeta, n, c, hw,
                          eps, NULL);
}

/* ---- randomness ---- */
static dc_status cpu_randn(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean,
                           float std) {
    (void)be;
    float *d = F(dst);
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float u1, u2;
        dc_hash_uniform_pair(seed, (uint32_t)i, &u1, &u2);
        d[i] = mean + std * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
    }
    return DC_OK;
}

static dc_status cpu_dropout_mask(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    (void)be;
    float *d = F(mask);
    const float keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] = dc_hash_uniform(seed, (uint32_t)i) >= p ? keep : 0.0f;
    return DC_OK;
}

static dc_status cpu_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z,
                                 size_t n) {
    (void)be;
    const float *pm = F(mu), *pl = F(lv), *pe = F(eps);
    float *pz = F(z);
    for (size_t i = 0; i < n; i++) pz[i] = pm[i] + expf(0.5f * pl[i]) * pe[i];
    return DC_OK;
}

static dc_status cpu_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                                 dc_ptr dlv, size_t n) {
    (void)be;
    const float *pl = F(lv), *pe = F(eps), *pdz = F(dz);
    float *pdm = F(dmu), *pdl = F(dlv);
    for (size_t i = 0; i < n; i++) {
        pdm[i] += pdz[i];
        pdl[i] += pdz[i] * pe[i] * 0.5f * expf(0.5f * pl[i]);
    }
    return DC_OK;
}

/* ---- losses ---- */
static dc_status cpu_mse(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                         dc_ptr loss, dc_ptr dpred, float scale) {
    (void)be;
    const float *pp = F(pred), *pt = F(target), *pw = weight.buf ? F(weight) : NULL;
    float *pd = F(dpred);
    double s = 0;
    const float k = 2.0f * scale / (float)n;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float w = pw ? pw[i] : 1.0f, d = pp[i] - pt[i];
        s += (double)w * d * d;
        pd[i] = k * w * d;
    }
    F(loss)[0] = (float)(s / (double)n);
    return DC_OK;
}

static dc_status cpu_bce_tanh(dc_backend *be, dc_ptr x, dc_ptr target, dc_ptr weight, size_t n,
                              dc_ptr loss, dc_ptr dx, float scale) {
    (void)be;
    const float *px = F(x), *pt = F(target), *pw = weight.buf ? F(weight) : NULL;
    float *pd = F(dx);
    double s = 0;
    const float k = scale / (float)n;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float w = pw ? pw[i] : 1.0f, l = 2.0f * px[i], y = 0.5f * (1.0f + pt[i]);
        /* softplus(l) - l*y without overflow: max(l, 0) - l*y + log1p(exp(-|l|)) */
        s += (double)w * ((l > 0.0f ? l : 0.0f) - l * y + log1pf(expf(-fabsf(l))));
        pd[i] = k * w * (tanhf(px[i]) - pt[i]);
    }
    F(loss)[0] = (float)(s / (double)n);
    return DC_OK;
}

static dc_status cpu_softmax(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k) {
    (void)be;
    const float *pl = F(logits);
    float *pp = F(probs);
#pragma omp parallel for schedule(static) if ((size_t)rows * k > 65536)
    for (int r = 0; r < rows; r++) {
        const float *l = pl + (size_t)r * k;
        float *p = pp + (size_t)r * k;
        float mx = l[0];
        for (int j = 1; j < k; j++) mx = l[j] > mx ? l[j] : mx;
        double s = 0;
        for (int j = 0; j < k; j++) s += (p[j] = expf(l[j] - mx));
        const float inv = (float)(1.0 / s);
        for (int j = 0; j < k; j++) p[j] *= inv;
    }
    return DC_OK;
}

static dc_status cpu_softmax_xent(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                                  dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale) {
    const int32_t *lab = IP(labels);
    for (int r = 0; r < rows; r++)
        if (lab[r] < 0 || lab[r] >= k)
            return dc_set_error(&be->err, DC_ERR_ARG,
                                "softmax_xent: label %d of row %d is outside [0, %d)", lab[r], r, k);
    cpu_softmax(be, logits, probs, rows, k);
    const float *pp = F(probs);
    float *pd = F(dlogits);
    double s = 0;
    const float g = scale / (float)rows;
    for (int r = 0; r < rows; r++) {
        const float *p = pp + (size_t)r * k;
        float *d = pd + (size_t)r * k;
        const float pl = p[lab[r]];
        s -= log(pl > 1e-30f ? pl : 1e-30f);
        for (int j = 0; j < k; j++) d[j] = g * (p[j] - (j == lab[r] ? 1.0f : 0.0f));
    }
    F(loss)[0] = (float)(s / rows);
    return DC_OK;
}

static dc_status cpu_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim,
                              dc_ptr loss, dc_ptr dmu, dc_ptr dlogvar, float scale) {
    (void)be;
    const float *pm = F(mu), *pl = F(logvar);
    float *dm = F(dmu), *dl = F(dlogvar);
    const size_t n = (size_t)rows * dim;
    double s = 0;
    const float g = scale / (float)rows;
    for (size_t i = 0; i < n; i++) {
        const float e = expf(pl[i]);
        s += 1.0 + pl[i] - (double)pm[i] * pm[i] - e;
        dm[i] = g * pm[i];
        dl[i] = g * 0.5f * (e - 1.0f);
    }
    F(loss)[0] = (float)(-0.5 * s / rows);
    return DC_OK;
}

static dc_status cpu_gather_rows(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows,
                                 int dim) {
    (void)be;
    const float *pt = F(table);
    const int32_t *pi = IP(idx);
    float *py = F(y);
    for (int r = 0; r < rows; r++)
        memcpy(py + (size_t)r * dim, pt + (size_t)pi[r] * dim, sizeof(float) * dim);
    return DC_OK;
}

static dc_status cpu_scatter_add_rows(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy,
                                      int rows, int dim, int table_rows) {
    const int32_t *pi = IP(idx);
    float *pt = F(dtable);
    const float *pdy = F(dy);
    for (int r = 0; r < rows; r++) {
        if (pi[r] < 0 || pi[r] >= table_rows)
            return dc_set_error(&be->err, DC_ERR_ARG, "embedding: index %d outside [0, %d)", pi[r],
                                table_rows);
        for (int j = 0; j < dim; j++) pt[(size_t)pi[r] * dim + j] += pdy[(size_t)r * dim + j];
    }
    return DC_OK;
}

/* ---- optimizers ---- */
static dc_status cpu_sgd_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n,
                                dc_ptr gscale, float lr, float momentum, float wd, int nesterov) {
    (void)be;
    float *pp = F(p), *pv = F(v);
    const float *pg = F(g), gs = F(gscale)[0];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float gi = gs * pg[i] + wd * pp[i];
        pv[i] = momentum * pv[i] + gi;
        pp[i] -= lr * (nesterov ? gi + momentum * pv[i] : pv[i]);
    }
    return DC_OK;
}

static dc_status cpu_adam_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                                 dc_ptr gscale, float lr, float b1, float b2, float eps, float wd,
                                 int decoupled, float bc1, float bc2) {
    (void)be;
    float *pp = F(p), *pm = F(m), *pv = F(v);
    const float *pg = F(g), gs = F(gscale)[0];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = gs * pg[i];
        if (decoupled)
            pp[i] -= lr * wd * pp[i];
        else
            gi += wd * pp[i];
        pm[i] = b1 * pm[i] + (1.0f - b1) * gi;
        pv[i] = b2 * pv[i] + (1.0f - b2) * gi * gi;
        pp[i] -= lr * (pm[i] / bc1) / (sqrtf(pv[i] / bc2) + eps);
    }
    return DC_OK;
}

static dc_status cpu_clip_scale(dc_backend *be, dc_ptr sumsq, dc_ptr gscale, float max_norm) {
    (void)be;
    const float norm = sqrtf(F(sumsq)[0] + 1e-12f);
    F(gscale)[0] = norm > max_norm ? max_norm / norm : 1.0f;
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

/* ---- activations fused into the convolutions (dc_graph_set_fusion) ----
 * relu_apply / relu_grad (as in cpu_act_fwd / cpu_act_bwd) on one image while it is in
 * cache; for ReLU and leaky ReLU with alpha >= 0 the activated output is positive exactly
 * where its input is, so the backward reads y instead of the pre-activation. */
void dc_cpu_bias_act_rows(float *restrict y, const float *b, int c, size_t hw,
                          const dc_fused_act *a) {
    for (int o = 0; o < c; o++) {
        float *restrict r = y + (size_t)o * hw;
        if (b) {
            const float bo = b[o];
#pragma omp simd
            for (size_t p = 0; p < hw; p++) r[p] += bo;
        }
        if (a) relu_apply(a->kind, a->alpha, r, r, hw);
    }
}

/* One image's output gradient as the convolution sees it: dy itself, or with a fused
 * activation its pre-activation gradient (into dpre) and, when part is set, that image's
 * per-channel sums for the bias gradient. */
const float *dc_cpu_image_grad(const dc_fused_act *act, const float *y, const float *dy,
                               float *dpre, int c, size_t hw, double *part) {
    if (!act) return dy;
    relu_grad(act->kind, act->alpha, act->mode, y, dy, dpre, (size_t)c * hw, 0);
    if (part)
        for (int o = 0; o < c; o++) part[o] = dc_cpu_plane_sum(dpre + (size_t)o * hw, hw);
    return dpre;
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

static dc_status cpu_conv2d_fwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
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

static dc_status cpu_conv2d_bwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                                dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                                const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow, T = omp_get_max_threads();
    if (dc_cpu_wino_ok(cb, g, oc)) {
        if (db.buf && !act) cpu_bias_grad(be, db, dy, g->n, oc, ohw);
        return dc_cpu_wino_bwd(cb, g, oc, F(x), F(w), act ? F(y) : NULL, F(dy), dx.buf ? F(dx) : NULL,
                        F(dw), db.buf ? F(db) : NULL, act);
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
    if (db.buf && !act) cpu_bias_grad(be, db, dy, g->n, oc, ohw);
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
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, bp, oc, 1.0f, pw, K, dyb,
                                ohw, 0.0f, cols, bp);
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

static dc_status cpu_conv_t2d_fwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
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

static dc_status cpu_conv_t2d_bwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                                  dc_ptr w, dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                                  const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow, T = omp_get_max_threads();
    const int br = block_rows(R, g->oh, g->ow);
    const size_t in_img = (size_t)cin * hw, big = (size_t)g->h * g->w, out_img = (size_t)g->c * big;
    const size_t ncols = (size_t)R * br * g->ow, per = ncols + (size_t)cin * R + (act ? out_img : 0);
    float *scr = dc_cpu_scratch(cb, per, T);
    if (!scr) return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv_transpose2d: out of memory");
    const float *pw = F(w), *px = F(x), *pdy = F(dy), *py = act ? F(y) : NULL;
    float *pdw = F(dw);
    double *part = NULL;
    if (db.buf && act && !(part = dc_cpu_red_buffer(cb, (size_t)n * g->c)))
        return dc_set_error(&be->err, DC_ERR_OOM, "cpu conv_transpose2d: out of memory");
    if (db.buf && !act) cpu_bias_grad(be, db, dy, n, g->c, (int)big);
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
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cin, R, bp, 1.0f, px + boff, hw,
                            cols, bp, 1.0f, acc, R);
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

static void cpu_destroy(dc_backend *be) {
    free(((cpu_backend *)be)->scratch);
    free(((cpu_backend *)be)->red);
    free(be);
}

/* OpenMP owns the compute threads; the count shows in the device name. */
static dc_status cpu_set_threads(dc_backend *be, int threads) {
    omp_set_num_threads(threads);
    snprintf(be->device_name, sizeof be->device_name, "CPU (%d threads, OpenBLAS)", threads);
    return DC_OK;
}

/* The U-Net primitives are defined in unet.c. */
#define cpu_chan_slice dc_cpu_chan_slice
#define cpu_gn_stats dc_cpu_gn_stats
#define cpu_gn_apply dc_cpu_gn_apply
#define cpu_gn_bwd dc_cpu_gn_bwd
#define cpu_upsample_fwd dc_cpu_upsample_fwd
#define cpu_upsample_bwd dc_cpu_upsample_bwd
#define cpu_time_embed dc_cpu_time_embed

/* Generated from the primitive list: every entry is cpu_<name>. */
static const dc_backend_ops cpu_ops = {
    .name = "cpu",
#define DC_SERVICE(ret, name, params) .name = cpu_##name,
#define DC_PRIM(name, params, args, flops, elems, variant) .name = cpu_##name,
#define DC_PRIM_OPT DC_PRIM
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
};

dc_status dc_backend_create_cpu(int threads, dc_backend **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_backend_create_cpu: out is NULL");
    *out = NULL;
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return dc_set_error(err, DC_ERR_OOM, "cpu backend: out of memory");
    b->base.ops = &cpu_ops;
    /* DECONV_CONV=gemm: every convolution through im2col + GEMM (for comparisons) */
    const char *algo = getenv("DECONV_CONV");
    b->winograd = algo && !strcmp(algo, "gemm") ? 0 : algo && !strcmp(algo, "winograd2") ? 2 : 4;
    b->threads = threads > 0 ? threads : omp_get_max_threads();
    if (threads > 0) omp_set_num_threads(threads);
    openblas_set_num_threads(1); /* see cpu_gemm: OpenMP owns the threads */
    b->base.scratch_bytes = (size_t)4 << 20;
    snprintf(b->base.device_name, sizeof b->base.device_name, "CPU (%d threads, OpenBLAS)",
             b->threads);
    *out = &b->base;
    return DC_OK;
}
