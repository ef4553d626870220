/* Private to the OpenCL primitives (one file per family in this folder): argument
 * checks, the kernel-argument table and the one launch function that also counts the step
 * budget (launch.c), and the helpers one family lends another. */
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

/* The tensors a primitive touches, as one table: each must lie inside its buffer (need),
 * and `max_index` elements (0: none) must fit the kernels' 32-bit indices (fits32). */
typedef struct need_spec {
    const char *what; /* the tensor's name in the error */
    dc_ptr p;
    size_t elems;
    int present; /* 0: an optional tensor absent this call, not checked */
} need_spec;

dc_status dc_cl_check_tensors(dc_backend *be, const char *op, size_t max_index,
                              const need_spec *tensors, size_t count);

#define TENSOR(what, p, elems) ((need_spec){(what), (p), (elems), 1})
#define TENSOR_IF(present, what, p, elems) ((need_spec){(what), (p), (elems), (present) ? 1 : 0})
/* CHECK_TENSORS(be, "op", n, TENSOR("x", x, n), TENSOR_IF(bias.buf, "bias", bias, c), ...) */
#define CHECK_TENSORS(be, op, max_index, ...)                                                      \
    dc_cl_check_tensors((be), (op), (max_index), (const need_spec[]){__VA_ARGS__},                 \
                        DC_ARRAY_LEN(((const need_spec[]){__VA_ARGS__})))

/* ------------------------------------------------------------------ launches */
/* One kernel argument, tagged: a launch states its arguments as one table in the kernel's
 * order and dc_cl_launch sets them, so each primitive says only what is its own. */
typedef enum karg_kind {
    KARG_PTR,     /* a buffer and its element offset: two arguments (cl_mem, cl_ulong) */
    KARG_INT,     /* cl_int */
    KARG_UINT,    /* cl_uint (the caller has checked the range) */
    KARG_FLOAT,   /* cl_float */
    KARG_MEM,     /* a bare cl_mem (the partials buffer) */
    KARG_SCRATCH, /* the reduction scratch: one float of local memory per work-item */
    KARG_GEOM,    /* a window geometry and an image range: one int16 */
    KARG_ACT,     /* a fused activation: kind (DC_FACT_NONE without one), mode, alpha */
    KARG_ACT_FWD, /* the same without the mode: kind, alpha */
    KARG_BYTES    /* anything else, by size and address */
} karg_kind;

typedef struct karg {
    karg_kind kind;
    union {
        dc_ptr ptr;
        int i;
        size_t u;
        float f;
        cl_mem mem;
        const dc_fused_act *act;
        struct {
            const dc_win2d *g;
            int n0, nb;
        } geom;
        struct {
            size_t size;
            const void *value;
        } bytes;
    };
} karg;

#define KPTR(p) ((karg){.kind = KARG_PTR, .ptr = (p)})
#define KINT(v) ((karg){.kind = KARG_INT, .i = (v)})
#define KUINT(v) ((karg){.kind = KARG_UINT, .u = (v)})
#define KFLOAT(v) ((karg){.kind = KARG_FLOAT, .f = (v)})
#define KPARTIAL(be) ((karg){.kind = KARG_MEM, .mem = B(be)->partial})
#define KSCRATCH ((karg){.kind = KARG_SCRATCH})
#define KGEOM(g, n0, nb) ((karg){.kind = KARG_GEOM, .geom = {(g), (n0), (nb)}})
#define KACT(a) ((karg){.kind = KARG_ACT, .act = (a)})
#define KACT_FWD(a) ((karg){.kind = KARG_ACT_FWD, .act = (a)})
#define KBYTES(v) ((karg){.kind = KARG_BYTES, .bytes = {sizeof(v), &(v)}})

/* Sets kernel k's arguments and enqueues it with `groups` work-groups of its size, or
 * (groups == 0) enough groups to cover `items` work-items: the range is padded and the
 * kernels bounds-check. rd, wr: the elements the launch reads and writes in device memory,
 * for the step budget (each tensor counted once per pass; caches ignored). A failure names
 * the device, the OpenCL error, the kernel and the argument or the range at fault. */
dc_status dc_cl_launch(dc_backend *be, int k, size_t items, size_t groups, size_t rd, size_t wr,
                       const karg *args, size_t count);

#define KARGS_(...) (const karg[]){__VA_ARGS__}, DC_ARRAY_LEN(((const karg[]){__VA_ARGS__}))
/* LAUNCH_ITEMS(be, DC_K_x, items, rd, wr, KPTR(x), KUINT(n), ...) */
#define LAUNCH_ITEMS(be, k, items, rd, wr, ...)                                                    \
    dc_cl_launch((be), (k), (items), 0, (rd), (wr), KARGS_(__VA_ARGS__))
#define LAUNCH_GROUPS(be, k, groups, rd, wr, ...)                                                  \
    dc_cl_launch((be), (k), 0, (groups), (rd), (wr), KARGS_(__VA_ARGS__))

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
    return LAUNCH_GROUPS(be, DC_K_reduce_final, 1, count, 1, KPARTIAL(be), KUINT(count), KPTR(out),
                         KFLOAT(mul), KFLOAT(div), KSCRATCH);
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
