/* Pooling: max-pool with int32 switches (index iy*w + ix into the input plane), its
 * backward and max-unpool in gather form (deterministic, no atomics), and global
 * average pooling. Geometry as in conv.cl (G_ macros, int16). */

/* Output windows (oy in [*lo, *hi]) whose rows cover input row iy: oy*s - p <= iy and
 * iy <= oy*s - p + k - 1. */
void dc_covering(int iy, int k, int s, int p, int out, int *lo, int *hi) {
    const int a = iy + p - k + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    const int b = (iy + p) / s;
    *hi = b < out - 1 ? b : out - 1;
}

/* Input pixel idx of the pool's planes (h x w each): returns its plane, sets *me to its
 * index in the plane and [*oy0, *oy1] x [*ox0, *ox1] to the output windows covering it. */
uint dc_pixel_windows(int16 g, uint idx, int *me, int *oy0, int *oy1, int *ox0, int *ox1) {
    const int w = G_W(g), h = G_H(g);
    const int ix = (int)(idx % (uint)w);
    const uint t = idx / (uint)w;
    const int iy = (int)(t % (uint)h);
    *me = iy * w + ix;
    dc_covering(iy, G_KH(g), G_SH(g), G_PH(g), G_OH(g), oy0, oy1);
    dc_covering(ix, G_KW(g), G_SW(g), G_PW(g), G_OW(g), ox0, ox1);
    return t / (uint)h;
}

/* One work-item per output row (plane, oy), its ow outputs in turn: the divisions once
 * per row (per element they were most of this kernel's time on PoCL). Ties keep the first
 * maximum in window order. elem 1 (GPUs): one work-item per output, coalesced stores. */
__kernel void dc_maxpool_fwd(int16 g, __global const float *x, ulong x_off, __global float *y,
                             ulong y_off, __global int *sw, ulong sw_off, uint rows, int elem) {
    const uint gid = get_global_id(0);
    const uint t = elem ? gid / (uint)G_OW(g) : gid; /* plane * oh + oy */
    if (t >= rows) return;
    const int ox0 = elem ? (int)(gid - t * (uint)G_OW(g)) : 0, ox1 = elem ? ox0 + 1 : G_OW(g);
    const int oy = (int)(t % (uint)G_OH(g)), w = G_W(g);
    const uint plane = t / (uint)G_OH(g);
    __global const float *src = x + x_off + (ulong)plane * (ulong)(G_H(g) * w);
    const ulong row = (ulong)t * (ulong)G_OW(g);
    for (int ox = ox0; ox < ox1; ox++) {
        float best = -INFINITY;
        int arg = -1;
        for (int i = 0; i < G_KH(g); i++) {
            const int iy = oy * G_SH(g) - G_PH(g) + i;
            if (iy < 0 || iy >= G_H(g)) continue;
            for (int j = 0; j < G_KW(g); j++) {
                const int ix = ox * G_SW(g) - G_PW(g) + j;
                if (ix < 0 || ix >= w) continue;
                const float v = src[iy * w + ix];
                if (v > best || arg < 0) {
                    best = v;
                    arg = iy * w + ix;
                }
            }
        }
        y[y_off + row + ox] = arg >= 0 ? best : 0.0f;
        sw[sw_off + row + ox] = arg;
    }
}

/* dx += dy routed through the switches, gathered: each input pixel loops over the
 * output windows that can contain it, in increasing output order (the CPU's order), and
 * adds dy where the switch points at it. */
__kernel void dc_maxpool_bwd(int16 g, __global const float *dy, ulong dy_off,
                             __global const int *sw, ulong sw_off, __global float *dx, ulong dx_off,
                             uint total) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    int me, oy0, oy1, ox0, ox1;
    const uint plane = dc_pixel_windows(g, idx, &me, &oy0, &oy1, &ox0, &ox1);
    const ulong out_base = (ulong)plane * (ulong)(G_OH(g) * G_OW(g));
    float acc = dx[dx_off + idx];
    for (int oy = oy0; oy <= oy1; oy++)
        for (int ox = ox0; ox <= ox1; ox++) {
            const ulong o = out_base + (ulong)(oy * G_OW(g) + ox);
            if (sw[sw_off + o] == me) acc += dy[dy_off + o];
        }
    dx[dx_off + idx] = acc;
}

/* The same for windows that do not overlap (kernel <= stride, every preset's pool): each
 * input pixel is the switch of at most one output, so one work-item per output adds its
 * gradient at its switch without a race; the single add per pixel matches the gather. */
__kernel void dc_maxpool_bwd_scatter(int16 g, __global const float *dy, ulong dy_off,
                                     __global const int *sw, ulong sw_off, __global float *dx,
                                     ulong dx_off, uint rows, int elem) {
    const uint gid = get_global_id(0);
    /* one output row (plane, oy) per work-item, or (elem) one output */
    const uint t = elem ? gid / (uint)G_OW(g) : gid;
    if (t >= rows) return;
    const int ox0 = elem ? (int)(gid - t * (uint)G_OW(g)) : 0, ox1 = elem ? ox0 + 1 : G_OW(g);
    const uint plane = t / (uint)G_OH(g);
    __global float *d = dx + dx_off + (ulong)plane * (ulong)(G_H(g) * G_W(g));
    const ulong row = (ulong)t * (ulong)G_OW(g);
    for (int ox = ox0; ox < ox1; ox++) {
        const int a = sw[sw_off + row + ox];
        if (a >= 0) d[a] += dy[dy_off + row + ox];
    }
}

/* y = 0 except y[sw[o]] = x[o]; g is the pool that made the switches, so y has its
 * input planes (h x w). Gathered like the backward; when windows overlap and share a
 * switch the last one in output order wins, as in the CPU's scatter loop. */
__kernel void dc_unpool_fwd(int16 g, __global const float *x, ulong x_off, __global const int *sw,
                            ulong sw_off, __global float *y, ulong y_off, uint total) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    int me, oy0, oy1, ox0, ox1;
    const uint plane = dc_pixel_windows(g, idx, &me, &oy0, &oy1, &ox0, &ox1);
    const ulong small_base = (ulong)plane * (ulong)(G_OH(g) * G_OW(g));
    /* the first window (row-major) pointing here writes the pixel, as on the CPU */
    float v = 0.0f;
    int found = 0;
    for (int oy = oy0; oy <= oy1 && !found; oy++)
        for (int ox = ox0; ox <= ox1; ox++) {
            const ulong o = small_base + (ulong)(oy * G_OW(g) + ox);
            if (sw[sw_off + o] == me) {
                v = x[x_off + o];
                found = 1;
                break;
            }
        }
    y[y_off + idx] = v;
}

/* dx[o] += dy[plane][sw[o]], one item per small (pooled) element, but only for the first
 * window (row-major) of its plane whose switch is sw[o]: overlapping windows can share a
 * switch and the unpooled pixel is written once, so one window takes its gradient. */
__kernel void dc_unpool_bwd(int16 g, __global const float *dy, ulong dy_off, __global const int *sw,
                            ulong sw_off, __global float *dx, ulong dx_off, uint total) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    const int a = sw[sw_off + idx];
    if (a < 0) return;
    const uint small = (uint)(G_OH(g) * G_OW(g));
    const uint plane = idx / small, o = idx - plane * small;
    const int oy = (int)(o / (uint)G_OW(g)), ox = (int)(o - (uint)oy * (uint)G_OW(g));
    int oy0, oy1, ox0, ox1;
    dc_covering(a / G_W(g), G_KH(g), G_SH(g), G_PH(g), G_OH(g), &oy0, &oy1);
    dc_covering(a % G_W(g), G_KW(g), G_SW(g), G_PW(g), G_OW(g), &ox0, &ox1);
    __global const int *plane_sw = sw + sw_off + (ulong)plane * small;
    for (int y = oy0; y <= oy; y++)
        for (int x = ox0; x <= ox1 && (y < oy || x < ox); x++)
            if (plane_sw[y * G_OW(g) + x] == a) return; /* an earlier window writes it */
    const ulong big = (ulong)(G_H(g) * G_W(g));
    dx[dx_off + idx] += dy[dy_off + (ulong)plane * big + (ulong)a];
}

/* y[i] = mean over the plane; one work-item per (n, c) plane. */
__kernel void dc_gap_fwd(__global const float *x, ulong x_off, __global float *y, ulong y_off,
                         int nc, int hw) {
    const uint i = get_global_id(0);
    if (i >= (uint)nc) return;
    __global const float *src = x + x_off + (ulong)i * hw;
    float sum = 0.0f, comp = 0.0f;
    for (int p = 0; p < hw; p++)
        DC_KAHAN_ADD(sum, comp, src[p]);
    y[y_off + i] = sum / (float)hw;
}

__kernel void dc_gap_bwd(__global const float *dy, ulong dy_off, __global float *dx, ulong dx_off,
                         uint total, int hw) {
    const uint idx = get_global_id(0);
    if (idx >= total) return;
    dx[dx_off + idx] += dy[dy_off + idx / (uint)hw] / (float)hw;
}
