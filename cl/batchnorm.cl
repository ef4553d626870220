/* Batch normalisation over n and the spatial plane, per channel. The statistics and the
 * backward are one work-group per channel with work-group reductions; apply is
 * element-wise. */

/* Element (t) of channel ch when the channel's n*hw values are numbered t = i*hw + p. */
#define DC_BN_AT(base, t, ch, c, hw)                                                               \
    (base)[((ulong)((t) / (uint)(hw)) * (c) + (ch)) * (hw) + ((t) % (uint)(hw))]

/* mean[c], var[c] (biased), two passes like the CPU reference. */
__kernel void dc_bn_stats(__global const float *x, ulong x_off, __global float *mean,
                          ulong mean_off, __global float *var, ulong var_off, int n, int c, int hw,
                          __local float *scratch) {
    const uint ch = get_group_id(0), lid = get_local_id(0), step = get_local_size(0);
    const uint m = (uint)n * (uint)hw;
    x += x_off;
    float sum = 0.0f, comp = 0.0f;
    for (uint t = lid; t < m; t += step)
        DC_KAHAN_ADD(sum, comp, DC_BN_AT(x, t, ch, c, hw));
    const float mu = dc_group_sum(scratch, sum) / (float)m;
    sum = 0.0f;
    comp = 0.0f;
    for (uint t = lid; t < m; t += step) {
        const float d = DC_BN_AT(x, t, ch, c, hw) - mu;
        DC_KAHAN_ADD(sum, comp, d * d);
    }
    const float v = dc_group_sum(scratch, sum) / (float)m;
    if (lid == 0) {
        mean[mean_off + ch] = mu;
        var[var_off + ch] = v;
    }
}

/* y = gamma*(x - mean)*rsqrt(var + eps) + beta, as a*x + b like the CPU reference. */
__kernel void dc_bn_apply(__global const float *x, ulong x_off, __global const float *mean,
                          ulong mean_off, __global const float *var, ulong var_off,
                          __global const float *gamma, ulong gamma_off, __global const float *beta,
                          ulong beta_off, __global float *y, ulong y_off, uint total, int c, int hw,
                          float eps, int act, float alpha) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint ch = (idx / (uint)hw) % (uint)c;
    const float a = gamma[gamma_off + ch] / sqrt(var[var_off + ch] + eps);
    const float b = beta[beta_off + ch] - a * mean[mean_off + ch];
    y[y_off + idx] = dc_fact_apply(act, alpha, a * x[x_off + idx] + b);
}

/* Training-mode backward with batch statistics, one work-group per channel:
 * dgamma += sum dy*xhat, dbeta += sum dy, dx += gamma*rstd/M * (M*dy - sum dy - xhat*sum dy*xhat)
 * With a fused activation (act != DC_FACT_NONE), y is its output and dy its gradient: the
 * gradient before the activation is rebuilt on the fly in both passes. */
#define DC_BN_GRAD(t)                                                                              \
    (act == DC_FACT_NONE                                                                           \
         ? DC_BN_AT(dy, t, ch, c, hw)                                                              \
         : dc_fact_grad(act, mode, alpha, DC_BN_AT(y, t, ch, c, hw), DC_BN_AT(dy, t, ch, c, hw)))
__kernel void dc_bn_bwd(__global const float *x, ulong x_off, __global const float *mean,
                        ulong mean_off, __global const float *var, ulong var_off,
                        __global const float *gamma, ulong gamma_off, __global const float *dy,
                        ulong dy_off, __global float *dx, ulong dx_off, __global float *dgamma,
                        ulong dgamma_off, __global float *dbeta, ulong dbeta_off, int n, int c,
                        int hw, float eps, __global const float *y, ulong y_off, int act, int mode,
                        float alpha, __local float *scratch) {
    const uint ch = get_group_id(0), lid = get_local_id(0), step = get_local_size(0);
    const uint m = (uint)n * (uint)hw;
    x += x_off;
    dy += dy_off;
    dx += dx_off;
    y += y_off;
    const float rstd = 1.0f / sqrt(var[var_off + ch] + eps), mu = mean[mean_off + ch];
    float s1 = 0.0f, c1 = 0.0f, s2 = 0.0f, c2 = 0.0f;
    for (uint t = lid; t < m; t += step) {
        const float d = DC_BN_GRAD(t);
        DC_KAHAN_ADD(s1, c1, d);
        DC_KAHAN_ADD(s2, c2, d * ((DC_BN_AT(x, t, ch, c, hw) - mu) * rstd));
    }
    const float sdy = dc_group_sum(scratch, s1);
    const float sdyx = dc_group_sum(scratch, s2);
    if (lid == 0) {
        dgamma[dgamma_off + ch] += sdyx;
        dbeta[dbeta_off + ch] += sdy;
    }
    const float fm = (float)m;
    const float k = gamma[gamma_off + ch] * rstd / fm;
    for (uint t = lid; t < m; t += step) {
        const float xh = (DC_BN_AT(x, t, ch, c, hw) - mu) * rstd;
        DC_BN_AT(dx, t, ch, c, hw) += k * (fm * DC_BN_GRAD(t) - sdy - xh * sdyx);
    }
}
