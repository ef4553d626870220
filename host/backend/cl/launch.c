/* The OpenCL primitives' shared plumbing: the argument table's checks and the one launch
 * function (set the arguments, size the range, enqueue, count the step budget, name the
 * kernel on failure). */

#include "launch.h"

dc_status dc_cl_check_tensors(dc_backend *be, const char *op, size_t max_index,
                              const need_spec *tensors, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (tensors[i].present)
            DC_TRY(need(be, op, tensors[i].what, tensors[i].p, tensors[i].elems));
    return fits32(be, op, max_index);
}

/* Sets one table entry from argument *index on; *index moves past what it set. */
static cl_int set_arg(cl_backend *b, int k, cl_uint *index, const karg *a) {
    cl_kernel kernel = b->kernels[k];
    switch (a->kind) {
    case KARG_PTR: {
        const cl_mem m = a->ptr.buf->mem;
        const cl_ulong off = a->ptr.off;
        cl_int e = clSetKernelArg(kernel, (*index)++, sizeof m, &m);
        return e != CL_SUCCESS ? e : clSetKernelArg(kernel, (*index)++, sizeof off, &off);
    }
    case KARG_INT: {
        const cl_int v = a->i;
        return clSetKernelArg(kernel, (*index)++, sizeof v, &v);
    }
    case KARG_UINT: {
        const cl_uint v = (cl_uint)a->u;
        return clSetKernelArg(kernel, (*index)++, sizeof v, &v);
    }
    case KARG_FLOAT: {
        const cl_float v = a->f;
        return clSetKernelArg(kernel, (*index)++, sizeof v, &v);
    }
    case KARG_MEM: return clSetKernelArg(kernel, (*index)++, sizeof a->mem, &a->mem);
    case KARG_SCRATCH: return clSetKernelArg(kernel, (*index)++, b->local[k] * sizeof(float), NULL);
    case KARG_GEOM: {
        const dc_win2d *g = a->geom.g;
        const int f[14] = {g->n,  g->c,  g->h,  g->w,  g->kh, g->kw,      g->sh,
                           g->sw, g->ph, g->pw, g->oh, g->ow, a->geom.n0, a->geom.nb};
        cl_int16 v;
        memset(&v, 0, sizeof v);
        for (int i = 0; i < 14; i++)
            v.s[i] = f[i];
        return clSetKernelArg(kernel, (*index)++, sizeof v, &v);
    }
    case KARG_ACT:
    case KARG_ACT_FWD: {
        const cl_int kind = a->act ? a->act->kind : DC_FACT_NONE, mode = a->act ? a->act->mode : 0;
        const cl_float alpha = a->act ? a->act->alpha : 0.0f;
        cl_int e = clSetKernelArg(kernel, (*index)++, sizeof kind, &kind);
        if (e == CL_SUCCESS && a->kind == KARG_ACT)
            e = clSetKernelArg(kernel, (*index)++, sizeof mode, &mode);
        return e != CL_SUCCESS ? e : clSetKernelArg(kernel, (*index)++, sizeof alpha, &alpha);
    }
    case KARG_BYTES: return clSetKernelArg(kernel, (*index)++, a->bytes.size, a->bytes.value);
    }
    return CL_INVALID_VALUE;
}

dc_status dc_cl_launch(dc_backend *be, int k, size_t items, size_t groups, size_t rd, size_t wr,
                       const karg *args, size_t count) {
    cl_backend *b = B(be);
    cl_uint index = 0;
    for (size_t i = 0; i < count; i++) {
        const cl_int e = set_arg(b, k, &index, &args[i]);
        if (e != CL_SUCCESS) /* index has moved past the argument that failed */
            return dc_set_error(&be->err, DC_ERR_CL,
                                "OpenCL clSetKernelArg failed on %s: %s (%d) for argument %u of %s",
                                be->device_name, dc_cl_error_name(e), (int)e, index - 1,
                                dc_cl_kernel_name(k));
    }
    const size_t local = b->local[k];
    size_t global = groups ? groups * local : (items + local - 1) / local * local;
    if (global == 0) return DC_OK;
    const cl_int e =
        clEnqueueNDRangeKernel(b->queue, b->kernels[k], 1, NULL, &global, &local, 0, NULL, NULL);
    b->budget.kernels++;
    b->budget.read_bytes += 4.0 * (double)rd;
    b->budget.write_bytes += 4.0 * (double)wr;
    if (e != CL_SUCCESS)
        return dc_set_error(&be->err, DC_ERR_CL,
                            "OpenCL clEnqueueNDRangeKernel failed on %s: %s (%d) for %s (global "
                            "%zu, local %zu)",
                            be->device_name, dc_cl_error_name(e), (int)e, dc_cl_kernel_name(k),
                            global, local);
    return DC_OK;
}
