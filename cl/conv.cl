/* Convolution plumbing: im2col, col2im (gather form), the column-major <-> NCHW
 * transposes around the GEMM, and the bias.
 *
 * Window geometry arrives as one int16 (G_ macros in common.cl). */

/* cols[r][col], r = (ci*kh + i)*kw + j, col = (n - n0)*oh*ow + oy*ow + ox.
 * One work-item per output row (r, n, oy): it writes that row's ow columns, contiguous,
 * so the index arithmetic (divisions) is paid once per ow elements and the input row is
 * read in order. One work-item per element cost PoCL four integer divisions per element
 * (it cannot vectorise them) and ran 5-10x slower. */
/* With act != DC_FACT_NONE, x is the gradient of a fused activation's output y and the
 * columns get the gradient before the activation (dc_fact_grad), computed on the fly. */
/* Work-groups past the column matrix's (final_channels of them) finish a channel
 * reduction whose partials an earlier launch wrote, as dc_chan_final does: two independent
 * jobs in one launch, one launch fewer per convolution backward. */
/* elem 1 (GPUs): one work-item per element of those rows instead, so that neighbouring
 * work-items store neighbouring columns (coalesced); the same values. */
__kernel void dc_im2col(int16 g, __global const float *x, ulong x_off, __global const float *y,
                        ulong y_off, int act, int mode, float alpha, __global float *cols,
                        ulong cols_off, uint out_rows, uint col_groups, uint final_channels,
                        __global const float *partial, uint groups_per_ch, __global float *db,
                        ulong db_off, __local float *scratch, int elem) {
    if (get_group_id(0) >= col_groups) {
        const uint ch = get_group_id(0) - col_groups, lid = get_local_id(0);
        if (ch >= final_channels) return;
        float sum = 0.0f, comp = 0.0f;
        for (uint t = lid; t < groups_per_ch; t += get_local_size(0))
            DC_KAHAN_ADD(sum, comp, partial[(ulong)ch * groups_per_ch + t]);
        const float total = dc_group_sum(scratch, sum);
        if (lid == 0) db[db_off + ch] += total;
        return;
    }
    const int oh = G_OH(g), ow = G_OW(g), w = G_W(g), sw = G_SW(g);
    const uint gid = get_global_id(0);
    const uint t = elem ? gid / (uint)ow : gid; /* (r * nb + n) * oh + oy */
    if (t >= out_rows) return;
    const int ox0 = elem ? (int)(gid - t * (uint)ow) : 0, ox1 = elem ? ox0 + 1 : ow;
    const uint per_r = (uint)G_NB(g) * (uint)oh, r = t / per_r, nt = t - r * per_r;
    const int n = (int)(nt / (uint)oh), oy = (int)(nt - (uint)n * (uint)oh);
    const int khw = G_KH(g) * G_KW(g);
    const int ci = (int)r / khw, rem = (int)r - ci * khw;
    const int i = rem / G_KW(g), j = rem - i * G_KW(g);
    const int iy = oy * G_SH(g) - G_PH(g) + i;
    /* the row r of the column matrix holds nb*oh*ow columns, so this output row starts at
     * r*nb*oh*ow + (n*oh + oy)*ow = t*ow */
    __global float *dst = cols + cols_off + (ulong)t * (ulong)ow;
    if (iy < 0 || iy >= G_H(g)) { /* the whole row is padding */
        for (int ox = ox0; ox < ox1; ox++)
            dst[ox] = 0.0f;
        return;
    }
    const ulong at = ((ulong)(G_N0(g) + n) * G_C(g) + ci) * (ulong)(G_H(g) * w) + (ulong)iy * w;
    __global const float *src = x + x_off + at, *ys = y + y_off + at;
    int ix = j - G_PW(g) + ox0 * sw;
    for (int ox = ox0; ox < ox1; ox++, ix += sw) {
        float v = 0.0f;
        if (ix >= 0 && ix < w) {
            v = src[ix];
            if (act != DC_FACT_NONE) v = dc_fact_grad(act, mode, alpha, ys[ix], v);
        }
        dst[ox] = v;
    }
}

/* x += fold(cols), gathered: one work-item per image row (n, ci, iy) visits, for each pixel
 * of the row, every (i, j) window tap that lands on it, in the same order as the CPU's
 * scatter loop, so the sums match bit for bit and no atomics are needed. The taps of a
 * pixel are those with i = (iy + ph) mod sh, stepping by sh (output row oy one lower each
 * step), and the same along x: the divisions are paid once per row, not per tap (per
 * element and per tap they made the kernel the slowest of the step on PoCL). */
/* accumulate 0: x = fold(cols) instead (the images' every tap is in cols), then
 * + bias[ci] (has_bias) and the fused activation: a transposed convolution's epilogue.
 * elem 1 (GPUs): one work-item per pixel of those rows, the same sums. */
__kernel void dc_col2im(int16 g, __global const float *cols, ulong cols_off, __global float *x,
                        ulong x_off, uint rows, int accumulate, __global const float *bias,
                        ulong bias_off, int has_bias, int act, float alpha, int image_major,
                        int elem) {
    const int w = G_W(g), h = G_H(g), kh = G_KH(g), kw = G_KW(g), sh = G_SH(g), sw = G_SW(g);
    const uint gid = get_global_id(0);
    const uint t = elem ? gid / (uint)w : gid; /* ((n - n0) * c + ci) * h + iy */
    if (t >= rows) return;
    const int ix0 = elem ? (int)(gid - t * (uint)w) : 0, ix1 = elem ? ix0 + 1 : w;
    const int oh = G_OH(g), ow = G_OW(g);
    const int iy = (int)(t % (uint)h);
    const uint nc = t / (uint)h;
    const int ci = (int)(nc % (uint)G_C(g)), n = (int)(nc / (uint)G_C(g));
    const uint ohw = (uint)(oh * ow);
    /* columns [r][n*ohw + p], or per image [n][r][p] (a batched GEMM's output) */
    const ulong taps = (ulong)G_C(g) * (ulong)(kh * kw);
    const ulong rstride = image_major ? ohw : (ulong)G_NB(g) * ohw;
    __global const float *cn = cols + cols_off + (image_major ? (ulong)n * taps * ohw
                                                                : (ulong)n * ohw);
    __global float *xr = x + x_off + ((ulong)(G_N0(g) + n) * G_C(g) + ci) * (ulong)(h * w) +
                         (ulong)iy * (ulong)w;
    const int ry = (iy + G_PH(g)) % sh, qy = (iy + G_PH(g)) / sh;
    const float b = has_bias ? bias[bias_off + ci] : 0.0f;
    int rx = (ix0 + G_PW(g)) % sw, qx = (ix0 + G_PW(g)) / sw; /* (ix + pw) mod, div sw */
    for (int ix = ix0; ix < ix1; ix++) {
        float acc = accumulate ? xr[ix] : 0.0f;
        for (int i = ry, oy = qy; i < kh && oy >= 0; i += sh, oy--) {
            if (oy >= oh) continue;
            for (int j = rx, ox = qx; j < kw && ox >= 0; j += sw, ox--) {
                if (ox >= ow) continue;
                const ulong r = (ulong)((ci * kh + i) * kw + j);
                acc += cn[r * rstride + (ulong)(oy * ow + ox)];
            }
        }
        if (++rx == sw) {
            rx = 0;
            qx++;
        }
        if (has_bias) acc += b;
        xr[ix] = dc_fact_apply(act, alpha, acc);
    }
}

/* The run of `run` consecutive elements of an [nb][c][hw] range that this work-item takes:
 * [*i0, returned end), and (*n, *ch, *p) of its first element. */
uint dc_run_begin(int nb, int c, int hw, uint run, uint *i0, uint *p, uint *ch, uint *n) {
    const uint total = (uint)nb * (uint)c * (uint)hw;
    const ulong start = (ulong)get_global_id(0) * run; /* the padded range may pass 2^32 */
    *i0 = start < total ? (uint)start : total;
    if (*i0 == total) return total;
    const uint t = *i0 / (uint)hw;
    *p = *i0 - t * (uint)hw;
    *ch = t % (uint)c;
    *n = t / (uint)c;
    return total - *i0 < run ? total : *i0 + run;
}

/* dst[n0 + n][ch][p] = beta*dst + src[ch][n*hw + p] (+ bias[ch]). Each work-item takes a
 * run of `run` consecutive NCHW elements and steps (n, ch, p) along it, so it divides once
 * per run, not per element (the divisions dominated this pass on PoCL). */
__kernel void dc_cm_to_nchw(__global const float *src, ulong src_off, __global const float *bias,
                            ulong bias_off, int has_bias, __global float *dst, ulong dst_off,
                            int n0, int nb, int c, int hw, float beta, int act, float alpha,
                            uint run) {
    uint i0, p, ch, n;
    const uint i1 = dc_run_begin(nb, c, hw, run, &i0, &p, &ch, &n);
    if (i0 >= i1) return;
    const ulong m = (ulong)nb * (ulong)hw;
    ulong s = src_off + (ulong)ch * m + (ulong)n * hw + p;
    ulong di = dst_off + (ulong)n0 * c * hw + i0; /* NCHW: the run is contiguous */
    float b = has_bias ? bias[bias_off + ch] : 0.0f;
    for (uint i = i0; i < i1; i++, di++) {
        if (beta == 0.0f)
            dst[di] = dc_fact_apply(act, alpha, src[s] + b);
        else
            dst[di] = dc_fact_apply(act, alpha, beta * dst[di] + src[s] + b);
        s++;
        if (++p == (uint)hw) { /* next channel, or next image */
            p = 0;
            if (++ch == (uint)c) {
                ch = 0;
                n++;
            }
            s = src_off + (ulong)ch * m + (ulong)n * hw;
            if (has_bias) b = bias[bias_off + ch];
        }
    }
}

/* dst[ch][n*hw + p] = src[n0 + n][ch][p], in runs as dc_cm_to_nchw. */
__kernel void dc_nchw_to_cm(__global const float *src, ulong src_off, __global float *dst,
                            ulong dst_off, int n0, int nb, int c, int hw, uint run) {
    uint i0, p, ch, n;
    const uint i1 = dc_run_begin(nb, c, hw, run, &i0, &p, &ch, &n);
    if (i0 >= i1) return;
    const ulong m = (ulong)nb * (ulong)hw;
    ulong d = dst_off + (ulong)ch * m + (ulong)n * hw + p;
    ulong si = src_off + (ulong)n0 * c * hw + i0;
    for (uint i = i0; i < i1; i++, si++) {
        dst[d] = src[si];
        d++;
        if (++p == (uint)hw) {
            p = 0;
            if (++ch == (uint)c) {
                ch = 0;
                n++;
            }
            d = dst_off + (ulong)ch * m + (ulong)n * hw;
        }
    }
}

__kernel void dc_bias_add(__global float *y, ulong y_off, __global const float *bias,
                          ulong bias_off, uint total, int c, int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    y[y_off + idx] += bias[bias_off + (idx / (uint)hw) % (uint)c];
}

/* First stage of the per-channel gradient sums (bias gradients), many work-groups per
 * channel so that a large device stays busy: channel ch's values t = (n - n0)*hw + p of
 * images [n0, n0 + nb) are split into runs of `span`, one work-group per (channel, run);
 * partial[ch * groups_per_ch + run] = the run's sum of g = dc_fact_grad(y, dy) (dy itself
 * without a fused activation). write_cm: also store g channel-major,
 * cm[ch][t] (the transposed gradient a convolution's GEMMs take). dc_chan_final adds the
 * partials; with one run per channel (direct), the run's sum goes straight to db[ch] +=,
 * which is what dc_chan_final would add, in one launch instead of two. */
__kernel void dc_chan_grad(__global const float *dy, ulong dy_off, __global const float *y,
                           ulong y_off, int act, int mode, float alpha, __global float *cm,
                           ulong cm_off, int write_cm, int n0, int nb, int c, int hw,
                           uint groups_per_ch, uint span, __global float *partial,
                           int direct, __global float *db, ulong db_off, __local float *scratch) {
    const uint grp = get_group_id(0), ch = grp / groups_per_ch, run = grp - ch * groups_per_ch;
    const uint m = (uint)nb * (uint)hw, t0 = run * span;
    const uint t1 = t0 + span < m ? t0 + span : m;
    float sum = 0.0f, comp = 0.0f;
    /* (image i, pixel p) of value t, stepped along with t: a division only when t crosses
     * into another image (per value it dominated this kernel on PoCL) */
    const uint step = (uint)get_local_size(0);
    uint t = t0 + (uint)get_local_id(0), i = t / (uint)hw, p = t - i * (uint)hw;
    for (; t < t1; t += step) {
        const ulong at = ((ulong)(n0 + (int)i) * c + ch) * hw + p;
        const float v = act == DC_FACT_NONE ? dy[dy_off + at]
                                            : dc_fact_grad(act, mode, alpha, y[y_off + at], dy[dy_off + at]);
        if (write_cm) cm[cm_off + (ulong)ch * m + t] = v;
        DC_KAHAN_ADD(sum, comp, v);
        p += step;
        if (p >= (uint)hw) {
            i += p / (uint)hw;
            p %= (uint)hw;
        }
    }
    const float total = dc_group_sum(scratch, sum);
    if (get_local_id(0) != 0) return;
    if (direct)
        db[db_off + ch] += total;
    else
        partial[grp] = total;
}
