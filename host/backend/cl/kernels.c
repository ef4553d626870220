/* OpenCL backend primitives: argument checks, kernel launches, and GEMM through CLBlast.
 * Semantics follow backend_cpu.c exactly (see backend.h); where a kernel differs (e.g. a
 * bad class label gives a NaN loss instead of an error, since reporting it would need a
 * host round trip), the kernel's comment says so. Nothing here blocks. */
#include <clblast_c.h>
#include <limits.h>

#include "cl_internal.h"

#define B(be) ((cl_backend *)(be))

/* ---------------------------------------------------------- argument checks */
/* The element range [p.off, p.off + elems) must lie inside p's buffer: an out-of-range
 * write on a device corrupts memory silently, so every primitive checks first. */
static dc_status need(dc_backend *be, const char *op, const char *what, dc_ptr p, size_t elems) {
    if (!p.buf) return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: %s is NULL", op, what);
    if (elems && (p.off + elems) * 4 > p.buf->bytes)
        return dc_set_error(
            &be->err, DC_ERR_ARG,
            "OpenCL %s: %s needs %zu elements at element %zu of a %zu-element buffer", op, what,
            elems, p.off, p.buf->bytes / 4);
    return DC_OK;
}

/* Kernels index with 32-bit unsigned ints. */
static dc_status fits32(dc_backend *be, const char *op, size_t n) {
    if (n > (size_t)UINT_MAX)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %zu elements exceed the kernels' 32-bit index range", op,
                            n);
    return DC_OK;
}

/* ------------------------------------------------------------------ launches */
/* Arguments are set in order; the first failure is kept and reported by ka_run with
 * the kernel name and argument index. */
typedef struct kargs {
    cl_backend *b;
    int k;
    cl_uint next;
    cl_int e;
    cl_uint bad;
} kargs;

static kargs ka(dc_backend *be, int k) {
    kargs a = {B(be), k, 0, CL_SUCCESS, 0};
    return a;
}

static void ka_set(kargs *a, size_t size, const void *value) {
    if (a->e == CL_SUCCESS) {
        a->e = clSetKernelArg(a->b->kernels[a->k], a->next, size, value);
        a->bad = a->next;
    }
    a->next++;
}
static void ka_ptr(kargs *a, dc_ptr p) {
    cl_mem m = p.buf->mem;
    cl_ulong off = p.off;
    ka_set(a, sizeof m, &m);
    ka_set(a, sizeof off, &off);
}
static void ka_int(kargs *a, int v) {
    cl_int x = v;
    ka_set(a, sizeof x, &x);
}
static void ka_uint(kargs *a, size_t v) {
    cl_uint x = (cl_uint)v;
    ka_set(a, sizeof x, &x);
}
static void ka_float(kargs *a, float v) {
    cl_float x = v;
    ka_set(a, sizeof x, &x);
}
static void ka_mem(kargs *a, cl_mem m) {
    ka_set(a, sizeof m, &m);
}
/* The reduction scratch: one float per work-item. */
static void ka_scratch(kargs *a) {
    ka_set(a, a->b->local[a->k] * sizeof(float), NULL);
}
static void ka_geom(kargs *a, const dc_win2d *g, int n0, int nb) {
    cl_int16 v;
    memset(&v, 0, sizeof v);
    const int f[14] = {g->n,  g->c,  g->h,  g->w,  g->kh, g->kw, g->sh,
                       g->sw, g->ph, g->pw, g->oh, g->ow, n0,    nb};
    for (int i = 0; i < 14; i++)
        v.s[i] = f[i];
    ka_set(a, sizeof v, &v);
}

/* Enqueue with `groups` work-groups of the kernel's size, or (groups == 0) enough groups
 * to cover `items` work-items: the range is padded and the kernels bounds-check. */
static dc_status ka_launch(kargs *a, size_t items, size_t groups, size_t rd, size_t wr) {
    cl_backend *b = a->b;
    if (a->e != CL_SUCCESS)
        return dc_set_error(&b->base.err, DC_ERR_CL,
                            "OpenCL clSetKernelArg failed on %s: %s (%d) for argument %u of %s",
                            b->base.device_name, dc_cl_error_name(a->e), (int)a->e, a->bad,
                            dc_cl_kernel_name(a->k));
    const size_t local = b->local[a->k];
    size_t global = groups ? groups * local : (items + local - 1) / local * local;
    if (global == 0) return DC_OK;
    cl_int e =
        clEnqueueNDRangeKernel(b->queue, b->kernels[a->k], 1, NULL, &global, &local, 0, NULL, NULL);
    b->budget.kernels++;
    b->budget.read_bytes += 4.0 * (double)rd;
    b->budget.write_bytes += 4.0 * (double)wr;
    if (e != CL_SUCCESS)
        return dc_set_error(&b->base.err, DC_ERR_CL,
                            "OpenCL clEnqueueNDRangeKernel failed on %s: %s (%d) for %s (global "
                            "%zu, local %zu)",
                            b->base.device_name, dc_cl_error_name(e), (int)e,
                            dc_cl_kernel_name(a->k), global, local);
    return DC_OK;
}
/* rd, wr: the elements the launch reads and writes in device memory, for the step budget
 * (each tensor counted once per pass; caches ignored). */
static dc_status ka_run(kargs *a, size_t items, size_t rd, size_t wr) {
    return ka_launch(a, items, 0, rd, wr);
}
static dc_status ka_run_groups(kargs *a, size_t groups, size_t rd, size_t wr) {
    return ka_launch(a, 0, groups, rd, wr);
}

/* Work-groups of a two-stage reduction over n elements with kernel k. */
static size_t reduce_groups(dc_backend *be, int k, size_t n) {
    size_t g = (n + B(be)->local[k] - 1) / B(be)->local[k];
    if (g > DC_CL_MAX_GROUPS) g = DC_CL_MAX_GROUPS;
    return g ? g : 1;
}

/* Stage 2: out[0] = (mul * sum of the first `count` partials) / div. */
static dc_status reduce_final(dc_backend *be, size_t count, dc_ptr out, float mul, float div) {
    kargs a = ka(be, DC_K_reduce_final);
    ka_mem(&a, B(be)->partial);
    ka_uint(&a, count);
    ka_ptr(&a, out);
    ka_float(&a, mul);
    ka_float(&a, div);
    ka_scratch(&a);
    return ka_run_groups(&a, 1, count, 1);
}

/* ------------------------------------------------------------- BLAS-like */
/* ---- host <-> device transfers and copies ---- */
static dc_status check_range(dc_backend *be, dc_ptr p, size_t bytes, const char *what) {
    if (!p.buf) return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: NULL buffer", what);
    if (p.off * 4 + bytes > p.buf->bytes)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %zu bytes at element %zu overrun a %zu-byte buffer", what,
                            bytes, p.off, p.buf->bytes);
    return DC_OK;
}

static dc_status cl_write(dc_backend *be, dc_ptr dst, const void *src, size_t bytes) {
    cl_backend *b = (cl_backend *)be;
    DC_TRY(check_range(be, dst, bytes, "write"));
    if (bytes == 0) return DC_OK;
    b->budget.h2d++;
    b->budget.h2d_bytes += (double)bytes;
    /* The data is copied into a buffer of its own at once (CL_MEM_COPY_HOST_PTR: the
     * caller may reuse its memory when this returns) and from there in queue order, so the
     * host does not wait for the kernels already queued (a step's input batch). */
    cl_int e;
    cl_mem staged =
        clCreateBuffer(b->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, (void *)src, &e);
    if (e == CL_SUCCESS) {
        e = clEnqueueCopyBuffer(b->queue, staged, dst.buf->mem, 0, dst.off * 4, bytes, 0, NULL,
                                NULL);
        clReleaseMemObject(staged); /* freed once the copy has run */
        if (e != CL_SUCCESS) return dc_cl_fail(&be->err, be->device_name, e, "clEnqueueCopyBuffer");
        return DC_OK;
    }
    /* no memory for a staged copy: write in place and wait for it */
    b->budget.host_waits++;
    DC_CL_CHECK(b, clEnqueueWriteBuffer(b->queue, dst.buf->mem, CL_TRUE, dst.off * 4, bytes, src, 0,
                                        NULL, NULL));
    return DC_OK;
}

static dc_status cl_read(dc_backend *be, dc_ptr src, void *dst, size_t bytes) {
    cl_backend *b = (cl_backend *)be;
    DC_TRY(check_range(be, src, bytes, "read"));
    b->budget.host_waits++;
    if (bytes == 0) {
        DC_CL_CHECK(b, clFinish(b->queue));
        return DC_OK;
    }
    b->budget.d2h++;
    b->budget.d2h_bytes += (double)bytes;
    DC_CL_CHECK(b, clEnqueueReadBuffer(b->queue, src.buf->mem, CL_TRUE, src.off * 4, bytes, dst, 0,
                                       NULL, NULL));
    return DC_OK;
}

static dc_status cl_copy(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n) {
    cl_backend *b = (cl_backend *)be;
    DC_TRY(check_range(be, dst, n * 4, "copy"));
    DC_TRY(check_range(be, src, n * 4, "copy"));
    if (n == 0 || (dst.buf == src.buf && dst.off == src.off)) return DC_OK;
    b->budget.copies++;
    b->budget.read_bytes += 4.0 * (double)n;
    b->budget.write_bytes += 4.0 * (double)n;
    if (dst.buf == src.buf && dst.off < src.off + n && src.off < dst.off + n) {
        /* overlapping ranges (memmove on the CPU): OpenCL refuses, so go through a temp */
        cl_int e;
        cl_mem tmp = clCreateBuffer(b->ctx, CL_MEM_READ_WRITE, n * 4, NULL, &e);
        if (e != CL_SUCCESS) return dc_cl_fail(&be->err, be->device_name, e, "clCreateBuffer");
        e = clEnqueueCopyBuffer(b->queue, src.buf->mem, tmp, src.off * 4, 0, n * 4, 0, NULL, NULL);
        if (e == CL_SUCCESS)
            e = clEnqueueCopyBuffer(b->queue, tmp, dst.buf->mem, 0, dst.off * 4, n * 4, 0, NULL,
                                    NULL);
        clReleaseMemObject(tmp); /* freed once the copies finish */
        if (e != CL_SUCCESS) return dc_cl_fail(&be->err, be->device_name, e, "clEnqueueCopyBuffer");
        return DC_OK;
    }
    DC_CL_CHECK(b, clEnqueueCopyBuffer(b->queue, src.buf->mem, dst.buf->mem, src.off * 4,
                                       dst.off * 4, n * 4, 0, NULL, NULL));
    return DC_OK;
}

static dc_status cl_fill(dc_backend *be, dc_ptr dst, size_t n, float value) {
    DC_TRY(need(be, "fill", "dst", dst, n));
    DC_TRY(fits32(be, "fill", n));
    kargs a = ka(be, DC_K_fill);
    ka_ptr(&a, dst);
    ka_uint(&a, n);
    ka_float(&a, value);
    return ka_run(&a, n, 0, n);
}

static dc_status cl_scale(dc_backend *be, dc_ptr dst, size_t n, float alpha) {
    DC_TRY(need(be, "scale", "dst", dst, n));
    DC_TRY(fits32(be, "scale", n));
    kargs a = ka(be, DC_K_scale);
    ka_ptr(&a, dst);
    ka_uint(&a, n);
    ka_float(&a, alpha);
    return ka_run(&a, n, n, n);
}

static dc_status cl_axpy(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float alpha) {
    DC_TRY(need(be, "axpy", "y", y, n));
    DC_TRY(need(be, "axpy", "x", x, n));
    DC_TRY(fits32(be, "axpy", n));
    kargs a = ka(be, DC_K_axpy);
    ka_ptr(&a, y);
    ka_ptr(&a, x);
    ka_uint(&a, n);
    ka_float(&a, alpha);
    return ka_run(&a, n, 2 * n, n);
}

static dc_status cl_binary(dc_backend *be, int op, dc_ptr y, dc_ptr x1, dc_ptr x2, size_t n) {
    if (op < 0 || op > 2)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL binary: unknown op %d", op);
    DC_TRY(need(be, "binary", "y", y, n));
    DC_TRY(need(be, "binary", "a", x1, n));
    DC_TRY(need(be, "binary", "b", x2, n));
    DC_TRY(fits32(be, "binary", n));
    kargs a = ka(be, DC_K_binary);
    ka_int(&a, op);
    ka_ptr(&a, y);
    ka_ptr(&a, x1);
    ka_ptr(&a, x2);
    ka_uint(&a, n);
    return ka_run(&a, n, (op == 2 ? 3 : 2) * n, n);
}

static dc_status cl_div_filtered(dc_backend *be, dc_ptr y, dc_ptr x1, dc_ptr x2, size_t n,
                                 float eps, float threshold) {
    DC_TRY(need(be, "div_filtered", "y", y, n));
    DC_TRY(need(be, "div_filtered", "a", x1, n));
    DC_TRY(need(be, "div_filtered", "b", x2, n));
    DC_TRY(fits32(be, "div_filtered", n));
    kargs a = ka(be, DC_K_div_filtered);
    ka_ptr(&a, y);
    ka_ptr(&a, x1);
    ka_ptr(&a, x2);
    ka_uint(&a, n);
    ka_float(&a, eps);
    ka_float(&a, threshold);
    return ka_run(&a, n, 2 * n, n);
}

/* CLBlast's own status codes; the others are OpenCL error codes. */
static const struct {
    CLBlastStatusCode code;
    const char *name;
} clblast_errors[] = {
    /* clang-format off */
    {CLBlastNotImplemented, "CLBlastNotImplemented"},
    {CLBlastInvalidMatrixA, "CLBlastInvalidMatrixA"},
    {CLBlastInvalidMatrixB, "CLBlastInvalidMatrixB"},
    {CLBlastInvalidMatrixC, "CLBlastInvalidMatrixC"},
    {CLBlastInvalidDimension, "CLBlastInvalidDimension"},
    {CLBlastInvalidLeadDimA, "CLBlastInvalidLeadDimA"},
    {CLBlastInvalidLeadDimB, "CLBlastInvalidLeadDimB"},
    {CLBlastInvalidLeadDimC, "CLBlastInvalidLeadDimC"},
    {CLBlastInsufficientMemoryA, "CLBlastInsufficientMemoryA"},
    {CLBlastInsufficientMemoryB, "CLBlastInsufficientMemoryB"},
    {CLBlastInsufficientMemoryC, "CLBlastInsufficientMemoryC"},
    {CLBlastInsufficientMemoryTemp, "CLBlastInsufficientMemoryTemp"},
    {CLBlastInvalidLocalMemUsage, "CLBlastInvalidLocalMemUsage"},
    {CLBlastDatabaseError, "CLBlastDatabaseError"},
    {CLBlastUnknownError, "CLBlastUnknownError"},
    {CLBlastUnexpectedError, "CLBlastUnexpectedError"},
    /* clang-format on */
};

static const char *clblast_status_name(CLBlastStatusCode s) {
    for (size_t i = 0; i < DC_ARRAY_LEN(clblast_errors); i++)
        if (clblast_errors[i].code == s) return clblast_errors[i].name;
    return dc_cl_error_name((cl_int)s);
}

static dc_status cl_gemm(dc_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                         dc_ptr pa, int lda, dc_ptr pb, int ldb, float beta, dc_ptr pc, int ldc) {
    if (m <= 0 || n <= 0) return DC_OK;
    DC_TRY(need(be, "gemm", "C", pc, (size_t)(m - 1) * ldc + n));
    if (k <= 0) {
        /* C = beta*C, as the CPU backend does explicitly */
        DC_TRY(fits32(be, "gemm", (size_t)m * n));
        kargs a = ka(be, DC_K_gemm_beta);
        ka_ptr(&a, pc);
        ka_uint(&a, m);
        ka_uint(&a, n);
        ka_uint(&a, ldc);
        ka_float(&a, beta);
        return ka_run(&a, (size_t)m * n, beta != 0.0f ? (size_t)m * n : 0, (size_t)m * n);
    }
    DC_TRY(need(be, "gemm", "A", pa, ta ? (size_t)(k - 1) * lda + m : (size_t)(m - 1) * lda + k));
    DC_TRY(need(be, "gemm", "B", pb, tb ? (size_t)(n - 1) * ldb + k : (size_t)(k - 1) * ldb + n));
    cl_backend *b = B(be);
    b->used_clblast = 1;
    b->budget.gemm_calls++;
    b->budget.flops += 2.0 * m * (double)n * k;
    b->budget.read_bytes +=
        4.0 * ((double)m * k + (double)k * n + (beta != 0.0f ? (double)m * n : 0));
    b->budget.write_bytes += 4.0 * (double)m * n;
    CLBlastStatusCode s =
        CLBlastSgemm(CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                     tb ? CLBlastTransposeYes : CLBlastTransposeNo, (size_t)m, (size_t)n, (size_t)k,
                     alpha, pa.buf->mem, pa.off, (size_t)lda, pb.buf->mem, pb.off, (size_t)ldb,
                     beta, pc.buf->mem, pc.off, (size_t)ldc, &b->queue, NULL);
    if (s != CLBlastSuccess)
        return dc_set_error(&be->err, DC_ERR_CL,
                            "OpenCL CLBlastSgemm failed on %s: %s (%d) for %s%s m=%d n=%d k=%d "
                            "lda=%d ldb=%d ldc=%d",
                            be->device_name, clblast_status_name(s), (int)s, ta ? "A^T" : "A",
                            tb ? "B^T" : "B", m, n, k, lda, ldb, ldc);
    return DC_OK;
}

static dc_status cl_reduce_sum(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int squares) {
    DC_TRY(need(be, "reduce_sum", "out", out, 1));
    DC_TRY(need(be, "reduce_sum", "x", x, n));
    DC_TRY(fits32(be, "reduce_sum", n));
    const size_t groups = reduce_groups(be, DC_K_reduce_partial, n);
    kargs a = ka(be, DC_K_reduce_partial);
    ka_ptr(&a, x);
    ka_uint(&a, n);
    ka_int(&a, squares);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, n, groups));
    return reduce_final(be, groups, out, 1.0f, 1.0f);
}

/* ------------------------------------------------------- convolution plumbing */
static dc_status check_win(dc_backend *be, const char *op, const dc_win2d *g) {
    if (!g || g->n < 0 || g->c <= 0 || g->h <= 0 || g->w <= 0 || g->kh <= 0 || g->kw <= 0 ||
        g->sh <= 0 || g->sw <= 0 || g->ph < 0 || g->pw < 0 || g->oh < 0 || g->ow < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: invalid window geometry", op);
    return DC_OK;
}

static dc_status check_chunk(dc_backend *be, const char *op, const dc_win2d *g, int n0, int nb) {
    if (n0 < 0 || nb < 0 || n0 + nb > g->n)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: images [%d, %d) outside a batch of %d", op, n0, n0 + nb,
                            g->n);
    return DC_OK;
}

/* No activation fused into a kernel's epilogue (cl/common.cl's DC_FACT_NONE). */
#define DC_FACT_NONE (-1)

static dc_status check_act(dc_backend *be, const char *op, const dc_fused_act *act) {
    if (act && act->kind != DC_ACT_RELU && act->kind != DC_ACT_LEAKY_RELU)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: only ReLU and leaky ReLU fuse (activation %d)", op,
                            act->kind);
    return DC_OK;
}

/* The second stage of a channel reduction (chan_sums), left for a later launch to finish:
 * db[ch] += the sum of partial[ch * groups_per_ch ...]. */
typedef struct chan_final_job {
    int channels;
    size_t groups_per_ch;
    dc_ptr db;
} chan_final_job;

/* im2col; with act, x is the gradient of the fused activation's output act_y and the
 * columns hold the gradient before the activation. */
static dc_status im2col_act(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                            dc_ptr act_y, const dc_fused_act *act, dc_ptr cols,
                            const chan_final_job *fin) {
    DC_TRY(check_win(be, "im2col", g));
    DC_TRY(check_chunk(be, "im2col", g, n0, nb));
    const size_t total = (size_t)g->c * g->kh * g->kw * nb * g->oh * g->ow;
    DC_TRY(need(be, "im2col", "x", x, (size_t)(n0 + nb) * g->c * g->h * g->w));
    DC_TRY(need(be, "im2col", "cols", cols, total));
    if (act)
        DC_TRY(
            need(be, "im2col", "activation output", act_y, (size_t)(n0 + nb) * g->c * g->h * g->w));
    DC_TRY(fits32(be, "im2col", total));
    /* one row of the column matrix per run of work-groups (see cl/conv.cl) */
    const size_t rows = (size_t)g->c * g->kh * g->kw, ncols = (size_t)nb * g->oh * g->ow;
    const size_t local = B(be)->local[DC_K_im2col], gpr = (ncols + local - 1) / local;
    DC_TRY(fits32(be, "im2col", rows * gpr));
    kargs a = ka(be, DC_K_im2col);
    ka_geom(&a, g, n0, nb);
    ka_ptr(&a, x);
    ka_ptr(&a, act_y.buf ? act_y : x);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_int(&a, act ? act->mode : 0);
    ka_float(&a, act ? act->alpha : 0.0f);
    ka_ptr(&a, cols);
    ka_uint(&a, gpr);
    ka_uint(&a, rows * gpr);
    if (fin && !fin->channels) fin = NULL;
    ka_uint(&a, fin ? (size_t)fin->channels : 0);
    ka_mem(&a, B(be)->partial);
    ka_uint(&a, fin ? fin->groups_per_ch : 1);
    ka_ptr(&a, fin ? fin->db : cols);
    ka_scratch(&a);
    return ka_run_groups(&a, rows * gpr + (fin ? (size_t)fin->channels : 0),
                         (size_t)nb * g->c * g->h * g->w, total);
}

static dc_status cl_im2col(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                           dc_ptr cols) {
    return im2col_act(be, g, n0, nb, x, dc_null_ptr(), NULL, cols, NULL);
}

/* col2im; accumulate 0 overwrites x (images n0..n0+nb) instead, then adds bias (when set)
 * and applies act: a transposed convolution's epilogue in the same pass. */
static dc_status col2im_epilogue(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                                 dc_ptr x, int accumulate, dc_ptr bias, const dc_fused_act *act,
                                 int image_major) {
    DC_TRY(check_win(be, "col2im", g));
    DC_TRY(check_chunk(be, "col2im", g, n0, nb));
    const size_t total = (size_t)nb * g->c * g->h * g->w;
    DC_TRY(need(be, "col2im", "cols", cols, (size_t)g->c * g->kh * g->kw * nb * g->oh * g->ow));
    DC_TRY(need(be, "col2im", "x", x, (size_t)(n0 + nb) * g->c * g->h * g->w));
    DC_TRY(fits32(be, "col2im", (size_t)g->c * g->kh * g->kw * nb * g->oh * g->ow));
    if (bias.buf) DC_TRY(need(be, "col2im", "bias", bias, (size_t)g->c));
    kargs a = ka(be, DC_K_col2im);
    ka_geom(&a, g, n0, nb);
    ka_ptr(&a, cols);
    ka_ptr(&a, x);
    ka_uint(&a, total);
    ka_int(&a, accumulate);
    ka_ptr(&a, bias.buf ? bias : cols);
    ka_int(&a, bias.buf != NULL);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_float(&a, act ? act->alpha : 0.0f);
    ka_int(&a, image_major);
    return ka_run(&a, total,
                  (size_t)g->c * g->kh * g->kw * nb * g->oh * g->ow + (accumulate ? total : 0),
                  total);
}

static dc_status cl_col2im(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                           dc_ptr x) {
    return col2im_epilogue(be, g, n0, nb, cols, x, 1, dc_null_ptr(), NULL, 0);
}

/* cm_to_nchw with a fused activation after the bias (act NULL: none). */
static dc_status cm_to_nchw_act(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                                int c, int hw, float beta, const dc_fused_act *act) {
    const size_t total = (size_t)nb * c * hw;
    if (n0 < 0 || nb < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL cm_to_nchw: negative size");
    DC_TRY(need(be, "cm_to_nchw", "src", src, total));
    DC_TRY(need(be, "cm_to_nchw", "dst", dst, (size_t)(n0 + nb) * c * hw));
    if (bias.buf) DC_TRY(need(be, "cm_to_nchw", "bias", bias, (size_t)c));
    DC_TRY(fits32(be, "cm_to_nchw", total));
    kargs a = ka(be, DC_K_cm_to_nchw);
    ka_ptr(&a, src);
    ka_ptr(&a, bias.buf ? bias : src);
    ka_int(&a, bias.buf != NULL);
    ka_ptr(&a, dst);
    ka_int(&a, n0);
    ka_int(&a, nb);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_float(&a, beta);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_float(&a, act ? act->alpha : 0.0f);
    return ka_run(&a, total, (beta != 0.0f ? 2 : 1) * total, total);
}

static dc_status cl_cm_to_nchw(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                               int c, int hw, float beta) {
    return cm_to_nchw_act(be, src, bias, dst, n0, nb, c, hw, beta, NULL);
}

static dc_status cl_nchw_to_cm(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c,
                               int hw) {
    const size_t total = (size_t)nb * c * hw;
    if (n0 < 0 || nb < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL nchw_to_cm: negative size");
    DC_TRY(need(be, "nchw_to_cm", "src", src, (size_t)(n0 + nb) * c * hw));
    DC_TRY(need(be, "nchw_to_cm", "dst", dst, total));
    DC_TRY(fits32(be, "nchw_to_cm", total));
    kargs a = ka(be, DC_K_nchw_to_cm);
    ka_ptr(&a, src);
    ka_ptr(&a, dst);
    ka_int(&a, n0);
    ka_int(&a, nb);
    ka_int(&a, c);
    ka_int(&a, hw);
    return ka_run(&a, total, total, total);
}

static dc_status cl_bias_add(dc_backend *be, dc_ptr y, dc_ptr bias, int n, int c, int hw) {
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "bias_add", "y", y, total));
    DC_TRY(need(be, "bias_add", "bias", bias, (size_t)c));
    DC_TRY(fits32(be, "bias_add", total));
    kargs a = ka(be, DC_K_bias_add);
    ka_ptr(&a, y);
    ka_ptr(&a, bias);
    ka_uint(&a, total);
    ka_int(&a, c);
    ka_int(&a, hw);
    return ka_run(&a, total, total, total);
}

/* Per-channel gradient sums over images [n0, n0 + nb) of an NCHW gradient dy (c channels,
 * hw pixels): db[ch] += sum of g, g = dy or, with act, the gradient before the fused
 * activation whose output is act_y. cm (when set) also receives g channel-major,
 * [c][nb*hw]. Two stages: many work-groups per channel write partial sums (a big device
 * stays busy even with few channels), then one work-group per channel adds them in a fixed
 * order (deterministic). db NULL: only the transposed copy. */
static dc_status chan_sums(dc_backend *be, dc_ptr dy, dc_ptr act_y, const dc_fused_act *act,
                           dc_ptr cm, int n0, int nb, int c, int hw, dc_ptr db,
                           chan_final_job *later) {
    if (later) *later = (chan_final_job){0, 1, dc_null_ptr()};
    if (c <= 0 || nb <= 0 || hw <= 0) return DC_OK;
    const size_t m = (size_t)nb * hw, local = B(be)->local[DC_K_chan_grad];
    /* about 8 values per work-item, and no more groups than the partials buffer holds */
    size_t groups_per_ch = (m + local * 8 - 1) / (local * 8);
    if (groups_per_ch * (size_t)c > DC_CL_PARTIALS) groups_per_ch = DC_CL_PARTIALS / (size_t)c;
    if (groups_per_ch < 1)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL channel sums: %d channels exceed the %d partial sums", c,
                            DC_CL_PARTIALS);
    const size_t span = (m + groups_per_ch - 1) / groups_per_ch;
    kargs a = ka(be, DC_K_chan_grad);
    ka_ptr(&a, dy);
    ka_ptr(&a, act_y.buf ? act_y : dy);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_int(&a, act ? act->mode : 0);
    ka_float(&a, act ? act->alpha : 0.0f);
    ka_ptr(&a, cm.buf ? cm : dy);
    ka_int(&a, cm.buf != NULL);
    ka_int(&a, n0);
    ka_int(&a, nb);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_uint(&a, groups_per_ch);
    ka_uint(&a, span);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups_per_ch * (size_t)c, (act ? 2 : 1) * m * (size_t)c,
                         (cm.buf ? m * (size_t)c : 0) + groups_per_ch * (size_t)c));
    if (!db.buf) return DC_OK;
    if (later) { /* the caller's next launch finishes it */
        *later = (chan_final_job){c, groups_per_ch, db};
        return DC_OK;
    }
    kargs f = ka(be, DC_K_chan_final);
    ka_mem(&f, B(be)->partial);
    ka_uint(&f, groups_per_ch);
    ka_ptr(&f, db);
    ka_scratch(&f);
    return ka_run_groups(&f, (size_t)c, groups_per_ch * (size_t)c + (size_t)c, (size_t)c);
}

static dc_status cl_bias_grad(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw) {
    DC_TRY(need(be, "bias_grad", "db", db, (size_t)c));
    DC_TRY(need(be, "bias_grad", "dy", dy, (size_t)n * c * hw));
    DC_TRY(fits32(be, "bias_grad", (size_t)n * c * hw));
    return chan_sums(be, dy, dc_null_ptr(), NULL, dc_null_ptr(), 0, n, c, hw, db, NULL);
}

/* ------------------------------------------------------------------ pooling */
static dc_status pool_args(dc_backend *be, const char *op, const dc_win2d *g, size_t *big,
                           size_t *small) {
    DC_TRY(check_win(be, op, g));
    *big = (size_t)g->n * g->c * g->h * g->w;
    *small = (size_t)g->n * g->c * g->oh * g->ow;
    DC_TRY(fits32(be, op, *big > *small ? *big : *small));
    return DC_OK;
}

static dc_status cl_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_fwd", g, &big, &small));
    DC_TRY(need(be, "maxpool_fwd", "x", x, big));
    DC_TRY(need(be, "maxpool_fwd", "y", y, small));
    DC_TRY(need(be, "maxpool_fwd", "switches", sw, small));
    kargs a = ka(be, DC_K_maxpool_fwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_ptr(&a, sw);
    ka_uint(&a, small);
    return ka_run(&a, small, big, 2 * small);
}

static dc_status cl_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw,
                                dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "maxpool_bwd", g, &big, &small));
    DC_TRY(need(be, "maxpool_bwd", "dy", dy, small));
    DC_TRY(need(be, "maxpool_bwd", "switches", sw, small));
    DC_TRY(need(be, "maxpool_bwd", "dx", dx, big));
    /* non-overlapping windows: scatter from the outputs (a quarter of the work-items for
     * 2x2 pools, no window search); otherwise gather per input pixel */
    const int scatter = g->kh <= g->sh && g->kw <= g->sw;
    kargs a = ka(be, scatter ? DC_K_maxpool_bwd_scatter : DC_K_maxpool_bwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, dy);
    ka_ptr(&a, sw);
    ka_ptr(&a, dx);
    ka_uint(&a, scatter ? small : big);
    return ka_run(&a, scatter ? small : big, scatter ? 3 * small : 2 * small + big,
                  scatter ? small : big);
}

static dc_status cl_unpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw, dc_ptr y) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_fwd", g, &big, &small));
    DC_TRY(need(be, "unpool_fwd", "x", x, small));
    DC_TRY(need(be, "unpool_fwd", "switches", sw, small));
    DC_TRY(need(be, "unpool_fwd", "y", y, big));
    kargs a = ka(be, DC_K_unpool_fwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, x);
    ka_ptr(&a, sw);
    ka_ptr(&a, y);
    ka_uint(&a, big);
    return ka_run(&a, big, 2 * small, big);
}

static dc_status cl_unpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx) {
    size_t big, small;
    DC_TRY(pool_args(be, "unpool_bwd", g, &big, &small));
    DC_TRY(need(be, "unpool_bwd", "dy", dy, big));
    DC_TRY(need(be, "unpool_bwd", "switches", sw, small));
    DC_TRY(need(be, "unpool_bwd", "dx", dx, small));
    kargs a = ka(be, DC_K_unpool_bwd);
    ka_geom(&a, g, 0, g->n);
    ka_ptr(&a, dy);
    ka_ptr(&a, sw);
    ka_ptr(&a, dx);
    ka_uint(&a, small);
    return ka_run(&a, small, big + 2 * small, small);
}

static dc_status cl_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) {
    DC_TRY(need(be, "gap_fwd", "x", x, (size_t)nc * hw));
    DC_TRY(need(be, "gap_fwd", "y", y, (size_t)nc));
    DC_TRY(fits32(be, "gap_fwd", (size_t)nc * hw));
    kargs a = ka(be, DC_K_gap_fwd);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_int(&a, nc);
    ka_int(&a, hw);
    return ka_run(&a, (size_t)nc, (size_t)nc * hw, (size_t)nc);
}

static dc_status cl_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) {
    const size_t total = (size_t)nc * hw;
    DC_TRY(need(be, "gap_bwd", "dy", dy, (size_t)nc));
    DC_TRY(need(be, "gap_bwd", "dx", dx, total));
    DC_TRY(fits32(be, "gap_bwd", total));
    kargs a = ka(be, DC_K_gap_bwd);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, total);
    ka_int(&a, hw);
    return ka_run(&a, total, total + (size_t)nc, total);
}

/* -------------------------------------------------------------- activations */
static dc_status cl_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_fwd: unknown kind %d", kind);
    DC_TRY(need(be, "act_fwd", "x", x, n));
    DC_TRY(need(be, "act_fwd", "y", y, n));
    DC_TRY(fits32(be, "act_fwd", n));
    kargs a = ka(be, DC_K_act_fwd);
    ka_int(&a, kind);
    ka_float(&a, alpha);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_uint(&a, n);
    return ka_run(&a, n, n, n);
}

static dc_status cl_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                            dc_ptr dy, dc_ptr dx, size_t n) {
    if (kind < DC_ACT_RELU || kind > DC_ACT_SILU)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL act_bwd: unknown kind %d", kind);
    const int relu = kind == DC_ACT_RELU || kind == DC_ACT_LEAKY_RELU || kind == DC_ACT_SILU;
    /* ReLU and SiLU read x, tanh/sigmoid read y: the other may be absent */
    dc_ptr used = relu ? x : y;
    DC_TRY(need(be, "act_bwd", relu ? "x" : "y", used, n));
    DC_TRY(need(be, "act_bwd", "dy", dy, n));
    DC_TRY(need(be, "act_bwd", "dx", dx, n));
    DC_TRY(fits32(be, "act_bwd", n));
    kargs a = ka(be, DC_K_act_bwd);
    ka_int(&a, kind);
    ka_int(&a, mode);
    ka_float(&a, alpha);
    ka_ptr(&a, x.buf ? x : used);
    ka_ptr(&a, y.buf ? y : used);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, n);
    return ka_run(&a, n, 3 * n, n);
}

/* -------------------------------------------------------------- batch norm */
static dc_status cl_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                             int hw) {
    DC_TRY(need(be, "bn_stats", "x", x, (size_t)n * c * hw));
    DC_TRY(need(be, "bn_stats", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_stats", "var", var, (size_t)c));
    DC_TRY(fits32(be, "bn_stats", (size_t)n * c * hw));
    if (c <= 0) return DC_OK;
    kargs a = ka(be, DC_K_bn_stats);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_int(&a, n);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_scratch(&a);
    return ka_run_groups(&a, (size_t)c, 2 * (size_t)n * c * hw, 2 * (size_t)c);
}

static dc_status cl_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                 dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps,
                                 const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_act(be, "bn_apply_act", act));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "bn_apply", "x", x, total));
    DC_TRY(need(be, "bn_apply", "y", y, total));
    DC_TRY(need(be, "bn_apply", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_apply", "var", var, (size_t)c));
    DC_TRY(need(be, "bn_apply", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "bn_apply", "beta", beta, (size_t)c));
    DC_TRY(fits32(be, "bn_apply", total));
    kargs a = ka(be, DC_K_bn_apply);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, gamma);
    ka_ptr(&a, beta);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_float(&a, eps);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_float(&a, act ? act->alpha : 0.0f);
    return ka_run(&a, total, total, total);
}

static dc_status cl_bn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                             dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps) {
    return cl_bn_apply_act(be, x, mean, var, gamma, beta, y, n, c, hw, eps, NULL);
}

static dc_status cl_bn_bwd_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                               dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                               int c, int hw, float eps, const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_act(be, "bn_bwd_act", act));
    const size_t total = (size_t)n * c * hw;
    if (act) DC_TRY(need(be, "bn_bwd", "y", y, total));
    DC_TRY(need(be, "bn_bwd", "x", x, total));
    DC_TRY(need(be, "bn_bwd", "dy", dy, total));
    DC_TRY(need(be, "bn_bwd", "dx", dx, total));
    DC_TRY(need(be, "bn_bwd", "mean", mean, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "var", var, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "dgamma", dgamma, (size_t)c));
    DC_TRY(need(be, "bn_bwd", "dbeta", dbeta, (size_t)c));
    DC_TRY(fits32(be, "bn_bwd", total));
    if (c <= 0) return DC_OK;
    kargs a = ka(be, DC_K_bn_bwd);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, gamma);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_ptr(&a, dgamma);
    ka_ptr(&a, dbeta);
    ka_int(&a, n);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_float(&a, eps);
    ka_ptr(&a, act ? y : dy);
    ka_int(&a, act ? act->kind : DC_FACT_NONE);
    ka_int(&a, act ? act->mode : 0);
    ka_float(&a, act ? act->alpha : 0.0f);
    ka_scratch(&a);
    return ka_run_groups(&a, (size_t)c, (act ? 7 : 5) * total, total + 2 * (size_t)c);
}

static dc_status cl_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                           dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                           float eps) {
    return cl_bn_bwd_act(be, x, mean, var, gamma, dc_null_ptr(), dy, dx, dgamma, dbeta, n, c, hw,
                         eps, NULL);
}

/* ---------------------------------------------------------------- randomness */
static dc_status cl_randn(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean,
                          float std) {
    DC_TRY(need(be, "randn", "dst", dst, n));
    DC_TRY(fits32(be, "randn", n));
    kargs a = ka(be, DC_K_randn);
    ka_ptr(&a, dst);
    ka_uint(&a, n);
    ka_uint(&a, (uint32_t)seed);
    ka_uint(&a, (uint32_t)(seed >> 32));
    ka_float(&a, mean);
    ka_float(&a, std);
    return ka_run(&a, n, 0, n);
}

static dc_status cl_dropout_mask(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    DC_TRY(need(be, "dropout_mask", "mask", mask, n));
    DC_TRY(fits32(be, "dropout_mask", n));
    const float keep = 1.0f / (1.0f - p); /* the CPU's float expression, bit for bit */
    kargs a = ka(be, DC_K_dropout_mask);
    ka_ptr(&a, mask);
    ka_uint(&a, n);
    ka_uint(&a, (uint32_t)seed);
    ka_uint(&a, (uint32_t)(seed >> 32));
    ka_float(&a, p);
    ka_float(&a, keep);
    return ka_run(&a, n, 0, n);
}

static dc_status cl_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z,
                                size_t n) {
    DC_TRY(need(be, "reparam_fwd", "mu", mu, n));
    DC_TRY(need(be, "reparam_fwd", "logvar", lv, n));
    DC_TRY(need(be, "reparam_fwd", "eps", eps, n));
    DC_TRY(need(be, "reparam_fwd", "z", z, n));
    DC_TRY(fits32(be, "reparam_fwd", n));
    kargs a = ka(be, DC_K_reparam_fwd);
    ka_ptr(&a, mu);
    ka_ptr(&a, lv);
    ka_ptr(&a, eps);
    ka_ptr(&a, z);
    ka_uint(&a, n);
    return ka_run(&a, n, 3 * n, n);
}

static dc_status cl_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                                dc_ptr dlv, size_t n) {
    DC_TRY(need(be, "reparam_bwd", "logvar", lv, n));
    DC_TRY(need(be, "reparam_bwd", "eps", eps, n));
    DC_TRY(need(be, "reparam_bwd", "dz", dz, n));
    DC_TRY(need(be, "reparam_bwd", "dmu", dmu, n));
    DC_TRY(need(be, "reparam_bwd", "dlogvar", dlv, n));
    DC_TRY(fits32(be, "reparam_bwd", n));
    kargs a = ka(be, DC_K_reparam_bwd);
    ka_ptr(&a, lv);
    ka_ptr(&a, eps);
    ka_ptr(&a, dz);
    ka_ptr(&a, dmu);
    ka_ptr(&a, dlv);
    ka_uint(&a, n);
    return ka_run(&a, n, 5 * n, 2 * n);
}

/* ------------------------------------------------------------------ losses */
static dc_status cl_mse(dc_backend *be, dc_ptr pred, dc_ptr target, dc_ptr weight, size_t n,
                        dc_ptr loss, dc_ptr dpred, float scale) {
    DC_TRY(need(be, "mse", "pred", pred, n));
    DC_TRY(need(be, "mse", "target", target, n));
    if (weight.buf) DC_TRY(need(be, "mse", "weight", weight, n));
    DC_TRY(need(be, "mse", "loss", loss, 1));
    DC_TRY(need(be, "mse", "dpred", dpred, n));
    DC_TRY(fits32(be, "mse", n));
    const float k = 2.0f * scale / (float)n;
    const size_t groups = reduce_groups(be, DC_K_mse_partial, n);
    kargs a = ka(be, DC_K_mse_partial);
    ka_ptr(&a, pred);
    ka_ptr(&a, target);
    ka_ptr(&a, weight.buf ? weight : pred);
    ka_int(&a, weight.buf != NULL);
    ka_uint(&a, n);
    ka_ptr(&a, dpred);
    ka_float(&a, k);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, (weight.buf ? 3 : 2) * n, n + groups));
    return reduce_final(be, groups, loss, 1.0f, (float)n);
}

static dc_status cl_bce_tanh(dc_backend *be, dc_ptr x, dc_ptr target, dc_ptr weight, size_t n,
                             dc_ptr loss, dc_ptr dx, float scale) {
    DC_TRY(need(be, "bce_tanh", "x", x, n));
    DC_TRY(need(be, "bce_tanh", "target", target, n));
    if (weight.buf) DC_TRY(need(be, "bce_tanh", "weight", weight, n));
    DC_TRY(need(be, "bce_tanh", "loss", loss, 1));
    DC_TRY(need(be, "bce_tanh", "dx", dx, n));
    DC_TRY(fits32(be, "bce_tanh", n));
    const size_t groups = reduce_groups(be, DC_K_bce_tanh_partial, n);
    kargs a = ka(be, DC_K_bce_tanh_partial);
    ka_ptr(&a, x);
    ka_ptr(&a, target);
    ka_ptr(&a, weight.buf ? weight : x);
    ka_int(&a, weight.buf != NULL);
    ka_uint(&a, n);
    ka_ptr(&a, dx);
    ka_float(&a, scale / (float)n);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, (weight.buf ? 3 : 2) * n, n + groups));
    return reduce_final(be, groups, loss, 1.0f, (float)n);
}

static dc_status cl_softmax(dc_backend *be, dc_ptr logits, dc_ptr probs, int rows, int k) {
    if (rows < 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax: %d rows of %d classes", rows, k);
    DC_TRY(need(be, "softmax", "logits", logits, (size_t)rows * k));
    DC_TRY(need(be, "softmax", "probs", probs, (size_t)rows * k));
    kargs a = ka(be, DC_K_softmax);
    ka_ptr(&a, logits);
    ka_ptr(&a, probs);
    ka_int(&a, rows);
    ka_int(&a, k);
    return ka_run(&a, (size_t)rows, (size_t)rows * k, (size_t)rows * k);
}

static dc_status cl_softmax_xent(dc_backend *be, dc_ptr logits, dc_ptr labels, int rows, int k,
                                 dc_ptr probs, dc_ptr loss, dc_ptr dlogits, float scale) {
    if (rows <= 0 || k <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL softmax_xent: %d rows of %d classes",
                            rows, k);
    const size_t total = (size_t)rows * k;
    DC_TRY(need(be, "softmax_xent", "logits", logits, total));
    DC_TRY(need(be, "softmax_xent", "labels", labels, (size_t)rows));
    DC_TRY(need(be, "softmax_xent", "probs", probs, total));
    DC_TRY(need(be, "softmax_xent", "loss", loss, 1));
    DC_TRY(need(be, "softmax_xent", "dlogits", dlogits, total));
    kargs a = ka(be, DC_K_softmax_xent);
    ka_ptr(&a, logits);
    ka_ptr(&a, labels);
    ka_int(&a, rows);
    ka_int(&a, k);
    ka_ptr(&a, probs);
    ka_ptr(&a, loss);
    ka_ptr(&a, dlogits);
    ka_float(&a, scale / (float)rows);
    ka_scratch(&a);
    return ka_run_groups(&a, 1, total + (size_t)rows, 2 * total + 1);
}

static dc_status cl_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr logvar, int rows, int dim,
                             dc_ptr loss, dc_ptr dmu, dc_ptr dlogvar, float scale) {
    if (rows <= 0 || dim < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gauss_kl: %d rows of %d dims", rows, dim);
    const size_t n = (size_t)rows * dim;
    DC_TRY(need(be, "gauss_kl", "mu", mu, n));
    DC_TRY(need(be, "gauss_kl", "logvar", logvar, n));
    DC_TRY(need(be, "gauss_kl", "loss", loss, 1));
    DC_TRY(need(be, "gauss_kl", "dmu", dmu, n));
    DC_TRY(need(be, "gauss_kl", "dlogvar", dlogvar, n));
    DC_TRY(fits32(be, "gauss_kl", n));
    const size_t groups = reduce_groups(be, DC_K_kl_partial, n);
    kargs a = ka(be, DC_K_kl_partial);
    ka_ptr(&a, mu);
    ka_ptr(&a, logvar);
    ka_uint(&a, n);
    ka_ptr(&a, dmu);
    ka_ptr(&a, dlogvar);
    ka_float(&a, scale / (float)rows);
    ka_mem(&a, B(be)->partial);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, groups, 2 * n, 2 * n + groups));
    return reduce_final(be, groups, loss, -0.5f, (float)rows);
}

/* ---------------------------------------------------------------- embedding */
static dc_status cl_gather_rows(dc_backend *be, dc_ptr table, dc_ptr idx, dc_ptr y, int rows,
                                int dim) {
    if (rows < 0 || dim <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL gather_rows: %d rows of %d", rows, dim);
    DC_TRY(need(be, "gather_rows", "table", table, (size_t)dim));
    DC_TRY(need(be, "gather_rows", "indices", idx, (size_t)rows));
    DC_TRY(need(be, "gather_rows", "y", y, (size_t)rows * dim));
    DC_TRY(fits32(be, "gather_rows", (size_t)rows * dim));
    /* rows the table's buffer holds past its offset: the kernel's bounds for indices */
    const size_t table_rows = (table.buf->bytes / 4 - table.off) / (size_t)dim;
    kargs a = ka(be, DC_K_gather_rows);
    ka_ptr(&a, table);
    ka_ptr(&a, idx);
    ka_ptr(&a, y);
    ka_int(&a, rows);
    ka_int(&a, dim);
    ka_uint(&a, table_rows > UINT_MAX ? UINT_MAX : table_rows);
    return ka_run(&a, (size_t)rows * dim, (size_t)rows * dim + (size_t)rows, (size_t)rows * dim);
}

static dc_status cl_scatter_add_rows(dc_backend *be, dc_ptr dtable, dc_ptr idx, dc_ptr dy, int rows,
                                     int dim, int table_rows) {
    if (rows < 0 || dim <= 0 || table_rows < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL scatter_add_rows: %d rows of %d", rows,
                            dim);
    DC_TRY(need(be, "scatter_add_rows", "dtable", dtable, (size_t)table_rows * dim));
    DC_TRY(need(be, "scatter_add_rows", "indices", idx, (size_t)rows));
    DC_TRY(need(be, "scatter_add_rows", "dy", dy, (size_t)rows * dim));
    DC_TRY(fits32(be, "scatter_add_rows", (size_t)rows * dim));
    kargs a = ka(be, DC_K_scatter_add_rows);
    ka_ptr(&a, dtable);
    ka_ptr(&a, idx);
    ka_ptr(&a, dy);
    ka_int(&a, rows);
    ka_int(&a, dim);
    ka_int(&a, table_rows);
    return ka_run(&a, (size_t)rows * dim, 2 * (size_t)rows * dim + (size_t)rows,
                  (size_t)rows * dim);
}

/* --------------------------------------------------------------- optimizers */
static dc_status cl_sgd_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n,
                               dc_ptr gscale, float lr, float momentum, float wd, int nesterov) {
    DC_TRY(need(be, "sgd_update", "params", p, n));
    DC_TRY(need(be, "sgd_update", "grads", g, n));
    DC_TRY(need(be, "sgd_update", "velocity", v, n));
    DC_TRY(need(be, "sgd_update", "gscale", gscale, 1));
    DC_TRY(fits32(be, "sgd_update", n));
    kargs a = ka(be, DC_K_sgd_update);
    ka_ptr(&a, p);
    ka_ptr(&a, g);
    ka_ptr(&a, v);
    ka_uint(&a, n);
    ka_ptr(&a, gscale);
    ka_float(&a, lr);
    ka_float(&a, momentum);
    ka_float(&a, wd);
    ka_int(&a, nesterov);
    return ka_run(&a, n, 3 * n, 2 * n);
}

static dc_status adam_launch(dc_backend *be, const dc_cl_pending_adam *q) {
    cl_uint16 ends;
    cl_float16 wds;
    for (int r = 0; r < 16; r++) {
        const int last = r < q->runs ? r : q->runs - 1;
        ends.s[r] = q->ends[last];
        wds.s[r] = q->wds[last];
    }
    kargs a = ka(be, DC_K_adam_update);
    ka_ptr(&a, q->p);
    ka_ptr(&a, q->g);
    ka_ptr(&a, q->m);
    ka_ptr(&a, q->v);
    ka_uint(&a, q->n);
    ka_ptr(&a, q->gscale);
    ka_float(&a, q->lr);
    ka_float(&a, q->beta1);
    ka_float(&a, q->beta2);
    ka_float(&a, q->eps);
    ka_set(&a, sizeof ends, &ends);
    ka_set(&a, sizeof wds, &wds);
    ka_int(&a, q->decoupled);
    ka_float(&a, q->bc1);
    ka_float(&a, q->bc2);
    return ka_run(&a, q->n, 4 * q->n, 3 * q->n);
}

dc_status dc_cl_flush(dc_backend *be) {
    cl_backend *b = B(be);
    if (!b->adam.runs) return DC_OK;
    const dc_cl_pending_adam q = b->adam;
    b->adam.runs = 0;
    return adam_launch(be, &q);
}

static int same_ptr(dc_ptr a, dc_ptr b) {
    return a.buf == b.buf && a.off == b.off;
}

static dc_status cl_adam_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                                dc_ptr gscale, float lr, float beta1, float beta2, float eps,
                                float wd, int decoupled, float bc1, float bc2) {
    DC_TRY(need(be, "adam_update", "params", p, n));
    DC_TRY(need(be, "adam_update", "grads", g, n));
    DC_TRY(need(be, "adam_update", "m", m, n));
    DC_TRY(need(be, "adam_update", "v", v, n));
    DC_TRY(need(be, "adam_update", "gscale", gscale, 1));
    DC_TRY(fits32(be, "adam_update", n));
    if (n == 0) return DC_OK;
    dc_cl_pending_adam *q = &B(be)->adam;
    /* the next run of the same arenas with the same settings: one launch for both */
    if (q->runs && q->runs < DC_CL_ADAM_RUNS && q->n + n <= UINT_MAX &&
        same_ptr(p, dc_ptr_at(q->p, q->n)) && same_ptr(g, dc_ptr_at(q->g, q->n)) &&
        same_ptr(m, dc_ptr_at(q->m, q->n)) && same_ptr(v, dc_ptr_at(q->v, q->n)) &&
        same_ptr(gscale, q->gscale) && lr == q->lr && beta1 == q->beta1 && beta2 == q->beta2 &&
        eps == q->eps && decoupled == q->decoupled && bc1 == q->bc1 && bc2 == q->bc2) {
        q->n += n;
        q->ends[q->runs] = (cl_uint)q->n;
        q->wds[q->runs] = wd;
        q->runs++;
        return DC_OK;
    }
    DC_TRY(dc_cl_flush(be));
    *q = (dc_cl_pending_adam){.runs = 1,
                              .p = p,
                              .g = g,
                              .m = m,
                              .v = v,
                              .gscale = gscale,
                              .n = n,
                              .lr = lr,
                              .beta1 = beta1,
                              .beta2 = beta2,
                              .eps = eps,
                              .bc1 = bc1,
                              .bc2 = bc2,
                              .decoupled = decoupled};
    q->ends[0] = (cl_uint)n;
    q->wds[0] = wd;
    return DC_OK;
}

static dc_status cl_clip_scale(dc_backend *be, dc_ptr sumsq, dc_ptr gscale, float max_norm) {
    DC_TRY(need(be, "clip_scale", "sumsq", sumsq, 1));
    DC_TRY(need(be, "clip_scale", "gscale", gscale, 1));
    kargs a = ka(be, DC_K_clip_scale);
    ka_ptr(&a, sumsq);
    ka_ptr(&a, gscale);
    ka_float(&a, max_norm);
    return ka_run(&a, 1, 1, 1);
}

/* ------------------------------------------------------------- U-Net ops */
static dc_status cl_chan_slice(dc_backend *be, int dir, dc_ptr big, int cbig, int coff,
                               dc_ptr small, int csmall, int n, int hw) {
    if (coff < 0 || csmall < 0 || coff + csmall > cbig || n < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL chan_slice: channels [%d, %d) outside a %d-channel tensor",
                            coff, coff + csmall, cbig);
    const size_t total = (size_t)n * csmall * hw;
    DC_TRY(need(be, "chan_slice", "big", big, (size_t)n * cbig * hw));
    DC_TRY(need(be, "chan_slice", "small", small, total));
    DC_TRY(fits32(be, "chan_slice", (size_t)n * cbig * hw));
    kargs a = ka(be, DC_K_chan_slice);
    ka_int(&a, dir);
    ka_ptr(&a, big);
    ka_int(&a, cbig);
    ka_int(&a, coff);
    ka_ptr(&a, small);
    ka_int(&a, csmall);
    ka_uint(&a, total);
    ka_int(&a, hw);
    return ka_run(&a, total, (dir ? 2 : 1) * total, total);
}

static dc_status gn_args(dc_backend *be, const char *op, dc_ptr x, dc_ptr mean, dc_ptr var, int n,
                         int c, int hw, int groups) {
    if (n < 0 || c <= 0 || hw <= 0 || groups <= 0 || c % groups)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %d channels do not split into %d groups", op, c, groups);
    DC_TRY(need(be, op, "x", x, (size_t)n * c * hw));
    DC_TRY(need(be, op, "mean", mean, (size_t)n * groups));
    DC_TRY(need(be, op, "var", var, (size_t)n * groups));
    return fits32(be, op, (size_t)n * c * hw);
}

static dc_status cl_gn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                             int hw, int groups) {
    DC_TRY(gn_args(be, "gn_stats", x, mean, var, n, c, hw, groups));
    if (n == 0) return DC_OK;
    kargs a = ka(be, DC_K_gn_stats);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_uint(&a, (size_t)(c / groups) * hw);
    ka_scratch(&a);
    return ka_run_groups(&a, (size_t)n * groups, 2 * (size_t)n * c * hw, 2 * (size_t)n * groups);
}

static dc_status cl_gn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                             dc_ptr beta, dc_ptr y, int n, int c, int hw, int groups, float eps) {
    DC_TRY(gn_args(be, "gn_apply", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "gn_apply", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "gn_apply", "beta", beta, (size_t)c));
    DC_TRY(need(be, "gn_apply", "y", y, total));
    kargs a = ka(be, DC_K_gn_apply);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, gamma);
    ka_ptr(&a, beta);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_int(&a, groups);
    ka_float(&a, eps);
    return ka_run(&a, total, total, total);
}

static dc_status cl_gn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                           dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw,
                           int groups, float eps) {
    DC_TRY(gn_args(be, "gn_bwd", x, mean, var, n, c, hw, groups));
    const size_t total = (size_t)n * c * hw;
    DC_TRY(need(be, "gn_bwd", "gamma", gamma, (size_t)c));
    DC_TRY(need(be, "gn_bwd", "dy", dy, total));
    DC_TRY(need(be, "gn_bwd", "dx", dx, total));
    DC_TRY(need(be, "gn_bwd", "dgamma", dgamma, (size_t)c));
    DC_TRY(need(be, "gn_bwd", "dbeta", dbeta, (size_t)c));
    if (n == 0) return DC_OK;
    kargs a = ka(be, DC_K_gn_bwd_param);
    ka_ptr(&a, x);
    ka_ptr(&a, mean);
    ka_ptr(&a, var);
    ka_ptr(&a, dy);
    ka_ptr(&a, dgamma);
    ka_ptr(&a, dbeta);
    ka_int(&a, n);
    ka_int(&a, c);
    ka_int(&a, hw);
    ka_int(&a, groups);
    ka_float(&a, eps);
    ka_scratch(&a);
    DC_TRY(ka_run_groups(&a, (size_t)c, 2 * total, 2 * (size_t)c));
    kargs d = ka(be, DC_K_gn_bwd_dx);
    ka_ptr(&d, x);
    ka_ptr(&d, mean);
    ka_ptr(&d, var);
    ka_ptr(&d, gamma);
    ka_ptr(&d, dy);
    ka_ptr(&d, dx);
    ka_int(&d, c);
    ka_int(&d, hw);
    ka_int(&d, groups);
    ka_float(&d, eps);
    ka_scratch(&d);
    return ka_run_groups(&d, (size_t)n * groups, 4 * total, total);
}

static dc_status upsample_args(dc_backend *be, const char *op, dc_ptr small, dc_ptr big, int nc,
                               int h, int w, int s) {
    if (nc < 0 || h < 0 || w < 0 || s <= 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: %d planes %dx%d, factor %d", op, nc,
                            h, w, s);
    DC_TRY(need(be, op, "input", small, (size_t)nc * h * w));
    DC_TRY(need(be, op, "output", big, (size_t)nc * h * w * s * s));
    return fits32(be, op, (size_t)nc * h * w * s * s);
}

static dc_status cl_upsample_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int h, int w, int s) {
    DC_TRY(upsample_args(be, "upsample_fwd", x, y, nc, h, w, s));
    const size_t total = (size_t)nc * h * w * s * s;
    kargs a = ka(be, DC_K_upsample_fwd);
    ka_ptr(&a, x);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, h);
    ka_int(&a, w);
    ka_int(&a, s);
    return ka_run(&a, total, total / ((size_t)s * s), total);
}

static dc_status cl_upsample_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int h, int w,
                                 int s) {
    DC_TRY(upsample_args(be, "upsample_bwd", dx, dy, nc, h, w, s));
    const size_t total = (size_t)nc * h * w;
    kargs a = ka(be, DC_K_upsample_bwd);
    ka_ptr(&a, dy);
    ka_ptr(&a, dx);
    ka_uint(&a, total);
    ka_int(&a, h);
    ka_int(&a, w);
    ka_int(&a, s);
    return ka_run(&a, total, total * s * s + total, total);
}

static dc_status cl_time_embed(dc_backend *be, dc_ptr t, dc_ptr y, int rows, int dim, float scale,
                               float max_period) {
    if (rows < 0 || dim <= 0 || dim % 2 || !(max_period > 0.0f))
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL time_embed: dim %d must be even and > 0, max_period %g > 0",
                            dim, (double)max_period);
    DC_TRY(need(be, "time_embed", "t", t, (size_t)rows));
    DC_TRY(need(be, "time_embed", "y", y, (size_t)rows * dim));
    DC_TRY(fits32(be, "time_embed", (size_t)rows * dim));
    const size_t total = (size_t)rows * (dim / 2);
    kargs a = ka(be, DC_K_time_embed);
    ka_ptr(&a, t);
    ka_ptr(&a, y);
    ka_uint(&a, total);
    ka_int(&a, dim);
    ka_float(&a, scale);
    ka_float(&a, max_period);
    return ka_run(&a, total, (size_t)rows, 2 * total);
}

/* ------------------------------------------------------ fused convolutions
 * The same im2col + GEMM products as the composed path (host/ops/conv.c), but with the
 * columns in a buffer of the backend's own, sized to hold the whole batch where the device
 * has the memory (one GEMM per product instead of one per chunk), and with the epilogues
 * fused: bias and activation in the pass that leaves the column layout, the activation's
 * gradient and the bias gradient in the pass that enters it. */

/* The column buffer, at least `elems` floats. */
static dc_status work_at_least(dc_backend *be, size_t elems, dc_ptr *out) {
    cl_backend *b = B(be);
    if (!b->work || b->work->bytes < elems * 4) {
        dc_cl_free_work(be); /* queued commands keep the old one alive */
        DC_TRY(dc_cl_alloc(be, elems * 4, &b->work));
        /* the backend's own, like its partials: not the caller's allocation (the peak
         * keeps it) */
        be->bytes_allocated -= b->work->bytes;
    }
    *out = (dc_ptr){b->work, 0};
    return DC_OK;
}

/* Images per chunk when each needs per_image floats of columns. */
static int conv_chunk(dc_backend *be, size_t per_image, int n) {
    size_t nb = per_image ? B(be)->work_budget / per_image : (size_t)n;
    if (nb < 1) nb = 1;
    if (nb > (size_t)n) nb = (size_t)n;
    return (int)nb;
}

static dc_status cl_conv2d_fwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                               dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_win(be, "conv2d_fwd", g));
    DC_TRY(check_act(be, "conv2d_fwd", act));
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    DC_TRY(need(be, "conv2d_fwd", "weight", w, (size_t)oc * K));
    DC_TRY(need(be, "conv2d_fwd", "y", y, (size_t)g->n * oc * ohw));
    const int nb = conv_chunk(be, ((size_t)K + oc) * ohw, g->n);
    dc_ptr work;
    DC_TRY(work_at_least(be, ((size_t)K + oc) * ohw * nb, &work));
    for (int n0 = 0; n0 < g->n; n0 += nb) {
        const int cnt = n0 + nb <= g->n ? nb : g->n - n0, cols_n = cnt * ohw;
        dc_ptr cols = work, ycm = dc_ptr_at(work, (size_t)K * cols_n);
        DC_TRY(cl_im2col(be, g, n0, cnt, x, cols));
        DC_TRY(cl_gemm(be, 0, 0, oc, cols_n, K, 1.0f, w, K, cols, cols_n, 0.0f, ycm, cols_n));
        DC_TRY(cm_to_nchw_act(be, ycm, bias, y, n0, cnt, oc, ohw, 0.0f, act));
    }
    return DC_OK;
}

static dc_status cl_conv2d_bwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                               dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                               const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_win(be, "conv2d_bwd", g));
    DC_TRY(check_act(be, "conv2d_bwd", act));
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    const size_t out_total = (size_t)g->n * oc * ohw;
    DC_TRY(need(be, "conv2d_bwd", "dy", dy, out_total));
    if (act) DC_TRY(need(be, "conv2d_bwd", "y", y, out_total));
    if (db.buf) DC_TRY(need(be, "conv2d_bwd", "db", db, (size_t)oc));
    DC_TRY(need(be, "conv2d_bwd", "dw", dw, (size_t)oc * K));
    DC_TRY(fits32(be, "conv2d_bwd", out_total));
    const int nb = conv_chunk(be, ((size_t)K + oc) * ohw, g->n);
    dc_ptr work;
    DC_TRY(work_at_least(be, ((size_t)K + oc) * ohw * nb, &work));
    for (int n0 = 0; n0 < g->n; n0 += nb) {
        const int cnt = n0 + nb <= g->n ? nb : g->n - n0, cols_n = cnt * ohw;
        dc_ptr dycm = work, cols = dc_ptr_at(work, (size_t)oc * cols_n);
        /* the gradient before the activation, channel-major, and the bias sums in one pass */
        chan_final_job fin;
        DC_TRY(chan_sums(be, dy, y, act, dycm, n0, cnt, oc, ohw, db, &fin));
        DC_TRY(im2col_act(be, g, n0, cnt, x, dc_null_ptr(), NULL, cols, &fin));
        /* dW [oc, K] += dy_cm [oc, cols] cols^T */
        DC_TRY(cl_gemm(be, 0, 1, oc, K, cols_n, 1.0f, dycm, cols_n, cols, cols_n, 1.0f, dw, K));
        if (dx.buf) {
            /* dcols [K, cols] = W^T dy_cm, folded into dx */
            DC_TRY(cl_gemm(be, 1, 0, K, cols_n, oc, 1.0f, w, K, dycm, cols_n, 0.0f, cols, cols_n));
            DC_TRY(cl_col2im(be, g, n0, cnt, cols, dx));
        }
    }
    return DC_OK;
}

/* dst_i [m, n] = op(A) [m, k] B_i [k, n] + beta dst_i for `count` images i, B_i and dst_i
 * at fixed strides, A shared: one CLBlast call for the whole batch. */
static dc_status gemm_batched(dc_backend *be, int trans_a, int m, int n, int k, dc_ptr a, int lda,
                              dc_ptr bm, int ldb, size_t b_stride, float beta, dc_ptr c, int ldc,
                              size_t c_stride, int count) {
    if (m <= 0 || n <= 0 || k <= 0 || count <= 0) return DC_OK;
    DC_TRY(need(be, "gemm_batched", "A", a,
                trans_a ? (size_t)(k - 1) * lda + m : (size_t)(m - 1) * lda + k));
    DC_TRY(need(be, "gemm_batched", "B", bm, b_stride * (count - 1) + (size_t)(k - 1) * ldb + n));
    DC_TRY(need(be, "gemm_batched", "C", c, c_stride * (count - 1) + (size_t)(m - 1) * ldc + n));
    cl_backend *b = B(be);
    b->used_clblast = 1;
    b->budget.gemm_calls++;
    b->budget.flops += 2.0 * m * (double)n * k * count;
    b->budget.read_bytes +=
        4.0 * ((double)m * k + ((double)k * n + (beta != 0.0f ? (double)m * n : 0)) * count);
    b->budget.write_bytes += 4.0 * (double)m * n * count;
    CLBlastStatusCode s = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        CLBlastTransposeNo, (size_t)m, (size_t)n, (size_t)k, 1.0f, a.buf->mem, a.off, (size_t)lda,
        0, bm.buf->mem, bm.off, (size_t)ldb, b_stride, beta, c.buf->mem, c.off, (size_t)ldc,
        c_stride, (size_t)count, &b->queue, NULL);
    if (s != CLBlastSuccess)
        return dc_set_error(&be->err, DC_ERR_CL,
                            "OpenCL CLBlastSgemmStridedBatched failed on %s: %s (%d) for m=%d "
                            "n=%d k=%d, %d images",
                            be->device_name, clblast_status_name(s), (int)s, m, n, k, count);
    return DC_OK;
}

static dc_status cl_conv_t2d_fwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                                 dc_ptr w, dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_win(be, "conv_t2d_fwd", g));
    DC_TRY(check_act(be, "conv_t2d_fwd", act));
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow;
    DC_TRY(need(be, "conv_t2d_fwd", "weight", w, (size_t)cin * R));
    DC_TRY(need(be, "conv_t2d_fwd", "y", y, (size_t)n * g->c * g->h * g->w));
    dc_win2d wb = *g;
    wb.n = n;
    const int nb = conv_chunk(be, (size_t)R * hw, n);
    dc_ptr work;
    DC_TRY(work_at_least(be, (size_t)R * hw * nb, &work));
    for (int n0 = 0; n0 < n; n0 += nb) {
        const int cnt = n0 + nb <= n ? nb : n - n0;
        /* cols_i [R, hw] = W [cin, R]^T x_i [cin, hw] for every image in one call, straight
         * from the NCHW input, then folded into y with bias and act */
        DC_TRY(gemm_batched(be, 1, R, hw, cin, w, R, dc_ptr_at(x, (size_t)n0 * cin * hw), hw,
                            (size_t)cin * hw, 0.0f, work, hw, (size_t)R * hw, cnt));
        DC_TRY(col2im_epilogue(be, &wb, n0, cnt, work, y, 0, bias, act, 1));
    }
    return DC_OK;
}

static dc_status cl_conv_t2d_bwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                                 dc_ptr w, dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                                 const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_win(be, "conv_t2d_bwd", g));
    DC_TRY(check_act(be, "conv_t2d_bwd", act));
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow, big = g->h * g->w;
    const size_t out_total = (size_t)n * g->c * big;
    DC_TRY(need(be, "conv_t2d_bwd", "dy", dy, out_total));
    if (act) DC_TRY(need(be, "conv_t2d_bwd", "y", y, out_total));
    DC_TRY(need(be, "conv_t2d_bwd", "dw", dw, (size_t)cin * R));
    DC_TRY(fits32(be, "conv_t2d_bwd", out_total));
    chan_final_job fin = {0, 0, {NULL, 0}};
    if (db.buf) {
        DC_TRY(need(be, "conv_t2d_bwd", "db", db, (size_t)g->c));
        DC_TRY(chan_sums(be, dy, y, act, dc_null_ptr(), 0, n, g->c, big, db, &fin));
    }
    dc_win2d wb = *g;
    wb.n = n;
    const int nb = conv_chunk(be, ((size_t)R + cin) * hw, n);
    dc_ptr work;
    DC_TRY(work_at_least(be, ((size_t)R + cin) * hw * nb, &work));
    for (int n0 = 0; n0 < n; n0 += nb) {
        const int cnt = n0 + nb <= n ? nb : n - n0, cols_n = cnt * hw;
        dc_ptr xcm = work, cols = dc_ptr_at(work, (size_t)cin * cols_n);
        /* the columns of the gradient before the activation */
        DC_TRY(need(be, "conv_t2d_bwd", "x", x, (size_t)n * cin * hw));
        DC_TRY(
            im2col_act(be, &wb, n0, cnt, dy, y, act, cols, n0 == 0 && fin.channels ? &fin : NULL));
        DC_TRY(cl_nchw_to_cm(be, x, xcm, n0, cnt, cin, hw));
        /* dW [cin, R] += x_cm [cin, cols] cols^T */
        DC_TRY(cl_gemm(be, 0, 1, cin, R, cols_n, 1.0f, xcm, cols_n, cols, cols_n, 1.0f, dw, R));
        /* dx_i [cin, hw] += W [cin, R] cols[:, image i], every image in one call, straight
         * into the NCHW gradient */
        if (dx.buf)
            DC_TRY(gemm_batched(be, 0, cin, hw, R, w, R, cols, cols_n, (size_t)hw, 1.0f,
                                dc_ptr_at(dx, (size_t)n0 * cin * hw), hw, (size_t)cin * hw, cnt));
    }
    return DC_OK;
}

/* No host threads to set: the device runs the kernels. */
#define dc_cl_set_threads NULL

/* Generated from the primitive list: services are dc_cl_<name> (backend_cl.c), primitives
 * cl_<name> (this file). */
/* Every primitive but adam_update launches the pending Adam updates first, so the queue
 * keeps the order of the calls (generated from the primitive list). */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant)                                         \
    static dc_status clq_##name params {                                                           \
        if (DC_PRIM_ID_##name != DC_PRIM_ID_adam_update) DC_TRY(dc_cl_flush(be));                  \
        return cl_##name args;                                                                     \
    }
#define DC_PRIM_OPT(name, params, args, flops, elems, variant)
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT

const dc_backend_ops dc_cl_ops = {
    .name = "opencl",
#define DC_SERVICE(ret, name, params) .name = dc_cl_##name,
#define DC_PRIM(name, params, args, flops, elems, variant) .name = clq_##name,
/* the optional (fused) ones launch what is pending themselves */
#define DC_PRIM_OPT(name, params, args, flops, elems, variant) .name = cl_##name,
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
};
