/* OpenCL primitives: host <-> device transfers, copies, element-wise arithmetic and the
 * two-stage sum. */

#include "launch.h"

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

dc_status dc_cl_prim_write(dc_backend *be, dc_ptr dst, const void *src, size_t bytes) {
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

dc_status dc_cl_prim_write_rows(dc_backend *be, dc_ptr dst, const void *src, size_t rows,
                                size_t row_elems, size_t dst_stride) {
    cl_backend *b = (cl_backend *)be;
    if (rows == 0 || row_elems == 0) return DC_OK;
    if (dst_stride < row_elems)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL write_rows: stride %zu < row of %zu",
                            dst_stride, row_elems);
    DC_TRY(check_range(be, dst, ((rows - 1) * dst_stride + row_elems) * 4, "write_rows"));
    const size_t bytes = rows * row_elems * 4;
    b->budget.h2d++;
    b->budget.h2d_bytes += (double)bytes;
    /* staged as write() does, then one rectangular copy puts each row in its place */
    const size_t dst_origin[3] = {dst.off * 4, 0, 0}, src_origin[3] = {0, 0, 0};
    const size_t region[3] = {row_elems * 4, rows, 1};
    cl_int e;
    cl_mem staged =
        clCreateBuffer(b->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, (void *)src, &e);
    if (e == CL_SUCCESS) {
        e = clEnqueueCopyBufferRect(b->queue, staged, dst.buf->mem, src_origin, dst_origin, region,
                                    row_elems * 4, 0, dst_stride * 4, 0, 0, NULL, NULL);
        clReleaseMemObject(staged);
        if (e != CL_SUCCESS)
            return dc_cl_fail(&be->err, be->device_name, e, "clEnqueueCopyBufferRect");
        return DC_OK;
    }
    b->budget.host_waits++;
    DC_CL_CHECK(b, clEnqueueWriteBufferRect(b->queue, dst.buf->mem, CL_TRUE, dst_origin,
                                            src_origin, region, dst_stride * 4, 0,
                                            row_elems * 4, 0, src, 0, NULL, NULL));
    return DC_OK;
}

dc_status dc_cl_prim_read(dc_backend *be, dc_ptr src, void *dst, size_t bytes) {
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

dc_status dc_cl_prim_copy(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n) {
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

/* One launch fills up to two ranges: [0, n0) of d0 with v0, then n1 of d1 with v1, each
 * range in work-groups of its own (see cl/memory.cl). */
static dc_status fill_launch(dc_backend *be, dc_ptr d0, size_t n0, float v0, dc_ptr d1, size_t n1,
                             float v1) {
    const size_t local = B(be)->local[DC_K_fill];
    const size_t groups0 = (n0 + local - 1) / local, groups1 = (n1 + local - 1) / local;
    return LAUNCH_GROUPS(be, DC_K_fill, groups0 + groups1, 0, n0 + n1, KPTR(d0), KUINT(n0),
                         KFLOAT(v0), KPTR(n1 ? d1 : d0), KUINT(n1), KFLOAT(v1), KUINT(groups0));
}

dc_status dc_cl_flush_fill(dc_backend *be) {
    dc_cl_pending_fill *q = &B(be)->fill;
    if (!q->count) return DC_OK;
    q->count = 0;
    return fill_launch(be, q->dst, q->n, q->value, dc_null_ptr(), 0, 0.0f);
}

/* Not flushed by the ops table: a fill waits for the next command, and when that is a fill
 * too both go in one launch. */
dc_status dc_cl_prim_fill(dc_backend *be, dc_ptr dst, size_t n, float value) {
    DC_TRY(CHECK_TENSORS(be, "fill", n, TENSOR("dst", dst, n)));
    if (n == 0) return DC_OK;
    cl_backend *b = B(be);
    if (b->adam.runs) DC_TRY(dc_cl_flush(be)); /* keep the order of the calls */
    dc_cl_pending_fill *q = &b->fill;
    if (!q->count) {
        *q = (dc_cl_pending_fill){1, dst, n, value};
        return DC_OK;
    }
    q->count = 0;
    if (q->n + n > UINT_MAX) {
        DC_TRY(fill_launch(be, q->dst, q->n, q->value, dc_null_ptr(), 0, 0.0f));
        return fill_launch(be, dst, n, value, dc_null_ptr(), 0, 0.0f);
    }
    return fill_launch(be, q->dst, q->n, q->value, dst, n, value);
}

dc_status dc_cl_prim_scale(dc_backend *be, dc_ptr dst, size_t n, float alpha) {
    DC_TRY(CHECK_TENSORS(be, "scale", n, TENSOR("dst", dst, n)));
    return LAUNCH_ITEMS(be, DC_K_scale, n, n, n, KPTR(dst), KUINT(n), KFLOAT(alpha));
}

dc_status dc_cl_prim_axpy(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float alpha) {
    DC_TRY(CHECK_TENSORS(be, "axpy", n, TENSOR("y", y, n), TENSOR("x", x, n)));
    return LAUNCH_ITEMS(be, DC_K_axpy, n, 2 * n, n, KPTR(y), KPTR(x), KUINT(n), KFLOAT(alpha));
}

dc_status dc_cl_prim_binary(dc_backend *be, int op, dc_ptr y, dc_ptr x1, dc_ptr x2, size_t n) {
    if (op < 0 || op > 2)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL binary: unknown op %d", op);
    DC_TRY(
        CHECK_TENSORS(be, "binary", n, TENSOR("y", y, n), TENSOR("a", x1, n), TENSOR("b", x2, n)));
    return LAUNCH_ITEMS(be, DC_K_binary, n, (op == 2 ? 3 : 2) * n, n, KINT(op), KPTR(y), KPTR(x1),
                        KPTR(x2), KUINT(n));
}

dc_status dc_cl_prim_div_filtered(dc_backend *be, dc_ptr y, dc_ptr x1, dc_ptr x2, size_t n,
                                  float eps, float threshold) {
    DC_TRY(CHECK_TENSORS(be, "div_filtered", n, TENSOR("y", y, n), TENSOR("a", x1, n),
                         TENSOR("b", x2, n)));
    return LAUNCH_ITEMS(be, DC_K_div_filtered, n, 2 * n, n, KPTR(y), KPTR(x1), KPTR(x2), KUINT(n),
                        KFLOAT(eps), KFLOAT(threshold));
}

dc_status dc_cl_prim_select_planes(dc_backend *be, int dir, dc_ptr mask, float threshold, dc_ptr a,
                                   dc_ptr b, dc_ptr y, int n, int c, int hw) {
    if (dir < 0 || dir > 1 || n < 0 || c < 0 || hw < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL select_planes: dir %d, [%d, %d, %d]",
                            dir, n, c, hw);
    const size_t total = (size_t)n * c * hw;
    DC_TRY(CHECK_TENSORS(be, "select_planes", total, TENSOR("mask", mask, (size_t)n * hw),
                         TENSOR_IF(dir == 0 || a.buf, "a", a, total),
                         TENSOR_IF(dir == 0 || b.buf, "b", b, total), TENSOR("y", y, total)));
    /* forward: the mask plane and one of a, b per element; backward: the mask, y and the
     * one of a, b that y is added to */
    const size_t planes = (size_t)n * hw;
    const size_t rd = dir == 0 ? total + planes : 2 * total + planes, wr = total;
    return LAUNCH_ITEMS(be, DC_K_select_planes, total, rd, wr, KINT(dir), KPTR(mask),
                        KFLOAT(threshold),
                        KPTR(a.buf ? a : y), KINT(a.buf != NULL), KPTR(b.buf ? b : y),
                        KINT(b.buf != NULL), KPTR(y), KUINT(total), KINT(c), KINT(hw));
}

dc_status dc_cl_prim_reduce_sum(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int squares) {
    DC_TRY(CHECK_TENSORS(be, "reduce_sum", n, TENSOR("out", out, 1), TENSOR("x", x, n)));
    const size_t groups = reduce_groups(be, DC_K_reduce_partial, n);
    DC_TRY(LAUNCH_GROUPS(be, DC_K_reduce_partial, groups, n, groups, KPTR(x), KUINT(n),
                         KINT(squares), KPARTIAL(be), KSCRATCH));
    return reduce_final(be, groups, out, 1.0f, 1.0f);
}
