/* CPU backend internals (host/backend/cpu/), private to this folder. The first part is the
 * backend's core (its state and the shared loops, defined in backend_cpu.c); then the
 * helpers shared between families (fused activations in activation.c, Winograd in
 * winograd.c, which conv.c's fused convolutions dispatch to); last the primitives, one
 * dc_cpu_<name> per entry of primitives.def, defined in the family files and collected
 * into the ops table by backend_cpu.c. */
#ifndef DECONV_BACKEND_CPU_INTERNAL_H
#define DECONV_BACKEND_CPU_INTERNAL_H

#include "internal.h"

struct dc_buffer {
    size_t bytes;
    float *data;
};

typedef struct cpu_backend {
    dc_backend base;
    int threads;
    /* fused convolution scratch: per thread one image's columns and a weight-gradient
     * accumulator; grown on demand, kept for the backend's life (no per-step allocation) */
    float *scratch;
    size_t scratch_elems;
    /* per-plane partial sums of the channel reductions (bias gradient, batch norm) */
    double *red;
    size_t red_elems;
    /* 3x3 stride-1 convolutions through Winograd F(winograd x winograd, 3x3); 0: off */
    int winograd;
} cpu_backend;

#define F(p) ((p).buf->data + (p).off)
#undef I
#define IP(p) ((int32_t *)((p).buf->data + (p).off))

/* per_thread * threads floats of scratch (grown on demand; NULL when out of memory) */
float *dc_cpu_scratch(cpu_backend *b, size_t per_thread, int threads);
/* `need` doubles for per-plane partial sums */
double *dc_cpu_red_buffer(cpu_backend *b, size_t need);
/* sum of one plane: float SIMD lanes in blocks, double across blocks */
double dc_cpu_plane_sum(const float *restrict d, size_t hw);
/* sum of (d - m)^2 over one plane, in the same blocks */
double dc_cpu_plane_sqdev(const float *restrict d, size_t hw, float m);
/* sums of dy and of dy * (x - m) over one plane, in the same blocks */
void dc_cpu_plane_dy_dyx(const float *restrict dy, const float *restrict x, size_t hw, float m,
                         double *sdy, double *sdyx);
/* sum over images of part[i * c + ch], in image order */
double dc_cpu_channel_total(const double *part, int n, int c, int ch);
/* ---- activation rules (activation.c), shared with batch norm and the convolutions ---- */
/* ReLU (y = x > 0 ? x : 0) or leaky ReLU (alpha x below 0) over n values; y may be x */
void dc_cpu_relu_apply(int kind, float alpha, const float *x, float *y, size_t n);
/* the backward rule of `mode` (dc_relu_mode) over n values: d = rule, or d += rule when acc;
 * s is positive exactly where the activation's input is */
void dc_cpu_relu_grad(int kind, float alpha, int mode, const float *restrict s,
                      const float *restrict dy, float *restrict d, size_t n, int acc);
/* per channel row of y [c][hw]: += b[c] (b may be NULL), then the fused activation (a may
 * be NULL) */
void dc_cpu_bias_act_rows(float *restrict y, const float *b, int c, size_t hw,
                          const dc_fused_act *a);
/* one image's gradient as a convolution sees it: dy, or with a fused activation its
 * pre-activation gradient written to dpre, plus per-channel sums into part (may be NULL) */
const float *dc_cpu_image_grad(const dc_fused_act *act, const float *y, const float *dy,
                               float *dpre, int c, size_t hw, double *part);

/* ---- Winograd convolutions (winograd.c), built on the core above ---- */
int dc_cpu_wino_ok(const cpu_backend *cb, const dc_win2d *g, int oc);
dc_status dc_cpu_wino_fwd(cpu_backend *cb, const dc_win2d *g, int oc, const float *px,
                          const float *pw, const float *pb, float *py, const dc_fused_act *act);
dc_status dc_cpu_wino_bwd(cpu_backend *cb, const dc_win2d *g, int oc, const float *px,
                          const float *pw, const float *py, const float *pdy, float *pdx,
                          float *pdw, float *pdb, const dc_fused_act *act);

/* ---- the primitives: dc_cpu_<name> for every DC_PRIM of primitives.def (the services,
 * memory and lifetime, stay private to backend_cpu.c) ---- */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant) dc_status dc_cpu_##name params;
#define DC_PRIM_OPT DC_PRIM
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT

#endif
