/* deconv — the backend interface.
 *
 * A backend owns device memory and runs ~30 primitive kernels. Ops in host/ops/ are
 * composed only from these primitives, so each op is written once and every backend
 * runs it. Memory is addressed as (buffer, element offset): a dc_ptr. An element is
 * 4 bytes (float32, or int32 for max-pool switches and class labels).
 *
 * Conventions every backend must honour (the CPU backend is the reference):
 *  - Row-major, NCHW tensors, float32.
 *  - "accumulate" kernels add into their destination (gradients accumulate).
 *  - Kernels are enqueued in order; read() waits for completion. Nothing else blocks.
 *  - Randomness on the device comes from dc_hash_uniform() (see deconv.h) keyed by
 *    (seed, element index), so CPU and OpenCL draw identical numbers.
 *  - On failure a kernel returns a status and leaves a message in be->err.
 */
#ifndef DECONV_BACKEND_H
#define DECONV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef struct dc_buffer dc_buffer; /* backend-specific */

typedef struct dc_ptr {
    dc_buffer *buf;
    size_t off; /* in 4-byte elements */
} dc_ptr;

static inline dc_ptr dc_ptr_at(dc_ptr p, size_t elems) {
    dc_ptr q = {p.buf, p.off + elems};
    return q;
}

typedef enum {
    DC_ACT_RELU = 0,
    DC_ACT_LEAKY_RELU,
    DC_ACT_TANH,
    DC_ACT_SIGMOID,
    DC_ACT_SILU, /* x * sigmoid(x); its backward reads x. Never fused (not sign-preserving
                    in the sense dc_fused_act needs) */
} dc_act_kind;

/* An activation fused into a convolution (optional fused primitives below): ReLU or
 * leaky ReLU with alpha >= 0, so that the output is positive exactly where the input is
 * and the backward rule can be read from the activated output. mode: dc_relu_mode. */
typedef struct dc_fused_act {
    int kind; /* DC_ACT_RELU or DC_ACT_LEAKY_RELU */
    float alpha;
    int mode; /* set for the backward call */
} dc_fused_act;

/* Geometry of a 2-D sliding window (conv, transposed conv, pooling). */
typedef struct dc_win2d {
    int n, c, h, w;     /* input batch, channels, height, width */
    int kh, kw;         /* window */
    int sh, sw;         /* stride */
    int ph, pw;         /* zero padding */
    int oh, ow;         /* output height, width */
} dc_win2d;

/* The vtable, generated from deconv/primitives.def: that list is where each entry's
 * contract is documented (it sits beside this header because the vtable is public and is
 * installed with it). `name` is the backend's short name ("cpu", "opencl"). */
typedef struct dc_backend_ops {
    const char *name;
#define DC_SERVICE(ret, name, params) ret(*name) params;
#define DC_PRIM(name, params, args, flops, elems, variant) dc_status(*name) params;
#define DC_PRIM_OPT DC_PRIM
#include "primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
} dc_backend_ops;

/* Every profiled primitive (DC_PRIM and DC_PRIM_OPT entries) by id, in list order. */
typedef enum dc_prim_id {
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant) DC_PRIM_ID_##name,
#define DC_PRIM_OPT DC_PRIM
#include "primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
    DC_PRIM_COUNT
} dc_prim_id;

/* "gemm" for DC_PRIM_ID_gemm; NULL outside [0, DC_PRIM_COUNT). */
const char *dc_backend_prim_name(int id);
/* The first required entry (DC_SERVICE other than set_threads, DC_PRIM) that `ops` leaves
 * NULL, or NULL when the table is complete. */
const char *dc_backend_ops_missing(const dc_backend_ops *ops);

/* ---- profiling (host/backend/profile.c) ----
 * While a profile runs, every primitive call on the backend waits for the device and is
 * timed; rows are (primitive, variant) pairs. */
typedef struct dc_prim_profile {
    const char *name;    /* primitive */
    const char *variant; /* NULL, or e.g. "NT" for gemm */
    long calls;
    double seconds, flops; /* totals; flops 0 for primitives that are not GEMM-like */
} dc_prim_profile;

/* Start timing every primitive call of `be`. trace: a FILE * that gets one line per call
 * (name, elements or FLOPs, milliseconds), or NULL. Fails when a profile already runs. */
dc_status dc_backend_profile_start(dc_backend *be, void *trace);
/* Stop the profile started on `be` and hand back its rows (malloc'd, caller frees; rows with
 * no calls are left out). rows may be NULL to discard them. */
dc_status dc_backend_profile_stop(dc_backend *be, dc_prim_profile **rows, int *n_rows);

/* How the backend's device program was obtained (OpenCL: compiled or loaded from the
 * binary cache; zeros and "" for backends without one). */
typedef struct dc_program_info {
    int from_cache;
    double seconds;
    const char *cache_file;
} dc_program_info;
void dc_backend_program_info(const dc_backend *be, dc_program_info *out);

/* The common head of every backend. Backends embed it first. */
struct dc_backend {
    const dc_backend_ops *ops;
    dc_error err;
    char device_name[128];
    size_t bytes_allocated; /* current device bytes owned through alloc/free */
    size_t bytes_peak;
    struct dc_backend_profile *profile; /* non-NULL while a profile runs (profile.c) */
    /* A good size for one temporary work buffer (e.g. an im2col chunk outside the graph):
     * cache-sized on the CPU, larger on devices where fewer, bigger launches pay. */
    size_t scratch_bytes;
};

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
