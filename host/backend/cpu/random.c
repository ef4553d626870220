/* CPU random draws (normal, dropout masks) and the reparameterisation of the VAE code. */

#include <math.h>

#include "cpu_internal.h"

/* ---- randomness ---- */
dc_status dc_cpu_randn(dc_backend *be, dc_ptr dst, size_t n, uint64_t seed, float mean,
                       float std) {
    (void)be;
    float *d = F(dst);
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float u1, u2;
        dc_hash_uniform_pair(seed, (uint32_t)i, &u1, &u2);
        d[i] = mean + std * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
    }
    return DC_OK;
}

dc_status dc_cpu_dropout_mask(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    (void)be;
    float *d = F(mask);
    const float keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) d[i] = dc_hash_uniform(seed, (uint32_t)i) >= p ? keep : 0.0f;
    return DC_OK;
}

dc_status dc_cpu_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z,
                             size_t n) {
    (void)be;
    const float *pm = F(mu), *pl = F(lv), *pe = F(eps);
    float *pz = F(z);
    for (size_t i = 0; i < n; i++) pz[i] = pm[i] + expf(0.5f * pl[i]) * pe[i];
    return DC_OK;
}

dc_status dc_cpu_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                             dc_ptr dlv, size_t n) {
    (void)be;
    const float *pl = F(lv), *pe = F(eps), *pdz = F(dz);
    float *pdm = F(dmu), *pdl = F(dlv);
    for (size_t i = 0; i < n; i++) {
        pdm[i] += pdz[i];
        pdl[i] += pdz[i] * pe[i] * 0.5f * expf(0.5f * pl[i]);
    }
    return DC_OK;
}
