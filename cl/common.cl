/* Helpers shared by every kernel file. The host puts this file first when it joins the
 * sources into one program, so everything below is visible to the other files.
 *
 * Conventions of all kernels:
 *  - A tensor argument is (__global float *base, ulong offset in elements): a dc_ptr.
 *  - Launch sizes are padded up to a multiple of the work-group size, so every kernel
 *    bounds-checks its global id.
 *  - Reductions run over a power-of-two work-group size chosen by the host, with the
 *    local scratch passed as a __local argument (its size follows the group size).
 *  - No contraction into fused multiply-add: the CPU reference does not use FMA, and
 *    the parity tests compare bit patterns where the arithmetic is the same. */
#pragma OPENCL FP_CONTRACT OFF

/* The counter hash of deconv.h (dc_hash32, dc_hash_bits): 32-bit unsigned arithmetic
 * wraps the same way in C and OpenCL C, so both backends draw identical numbers. The
 * 64-bit seed arrives as two 32-bit halves. */
uint dc_hash32(uint x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

uint dc_hash_bits(uint seed_lo, uint seed_hi, uint i) {
    return dc_hash32(dc_hash32(i ^ seed_lo) + seed_hi);
}

/* Uniform in [0,1) with 24 bits: dc_hash_uniform(). */
float dc_hash_uniform(uint seed_lo, uint seed_hi, uint i) {
    return (float)(dc_hash_bits(seed_lo, seed_hi, i) >> 8) * (1.0f / 16777216.0f);
}

/* Sum of v over the work-group; every work-item gets the total. The local size must be a
 * power of two and `s` must hold one float per work-item. Call it from all work-items. */
float dc_group_sum(__local float *s, float v) {
    const uint lid = get_local_id(0);
    s[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = get_local_size(0) >> 1; step > 0; step >>= 1) {
        if (lid < step) s[lid] += s[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = s[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* s may be reused right after */
    return total;
}

/* Compensated (Kahan) accumulation for the serial part of a reduction: the CPU
 * reference accumulates in double, and this keeps float sums of long strided runs
 * within a few ulps of it. */
#define DC_KAHAN_ADD(sum, comp, v)                                                                 \
    do {                                                                                           \
        const float y_ = (v) - (comp);                                                             \
        const float t_ = (sum) + y_;                                                               \
        (comp) = (t_ - (sum)) - y_;                                                                \
        (sum) = t_;                                                                                \
    } while (0)

/* Sliding-window geometry (conv, pooling) travels as one int16 kernel argument: the
 * dc_win2d fields, then the chunk of images [n0, n0 + nb) a column matrix covers. */
#define G_N(g) (g).s0
#define G_C(g) (g).s1
#define G_H(g) (g).s2
#define G_W(g) (g).s3
#define G_KH(g) (g).s4
#define G_KW(g) (g).s5
#define G_SH(g) (g).s6
#define G_SW(g) (g).s7
#define G_PH(g) (g).s8
#define G_PW(g) (g).s9
#define G_OH(g) (g).sa
#define G_OW(g) (g).sb
#define G_N0(g) (g).sc
#define G_NB(g) (g).sd

/* dc_act_kind and dc_relu_mode values. */
#define DC_ACT_RELU 0
#define DC_ACT_LEAKY_RELU 1
#define DC_ACT_TANH 2
#define DC_ACT_SIGMOID 3
#define DC_ACT_SILU 4
#define DC_RELU_NORMAL 0
#define DC_RELU_GUIDED 1
#define DC_RELU_DECONVNET 2
/* No activation fused into an epilogue (the act argument of the fused kernels). */
#define DC_FACT_NONE (-1)

/* A fused activation (dc_fused_act: ReLU or leaky ReLU with alpha >= 0) applied to v, as
 * dc_act_fwd computes it. */
float dc_fact_apply(int act, float alpha, float v) {
    if (act == DC_ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (act == DC_ACT_LEAKY_RELU) return v > 0.0f ? v : alpha * v;
    return v;
}

/* The gradient through a fused activation, read from its output y (positive exactly where
 * the input is) and the output's gradient d, with the ReLU backward mode; as dc_act_bwd. */
float dc_fact_grad(int act, int mode, float alpha, float y, float d) {
    if (act == DC_FACT_NONE) return d;
    if (mode == DC_RELU_GUIDED) return (y > 0.0f && d > 0.0f) ? d : 0.0f;
    if (mode == DC_RELU_DECONVNET) return d > 0.0f ? d : 0.0f;
    return y > 0.0f ? d : (act == DC_ACT_RELU ? 0.0f : alpha) * d;
}

/* Second stage: out[ch] += sum of the channel's partials, one work-group per channel, the
 * partials added in a fixed order. */
__kernel void dc_chan_final(__global const float *partial, uint groups_per_ch,
                            __global float *out, ulong out_off, __local float *scratch) {
    const uint ch = get_group_id(0), lid = get_local_id(0);
    float sum = 0.0f, comp = 0.0f;
    for (uint t = lid; t < groups_per_ch; t += get_local_size(0))
        DC_KAHAN_ADD(sum, comp, partial[(ulong)ch * groups_per_ch + t]);
    const float total = dc_group_sum(scratch, sum);
    if (lid == 0) out[out_off + ch] += total;
}
