/* Private to the OpenCL primitives (one file per family in this folder): argument
 * checks, kernel-argument setting and the one launch function that also counts the step
 * budget, and the helpers one family lends another. */
#ifndef DECONV_CL_LAUNCH_H
#define DECONV_CL_LAUNCH_H

#include <limits.h>

#include "cl_internal.h"

#define B(be) ((cl_backend *)(be))

/* ---------------------------------------------------------- argument checks */
/* The element range [p.off, p.off + elems) must lie inside p's buffer: an out-of-range
 * write on a device corrupts memory silently, so every primitive checks first. */
static inline dc_status need(dc_backend *be, const char *op, const char *what, dc_ptr p,
                             size_t elems) {
    if (!p.buf) return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: %s is NULL", op, what);
    if (elems && (p.off + elems) * 4 > p.buf->bytes)
        return dc_set_error(
            &be->err, DC_ERR_ARG,
            "OpenCL %s: %s needs %zu elements at element %zu of a %zu-element buffer", op, what,
            elems, p.off, p.buf->bytes / 4);
    return DC_OK;
}

/* Kernels index with 32-bit unsigned ints. */
static inline dc_status fits32(dc_backend *be, const char *op, size_t n) {
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

static inline kargs ka(dc_backend *be, int k) {
    kargs a = {B(be), k, 0, CL_SUCCESS, 0};
    return a;
}

static inline void ka_set(kargs *a, size_t size, const void *value) {
    if (a->e == CL_SUCCESS) {
        a->e = clSetKernelArg(a->b->kernels[a->k], a->next, size, value);
        a->bad = a->next;
    }
    a->next++;
}
static inline void ka_ptr(kargs *a, dc_ptr p) {
    cl_mem m = p.buf->mem;
    cl_ulong off = p.off;
    ka_set(a, sizeof m, &m);
    ka_set(a, sizeof off, &off);
}
static inline void ka_int(kargs *a, int v) {
    cl_int x = v;
    ka_set(a, sizeof x, &x);
}
static inline void ka_uint(kargs *a, size_t v) {
    cl_uint x = (cl_uint)v;
    ka_set(a, sizeof x, &x);
}
static inline void ka_float(kargs *a, float v) {
    cl_float x = v;
    ka_set(a, sizeof x, &x);
}
static inline void ka_mem(kargs *a, cl_mem m) {
    ka_set(a, sizeof m, &m);
}
/* The reduction scratch: one float per work-item. */
static inline void ka_scratch(kargs *a) {
    ka_set(a, a->b->local[a->k] * sizeof(float), NULL);
}
static inline void ka_geom(kargs *a, const dc_win2d *g, int n0, int nb) {
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
static inline dc_status ka_launch(kargs *a, size_t items, size_t groups, size_t rd, size_t wr) {
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
static inline dc_status ka_run(kargs *a, size_t items, size_t rd, size_t wr) {
    return ka_launch(a, items, 0, rd, wr);
}
static inline dc_status ka_run_groups(kargs *a, size_t groups, size_t rd, size_t wr) {
    return ka_launch(a, 0, groups, rd, wr);
}

/* Work-groups of a two-stage reduction over n elements with kernel k. */
static inline size_t reduce_groups(dc_backend *be, int k, size_t n) {
    size_t g = (n + B(be)->local[k] - 1) / B(be)->local[k];
    if (g > DC_CL_MAX_GROUPS) g = DC_CL_MAX_GROUPS;
    return g ? g : 1;
}

/* Work-groups per channel ("runs") for a per-channel reduction over m values each, c
 * channels, `floats` partial results per run: about 8 values per work-item of kernel k, and
 * no more runs than the partials buffer holds; *span = values per run. */
static inline dc_status chan_runs(dc_backend *be, int k, const char *op, size_t m, int c,
                                  size_t floats, size_t *runs, size_t *span) {
    const size_t local = B(be)->local[k];
    size_t r = (m + local * 8 - 1) / (local * 8);
    if (r * (size_t)c * floats > DC_CL_PARTIALS) r = DC_CL_PARTIALS / ((size_t)c * floats);
    if (r < 1)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: %d channels exceed the %d partial sums", op, c,
                            DC_CL_PARTIALS);
    *runs = r;
    *span = (m + r - 1) / r;
    return DC_OK;
}

/* Stage 2: out[0] = (mul * sum of the first `count` partials) / div. */
static inline dc_status reduce_final(dc_backend *be, size_t count, dc_ptr out, float mul,
                                     float div) {
    kargs a = ka(be, DC_K_reduce_final);
    ka_mem(&a, B(be)->partial);
    ka_uint(&a, count);
    ka_ptr(&a, out);
    ka_float(&a, mul);
    ka_float(&a, div);
    ka_scratch(&a);
    return ka_run_groups(&a, 1, count, 1);
}
/* ------------------------------------------------------- convolution plumbing */
static inline dc_status check_win(dc_backend *be, const char *op, const dc_win2d *g) {
    if (!g || g->n < 0 || g->c <= 0 || g->h <= 0 || g->w <= 0 || g->kh <= 0 || g->kw <= 0 ||
        g->sh <= 0 || g->sw <= 0 || g->ph < 0 || g->pw < 0 || g->oh < 0 || g->ow < 0)
        return dc_set_error(&be->err, DC_ERR_ARG, "OpenCL %s: invalid window geometry", op);
    return DC_OK;
}

static inline dc_status check_chunk(dc_backend *be, const char *op, const dc_win2d *g, int n0,
                                    int nb) {
    if (n0 < 0 || nb < 0 || n0 + nb > g->n)
        return dc_set_error(&be->err, DC_ERR_ARG,
                            "OpenCL %s: images [%d, %d) outside a batch of %d", op, n0, n0 + nb,
                            g->n);
    return DC_OK;
}

/* No activation fused into a kernel's epilogue (cl/common.cl's DC_FACT_NONE). */
#define DC_FACT_NONE (-1)

static inline dc_status check_act(dc_backend *be, const char *op, const dc_fused_act *act) {
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

/* Every primitive's implementation, dc_cl_prim_<name>, generated from the primitive list
 * (ops_table.c puts them into the backend's table). */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant) dc_status dc_cl_prim_##name params;
#define DC_PRIM_OPT(name, params, args, flops, elems, variant) dc_status dc_cl_prim_##name params;
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT

/* Launches a pending fill (memory.c); dc_cl_flush calls it. */
dc_status dc_cl_flush_fill(dc_backend *be);

/* Shared between families (conv.c). */
dc_status dc_cl_im2col_act(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x,
                           dc_ptr act_y, const dc_fused_act *act, dc_ptr cols,
                           const chan_final_job *fin);
dc_status dc_cl_col2im_epilogue(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr cols,
                                dc_ptr x, int accumulate, dc_ptr bias, const dc_fused_act *act,
                                int image_major);
dc_status dc_cl_cm_to_nchw_act(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                               int c, int hw, float beta, const dc_fused_act *act);
dc_status dc_cl_chan_sums(dc_backend *be, dc_ptr dy, dc_ptr act_y, const dc_fused_act *act,
                          dc_ptr cm, int n0, int nb, int c, int hw, dc_ptr db,
                          chan_final_job *later);

#endif
