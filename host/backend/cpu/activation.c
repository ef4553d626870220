/* CPU activations (ReLU, leaky ReLU and the backward modes of dc_relu_mode), and the same
 * rules fused into the convolutions. */

#include <math.h>

#include "cpu_internal.h"

/* ---- activations ---- */
/* ReLU (y = x > 0 ? x : 0) or leaky ReLU (alpha x below 0) over n values; y may be x. */
void dc_cpu_relu_apply(int kind, float alpha, const float *x, float *y, size_t n) {
    if (kind == DC_ACT_RELU) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : alpha * x[i];
    }
}

/* The ReLU / leaky ReLU backward rule of `mode` (dc_relu_mode) over n values: d = rule, or
 * d += rule when acc. s is positive exactly where the activation's input is: the input
 * itself, or the activated output when alpha >= 0 (fused activations). Written as selects
 * of loaded values and a multiply so that the loops vectorize (`x > 0 ? dy : neg * dy`
 * stays a branch per element, mispredicted on every sign change); dy * 1 == dy, so the
 * values are those of the branchy form. */
void dc_cpu_relu_grad(int kind, float alpha, int mode, const float *restrict s,
                      const float *restrict dy, float *restrict d, size_t n, int acc) {
    const float neg = kind == DC_ACT_RELU ? 0.0f : alpha;
    if (mode == DC_RELU_GUIDED) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = ((s[i] > 0.0f) & (dy[i] > 0.0f)) ? dy[i] : 0.0f;
            d[i] = acc ? d[i] + g : g;
        }
    } else if (mode == DC_RELU_DECONVNET) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = dy[i] > 0.0f ? dy[i] : 0.0f;
            d[i] = acc ? d[i] + g : g;
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = dy[i] * (s[i] > 0.0f ? 1.0f : neg);
            d[i] = acc ? d[i] + g : g;
        }
    }
}

/* elementwise passes over large tensors run in chunks of this many values per task */
#define ACT_CHUNK ((size_t)16384)
dc_status dc_cpu_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    const float *px = F(x);
    float *py = F(y);
    switch (kind) {
    case DC_ACT_RELU:
    case DC_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t c0 = 0; c0 < n; c0 += ACT_CHUNK)
            dc_cpu_relu_apply(kind, alpha, px + c0, py + c0,
                              n - c0 < ACT_CHUNK ? n - c0 : ACT_CHUNK);
        break;
    case DC_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = tanhf(px[i]);
        break;
    case DC_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = 1.0f / (1.0f + expf(-px[i]));
        break;
    case DC_ACT_SILU:
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) py[i] = px[i] / (1.0f + expf(-px[i]));
        break;
    default: return dc_set_error(&be->err, DC_ERR_ARG, "cpu act_fwd: unknown kind %d", kind);
    }
    return DC_OK;
}

dc_status dc_cpu_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                         dc_ptr dy, dc_ptr dx, size_t n) {
    const float *px = F(x), *py = F(y), *pdy = F(dy);
    float *pdx = F(dx);
    switch (kind) {
    case DC_ACT_RELU:
    case DC_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t c0 = 0; c0 < n; c0 += ACT_CHUNK)
            dc_cpu_relu_grad(kind, alpha, mode, px + c0, pdy + c0, pdx + c0,
                             n - c0 < ACT_CHUNK ? n - c0 : ACT_CHUNK, 1);
        break;
    case DC_ACT_TANH:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) pdx[i] += pdy[i] * (1.0f - py[i] * py[i]);
        break;
    case DC_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) pdx[i] += pdy[i] * py[i] * (1.0f - py[i]);
        break;
    case DC_ACT_SILU:
        /* d/dx x*s(x) = s + x*s*(1-s), from the input (y = x*s loses s where x = 0) */
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            const float s = 1.0f / (1.0f + expf(-px[i]));
            pdx[i] += pdy[i] * (s * (1.0f + px[i] * (1.0f - s)));
        }
        break;
    default: return dc_set_error(&be->err, DC_ERR_ARG, "cpu act_bwd: unknown kind %d", kind);
    }
    return DC_OK;
}

/* ---- activations fused into the convolutions (dc_graph_set_fusion) ----
 * relu_apply / relu_grad (as in dc_cpu_act_fwd / dc_cpu_act_bwd) on one image while it is in
 * cache; for ReLU and leaky ReLU with alpha >= 0 the activated output is positive exactly
 * where its input is, so the backward reads y instead of the pre-activation. */
void dc_cpu_bias_act_rows(float *restrict y, const float *b, int c, size_t hw,
                          const dc_fused_act *a) {
    for (int o = 0; o < c; o++) {
        float *restrict r = y + (size_t)o * hw;
        if (b) {
            const float bo = b[o];
#pragma omp simd
            for (size_t p = 0; p < hw; p++) r[p] += bo;
        }
        if (a) dc_cpu_relu_apply(a->kind, a->alpha, r, r, hw);
    }
}

/* One image's output gradient as the convolution sees it: dy itself, or with a fused
 * activation its pre-activation gradient (into dpre) and, when part is set, that image's
 * per-channel sums for the bias gradient. */
const float *dc_cpu_image_grad(const dc_fused_act *act, const float *y, const float *dy,
                               float *dpre, int c, size_t hw, double *part) {
    if (!act) return dy;
    dc_cpu_relu_grad(act->kind, act->alpha, act->mode, y, dy, dpre, (size_t)c * hw, 0);
    if (part)
        for (int o = 0; o < c; o++) part[o] = dc_cpu_plane_sum(dpre + (size_t)o * hw, hw);
    return dpre;
}
