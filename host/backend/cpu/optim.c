/* CPU optimizer updates: SGD with momentum, Adam/AdamW, and the clipping scale. */

#include <math.h>

#include "cpu_internal.h"

/* ---- optimizers ---- */
dc_status dc_cpu_sgd_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n,
                            dc_ptr gscale, float lr, float momentum, float wd, int nesterov) {
    (void)be;
    float *pp = F(p), *pv = F(v);
    const float *pg = F(g), gs = F(gscale)[0];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float gi = gs * pg[i] + wd * pp[i];
        pv[i] = momentum * pv[i] + gi;
        pp[i] -= lr * (nesterov ? gi + momentum * pv[i] : pv[i]);
    }
    return DC_OK;
}

dc_status dc_cpu_adam_update(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                             dc_ptr gscale, float lr, float b1, float b2, float eps, float wd,
                             int decoupled, float bc1, float bc2) {
    (void)be;
    float *pp = F(p), *pm = F(m), *pv = F(v);
    const float *pg = F(g), gs = F(gscale)[0];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float gi = gs * pg[i];
        if (decoupled)
            pp[i] -= lr * wd * pp[i];
        else
            gi += wd * pp[i];
        pm[i] = b1 * pm[i] + (1.0f - b1) * gi;
        pv[i] = b2 * pv[i] + (1.0f - b2) * gi * gi;
        pp[i] -= lr * (pm[i] / bc1) / (sqrtf(pv[i] / bc2) + eps);
    }
    return DC_OK;
}

dc_status dc_cpu_clip_scale(dc_backend *be, dc_ptr sumsq, dc_ptr gscale, float max_norm) {
    (void)be;
    const float norm = sqrtf(F(sumsq)[0] + 1e-12f);
    F(gscale)[0] = norm > max_norm ? max_norm / norm : 1.0f;
    return DC_OK;
}
