/* CPU backend internals (host/backend/cpu/), private to this folder. Layered in one
 * direction: the first part is the backend's core (its state and the shared loops, defined
 * in backend_cpu.c); winograd.c builds on that core only, and the last part is what
 * winograd.c offers back, the entry points backend_cpu.c's fused convolutions dispatch to. */
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
/* sum over images of part[i * c + ch], in image order */
double dc_cpu_channel_total(const double *part, int n, int c, int ch);
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

/* ---- the U-Net primitives (unet.c); backend_cpu.c's table names them cpu_<name> ---- */
dc_status dc_cpu_chan_slice(dc_backend *be, int dir, dc_ptr big, int cbig, int coff, dc_ptr small,
                            int csmall, int n, int hw);
dc_status dc_cpu_gn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c, int hw,
                          int groups);
dc_status dc_cpu_gn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                          dc_ptr beta, dc_ptr y, int n, int c, int hw, int groups, float eps);
dc_status dc_cpu_gn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma, dc_ptr dy,
                        dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw, int groups,
                        float eps);
dc_status dc_cpu_upsample_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int h, int w, int s);
dc_status dc_cpu_upsample_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int h, int w, int s);
dc_status dc_cpu_time_embed(dc_backend *be, dc_ptr t, dc_ptr y, int rows, int dim, float scale,
                            float max_period);

#endif
