/* Batch normalisation over n and the spatial plane, per channel. The statistics and the
 * backward are tree reductions over one or more work-groups per channel; apply is
 * element-wise. */

/* Element (t) of channel ch when the channel's n*hw values are numbered t = i*hw + p. */
#define DC_BN_AT(base, t, ch, c, hw)                                                               \
    (base)[((ulong)((t) / (uint)(hw)) * (c) + (ch)) * (hw) + ((t) % (uint)(hw))]

/* Statistics and backward spread each channel's m = n*hw values over groups_per_ch
 * work-groups of `span` values each (work-group grp = ch*groups_per_ch + run), so a big
 * device has many work-groups to run even with few channels; with one group per channel the
 * kernel finishes the job itself, otherwise a second launch combines the per-run results in
 * a fixed order (deterministic). */

/* mean[c], var[c] (biased). Each run takes two passes over its values (its sum, then the
 * squared deviations from its own mean), like the CPU reference; with several runs,
 * partial[2*grp] = the run's sum and partial[2*grp + 1] = its squared deviations, which
 * dc_bn_stats_final combines. */
__kernel void dc_bn_stats(__global const float *x, ulong x_off, __global float *mean,
                          ulong mean_off, __global float *var, ulong var_off, int n, int c, int hw,
                          uint groups_per_ch, uint span, __global float *partial,
                          __local float *scratch) {
    const uint grp = get_group_id(0), ch = grp / groups_per_ch, run = grp - ch * groups_per_ch;
    const uint lid = get_local_id(0), step = get_local_size(0);
    const uint m = (uint)n * (uint)hw, t0 = run * span;
    const uint t1 = t0 + span < m ? t0 + span : m, cnt = t1 > t0 ? t1 - t0 : 0;
    x += x_off;
    float sum = 0.0f, comp = 0.0f;
    for (uint t = t0 + lid; t < t1; t += step)
        DC_KAHAN_ADD(sum, comp, DC_BN_AT(x, t, ch, c, hw));
    const float run_sum = dc_group_sum(scratch, sum);
    const float mu = cnt ? run_sum / (float)cnt : 0.0f;
    sum = 0.0f;
    comp = 0.0f;
    for (uint t = t0 + lid; t < t1; t += step) {
        const float d = DC_BN_AT(x, t, ch, c, hw) - mu;
        DC_KAHAN_ADD(sum, comp, d * d);
    }
    const float m2 = dc_group_sum(scratch, sum);
    if (lid != 0) return;
    if (groups_per_ch == 1) {
        mean[mean_off + ch] = mu;
        var[var_off + ch] = m2 / (float)m;
    } else {
        partial[2 * (ulong)grp] = run_sum;
        partial[2 * (ulong)grp + 1] = m2;
    }
}

/* One work-group per channel: mean = (sum of the runs' sums) / m and, with Chan's parallel
 * formula, var = (sum of M2_r + sum of cnt_r*(mean_r - mean)^2) / m. */
__kernel void dc_bn_stats_final(__global const float *partial, uint groups_per_ch, uint span,
                                uint m, __global float *mean, ulong mean_off,
                                __global float *var, ulong var_off, __local float *scratch) {
    const uint ch = get_group_id(0), lid = get_local_id(0), step = get_local_size(0);
    __global const float *p = partial + 2 * (ulong)ch * groups_per_ch;
    float sum = 0.0f, comp = 0.0f;
    for (uint r = lid; r < groups_per_ch; r += step)
        DC_KAHAN_ADD(sum, comp, p[2 * r]);
    const float mu = dc_group_sum(scratch, sum) / (float)m;
    sum = 0.0f;
    comp = 0.0f;
    for (uint r = lid; r < groups_per_ch; r += step) {
        const uint t0 = r * span, t1 = t0 + span < m ? t0 + span : m;
        if (t1 <= t0) continue;
        const float cnt = (float)(t1 - t0), d = p[2 * r] / cnt - mu;
        DC_KAHAN_ADD(sum, comp, p[2 * r + 1] + cnt * d * d);
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

/* Training-mode backward with batch statistics:
 * dgamma += sum dy*xhat, dbeta += sum dy, dx += gamma*rstd/M * (M*dy - sum dy - xhat*sum dy*xhat)
 * With a fused activation (act != DC_FACT_NONE), y is its output and dy its gradient: the
 * gradient before the activation is rebuilt on the fly in both passes.
 * phase 0 (one work-group per channel): both sums, then dx. With several runs per channel,
 * phase 1 writes each run's two sums to partial[2*grp], partial[2*grp + 1], and phase 2
 * has every group add its channel's partials in the same fixed order (so all of a
 * channel's groups hold the same totals), run 0 update dgamma and dbeta, and each group
 * write dx for its own run. */
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
                        float alpha, uint groups_per_ch, uint span, int phase,
                        __global float *partial, __local float *scratch) {
    const uint grp = get_group_id(0), ch = grp / groups_per_ch, run = grp - ch * groups_per_ch;
    const uint lid = get_local_id(0), step = get_local_size(0);
    const uint m = (uint)n * (uint)hw, t0 = run * span;
    const uint t1 = t0 + span < m ? t0 + span : m;
    x += x_off;
    dy += dy_off;
    dx += dx_off;
    y += y_off;
    const float rstd = 1.0f / sqrt(var[var_off + ch] + eps), mu = mean[mean_off + ch];
    float s1 = 0.0f, c1 = 0.0f, s2 = 0.0f, c2 = 0.0f;
    if (phase == 2) {
        __global const float *p = partial + 2 * (ulong)ch * groups_per_ch;
        for (uint r = lid; r < groups_per_ch; r += step) {
            DC_KAHAN_ADD(s1, c1, p[2 * r]);
            DC_KAHAN_ADD(s2, c2, p[2 * r + 1]);
        }
    } else {
        for (uint t = t0 + lid; t < t1; t += step) {
            const float d = DC_BN_GRAD(t);
            DC_KAHAN_ADD(s1, c1, d);
            DC_KAHAN_ADD(s2, c2, d * ((DC_BN_AT(x, t, ch, c, hw) - mu) * rstd));
        }
    }
    const float sdy = dc_group_sum(scratch, s1);
    const float sdyx = dc_group_sum(scratch, s2);
    if (phase == 1) {
        if (lid == 0) {
            partial[2 * (ulong)grp] = sdy;
            partial[2 * (ulong)grp + 1] = sdyx;
        }
        return;
    }
    if (lid == 0 && run == 0) {
        dgamma[dgamma_off + ch] += sdyx;
        dbeta[dbeta_off + ch] += sdy;
    }
    const float fm = (float)m;
    const float k = gamma[gamma_off + ch] * rstd / fm;
    for (uint t = t0 + lid; t < t1; t += step) {
        const float xh = (DC_BN_AT(x, t, ch, c, hw) - mu) * rstd;
        DC_BN_AT(dx, t, ch, c, hw) += k * (fm * DC_BN_GRAD(t) - sdy - xh * sdyx);
    }
}
