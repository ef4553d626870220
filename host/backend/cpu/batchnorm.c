/* CPU batch normalisation: statistics, apply and backward, optionally fused with the
 * following activation. */

#include <math.h>
#include <omp.h>

#include "cpu_internal.h"

/* ---- batch norm ---- */
dc_status dc_cpu_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c,
                          int hw) {
    cpu_backend *cb = (cpu_backend *)be;
    const float *px = F(x);
    float *pm = F(mean), *pv = F(var);
    const int planes = n * c;
    const double cnt = (double)n * hw;
    double *part = dc_cpu_red_buffer(cb, (size_t)planes);
    if (!part) return dc_set_error(&be->err, DC_ERR_OOM, "cpu bn_stats: out of memory");
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        part[pl] = dc_cpu_plane_sum(px + (size_t)pl * hw, (size_t)hw);
    for (int ch = 0; ch < c; ch++) pm[ch] = (float)(dc_cpu_channel_total(part, n, c, ch) / cnt);
    /* two passes: the variance is summed around the mean, not as E[x^2] - m^2 */
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        part[pl] = dc_cpu_plane_sqdev(px + (size_t)pl * hw, (size_t)hw, pm[pl % c]);
    for (int ch = 0; ch < c; ch++) pv[ch] = (float)(dc_cpu_channel_total(part, n, c, ch) / cnt);
    return DC_OK;
}

dc_status dc_cpu_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var,
                              dc_ptr gamma, dc_ptr beta, dc_ptr y, int n, int c, int hw,
                              float eps, const dc_fused_act *act) {
    (void)be;
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pb = F(beta);
    float *py = F(y);
#pragma omp parallel for schedule(static) collapse(2)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float a = pg[ch] / sqrtf(pv[ch] + eps), b = pb[ch] - a * pm[ch];
            const float *s = px + ((size_t)i * c + ch) * hw;
            float *d = py + ((size_t)i * c + ch) * hw;
            for (int p = 0; p < hw; p++) d[p] = a * s[p] + b;
            if (act) dc_cpu_bias_act_rows(d, NULL, 1, (size_t)hw, act); /* the plane is in cache */
        }
    return DC_OK;
}

dc_status dc_cpu_bn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                          dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps) {
    return dc_cpu_bn_apply_act(be, x, mean, var, gamma, beta, y, n, c, hw, eps, NULL);
}

dc_status dc_cpu_bn_bwd_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                            dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                            int c, int hw, float eps, const dc_fused_act *act) {
    cpu_backend *cb = (cpu_backend *)be;
    const float *px = F(x), *pm = F(mean), *pv = F(var), *pg = F(gamma), *pdy = F(dy);
    const float *py = act ? F(y) : NULL;
    float *pdx = F(dx), *pdg = F(dgamma), *pdb = F(dbeta);
    const int planes = n * c;
    const double M = (double)n * hw;
    double *part = dc_cpu_red_buffer(cb, (size_t)planes * 2 + (size_t)c * 3);
    /* with an activation, each thread rebuilds one plane's pre-activation gradient */
    float *scr = act ? dc_cpu_scratch(cb, (size_t)hw, omp_get_max_threads()) : NULL;
    if (!part || (act && !scr))
        return dc_set_error(&be->err, DC_ERR_OOM, "cpu bn_bwd: out of memory");
    double *part_dyx = part + planes, *coef = part + 2 * (size_t)planes;
#define PLANE_GRAD(pl)                                                                             \
    (act ? (dc_cpu_relu_grad(act->kind, act->alpha, act->mode, py + (size_t)(pl)*hw,               \
                             pdy + (size_t)(pl)*hw, scr + (size_t)omp_get_thread_num() * hw,       \
                             (size_t)hw, 0),                                                       \
            (const float *)(scr + (size_t)omp_get_thread_num() * hw))                              \
         : pdy + (size_t)(pl)*hw)
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++)
        dc_cpu_plane_dy_dyx(PLANE_GRAD(pl), px + (size_t)pl * hw, (size_t)hw, pm[pl % c], &part[pl],
                            &part_dyx[pl]);
    /* dx = k (M dy - sum dy - xhat sum dy xhat), k = gamma rstd / M, written as
     * A dy + B (x - m) + C per channel */
    for (int ch = 0; ch < c; ch++) {
        const double rstd = 1.0 / sqrt((double)pv[ch] + eps);
        const double sdy = dc_cpu_channel_total(part, n, c, ch);
        const double sdyx = dc_cpu_channel_total(part_dyx, n, c, ch) * rstd;
        pdg[ch] += (float)sdyx;
        pdb[ch] += (float)sdy;
        const double k = pg[ch] * rstd / M;
        coef[3 * ch] = pg[ch] * rstd;
        coef[3 * ch + 1] = -k * rstd * sdyx;
        coef[3 * ch + 2] = -k * sdy;
    }
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const int ch = pl % c;
        const float A = (float)coef[3 * ch], B = (float)coef[3 * ch + 1],
                    C = (float)coef[3 * ch + 2], m = pm[ch];
        const float *restrict d = PLANE_GRAD(pl), *restrict xs = px + (size_t)pl * hw;
        float *restrict o = pdx + (size_t)pl * hw;
#pragma omp simd
        for (int p = 0; p < hw; p++) o[p] += A * d[p] + B * (xs[p] - m) + C;
    }
#undef PLANE_GRAD
    return DC_OK;
}

dc_status dc_cpu_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma, dc_ptr dy,
                        dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw, float eps) {
    return dc_cpu_bn_bwd_act(be, x, mean, var, gamma, dc_null_ptr(), dy, dx, dgamma, dbeta, n, c,
                             hw, eps, NULL);
}
