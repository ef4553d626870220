/* Private to the OpenCL backend's sources (backend_cl.c: device, program, memory; the
 * primitives in one file per family, launch.h their shared launch helpers). */
#ifndef DECONV_BACKEND_CL_IMPL_H
#define DECONV_BACKEND_CL_IMPL_H

#include <CL/cl.h>

#include "internal.h"
#include "backend_cl.h"

/* Every kernel in the cl/ folder, by name without the "dc_" prefix. */
#define DC_CL_KERNELS(X)                                                                           \
    X(fill)                                                                                        \
    X(scale)                                                                                       \
    X(axpy)                                                                                        \
    X(binary) X(select_planes) X(div_filtered) X(reduce_partial) X(reduce_final) X(gemm_beta) X(im2col) X(col2im)   \
        X(cm_to_nchw) X(nchw_to_cm) X(bias_add) X(chan_grad) X(chan_final) X(maxpool_fwd)          \
            X(maxpool_bwd) X(maxpool_bwd_scatter) X(unpool_fwd) X(unpool_bwd) X(gap_fwd)           \
                X(gap_bwd) X(act_fwd) X(act_bwd) X(bn_stats) X(bn_stats_final) X(bn_apply)         \
                    X(bn_bwd) X(randn) X(dropout_mask) X(reparam_fwd) X(reparam_bwd)               \
                        X(mse_partial) X(bce_tanh_partial) X(kl_partial) X(softmax)                \
                            X(softmax_xent) X(gather_rows) X(scatter_add_rows) X(sgd_update)       \
                                X(adam_update) X(clip_scale) X(chan_slice) X(gn_stats) X(gn_apply) \
                                    X(gn_bwd_dx) X(gn_bwd_param) X(upsample_fwd) X(upsample_bwd)   \
                                        X(time_embed) X(attn_scores) X(attn_softmax) X(attn_out)   \
                                            X(attn_dprobs) X(attn_softmax_bwd) X(attn_dqkv)

enum {
#define X(k) DC_K_##k,
    DC_CL_KERNELS(X)
#undef X
        DC_K_COUNT
};

/* Upper bound on the work-groups of a two-stage reduction over one range. */
#define DC_CL_MAX_GROUPS 1024
/* Size of the partials buffer (floats): per-channel reductions use up to this many
 * work-groups over all channels. */
#define DC_CL_PARTIALS 65536
/* Work-group size we aim for; the device and each kernel may cap it lower. */
#define DC_CL_LOCAL_TARGET 256
/* Consecutive elements per work-item of the layout copies (cm_to_nchw, nchw_to_cm): the
 * index arithmetic is paid once per run. */
#define DC_CL_RUN 32

struct dc_buffer {
    cl_mem mem;
    size_t bytes; /* as requested (the allocation is rounded up) */
};

/* Adam updates waiting to be launched: the optimizer calls adam_update once per run of
 * parameters with the same weight decay (weights, biases, weights, ...); consecutive calls
 * over adjacent ranges merge into one launch, made before any other command is enqueued
 * (dc_cl_flush). */
#define DC_CL_ADAM_RUNS 16
typedef struct dc_cl_pending_adam {
    int runs; /* 0: nothing pending */
    dc_ptr p, g, m, v, gscale;
    size_t n;
    float lr, beta1, beta2, eps, bc1, bc2;
    int decoupled;
    cl_uint ends[DC_CL_ADAM_RUNS];
    float wds[DC_CL_ADAM_RUNS];
} dc_cl_pending_adam;

/* A fill waiting for a second one: two consecutive fill calls (the gradient arenas are
 * zeroed one after the other when a backward pass starts) share one launch. Launched, like
 * the Adam updates, before any other command is enqueued (dc_cl_flush). */
typedef struct dc_cl_pending_fill {
    int count; /* 0 or 1 */
    dc_ptr dst;
    size_t n;
    float value;
} dc_cl_pending_fill;

typedef struct cl_backend {
    dc_backend base;
    int platform_index, device_index;
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    cl_program program;
    cl_kernel kernels[DC_K_COUNT];
    size_t local[DC_K_COUNT]; /* power-of-two work-group size per kernel */
    cl_ulong max_alloc;       /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    cl_mem partial;           /* DC_CL_PARTIALS floats for two-stage reductions */
    dc_buffer *work;          /* the fused convolutions' columns, grown on demand */
    size_t work_budget;       /* elements a convolution's chunk of images may use */
    /* The row kernels (im2col, col2im, max-pool, layout copies): 0 gives each work-item a
     * row (or a run of DC_CL_RUN elements), so that CPU devices (PoCL) pay the index
     * divisions once per row and vectorise; 1 gives each work-item one element, so that on
     * GPUs neighbouring work-items touch neighbouring addresses (coalesced). Set from the
     * device type; DECONV_CL_ELEM=0|1 overrides it. The same values either way. */
    int elem;
    int from_cache;
    double build_seconds;
    char cache_file[1024];
    int used_clblast;    /* CLBlast holds programs for our context in its process cache */
    dc_cl_budget budget; /* what has been enqueued so far (dc_cl_budget_get) */
    dc_cl_pending_adam adam;
    dc_cl_pending_fill fill;
} cl_backend;

/* Name of an OpenCL error code ("CL_OUT_OF_RESOURCES"), or "unknown OpenCL error". */
const char *dc_cl_error_name(cl_int e);
/* "dc_im2col" for DC_K_im2col. */
const char *dc_cl_kernel_name(int k);
/* Record a failed OpenCL call in err: "OpenCL CALL failed on DEVICE: NAME (code)". */
dc_status dc_cl_fail(dc_error *err, const char *device, cl_int e, const char *call);

/* The one checking macro for OpenCL calls returning cl_int: on failure records the
 * error name and the call (its function name) in be->err and returns DC_ERR_CL. */
#define DC_CL_CHECK(b, call)                                                                       \
    do {                                                                                           \
        cl_int dc_cl_e_ = (call);                                                                  \
        if (dc_cl_e_ != CL_SUCCESS)                                                                \
            return dc_cl_fail(&(b)->base.err, (b)->base.device_name, dc_cl_e_, #call);             \
    } while (0)

/* Memory and lifetime, the primitive list's services (backend_cl.c); the ops table is in
 * ops_table.c. */
dc_status dc_cl_alloc(dc_backend *be, size_t bytes, dc_buffer **out);
void dc_cl_free(dc_backend *be, dc_buffer *buf);
dc_status dc_cl_sync(dc_backend *be);
void dc_cl_destroy(dc_backend *be);
/* Launches what is pending (a fill, merged optimizer updates); every entry point calls it
 * first. */
dc_status dc_cl_flush(dc_backend *be);
/* Releases the fused convolutions' column buffer (not counted in bytes_allocated). */
void dc_cl_free_work(dc_backend *be);

extern const dc_backend_ops dc_cl_ops;

#endif
