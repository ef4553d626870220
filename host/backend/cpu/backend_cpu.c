/* CPU backend: buffers are host memory, GEMM is OpenBLAS's cblas_sgemm, everything
 * else is loops parallelised with OpenMP. It is the reference every other backend is
 * compared with, so reductions accumulate in double and run in a fixed order (static
 * OpenMP schedules), which makes results bit-identical run to run for one thread count.
 * This file holds the core (memory, BLAS-like primitives, the per-channel reductions,
 * row gathers) and the ops table; the other primitives live in one file per family:
 * conv.c, pool.c, activation.c, batchnorm.c, random.c, loss.c, optim.c, winograd.c,
 * unet.c. */

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

static dc_status dc_cpu_alloc(dc_backend *be, size_t bytes, dc_buffer **out) {
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

static void dc_cpu_free(dc_backend *be, dc_buffer *b) {
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

dc_status dc_cpu_write(dc_backend *be, dc_ptr dst, const void *src, size_t bytes) {
    DC_TRY(check_range(be, dst, bytes, "write"));
    memcpy(F(dst), src, bytes);
    return DC_OK;
}

dc_status dc_cpu_write_rows(dc_backend *be, dc_ptr dst, const void *src, size_t rows,
                           size_t row_elems, size_t dst_stride) {
    if (rows == 0 || row_elems == 0) return DC_OK;
    if (dst_stride < row_elems)
        return dc_set_error(&be->err, DC_ERR_ARG, "cpu write_rows: stride %zu < row of %zu",
                            dst_stride, row_elems);
    DC_TRY(check_range(be, dst, ((rows - 1) * dst_stride + row_elems) * 4, "write_rows"));
    const float *s = src;
    for (size_t r = 0; r < rows; r++)
        memcpy(F(dst) + r * dst_stride, s + r * row_elems, row_elems * 4);
    return DC_OK;
}

dc_status dc_cpu_read(dc_backend *be, dc_ptr src, void *dst, size_t bytes) {
    DC_TRY(check_range(be, src, bytes, "read"));
    memcpy(dst, F(src), bytes);
    return DC_OK;
}

dc_status dc_cpu_copy(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n) {
    DC_TRY(check_range(be, dst, n * 4, "copy"));
    DC_TRY(check_range(be, src, n * 4, "copy"));
    memmove(F(dst), F(src), n * 4);
    return DC_OK;
}

static dc_status dc_cpu_sync(dc_backend *be) {
    (void)be;
    return DC_OK;
}

dc_status dc_cpu_fill(dc_backend *be, dc_ptr dst, size_t n, float v) {
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

dc_status dc_cpu_scale(dc_backend *be, dc_ptr dst, size_t n, float a) {
    (void)be;
    float *d = F(dst);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] *= a;
    return DC_OK;
}

dc_status dc_cpu_axpy(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float a) {
    (void)be;
    float *py = F(y);
    const float *px = F(x);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) py[i] += a * px[i];
    return DC_OK;
}

dc_status dc_cpu_binary(dc_backend *be, int op, dc_ptr y, dc_ptr a, dc_ptr b, size_t n) {
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

dc_status dc_cpu_div_filtered(dc_backend *be, dc_ptr y, dc_ptr a, dc_ptr b, size_t n,
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

dc_status dc_cpu_select_planes(dc_backend *be, int dir, dc_ptr mask, float threshold, dc_ptr a,
                               dc_ptr b, dc_ptr y, int n, int c, int hw) {
    if (dir < 0 || dir > 1 || n < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "cpu select_planes: dir %d, [%d, %d, %d]", dir,
                            n, c, hw);
    if (dir == 0 && (!a.buf || !b.buf))
        return dc_set_error(&be->err, DC_ERR_ARG, "cpu select_planes: the forward needs a and b");
    const float *pm = F(mask);
    float *pa = a.buf ? F(a) : NULL, *pb = b.buf ? F(b) : NULL, *py = F(y);
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 65536)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float *m = pm + (size_t)i * hw;
            const size_t o = ((size_t)i * c + ch) * hw;
            if (dir == 0) {
                for (int p = 0; p < hw; p++) py[o + p] = m[p] > threshold ? pa[o + p] : pb[o + p];
                continue;
            }
            if (pa)
                for (int p = 0; p < hw; p++)
                    if (m[p] > threshold) pa[o + p] += py[o + p];
            if (pb)
                for (int p = 0; p < hw; p++)
                    if (!(m[p] > threshold)) pb[o + p] += py[o + p];
        }
    return DC_OK;
}

dc_status dc_cpu_gemm(dc_backend *be, int ta, int tb, int m, int n, int k, float alpha,
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
    const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans,
                               TB = tb ? CblasTrans : CblasNoTrans;
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

dc_status dc_cpu_reduce_sum(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int squares) {
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
double dc_cpu_plane_sqdev(const float *restrict d, size_t hw, float m) {
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
void dc_cpu_plane_dy_dyx(const float *restrict dy, const float *restrict x, size_t hw, float m,
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

dc_status dc_cpu_gather_rows(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows,
                             int dim) {
    (void)be;
    const float *pt = F(table);
    const int32_t *pi = IP(idx);
    float *py = F(y);
    for (int r = 0; r < rows; r++)
        memcpy(py + (size_t)r * dim, pt + (size_t)pi[r] * dim, sizeof(float) * dim);
    return DC_OK;
}

dc_status dc_cpu_scatter_add_rows(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy,
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

static void dc_cpu_destroy(dc_backend *be) {
    free(((cpu_backend *)be)->scratch);
    free(((cpu_backend *)be)->red);
    free(be);
}

/* OpenMP owns the compute threads; the count shows in the device name. */
static dc_status dc_cpu_set_threads(dc_backend *be, int threads) {
    omp_set_num_threads(threads);
    snprintf(be->device_name, sizeof be->device_name, "CPU (%d threads, OpenBLAS)", threads);
    return DC_OK;
}

/* Generated from the primitive list: every entry is dc_cpu_<name>, the primitives defined
 * in this folder's files by family (cpu_internal.h). */
static const dc_backend_ops cpu_ops = {
    .name = "cpu",
#define DC_SERVICE(ret, name, params) .name = dc_cpu_##name,
#define DC_PRIM(name, params, args, flops, elems, variant) .name = dc_cpu_##name,
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
    openblas_set_num_threads(1); /* see dc_cpu_gemm: OpenMP owns the threads */
    b->base.scratch_bytes = (size_t)4 << 20;
    snprintf(b->base.device_name, sizeof b->base.device_name, "CPU (%d threads, OpenBLAS)",
             b->threads);
    *out = &b->base;
    return DC_OK;
}
