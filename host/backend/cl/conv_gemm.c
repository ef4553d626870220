/* OpenCL primitives: GEMM through CLBlast and the fused convolutions built on it. */

#include <clblast_c.h>

#include "launch.h"

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

dc_status dc_cl_prim_gemm(dc_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                          dc_ptr pa, int lda, dc_ptr pb, int ldb, float beta, dc_ptr pc, int ldc) {
    if (m <= 0 || n <= 0) return DC_OK;
    DC_TRY(need(be, "gemm", "C", pc, (size_t)(m - 1) * ldc + n));
    if (k <= 0) {
        /* C = beta*C, as the CPU backend does explicitly */
        DC_TRY(fits32(be, "gemm", (size_t)m * n));
        return LAUNCH_ITEMS(be, DC_K_gemm_beta, (size_t)m * n, beta != 0.0f ? (size_t)m * n : 0,
                            (size_t)m * n, KPTR(pc), KUINT(m), KUINT(n), KUINT(ldc), KFLOAT(beta));
    }
    DC_TRY(CHECK_TENSORS(
        be, "gemm", 0, TENSOR("A", pa, ta ? (size_t)(k - 1) * lda + m : (size_t)(m - 1) * lda + k),
        TENSOR("B", pb, tb ? (size_t)(n - 1) * ldb + k : (size_t)(k - 1) * ldb + n)));
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
static dc_status gemm_batched(dc_backend *be, int trans_a, int m, int n, int k, dc_ptr a, int lda,
                              dc_ptr bm, int ldb, size_t b_stride, float beta, dc_ptr c, int ldc,
                              size_t c_stride, int count) {
    if (m <= 0 || n <= 0 || k <= 0 || count <= 0) return DC_OK;
    DC_TRY(CHECK_TENSORS(
        be, "gemm_batched", 0,
        TENSOR("A", a, trans_a ? (size_t)(k - 1) * lda + m : (size_t)(m - 1) * lda + k),
        TENSOR("B", bm, b_stride * (count - 1) + (size_t)(k - 1) * ldb + n),
        TENSOR("C", c, c_stride * (count - 1) + (size_t)(m - 1) * ldc + n)));
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

/* Images per chunk when each needs per_image floats of columns, and the column buffer for
 * one chunk. */
static dc_status conv_chunk(dc_backend *be, size_t per_image, int n, int *images, dc_ptr *work) {
    size_t nb = per_image ? B(be)->work_budget / per_image : (size_t)n;
    if (nb < 1) nb = 1;
    if (nb > (size_t)n) nb = (size_t)n;
    *images = (int)nb;
    return work_at_least(be, per_image * nb, work);
}

/* What every fused convolution does first: launch what is pending, check the geometry and
 * that the activation fuses. */
static dc_status conv_begin(dc_backend *be, const char *op, const dc_win2d *g,
                            const dc_fused_act *act) {
    DC_TRY(dc_cl_flush(be));
    DC_TRY(check_win(be, op, g));
    return check_act(be, op, act);
}

dc_status dc_cl_prim_conv2d_fwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                                dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    DC_TRY(conv_begin(be, "conv2d_fwd", g, act));
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    DC_TRY(CHECK_TENSORS(be, "conv2d_fwd", 0, TENSOR("weight", w, (size_t)oc * K),
                         TENSOR("y", y, (size_t)g->n * oc * ohw)));
    int nb;
    dc_ptr work;
    DC_TRY(conv_chunk(be, ((size_t)K + oc) * ohw, g->n, &nb, &work));
    for (int n0 = 0; n0 < g->n; n0 += nb) {
        const int cnt = n0 + nb <= g->n ? nb : g->n - n0, cols_n = cnt * ohw;
        dc_ptr cols = work, ycm = dc_ptr_at(work, (size_t)K * cols_n);
        DC_TRY(dc_cl_prim_im2col(be, g, n0, cnt, x, cols));
        DC_TRY(
            dc_cl_prim_gemm(be, 0, 0, oc, cols_n, K, 1.0f, w, K, cols, cols_n, 0.0f, ycm, cols_n));
        DC_TRY(dc_cl_cm_to_nchw_act(be, ycm, bias, y, n0, cnt, oc, ohw, 0.0f, act));
    }
    return DC_OK;
}

dc_status dc_cl_prim_conv2d_bwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w,
                                dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                                const dc_fused_act *act) {
    DC_TRY(conv_begin(be, "conv2d_bwd", g, act));
    const int K = g->c * g->kh * g->kw, ohw = g->oh * g->ow;
    const size_t out_total = (size_t)g->n * oc * ohw;
    DC_TRY(CHECK_TENSORS(be, "conv2d_bwd", out_total, TENSOR("dy", dy, out_total),
                         TENSOR_IF(act, "y", y, out_total), TENSOR_IF(db.buf, "db", db, (size_t)oc),
                         TENSOR("dw", dw, (size_t)oc * K)));
    int nb;
    dc_ptr work;
    DC_TRY(conv_chunk(be, ((size_t)K + oc) * ohw, g->n, &nb, &work));
    for (int n0 = 0; n0 < g->n; n0 += nb) {
        const int cnt = n0 + nb <= g->n ? nb : g->n - n0, cols_n = cnt * ohw;
        dc_ptr dycm = work, cols = dc_ptr_at(work, (size_t)oc * cols_n);
        /* the gradient before the activation, channel-major, and the bias sums in one pass */
        chan_final_job fin;
        DC_TRY(dc_cl_chan_sums(be, dy, y, act, dycm, n0, cnt, oc, ohw, db, &fin));
        DC_TRY(dc_cl_im2col_act(be, g, n0, cnt, x, dc_null_ptr(), NULL, cols, &fin));
        /* dW [oc, K] += dy_cm [oc, cols] cols^T */
        DC_TRY(dc_cl_prim_gemm(be, 0, 1, oc, K, cols_n, 1.0f, dycm, cols_n, cols, cols_n, 1.0f, dw,
                               K));
        if (dx.buf) {
            /* dcols [K, cols] = W^T dy_cm, folded into dx */
            DC_TRY(dc_cl_prim_gemm(be, 1, 0, K, cols_n, oc, 1.0f, w, K, dycm, cols_n, 0.0f, cols,
                                   cols_n));
            DC_TRY(dc_cl_prim_col2im(be, g, n0, cnt, cols, dx));
        }
    }
    return DC_OK;
}

/* dst_i [m, n] = op(A) [m, k] B_i [k, n] + beta dst_i for `count` images i, B_i and dst_i
 * at fixed strides, A shared: one CLBlast call for the whole batch. */
dc_status dc_cl_prim_conv_t2d_fwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                                  dc_ptr w, dc_ptr bias, dc_ptr y, const dc_fused_act *act) {
    DC_TRY(conv_begin(be, "conv_t2d_fwd", g, act));
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow;
    DC_TRY(CHECK_TENSORS(be, "conv_t2d_fwd", 0, TENSOR("weight", w, (size_t)cin * R),
                         TENSOR("y", y, (size_t)n * g->c * g->h * g->w)));
    dc_win2d wb = *g;
    wb.n = n;
    int nb;
    dc_ptr work;
    DC_TRY(conv_chunk(be, (size_t)R * hw, n, &nb, &work));
    for (int n0 = 0; n0 < n; n0 += nb) {
        const int cnt = n0 + nb <= n ? nb : n - n0;
        /* cols_i [R, hw] = W [cin, R]^T x_i [cin, hw] for every image in one call, straight
         * from the NCHW input, then folded into y with bias and act */
        DC_TRY(gemm_batched(be, 1, R, hw, cin, w, R, dc_ptr_at(x, (size_t)n0 * cin * hw), hw,
                            (size_t)cin * hw, 0.0f, work, hw, (size_t)R * hw, cnt));
        DC_TRY(dc_cl_col2im_epilogue(be, &wb, n0, cnt, work, y, 0, bias, act, 1));
    }
    return DC_OK;
}

dc_status dc_cl_prim_conv_t2d_bwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x,
                                  dc_ptr w, dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                                  const dc_fused_act *act) {
    DC_TRY(conv_begin(be, "conv_t2d_bwd", g, act));
    const int R = g->c * g->kh * g->kw, hw = g->oh * g->ow, big = g->h * g->w;
    const size_t out_total = (size_t)n * g->c * big;
    DC_TRY(CHECK_TENSORS(
        be, "conv_t2d_bwd", out_total, TENSOR("dy", dy, out_total),
        TENSOR_IF(act, "y", y, out_total), TENSOR_IF(n > 0, "x", x, (size_t)n * cin * hw),
        TENSOR("dw", dw, (size_t)cin * R), TENSOR_IF(db.buf, "db", db, (size_t)g->c)));
    chan_final_job fin = {0, 0, {NULL, 0}};
    if (db.buf) DC_TRY(dc_cl_chan_sums(be, dy, y, act, dc_null_ptr(), 0, n, g->c, big, db, &fin));
    dc_win2d wb = *g;
    wb.n = n;
    int nb;
    dc_ptr work;
    DC_TRY(conv_chunk(be, ((size_t)R + cin) * hw, n, &nb, &work));
    for (int n0 = 0; n0 < n; n0 += nb) {
        const int cnt = n0 + nb <= n ? nb : n - n0, cols_n = cnt * hw;
        dc_ptr xcm = work, cols = dc_ptr_at(work, (size_t)cin * cols_n);
        /* the columns of the gradient before the activation */
        DC_TRY(dc_cl_im2col_act(be, &wb, n0, cnt, dy, y, act, cols,
                                n0 == 0 && fin.channels ? &fin : NULL));
        DC_TRY(dc_cl_prim_nchw_to_cm(be, x, xcm, n0, cnt, cin, hw));
        /* dW [cin, R] += x_cm [cin, cols] cols^T */
        DC_TRY(dc_cl_prim_gemm(be, 0, 1, cin, R, cols_n, 1.0f, xcm, cols_n, cols, cols_n, 1.0f, dw,
                               R));
        /* dx_i [cin, hw] += W [cin, R] cols[:, image i], every image in one call, straight
         * into the NCHW gradient */
        if (dx.buf)
            DC_TRY(gemm_batched(be, 0, cin, hw, R, w, R, cols, cols_n, (size_t)hw, 1.0f,
                                dc_ptr_at(dx, (size_t)n0 * cin * hw), hw, (size_t)cin * hw, cnt));
    }
    return DC_OK;
}
