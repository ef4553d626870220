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
__kernel void dc_adam_update(__global float *p, ulong p_off, __global const float *g, ulong g_off,
                             __global float *m, ulong m_off, __global float *v, ulong v_off, uint n,
                             __global const float *gscale, ulong gscale_off, float lr, float beta1,
                             float beta2, float eps, float wd, int decoupled, float bc1,
                             float bc2) {
    const uint i = get_global_id(0);
    if (i >= n) return;
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
