/* Optimizer updates. gscale[0] lives on the device and multiplies every gradient: it
 * carries gradient-norm clipping without a host round trip. */

/* v = momentum*v + g'; g' = gscale*g + wd*p; p -= lr*v (nesterov: p -= lr*(g' + momentum*v)) */
__kernel void dc_sgd_update(__global float *p, ulong p_off, __global const float *g, ulong g_off,
                            __global float *v, ulong v_off, uint n, __global const float *gscale,
                            ulong gscale_off, float lr, float momentum, float wd, int nesterov) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float gs = gscale[gscale_off];
    const float pi = p[p_off + i];
    const float gi = gs * g[g_off + i] + wd * pi;
    const float vi = momentum * v[v_off + i] + gi;
    v[v_off + i] = vi;
    p[p_off + i] = pi - lr * (nesterov ? gi + momentum * vi : vi);
}

/* Adam (decoupled == 0: L2 folded into the gradient) / AdamW (decoupled == 1);
 * bc1 = 1 - beta1^t and bc2 = 1 - beta2^t come from the host. */
/* Up to 16 consecutive parameter runs in one launch (the host merges the optimizer's
 * per-run calls): element i belongs to the first run s with i < ends[s] and takes its
 * weight decay wds[s]. */
__kernel void dc_adam_update(__global float *p, ulong p_off, __global const float *g, ulong g_off,
                             __global float *m, ulong m_off, __global float *v, ulong v_off, uint n,
                             __global const float *gscale, ulong gscale_off, float lr, float beta1,
                             float beta2, float eps, uint16 ends, float16 wds, int decoupled,
                             float bc1, float bc2) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const uint e[16] = {ends.s0, ends.s1, ends.s2, ends.s3, ends.s4, ends.s5, ends.s6, ends.s7,
                        ends.s8, ends.s9, ends.sa, ends.sb, ends.sc, ends.sd, ends.se, ends.sf};
    const float w[16] = {wds.s0, wds.s1, wds.s2, wds.s3, wds.s4, wds.s5, wds.s6, wds.s7,
                         wds.s8, wds.s9, wds.sa, wds.sb, wds.sc, wds.sd, wds.se, wds.sf};
    int run = 0;
    while (run < 15 && i >= e[run]) run++;
    const float wd = w[run];
    float pi = p[p_off + i];
    float gi = gscale[gscale_off] * g[g_off + i];
    if (decoupled)
        pi -= lr * wd * pi;
    else
        gi += wd * pi;
    const float mi = beta1 * m[m_off + i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[v_off + i] + (1.0f - beta2) * gi * gi;
    m[m_off + i] = mi;
    v[v_off + i] = vi;
    p[p_off + i] = pi - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
}

/* gscale[0] = min(1, max_norm / sqrt(sumsq[0] + 1e-12)); a single work-item. */
__kernel void dc_clip_scale(__global const float *sumsq, ulong sumsq_off, __global float *gscale,
                            ulong gscale_off, float max_norm) {
    if (get_global_id(0) != 0) return;
    const float norm = sqrt(sumsq[sumsq_off] + 1e-12f);
    gscale[gscale_off] = norm > max_norm ? max_norm / norm : 1.0f;
}
