/* Activations and their backward passes, with the three ReLU backward modes that the
 * explanation methods use. Values mirror dc_act_kind and dc_relu_mode. */
/* (the DC_ACT_* and DC_RELU_* values are in common.cl: the fused epilogues use them too) */

__kernel void dc_act_fwd(int kind, float alpha, __global const float *x, ulong x_off,
                         __global float *y, ulong y_off, uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float v = x[x_off + i];
    float r;
    if (kind == DC_ACT_RELU)
        r = v > 0.0f ? v : 0.0f;
    else if (kind == DC_ACT_LEAKY_RELU)
        r = v > 0.0f ? v : alpha * v;
    else if (kind == DC_ACT_TANH)
        r = tanh(v);
    else if (kind == DC_ACT_SILU)
        r = v / (1.0f + exp(-v));
    else
        r = 1.0f / (1.0f + exp(-v));
    y[y_off + i] = r;
}

/* dx += g; ReLU / leaky ReLU honour `mode`, tanh and sigmoid use y and ignore it, SiLU uses
 * x and ignores it. */
__kernel void dc_act_bwd(int kind, int mode, float alpha, __global const float *x, ulong x_off,
                         __global const float *y, ulong y_off, __global const float *dy,
                         ulong dy_off, __global float *dx, ulong dx_off, uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float d = dy[dy_off + i];
    float g;
    if (kind == DC_ACT_RELU || kind == DC_ACT_LEAKY_RELU) {
        const float v = x[x_off + i];
        if (mode == DC_RELU_GUIDED)
            g = (v > 0.0f && d > 0.0f) ? d : 0.0f;
        else if (mode == DC_RELU_DECONVNET)
            g = d > 0.0f ? d : 0.0f;
        else
            g = v > 0.0f ? d : (kind == DC_ACT_RELU ? 0.0f : alpha) * d;
    } else if (kind == DC_ACT_SILU) {
        const float v = x[x_off + i];
        const float s = 1.0f / (1.0f + exp(-v));
        g = d * (s * (1.0f + v * (1.0f - s)));
    } else if (kind == DC_ACT_TANH) {
        const float t = y[y_off + i];
        g = d * (1.0f - t * t);
    } else {
        const float s = y[y_off + i];
        g = d * s * (1.0f - s);
    }
    dx[dx_off + i] += g;
}
