/* Element-wise arithmetic, the two-stage sum reduction and GEMM's k == 0 case. */

/* Two ranges in one launch: n0 values of d0 in the first groups0 work-groups, then n1 of
 * d1 in the rest (n1 = 0: one range). The range is chosen per work-group, not per
 * work-item: PoCL vectorises a work-group's items only when they take the same branch, and
 * a per-item choice between the two buffers made the fill ~30x slower there. */
__kernel void dc_fill(__global float *d0, ulong d0_off, uint n0, float v0, __global float *d1,
                      ulong d1_off, uint n1, float v1, uint groups0) {
    const uint grp = get_group_id(0), local_n = (uint)get_local_size(0);
    if (grp < groups0) {
        const uint i = grp * local_n + (uint)get_local_id(0);
        if (i < n0) d0[d0_off + i] = v0;
    } else {
        const uint i = (grp - groups0) * local_n + (uint)get_local_id(0);
        if (i < n1) d1[d1_off + i] = v1;
    }
}

__kernel void dc_scale(__global float *d, ulong d_off, uint n, float alpha) {
    const uint i = get_global_id(0);
    if (i < n) d[d_off + i] *= alpha;
}

__kernel void dc_axpy(__global float *y, ulong y_off, __global const float *x, ulong x_off, uint n,
                      float alpha) {
    const uint i = get_global_id(0);
    if (i < n) y[y_off + i] += alpha * x[x_off + i];
}

/* op 0: y = a + b; op 1: y = a * b; op 2: y += a * b */
__kernel void dc_binary(int op, __global float *y, ulong y_off, __global const float *a,
                        ulong a_off, __global const float *b, ulong b_off, uint n) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float va = a[a_off + i], vb = b[b_off + i];
    if (op == 0)
        y[y_off + i] = va + vb;
    else if (op == 1)
        y[y_off + i] = va * vb;
    else
        y[y_off + i] += va * vb;
}

/* One mask plane per image picks a (m > threshold) or b for each of the c channels.
 * dir 0: y = m ? a : b.  dir 1 (backward, y the gradient): a += m ? y : 0 when has_a,
 * b += m ? 0 : y when has_b. One work-item per element of y. */
__kernel void dc_select_planes(int dir, __global const float *mask, ulong m_off,
                               float threshold, __global float *a, ulong a_off, int has_a, __global float *b,
                               ulong b_off, int has_b, __global float *y, ulong y_off, uint total,
                               int c, int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint plane = idx / (uint)hw, p = idx - plane * (uint)hw, i = plane / (uint)c;
    const int on = mask[m_off + (ulong)i * hw + p] > threshold;
    if (dir == 0) {
        y[y_off + idx] = on ? a[a_off + idx] : b[b_off + idx];
    } else if (on) {
        if (has_a) a[a_off + idx] += y[y_off + idx];
    } else {
        if (has_b) b[b_off + idx] += y[y_off + idx];
    }
}

__kernel void dc_div_filtered(__global float *y, ulong y_off, __global const float *a, ulong a_off,
                              __global const float *b, ulong b_off, uint n, float eps,
                              float threshold) {
    const uint i = get_global_id(0);
    if (i >= n) return;
    const float d = b[b_off + i] + eps;
    y[y_off + i] = (threshold > 0.0f && d < threshold) ? 0.0f : a[a_off + i] / d;
}

/* Stage 1 of a sum: work-group g writes the sum (of squares) of its strided share of x to
 * partial[g]. The fixed split makes the result deterministic for one launch size. */
__kernel void dc_reduce_partial(__global const float *x, ulong x_off, uint n, int squares,
                                __global float *partial, __local float *scratch) {
    x += x_off;
    const ulong stride = (ulong)get_local_size(0) * get_num_groups(0);
    float sum = 0.0f, comp = 0.0f;
    for (ulong i = get_global_id(0); i < n; i += stride) {
        const float v = x[i];
        DC_KAHAN_ADD(sum, comp, squares ? v * v : v);
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) partial[get_group_id(0)] = total;
}

/* Stage 2, one work-group: out[0] = (mul * sum(partial[0..count))) / div. Losses fold
 * their normalisation into mul and div, so no host round trip is needed. */
__kernel void dc_reduce_final(__global const float *partial, uint count, __global float *out,
                              ulong out_off, float mul, float div, __local float *scratch) {
    float sum = 0.0f, comp = 0.0f;
    for (uint i = get_local_id(0); i < count; i += get_local_size(0))
        DC_KAHAN_ADD(sum, comp, partial[i]);
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) out[out_off] = (mul * total) / div;
}

/* C = beta * C for an m x n row-major block with leading dimension ldc (GEMM with k == 0). */
__kernel void dc_gemm_beta(__global float *c, ulong c_off, uint m, uint n, uint ldc, float beta) {
    const uint idx = get_global_id(0);
    if (idx >= m * n) return;
    const uint i = idx / n, j = idx - i * n;
    c[c_off + (ulong)i * ldc + j] *= beta;
}
