/* Convolution plumbing: im2col, col2im (gather form), the column-major <-> NCHW
 * transposes around the GEMM, and the bias.
 *
 * Window geometry arrives as one int16 (G_ macros in common.cl). */

/* cols[r][col], r = (ci*kh + i)*kw + j, col = (n - n0)*oh*ow + oy*ow + ox.
 * One work-item per column-matrix element, the work-groups filling one row each. */
__kernel void dc_im2col(int16 g, __global const float *x, ulong x_off, __global float *cols,
                        ulong cols_off, uint groups_per_row) {
    /* each work-group fills part of one row r of the column matrix, so the row's (channel,
     * kernel tap) decomposition is uniform over the group and each work-item divides only
     * for its (image, pixel); the writes of a group are contiguous */
    const uint grp = get_group_id(0), r = grp / groups_per_row;
    const uint ohw = (uint)(G_OH(g) * G_OW(g)), ncols = (uint)G_NB(g) * ohw;
    const uint col = (grp - r * groups_per_row) * (uint)get_local_size(0) + (uint)get_local_id(0);
    if (col >= ncols) return;
    const int khw = G_KH(g) * G_KW(g);
    const int ci = (int)r / khw, rem = (int)r - ci * khw;
    const int i = rem / G_KW(g), j = rem - i * G_KW(g);
    const uint n = col / ohw, p = col - n * ohw;
    const int oy = (int)(p / (uint)G_OW(g)), ox = (int)(p - (uint)oy * (uint)G_OW(g));
    const int iy = oy * G_SH(g) - G_PH(g) + i, ix = ox * G_SW(g) - G_PW(g) + j;
    float v = 0.0f;
    if (iy >= 0 && iy < G_H(g) && ix >= 0 && ix < G_W(g)) {
        const ulong plane = ((ulong)(G_N0(g) + (int)n) * G_C(g) + ci) * (ulong)(G_H(g) * G_W(g));
        v = x[x_off + plane + (ulong)(iy * G_W(g) + ix)];
    }
    cols[cols_off + (ulong)r * ncols + col] = v;
}

/* x += fold(cols), gathered: one work-item per image pixel visits every (i, j) window
 * tap that lands on it, in the same order as the CPU's scatter loop, so the sums match
 * bit for bit and no atomics are needed. */
__kernel void dc_col2im(int16 g, __global const float *cols, ulong cols_off, __global float *x,
                        ulong x_off, uint total) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const int w = G_W(g), h = G_H(g);
    const int ix = (int)(idx % (uint)w);
    uint t = idx / (uint)w;
    const int iy = (int)(t % (uint)h);
    t /= (uint)h;
    const int ci = (int)(t % (uint)G_C(g));
    const int n = (int)(t / (uint)G_C(g));
    const uint ohw = (uint)(G_OH(g) * G_OW(g)), ncols = (uint)G_NB(g) * ohw;
    const ulong xi =
        x_off + ((ulong)(G_N0(g) + n) * G_C(g) + ci) * (ulong)(h * w) + (ulong)(iy * w + ix);
    float acc = x[xi];
    for (int i = 0; i < G_KH(g); i++) {
        const int ty = iy + G_PH(g) - i;
        if (ty < 0) break;
        if (ty % G_SH(g)) continue;
        const int oy = ty / G_SH(g);
        if (oy >= G_OH(g)) continue;
        for (int j = 0; j < G_KW(g); j++) {
            const int tx = ix + G_PW(g) - j;
            if (tx < 0) break;
            if (tx % G_SW(g)) continue;
            const int ox = tx / G_SW(g);
            if (ox >= G_OW(g)) continue;
            const uint r = (uint)((ci * G_KH(g) + i) * G_KW(g) + j);
            acc += cols[cols_off + (ulong)r * ncols + (ulong)n * ohw + (uint)(oy * G_OW(g) + ox)];
        }
    }
    x[xi] = acc;
}

/* dst[n0 + n][ch][p] = beta*dst + src[ch][n*hw + p] (+ bias[ch]); one item per element. */
__kernel void dc_cm_to_nchw(__global const float *src, ulong src_off, __global const float *bias,
                            ulong bias_off, int has_bias, __global float *dst, ulong dst_off,
                            int n0, int nb, int c, int hw, float beta) {
    const uint idx = get_global_id(0);
    if (idx >= (uint)nb * (uint)c * (uint)hw) return;
    const uint p = idx % (uint)hw, t = idx / (uint)hw;
    const uint ch = t % (uint)c, n = t / (uint)c;
    const float s = src[src_off + (ulong)ch * ((ulong)nb * hw) + (ulong)n * hw + p];
    const float b = has_bias ? bias[bias_off + ch] : 0.0f;
    const ulong di = dst_off + ((ulong)(n0 + (int)n) * c + ch) * hw + p;
    if (beta == 0.0f)
        dst[di] = s + b;
    else
        dst[di] = beta * dst[di] + s + b;
}

/* dst[ch][n*hw + p] = src[n0 + n][ch][p] */
__kernel void dc_nchw_to_cm(__global const float *src, ulong src_off, __global float *dst,
                            ulong dst_off, int n0, int nb, int c, int hw) {
    const uint idx = get_global_id(0);
    if (idx >= (uint)nb * (uint)c * (uint)hw) return;
    const uint p = idx % (uint)hw, t = idx / (uint)hw;
    const uint ch = t % (uint)c, n = t / (uint)c;
    dst[dst_off + (ulong)ch * ((ulong)nb * hw) + (ulong)n * hw + p] =
        src[src_off + ((ulong)(n0 + (int)n) * c + ch) * hw + p];
}

__kernel void dc_bias_add(__global float *y, ulong y_off, __global const float *bias,
                          ulong bias_off, uint total, int c, int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    y[y_off + idx] += bias[bias_off + (idx / (uint)hw) % (uint)c];
}

/* db[ch] += sum over n and p of dy[n][ch][p]; one work-group per channel. */
__kernel void dc_bias_grad(__global float *db, ulong db_off, __global const float *dy, ulong dy_off,
                           int n, int c, int hw, __local float *scratch) {
    const uint ch = get_group_id(0);
    const uint m = (uint)n * (uint)hw;
    float sum = 0.0f, comp = 0.0f;
    for (uint t = get_local_id(0); t < m; t += get_local_size(0)) {
        const uint i = t / (uint)hw, p = t - i * (uint)hw;
        DC_KAHAN_ADD(sum, comp, dy[dy_off + ((ulong)i * c + ch) * hw + p]);
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) == 0) db[db_off + ch] += total;
}
