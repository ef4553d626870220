/* CPU pooling: max pooling with switches, unpooling through them, global average pooling. */

#include <math.h>
#include <string.h>

#include "cpu_internal.h"

/* ---- pooling ---- */
dc_status dc_cpu_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw) {
    (void)be;
    const float *px = F(x);
    float *py = F(y);
    int32_t *ps = IP(sw);
    const int planes = g->n * g->c;
    const size_t in_plane = (size_t)g->h * g->w, out_plane = (size_t)g->oh * g->ow;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
        /* the common 2x2/2 pool: no bounds tests, window order (0,0) (0,1) (1,0) (1,1) and
         * first-maximum ties as in the general loop (measured 9% of a training step before) */
#pragma omp parallel for schedule(static)
        for (int pl = 0; pl < planes; pl++) {
            const float *src = px + pl * in_plane;
            float *dst = py + pl * out_plane;
            int32_t *sws = ps + pl * out_plane;
            for (int oy = 0; oy < g->oh; oy++) {
                const float *restrict r0 = src + (size_t)(2 * oy) * g->w, *restrict r1 = r0 + g->w;
                float *restrict drow = dst + (size_t)oy * g->ow;
                int32_t *restrict srow = sws + (size_t)oy * g->ow;
                const int32_t base = 2 * oy * g->w, w = g->w;
                /* selects, no branches: the loop vectorizes (a branch per tap mispredicts
                 * on every other window) */
#pragma omp simd
                for (int ox = 0; ox < g->ow; ox++) {
                    const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox],
                                d = r1[2 * ox + 1];
                    const int tb = b > a;
                    const float m1 = tb ? b : a;
                    const int32_t k1 = tb ? 1 : 0;
                    const int tc = c > m1;
                    const float m2 = tc ? c : m1;
                    const int32_t k2 = tc ? w : k1;
                    const int td = d > m2;
                    const float best = td ? d : m2;
                    const int32_t k = td ? w + 1 : k2;
                    drow[ox] = best;
                    srow[ox] = base + 2 * ox + k;
                }
            }
        }
        return DC_OK;
    }
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *src = px + pl * in_plane;
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                float best = -INFINITY;
                int32_t arg = -1;
                for (int i = 0; i < g->kh; i++) {
                    const int iy = oy * g->sh - g->ph + i;
                    if (iy < 0 || iy >= g->h) continue;
                    for (int j = 0; j < g->kw; j++) {
                        const int ix = ox * g->sw - g->pw + j;
                        if (ix < 0 || ix >= g->w) continue;
                        const float v = src[iy * g->w + ix];
                        if (v > best || arg < 0) {
                            best = v;
                            arg = iy * g->w + ix;
                        }
                    }
                }
                const size_t o = pl * out_plane + (size_t)oy * g->ow + ox;
                py[o] = arg >= 0 ? best : 0.0f;
                ps[o] = arg;
            }
    }
    return DC_OK;
}

/* With overlapping windows several pooled values can share a switch; unpool writes that
 * pixel once, so only the first window (in row-major order) that points at a pixel is its
 * writer and receives the gradient. */
static int first_window_with_switch(const dc_win2d *g, const int32_t *sw_plane, int oy, int ox,
                                    int32_t a) {
    const int iy = a / g->w, ix = a % g->w;
    int y0 = iy + g->ph - g->kh + 1, x0 = ix + g->pw - g->kw + 1;
    y0 = y0 <= 0 ? 0 : (y0 + g->sh - 1) / g->sh;
    x0 = x0 <= 0 ? 0 : (x0 + g->sw - 1) / g->sw;
    for (int y = y0; y <= oy; y++)
        for (int x = x0; x < g->ow && (y < oy || x < ox); x++) {
            if ((x * g->sw - g->pw) > ix) break;
            if (sw_plane[y * g->ow + x] == a) return 0;
        }
    return 1;
}

/* What a pass through the switches does between the pooled tensor (`small`, one value per
 * window) and the unpooled one (`big`, the input's size). */
typedef enum switch_pass {
    SWITCH_SCATTER_ADD,   /* big[switch] += small: max-pool backward */
    SWITCH_SCATTER_FIRST, /* big = 0, big[switch] = small of the first window: unpool forward */
    SWITCH_GATHER_FIRST,  /* small += big[switch], first window only: unpool backward */
} switch_pass;

/* The one traversal of one plane's switches. Its callers below pass `pass` as a constant,
 * so each inlined copy is as tight as a loop written for that pass alone. */
static inline void through_switches(const dc_win2d *g, int plane, const int32_t *sw, float *big,
                                    float *small, switch_pass pass) {
    const size_t big_plane = (size_t)g->h * g->w, small_plane = (size_t)g->oh * g->ow;
    const int32_t *s = sw + plane * small_plane;
    float *b = big + plane * big_plane, *p = small + plane * small_plane;
    const int overlap = g->kh > g->sh || g->kw > g->sw;
    /* overlapping windows can share a switch and unpool writes the pixel of the first
     * window (row-major): walk backwards so that it writes last */
    const int backwards = pass == SWITCH_SCATTER_FIRST;
    if (pass == SWITCH_SCATTER_FIRST) memset(b, 0, big_plane * sizeof(float));
    for (size_t i = 0; i < small_plane; i++) {
        const size_t o = backwards ? small_plane - 1 - i : i;
        const int32_t a = s[o];
        if (a < 0) continue;
        if (pass == SWITCH_SCATTER_ADD)
            b[a] += p[o];
        else if (pass == SWITCH_SCATTER_FIRST)
            b[a] = p[o];
        else if (!overlap || first_window_with_switch(g, s, (int)(o / g->ow), (int)(o % g->ow), a))
            p[o] += b[a];
    }
}

/* A pass over every plane, a plane per thread; `pass` is tested once a plane. */
static dc_status switch_pass_planes(const dc_win2d *g, dc_ptr sw, dc_ptr big, dc_ptr small,
                                    switch_pass pass) {
    const int planes = g->n * g->c;
    const int32_t *s = IP(sw);
    float *b = F(big), *p = F(small);
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        if (pass == SWITCH_SCATTER_ADD)
            through_switches(g, pl, s, b, p, SWITCH_SCATTER_ADD);
        else if (pass == SWITCH_SCATTER_FIRST)
            through_switches(g, pl, s, b, p, SWITCH_SCATTER_FIRST);
        else
            through_switches(g, pl, s, b, p, SWITCH_GATHER_FIRST);
    }
    return DC_OK;
}

dc_status dc_cpu_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx) {
    (void)be;
    return switch_pass_planes(g, sw, dx, dy, SWITCH_SCATTER_ADD);
}

dc_status dc_cpu_unpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr sw, dc_ptr y) {
    (void)be;
    return switch_pass_planes(g, sw, y, x, SWITCH_SCATTER_FIRST);
}

dc_status dc_cpu_unpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx) {
    (void)be;
    return switch_pass_planes(g, sw, dy, dx, SWITCH_GATHER_FIRST);
}

dc_status dc_cpu_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) {
    (void)be;
    const float *px = F(x);
    float *py = F(y);
#pragma omp parallel for schedule(static) if ((size_t)nc * hw > 65536)
    for (int i = 0; i < nc; i++) {
        double s = 0;
        for (int p = 0; p < hw; p++) s += px[(size_t)i * hw + p];
        py[i] = (float)(s / hw);
    }
    return DC_OK;
}

dc_status dc_cpu_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) {
    (void)be;
    const float *pdy = F(dy);
    float *pdx = F(dx);
#pragma omp parallel for schedule(static) if ((size_t)nc * hw > 65536)
    for (int i = 0; i < nc; i++) {
        const float g = pdy[i] / (float)hw;
        for (int p = 0; p < hw; p++) pdx[(size_t)i * hw + p] += g;
    }
    return DC_OK;
}
