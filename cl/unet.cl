/* The U-Net primitives: channel slices (concatenation), group normalisation, nearest
 * upsampling, sinusoidal time embedding, self-attention. Group statistics and the backward
 * are one work-group per (image, group), whose values are contiguous; the per-channel
 * parameter gradients one or more work-groups per channel. */

/* dir 0: big[i][coff + ch][p] = small[i][ch][p]; dir 1: small[i][ch][p] += big[...] */
__kernel void dc_chan_slice(int dir, __global float *big, ulong big_off, int cbig, int coff,
                            __global float *small, ulong small_off, int csmall, uint total,
                            int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint run = (uint)csmall * (uint)hw, i = idx / run, q = idx - i * run;
    const ulong b = big_off + ((ulong)i * cbig + coff) * hw + q;
    if (dir == 0)
        big[b] = small[small_off + idx];
    else
        small[small_off + idx] += big[b];
}

/* mean/var of group gi (= i*groups + j): its m values start at gi*m. Two passes. */
__kernel void dc_gn_stats(__global const float *x, ulong x_off, __global float *mean,
                          ulong mean_off, __global float *var, ulong var_off, uint m,
                          __local float *scratch) {
    const uint gi = get_group_id(0), lid = get_local_id(0), step = get_local_size(0);
    x += x_off + (ulong)gi * m;
    float sum = 0.0f, comp = 0.0f;
    for (uint t = lid; t < m; t += step)
        DC_KAHAN_ADD(sum, comp, x[t]);
    const float mu = dc_group_sum(scratch, sum) / (float)m;
    sum = 0.0f;
    comp = 0.0f;
    for (uint t = lid; t < m; t += step) {
        const float d = x[t] - mu;
        DC_KAHAN_ADD(sum, comp, d * d);
    }
    const float v = dc_group_sum(scratch, sum) / (float)m;
    if (lid == 0) {
        mean[mean_off + gi] = mu;
        var[var_off + gi] = v;
    }
}

/* y = a*x + b with a = gamma/sqrt(var + eps), b = beta - a*mean, like the CPU reference */
__kernel void dc_gn_apply(__global const float *x, ulong x_off, __global const float *mean,
                          ulong mean_off, __global const float *var, ulong var_off,
                          __global const float *gamma, ulong gamma_off, __global const float *beta,
                          ulong beta_off, __global float *y, ulong y_off, uint total, int c, int hw,
                          int groups, float eps) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint plane = idx / (uint)hw, ch = plane % (uint)c, i = plane / (uint)c;
    const uint gi = i * (uint)groups + ch / ((uint)c / (uint)groups);
    const float a = gamma[gamma_off + ch] / sqrt(var[var_off + gi] + eps);
    const float b = beta[beta_off + ch] - a * mean[mean_off + gi];
    y[y_off + idx] = a * x[x_off + idx] + b;
}

/* dx of group gi: with g = gamma*dy over the group's m = cg*hw values,
 * dx += rstd/m * (m*g - sum g - xhat * sum g*xhat).
 * Work-groups past the n*groups of dx (final_channels of them) finish the parameter
 * gradients whose per-run sums dc_gn_bwd_param left in partial (two per run): two
 * independent jobs in one launch. */
__kernel void dc_gn_bwd_dx(__global const float *x, ulong x_off, __global const float *mean,
                           ulong mean_off, __global const float *var, ulong var_off,
                           __global const float *gamma, ulong gamma_off, __global const float *dy,
                           ulong dy_off, __global float *dx, ulong dx_off, int c, int hw,
                           int groups, float eps, uint dx_groups, uint final_channels,
                           __global const float *partial, uint groups_per_ch,
                           __global float *dgamma, ulong dgamma_off, __global float *dbeta,
                           ulong dbeta_off, __local float *scratch) {
    const uint gi = get_group_id(0), lid = get_local_id(0), step = get_local_size(0);
    if (gi >= dx_groups) {
        const uint ch = gi - dx_groups;
        if (ch >= final_channels) return;
        __global const float *p = partial + 2 * (ulong)ch * groups_per_ch;
        float s1 = 0.0f, c1 = 0.0f, s2 = 0.0f, c2 = 0.0f;
        for (uint r = lid; r < groups_per_ch; r += step) {
            DC_KAHAN_ADD(s1, c1, p[2 * r]);
            DC_KAHAN_ADD(s2, c2, p[2 * r + 1]);
        }
        const float sdy = dc_group_sum(scratch, s1);
        const float sdyx = dc_group_sum(scratch, s2);
        if (lid == 0) {
            dgamma[dgamma_off + ch] += sdyx;
            dbeta[dbeta_off + ch] += sdy;
        }
        return;
    }
    const uint cg = (uint)c / (uint)groups, m = cg * (uint)hw;
    const uint ch0 = (gi % (uint)groups) * cg;
    const ulong base = (ulong)gi * m;
    x += x_off + base;
    dy += dy_off + base;
    dx += dx_off + base;
    gamma += gamma_off + ch0;
    const float mu = mean[mean_off + gi], rstd = 1.0f / sqrt(var[var_off + gi] + eps);
    float s1 = 0.0f, c1 = 0.0f, s2 = 0.0f, c2 = 0.0f;
    for (uint t = lid; t < m; t += step) {
        const float g = gamma[t / (uint)hw] * dy[t];
        DC_KAHAN_ADD(s1, c1, g);
        DC_KAHAN_ADD(s2, c2, g * ((x[t] - mu) * rstd));
    }
    const float sg = dc_group_sum(scratch, s1);
    const float sgx = dc_group_sum(scratch, s2);
    const float fm = (float)m, k = rstd / fm;
    for (uint t = lid; t < m; t += step) {
        const float xh = (x[t] - mu) * rstd;
        dx[t] += k * (fm * (gamma[t / (uint)hw] * dy[t]) - sg - xh * sgx);
    }
}

/* dgamma[ch] += sum_{i,p} dy*xhat, dbeta[ch] += sum_{i,p} dy over the channel's m = n*hw
 * values, split into runs of `span` (work-group ch*groups_per_ch + run). One run per
 * channel adds to dgamma and dbeta directly; several write partial[2*grp] (sum dy) and
 * partial[2*grp + 1] (sum dy*xhat) for dc_gn_bwd_dx's extra work-groups to add. */
__kernel void dc_gn_bwd_param(__global const float *x, ulong x_off, __global const float *mean,
                              ulong mean_off, __global const float *var, ulong var_off,
                              __global const float *dy, ulong dy_off, __global float *dgamma,
                              ulong dgamma_off, __global float *dbeta, ulong dbeta_off, int n,
                              int c, int hw, int groups, float eps, uint groups_per_ch, uint span,
                              __global float *partial, __local float *scratch) {
    const uint grp = get_group_id(0), ch = grp / groups_per_ch, run = grp - ch * groups_per_ch;
    const uint lid = get_local_id(0), step = get_local_size(0);
    const uint m = (uint)n * (uint)hw, j = ch / ((uint)c / (uint)groups), t0 = run * span;
    const uint t1 = t0 + span < m ? t0 + span : m;
    x += x_off;
    dy += dy_off;
    float s1 = 0.0f, c1 = 0.0f, s2 = 0.0f, c2 = 0.0f;
    for (uint t = t0 + lid; t < t1; t += step) {
        const uint i = t / (uint)hw, p = t - i * (uint)hw, gi = i * (uint)groups + j;
        const ulong o = ((ulong)i * c + ch) * hw + p;
        const float rstd = 1.0f / sqrt(var[var_off + gi] + eps);
        DC_KAHAN_ADD(s1, c1, dy[o]);
        DC_KAHAN_ADD(s2, c2, dy[o] * ((x[o] - mean[mean_off + gi]) * rstd));
    }
    const float sdy = dc_group_sum(scratch, s1);
    const float sdyx = dc_group_sum(scratch, s2);
    if (lid != 0) return;
    if (groups_per_ch == 1) {
        dgamma[dgamma_off + ch] += sdyx;
        dbeta[dbeta_off + ch] += sdy;
    } else {
        partial[2 * (ulong)grp] = sdy;
        partial[2 * (ulong)grp + 1] = sdyx;
    }
}

/* y[pl][oy][ox] = x[pl][oy/s][ox/s]; one work-item per output value */
__kernel void dc_upsample_fwd(__global const float *x, ulong x_off, __global float *y, ulong y_off,
                              uint total, int h, int w, int s) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint ow = (uint)w * (uint)s, oh = (uint)h * (uint)s;
    const uint ox = idx % ow, oy = (idx / ow) % oh, pl = idx / (ow * oh);
    y[y_off + idx] = x[x_off + ((ulong)pl * h + oy / (uint)s) * w + ox / (uint)s];
}

/* dx[pl][iy][ix] += the s x s block of dy, summed in row-major order like the CPU */
__kernel void dc_upsample_bwd(__global const float *dy, ulong dy_off, __global float *dx,
                              ulong dx_off, uint total, int h, int w, int s) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint ix = idx % (uint)w, iy = (idx / (uint)w) % (uint)h, pl = idx / ((uint)w * h);
    const uint ow = (uint)w * (uint)s, oh = (uint)h * (uint)s;
    float acc = 0.0f;
    for (uint a = 0; a < (uint)s; a++)
        for (uint b = 0; b < (uint)s; b++)
            acc += dy[dy_off + ((ulong)pl * oh + iy * (uint)s + a) * ow + ix * (uint)s + b];
    dx[dx_off + idx] += acc;
}

/* y[r][k] = sin(scale*t[r]*f_k), y[r][nf + k] = cos(...), f_k = exp(-log(P)*k/nf), nf = dim/2 */
__kernel void dc_time_embed(__global const float *t, ulong t_off, __global float *y, ulong y_off,
                            uint total, int dim, float scale, float max_period) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint nf = (uint)dim / 2u, r = idx / nf, k = idx - r * nf; /* `half` is a type */
    const float f = exp(-log(max_period) * (float)k / (float)nf);
    const float a = scale * t[t_off + r] * f;
    y[y_off + (ulong)r * dim + k] = sin(a);
    y[y_off + (ulong)r * dim + nf + k] = cos(a);
}

/* ---- self-attention. qkv holds per image c query, c key and c value channels of hw
 * positions; att [n, hw, hw] the probabilities (row p: query p over the keys j). One
 * work-item per score, per row (softmax) or per output value. */

/* att[i][p][j] = scale * sum_ch q[ch][p] k[ch][j]: the scores, before dc_attn_softmax */
__kernel void dc_attn_scores(__global const float *qkv, ulong qkv_off, __global float *att,
                             ulong att_off, uint total, int c, int hw, float scale) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint sq = (uint)hw * (uint)hw, i = idx / sq, r = idx - i * sq;
    const uint p = r / (uint)hw, j = r - p * (uint)hw;
    __global const float *q = qkv + qkv_off + (ulong)i * 3 * c * hw;
    __global const float *k = q + (ulong)c * hw;
    float s = 0.0f;
    for (int ch = 0; ch < c; ch++)
        s += q[(ulong)ch * hw + p] * k[(ulong)ch * hw + j];
    att[att_off + idx] = scale * s;
}

/* each row of `rows` rows of hw scores -> its softmax in place (loss.cl's dc_softmax_row:
 * the row's maximum subtracted first, the sum compensated) */
__kernel void dc_attn_softmax(__global float *att, ulong att_off, uint rows, int hw) {
    const uint r = get_global_id(0);
    if (r >= rows) return;
    __global float *a = att + att_off + (ulong)r * hw;
    dc_softmax_row(a, a, hw);
}

/* y[i][ch][p] = sum_j v[ch][j] att[i][p][j] */
__kernel void dc_attn_out(__global const float *qkv, ulong qkv_off, __global const float *att,
                          ulong att_off, __global float *y, ulong y_off, uint total, int c,
                          int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint plane = (uint)c * (uint)hw, i = idx / plane, r = idx - i * plane;
    const uint ch = r / (uint)hw, p = r - ch * (uint)hw;
    __global const float *v = qkv + qkv_off + ((ulong)i * 3 * c + 2 * c + ch) * hw;
    __global const float *a = att + att_off + ((ulong)i * hw + p) * hw;
    float s = 0.0f;
    for (int j = 0; j < hw; j++)
        s += v[j] * a[j];
    y[y_off + idx] = s;
}

/* The probabilities' gradient ds[i][p][j] = sum_ch dy[ch][p] v[ch][j], before
 * dc_attn_softmax_bwd turns it into the scores' */
__kernel void dc_attn_dprobs(__global const float *qkv, ulong qkv_off, __global const float *dy,
                             ulong dy_off, __global float *ds, ulong ds_off, uint total, int c,
                             int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint sq = (uint)hw * (uint)hw, i = idx / sq, r = idx - i * sq;
    const uint p = r / (uint)hw, j = r - p * (uint)hw;
    __global const float *v = qkv + qkv_off + ((ulong)i * 3 * c + 2 * c) * hw;
    __global const float *d = dy + dy_off + (ulong)i * c * hw;
    float s = 0.0f;
    for (int ch = 0; ch < c; ch++)
        s += d[(ulong)ch * hw + p] * v[(ulong)ch * hw + j];
    ds[ds_off + idx] = s;
}

/* per row: ds = att * (ds - sum_j att * ds), the softmax's backward */
__kernel void dc_attn_softmax_bwd(__global const float *att, ulong att_off, __global float *ds,
                                  ulong ds_off, uint rows, int hw) {
    const uint r = get_global_id(0);
    if (r >= rows) return;
    __global const float *a = att + att_off + (ulong)r * hw;
    __global float *d = ds + ds_off + (ulong)r * hw;
    float sum = 0.0f, comp = 0.0f;
    for (int j = 0; j < hw; j++)
        DC_KAHAN_ADD(sum, comp, a[j] * d[j]);
    for (int j = 0; j < hw; j++)
        d[j] = a[j] * (d[j] - sum);
}

/* dqkv += the gradient of one value of qkv (ds: the scores' gradient):
 * query ch at p:  scale * sum_j ds[p][j] k[ch][j]
 * key ch at j:    scale * sum_p ds[p][j] q[ch][p]
 * value ch at j:  sum_p dy[ch][p] att[p][j] */
__kernel void dc_attn_dqkv(__global const float *qkv, ulong qkv_off, __global const float *att,
                           ulong att_off, __global const float *dy, ulong dy_off,
                           __global const float *ds, ulong ds_off, __global float *dqkv,
                           ulong dqkv_off, uint total, int c, int hw, float scale) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const uint img = 3u * (uint)c * (uint)hw, i = idx / img, r = idx - i * img;
    const uint ch3 = r / (uint)hw, pos = r - ch3 * (uint)hw;
    const ulong base = (ulong)i * img, sq0 = (ulong)i * hw * hw;
    float s = 0.0f;
    if (ch3 < (uint)c) {
        __global const float *k = qkv + qkv_off + base + ((ulong)c + ch3) * hw;
        __global const float *row = ds + ds_off + sq0 + (ulong)pos * hw;
        for (int j = 0; j < hw; j++)
            s += row[j] * k[j];
        s *= scale;
    } else if (ch3 < 2u * (uint)c) {
        __global const float *q = qkv + qkv_off + base + (ulong)(ch3 - (uint)c) * hw;
        __global const float *col = ds + ds_off + sq0 + pos;
        for (int p = 0; p < hw; p++)
            s += col[(ulong)p * hw] * q[p];
        s *= scale;
    } else {
        __global const float *d = dy + dy_off + ((ulong)i * c + (ch3 - 2u * (uint)c)) * hw;
        __global const float *col = att + att_off + sq0 + pos;
        for (int p = 0; p < hw; p++)
            s += d[p] * col[(ulong)p * hw];
    }
    dqkv[dqkv_off + idx] += s;
}
