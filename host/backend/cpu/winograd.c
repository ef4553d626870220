/* The CPU backend's Winograd convolutions (see cpu_internal.h): 3x3 stride-1 pad-1 layers,
 * forward and both gradients, per group of images, parallel over images like the other
 * fused convolutions in backend_cpu.c. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

/* ---- Winograd F(m x m, 3x3): 3x3 stride-1 pad-1 convolutions ----
 * Each m x m output tile is A^T [(G g G^T) . (B^T d B)] A for its (m+2)^2 input tile d
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): (m+2)^2
 * multiplications per tile and channel pair instead of 9 m^2. With the a*a transform
 * positions xi as separate matrices, the channel sums are a*a GEMMs per group of images:
 *   forward   M_xi [T, oc] = V_xi [T, c] U_xi^T                 (U = G g G^T, V = B^T d B)
 *   backward  dM = A dY A^T per tile;  dU_xi += dM_xi^T V_xi;  dV_xi = dM_xi U_xi;
 *             dx += B dV B^T per tile (the adjoint of the input transform), dw = G^T dU G.
 * T is the number of tiles of the group (several images for small planes, so that the
 * GEMMs stay large). m = 4 by default (2.25 multiplications per output instead of 9;
 * DECONV_CONV=winograd2 selects m = 2, 4 per output, with a tenth of the rounding error;
 * DECONV_CONV=gemm turns Winograd off). Relative error against the direct sum on the
 * test networks: 4e-6 (m = 4), 4e-7 (m = 2). */
#define WINO_MIN_TILES 256


/* Transform matrices of F(m x m, 3x3), alpha = m + 2 (Lavin & Gray, section 4); the
 * F(4x4) transforms below are these matrices written out. */
typedef struct wino_mats {
    int m, a;
    float G[6][3];
} wino_mats;

static const wino_mats WINO_F2 = {2, 4, {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}}};
/* B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 * A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
static const wino_mats WINO_F4 = {4, 6,
                                  {{1.0f / 4, 0, 0},
                                   {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                   {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                   {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                   {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                   {0, 0, 1}}};

typedef struct wino_geom {
    const wino_mats *k;
    int m, a, na;                       /* output tile, input tile, a * a transform planes */
    int c, oc, h, w, th, tw, tiles, ib; /* tiles per image, images per group */
    int ph, pw;                         /* padded plane: m * th + 2 rows, m * tw + 2 columns */
} wino_geom;

static wino_geom wino_geometry(const dc_win2d *g, int oc, int per_thread_images, int m) {
    wino_geom q;
    q.k = m == 4 ? &WINO_F4 : &WINO_F2;
    q.m = q.k->m, q.a = q.k->a, q.na = q.a * q.a;
    q.c = g->c, q.oc = oc, q.h = g->h, q.w = g->w;
    q.th = (g->h + q.m - 1) / q.m, q.tw = (g->w + q.m - 1) / q.m, q.tiles = q.th * q.tw;
    q.ib = (WINO_MIN_TILES + q.tiles - 1) / q.tiles;
    if (q.ib > per_thread_images) q.ib = per_thread_images;
    if (q.ib < 1) q.ib = 1;
    q.ph = q.m * q.th + 2, q.pw = q.m * q.tw + 2;
    return q;
}

/* Largest per-thread tile scratch (V and M of one image) taken before falling back to
 * im2col + GEMM, whose memory is bounded by its row blocks: 64 MB holds a 224x224 plane
 * with 64 + 64 channels under F(4x4) (58 MB). */
#define WINO_MAX_SCRATCH (64u << 20)

int dc_cpu_wino_ok(const cpu_backend *cb, const dc_win2d *g, int oc) {
    if (!(cb->winograd && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->ph == 1 &&
          g->pw == 1 && g->oh == g->h && g->ow == g->w && g->c >= 8 && oc >= 8))
        return 0;
    const wino_geom q = wino_geometry(g, oc, 1, cb->winograd);
    return (double)q.tiles * q.na * ((double)g->c + oc) * sizeof(float) <= WINO_MAX_SCRATCH;
}

/* G x (3 -> 6) and G^T x (6 -> 3) of F(4x4, 3x3), from the G above */
#define F4_G(o0, o1, o2, o3, o4, o5, x0, x1, x2)                                              \
    o0 = 0.25f * (x0);                                                                        \
    o1 = (-1.0f / 6) * ((x0) + (x1) + (x2));                                                  \
    o2 = (-1.0f / 6) * ((x0) - (x1) + (x2));                                                  \
    o3 = (1.0f / 24) * (x0) + (1.0f / 12) * (x1) + (1.0f / 6) * (x2);                         \
    o4 = (1.0f / 24) * (x0) - (1.0f / 12) * (x1) + (1.0f / 6) * (x2);                         \
    o5 = (x2)
#define F4_GT(o0, o1, o2, x0, x1, x2, x3, x4, x5)                                             \
    o0 = 0.25f * (x0) - (1.0f / 6) * ((x1) + (x2)) + (1.0f / 24) * ((x3) + (x4));            \
    o1 = (1.0f / 6) * ((x2) - (x1)) + (1.0f / 12) * ((x3) - (x4));                           \
    o2 = (1.0f / 6) * ((x3) + (x4) - (x1) - (x2)) + (x5)

/* U [a*a][oc][c] = G g G^T from w [oc][c][3][3] */
static void wino_weights(const wino_geom *q, const float *w, float *U, float *wt) {
    const int a = q->a, oc = q->oc, c = q->c, n = oc * c;
    const wino_mats *K = q->k;
    if (q->m == 4) {
        /* straight-line, vectorized across the (oc, c) pairs: the 3x3 kernels are first
         * transposed into wt [9][n] so that the loads are contiguous too */
#pragma omp parallel for schedule(static)
        for (int oi = 0; oi < n; oi++)
            for (int k = 0; k < 9; k++) wt[(size_t)k * n + oi] = w[(size_t)oi * 9 + k];
        float *restrict u = U;
        const float *restrict gt = wt;
#pragma omp parallel for simd schedule(static)
        for (int oi = 0; oi < n; oi++) {
#define G9(k) gt[(size_t)(k) * n + oi]
#define COL(j)                                                                                \
    float t0##j, t1##j, t2##j, t3##j, t4##j, t5##j;                                           \
    F4_G(t0##j, t1##j, t2##j, t3##j, t4##j, t5##j, G9(j), G9(3 + j), G9(6 + j))
            COL(0);
            COL(1);
            COL(2);
#define ROW(i)                                                                                \
    {                                                                                         \
        float o0, o1, o2, o3, o4, o5;                                                         \
        F4_G(o0, o1, o2, o3, o4, o5, t##i##0, t##i##1, t##i##2);                              \
        u[(size_t)(6 * i + 0) * n + oi] = o0, u[(size_t)(6 * i + 1) * n + oi] = o1;           \
        u[(size_t)(6 * i + 2) * n + oi] = o2, u[(size_t)(6 * i + 3) * n + oi] = o3;           \
        u[(size_t)(6 * i + 4) * n + oi] = o4, u[(size_t)(6 * i + 5) * n + oi] = o5;           \
    }
            ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
#undef COL
#undef G9
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int oi = 0; oi < n; oi++) {
        const float *g = w + (size_t)oi * 9;
        float t[6][3];
        for (int i = 0; i < a; i++)
            for (int j = 0; j < 3; j++)
                t[i][j] = K->G[i][0] * g[j] + K->G[i][1] * g[3 + j] + K->G[i][2] * g[6 + j];
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                U[(size_t)(i * a + j) * n + oi] =
                    t[i][0] * K->G[j][0] + t[i][1] * K->G[j][1] + t[i][2] * K->G[j][2];
    }
}

/* dw [oc][c][3][3] += G^T dU G, dU [a*a][oc][c] */
static void wino_weights_adjoint(const wino_geom *q, const float *dU, float *dw, float *gt) {
    const int a = q->a, oc = q->oc, c = q->c, n = oc * c;
    const wino_mats *K = q->k;
    if (q->m == 4) {
        /* into gt [9][n] with contiguous stores, then added to dw [n][9] */
        const float *restrict u = dU;
        float *restrict o9 = gt;
#pragma omp parallel for simd schedule(static)
        for (int oi = 0; oi < n; oi++) {
#define LD(i, j) u[(size_t)(6 * (i) + (j)) * n + oi]
#define COL(j)                                                                                \
    float p0##j, p1##j, p2##j;                                                                \
    F4_GT(p0##j, p1##j, p2##j, LD(0, j), LD(1, j), LD(2, j), LD(3, j), LD(4, j), LD(5, j))
            COL(0);
            COL(1);
            COL(2);
            COL(3);
            COL(4);
            COL(5);
#define ROW(r)                                                                                \
    {                                                                                         \
        float e0, e1, e2;                                                                     \
        F4_GT(e0, e1, e2, p##r##0, p##r##1, p##r##2, p##r##3, p##r##4, p##r##5);              \
        o9[(size_t)(3 * r + 0) * n + oi] = e0, o9[(size_t)(3 * r + 1) * n + oi] = e1;         \
        o9[(size_t)(3 * r + 2) * n + oi] = e2;                                                \
    }
            ROW(0) ROW(1) ROW(2)
#undef ROW
#undef COL
#undef LD
        }
#pragma omp parallel for schedule(static)
        for (int oi = 0; oi < n; oi++)
            for (int k = 0; k < 9; k++) dw[(size_t)oi * 9 + k] += gt[(size_t)k * n + oi];
        return;
    }
#pragma omp parallel for schedule(static)
    for (int oi = 0; oi < n; oi++) {
        float p[3][6];
        for (int r = 0; r < 3; r++)
            for (int j = 0; j < a; j++) {
                float v = 0;
                for (int i = 0; i < a; i++) v += K->G[i][r] * dU[(size_t)(i * a + j) * n + oi];
                p[r][j] = v;
            }
        float *g = dw + (size_t)oi * 9;
        for (int r = 0; r < 3; r++)
            for (int s2 = 0; s2 < 3; s2++) {
                float v = 0;
                for (int j = 0; j < a; j++) v += p[r][j] * K->G[j][s2];
                g[3 * r + s2] += v;
            }
    }
}
#undef F4_G
#undef F4_GT

/* Stride between the 16 transform planes: a multiple of 16 floats that is not a multiple
 * of 256, so that the 16 planes one tile transform writes do not share cache sets (a
 * 256-tile stride made enc2 of `complete` 1.5x slower than im2col). */
static size_t wino_stride(size_t n) {
    size_t s = (n + 15) & ~(size_t)15;
    if (s % 256 == 0) s += 16;
    return s;
}

/* The transforms work on channel-last copies of the planes (one image at a time, moved by
 * OpenBLAS's transposing copy), so that every tile's arithmetic runs over a contiguous
 * run of channels: the loops vectorize whatever the plane size (rows of a 7x7 plane have
 * only 4 tiles). The tile matrices are V_xi [T][c], M_xi [T][oc]. */

/* padded channel-last image: P[(y + 1) * pw + x + 1][c] = x[c][y][x], zero border */
static void wino_to_padded(const wino_geom *q, const float *x, float *P) {
    /* zero only the border: the interior is overwritten below */
    const size_t c = (size_t)q->c, rs = (size_t)q->pw * c;
    memset(P, 0, sizeof(float) * rs);
    for (int y = 1; y <= q->h; y++) {
        memset(P + (size_t)y * rs, 0, sizeof(float) * c);
        memset(P + (size_t)y * rs + (size_t)(q->w + 1) * c, 0, sizeof(float) * (q->pw - q->w - 1) * c);
    }
    memset(P + (size_t)(q->h + 1) * rs, 0, sizeof(float) * (q->ph - q->h - 1) * rs);
    for (int y = 0; y < q->h; y++)
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->c, q->w, 1.0f, x + (size_t)y * q->w,
                        q->h * q->w, P + ((size_t)(y + 1) * q->pw + 1) * q->c, q->c);
}

/* Staging shared by the tile sizes. Channel-last tile staging [m*th][m*tw][oc] -> y. */
static void wino_unstage(const wino_geom *q, const float *Y, float *y) {
    const int Wm = q->m * q->tw;
    if (Wm == q->w) { /* whole tiles across: the staging rows are contiguous, one transpose */
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->h * q->w, q->oc, 1.0f, Y, q->oc, y,
                        q->h * q->w);
        return;
    }
    for (int r = 0; r < q->h; r++)
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->w, q->oc, 1.0f, Y + (size_t)r * Wm * q->oc,
                        q->oc, y + (size_t)r * q->w, q->h * q->w);
}

/* dy [oc][h][w] -> channel-last staging G [m*th][m*tw][oc], zero in partial tiles */
static void wino_stage_grad(const wino_geom *q, const float *dy, float *G) {
    const int Wm = q->m * q->tw;
    if (q->h % q->m || q->w % q->m) memset(G, 0, sizeof(float) * q->m * q->th * Wm * q->oc);
    if (Wm == q->w) { /* contiguous staging rows: one transpose */
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->oc, q->h * q->w, 1.0f, dy, q->h * q->w, G,
                        q->oc);
        return;
    }
    for (int r = 0; r < q->h; r++)
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->oc, q->w, 1.0f, dy + (size_t)r * q->w,
                        q->h * q->w, G + (size_t)r * Wm * q->oc, q->oc);
}

/* dx [c][h][w] += the interior of the padded channel-last accumulator P (tmp: c*h*w) */
static void wino_add_padded(const wino_geom *q, const float *P, float *tmp, float *dx) {
    const int c = q->c;
    const size_t rs = (size_t)q->pw * c, hw = (size_t)q->h * q->w, n = (size_t)c * hw;
    for (int y = 0; y < q->h; y++)
        cblas_somatcopy(CblasRowMajor, CblasTrans, q->w, c, 1.0f, P + (size_t)(y + 1) * rs + c, c,
                        tmp + (size_t)y * q->w, (int)hw);
#pragma omp simd
    for (size_t i = 0; i < n; i++) dx[i] += tmp[i];
}

/* V rows of image im's tiles from its padded copy P */
static void wino2_input(const wino_geom *q, const float *P, int im, size_t sv, float *V) {
    const int c = q->c;
    const size_t rs = (size_t)q->pw * c; /* one padded row */
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict d = P + (size_t)(2 * ty) * rs + (size_t)(2 * tx) * c;
            float *restrict v = V + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * c;
#pragma omp simd
            for (int k = 0; k < c; k++) {
                float r[4][4];
                for (int s = 0; s < 4; s++) { /* B^T d: rows */
                    const float d0 = d[s * c + k], d1 = d[rs + s * c + k], d2 = d[2 * rs + s * c + k],
                                d3 = d[3 * rs + s * c + k];
                    r[0][s] = d0 - d2, r[1][s] = d1 + d2, r[2][s] = d2 - d1, r[3][s] = d1 - d3;
                }
                for (int i = 0; i < 4; i++) { /* (B^T d) B: columns */
                    v[(4 * i + 0) * sv + k] = r[i][0] - r[i][2];
                    v[(4 * i + 1) * sv + k] = r[i][1] + r[i][2];
                    v[(4 * i + 2) * sv + k] = r[i][2] - r[i][1];
                    v[(4 * i + 3) * sv + k] = r[i][1] - r[i][3];
                }
            }
        }
}

/* image im's output y [oc][h][w] from M: A^T M A per tile into the channel-last staging
 * Y [2th][2tw][oc], then transposed */
static void wino2_output(const wino_geom *q, const float *M, int im, size_t sm, float *Y,
                        float *y) {
    const int oc = q->oc, W2 = 2 * q->tw;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict m = M + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * oc;
            float *restrict o0 = Y + ((size_t)(2 * ty) * W2 + 2 * tx) * oc, *restrict o1 = o0 + (size_t)W2 * oc;
#pragma omp simd
            for (int k = 0; k < oc; k++) {
                float s[2][4];
                for (int j = 0; j < 4; j++) { /* A^T M: rows */
                    const float m0 = m[j * sm + k], m1 = m[(4 + j) * sm + k], m2 = m[(8 + j) * sm + k],
                                m3 = m[(12 + j) * sm + k];
                    s[0][j] = m0 + m1 + m2;
                    s[1][j] = m1 - m2 - m3;
                }
                o0[k] = s[0][0] + s[0][1] + s[0][2];
                o0[oc + k] = s[0][1] - s[0][2] - s[0][3];
                o1[k] = s[1][0] + s[1][1] + s[1][2];
                o1[oc + k] = s[1][1] - s[1][2] - s[1][3];
            }
        }
    wino_unstage(q, Y, y);
}

/* dM rows of image im's tiles = A dY A^T from dy [oc][h][w] (G: staging [2th][2tw][oc]) */
static void wino2_grad_output(const wino_geom *q, const float *dy, int im, size_t sm, float *G,
                             float *dM) {
    const int oc = q->oc, W2 = 2 * q->tw;
    wino_stage_grad(q, dy, G);
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict g0 = G + ((size_t)(2 * ty) * W2 + 2 * tx) * oc,
                                  *restrict g1 = g0 + (size_t)W2 * oc;
            float *restrict m = dM + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * oc;
#pragma omp simd
            for (int k = 0; k < oc; k++) {
                const float a0 = g0[k], b0 = g0[oc + k], a1 = g1[k], b1 = g1[oc + k];
                const float p[4] = {a0, a0 + a1, a0 - a1, -a1}, r[4] = {b0, b0 + b1, b0 - b1, -b1};
                for (int i = 0; i < 4; i++) { /* (A g) A^T, row i = (p, r) */
                    m[(4 * i + 0) * sm + k] = p[i];
                    m[(4 * i + 1) * sm + k] = p[i] + r[i];
                    m[(4 * i + 2) * sm + k] = p[i] - r[i];
                    m[(4 * i + 3) * sm + k] = -r[i];
                }
            }
        }
}

/* dx [c][h][w] of image im += B dV B^T per tile, accumulated in the padded channel-last P,
 * then transposed into tmp [c][h*w] and added */
static void wino2_input_adjoint(const wino_geom *q, const float *dV, int im, size_t sv, float *P,
                               float *tmp, float *dx) {
    const int c = q->c;
    const size_t rs = (size_t)q->pw * c;
    memset(P, 0, sizeof(float) * q->ph * rs);
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict u = dV + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * c;
            float *restrict d = P + (size_t)(2 * ty) * rs + (size_t)(2 * tx) * c;
#pragma omp simd
            for (int k = 0; k < c; k++) {
                float r[4][4];
                for (int s = 0; s < 4; s++) { /* B u: rows */
                    const float u0 = u[s * sv + k], u1 = u[(4 + s) * sv + k], u2 = u[(8 + s) * sv + k],
                                u3 = u[(12 + s) * sv + k];
                    r[0][s] = u0;
                    r[1][s] = u1 - u2 + u3;
                    r[2][s] = -u0 + u1 + u2;
                    r[3][s] = -u3;
                }
                for (int i = 0; i < 4; i++) { /* (B u) B^T: columns */
                    float *row = d + (size_t)i * rs;
                    row[k] += r[i][0];
                    row[c + k] += r[i][1] - r[i][2] + r[i][3];
                    row[2 * c + k] += -r[i][0] + r[i][1] + r[i][2];
                    row[3 * c + k] += -r[i][3];
                }
            }
        }
    wino_add_padded(q, P, tmp, dx);
}

/* ---- F(4x4, 3x3) transforms, straight-line per channel so that the channel loop
 * vectorizes (loops over the 6 taps inside it were left rolled by the compiler) ---- */
#define F4_BT(o0, o1, o2, o3, o4, o5, x0, x1, x2, x3, x4, x5)                               \
    o0 = 4.0f * (x0) - 5.0f * (x2) + (x4);                                                   \
    o1 = -4.0f * ((x1) + (x2)) + (x3) + (x4);                                                \
    o2 = 4.0f * ((x1) - (x2)) - (x3) + (x4);                                                 \
    o3 = 2.0f * ((x3) - (x1)) - (x2) + (x4);                                                 \
    o4 = 2.0f * ((x1) - (x3)) - (x2) + (x4);                                                 \
    o5 = 4.0f * (x1) - 5.0f * (x3) + (x5)
#define F4_B(o0, o1, o2, o3, o4, o5, x0, x1, x2, x3, x4, x5) /* B x = (B^T)^T x */             \
    o0 = 4.0f * (x0);                                                                         \
    o1 = 4.0f * ((x2) - (x1) + (x5)) + 2.0f * ((x4) - (x3));                                  \
    o2 = -5.0f * (x0) - 4.0f * ((x1) + (x2)) - (x3) - (x4);                                   \
    o3 = (x1) - (x2) + 2.0f * ((x3) - (x4)) - 5.0f * (x5);                                    \
    o4 = (x0) + (x1) + (x2) + (x3) + (x4);                                                    \
    o5 = (x5)
#define F4_AT(o0, o1, o2, o3, x0, x1, x2, x3, x4, x5)                                       \
    o0 = (x0) + ((x1) + (x2)) + ((x3) + (x4));                                                \
    o1 = ((x1) - (x2)) + 2.0f * ((x3) - (x4));                                                \
    o2 = ((x1) + (x2)) + 4.0f * ((x3) + (x4));                                                \
    o3 = ((x1) - (x2)) + 8.0f * ((x3) - (x4)) + (x5)
#define F4_A(o0, o1, o2, o3, o4, o5, x0, x1, x2, x3) /* A x = (A^T)^T x */                  \
    o0 = (x0);                                                                                \
    o1 = ((x0) + (x2)) + ((x1) + (x3));                                                       \
    o2 = ((x0) + (x2)) - ((x1) + (x3));                                                       \
    o3 = ((x0) + 4.0f * (x2)) + (2.0f * (x1) + 8.0f * (x3));                                  \
    o4 = ((x0) + 4.0f * (x2)) - (2.0f * (x1) + 8.0f * (x3));                                  \
    o5 = (x3)

static void wino4_input(const wino_geom *q, const float *P, int im, size_t sv, float *V) {
    const int c = q->c;
    const size_t rs = (size_t)q->pw * c;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict d = P + (size_t)(4 * ty) * rs + (size_t)(4 * tx) * c;
            float *restrict v = V + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * c;
#pragma omp simd
            for (int k = 0; k < c; k++) {
#define LD(r, s2) d[(r) * rs + (s2) * c + k]
#define COL(s2)                                                                               \
    float t0##s2, t1##s2, t2##s2, t3##s2, t4##s2, t5##s2;                                     \
    {                                                                                         \
        const float x0 = LD(0, s2), x1 = LD(1, s2), x2 = LD(2, s2), x3 = LD(3, s2),          \
                    x4 = LD(4, s2), x5 = LD(5, s2);                                           \
        F4_BT(t0##s2, t1##s2, t2##s2, t3##s2, t4##s2, t5##s2, x0, x1, x2, x3, x4, x5);       \
    }
                COL(0) COL(1) COL(2) COL(3) COL(4) COL(5)
#define ROW(i)                                                                                \
    {                                                                                         \
        float o0, o1, o2, o3, o4, o5;                                                         \
        F4_BT(o0, o1, o2, o3, o4, o5, t##i##0, t##i##1, t##i##2, t##i##3, t##i##4, t##i##5);  \
        v[(6 * i + 0) * sv + k] = o0, v[(6 * i + 1) * sv + k] = o1;                           \
        v[(6 * i + 2) * sv + k] = o2, v[(6 * i + 3) * sv + k] = o3;                           \
        v[(6 * i + 4) * sv + k] = o4, v[(6 * i + 5) * sv + k] = o5;                           \
    }
                ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
#undef COL
#undef LD
            }
        }
}

static void wino4_output(const wino_geom *q, const float *M, int im, size_t sm, float *Y, float *y) {
    const int oc = q->oc, W4 = 4 * q->tw;
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict m = M + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * oc;
            float *restrict out = Y + ((size_t)(4 * ty) * W4 + 4 * tx) * oc;
#pragma omp simd
            for (int k = 0; k < oc; k++) {
#define LD(r, j) m[(6 * (r) + (j)) * sm + k]
#define COL(j)                                                                                \
    float s0##j, s1##j, s2##j, s3##j;                                                         \
    {                                                                                         \
        const float x0 = LD(0, j), x1 = LD(1, j), x2 = LD(2, j), x3 = LD(3, j), x4 = LD(4, j), \
                    x5 = LD(5, j);                                                            \
        F4_AT(s0##j, s1##j, s2##j, s3##j, x0, x1, x2, x3, x4, x5);                             \
    }
                COL(0) COL(1) COL(2) COL(3) COL(4) COL(5)
#define ROW(i)                                                                                \
    {                                                                                         \
        float o0, o1, o2, o3;                                                                 \
        F4_AT(o0, o1, o2, o3, s##i##0, s##i##1, s##i##2, s##i##3, s##i##4, s##i##5);          \
        float *row = out + (size_t)(i) * W4 * oc;                                             \
        row[k] = o0, row[oc + k] = o1, row[2 * oc + k] = o2, row[3 * oc + k] = o3;            \
    }
                ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
#undef COL
#undef LD
            }
        }
    wino_unstage(q, Y, y);
}

static void wino4_grad_output(const wino_geom *q, const float *dy, int im, size_t sm, float *G,
                              float *dM) {
    const int oc = q->oc, W4 = 4 * q->tw;
    wino_stage_grad(q, dy, G);
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict g = G + ((size_t)(4 * ty) * W4 + 4 * tx) * oc;
            float *restrict m = dM + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * oc;
#pragma omp simd
            for (int k = 0; k < oc; k++) {
#define LD(r, s2) g[((size_t)(r) * W4 + (s2)) * oc + k]
#define COL(s2)                                                                               \
    float t0##s2, t1##s2, t2##s2, t3##s2, t4##s2, t5##s2;                                     \
    {                                                                                         \
        const float x0 = LD(0, s2), x1 = LD(1, s2), x2 = LD(2, s2), x3 = LD(3, s2);          \
        F4_A(t0##s2, t1##s2, t2##s2, t3##s2, t4##s2, t5##s2, x0, x1, x2, x3);                 \
    }
                COL(0) COL(1) COL(2) COL(3)
#define ROW(i)                                                                                \
    {                                                                                         \
        float o0, o1, o2, o3, o4, o5;                                                         \
        F4_A(o0, o1, o2, o3, o4, o5, t##i##0, t##i##1, t##i##2, t##i##3);                     \
        m[(6 * i + 0) * sm + k] = o0, m[(6 * i + 1) * sm + k] = o1;                           \
        m[(6 * i + 2) * sm + k] = o2, m[(6 * i + 3) * sm + k] = o3;                           \
        m[(6 * i + 4) * sm + k] = o4, m[(6 * i + 5) * sm + k] = o5;                           \
    }
                ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
#undef COL
#undef LD
            }
        }
}

static void wino4_input_adjoint(const wino_geom *q, const float *dV, int im, size_t sv, float *P,
                                float *tmp, float *dx) {
    const int c = q->c;
    const size_t rs = (size_t)q->pw * c;
    memset(P, 0, sizeof(float) * q->ph * rs);
    for (int ty = 0; ty < q->th; ty++)
        for (int tx = 0; tx < q->tw; tx++) {
            const float *restrict u = dV + ((size_t)im * q->tiles + (size_t)ty * q->tw + tx) * c;
            float *restrict d = P + (size_t)(4 * ty) * rs + (size_t)(4 * tx) * c;
#pragma omp simd
            for (int k = 0; k < c; k++) {
#define LD(i, j) u[(6 * (i) + (j)) * sv + k]
#define COL(j)                                                                                \
    float t0##j, t1##j, t2##j, t3##j, t4##j, t5##j;                                           \
    {                                                                                         \
        const float x0 = LD(0, j), x1 = LD(1, j), x2 = LD(2, j), x3 = LD(3, j), x4 = LD(4, j), \
                    x5 = LD(5, j);                                                            \
        F4_B(t0##j, t1##j, t2##j, t3##j, t4##j, t5##j, x0, x1, x2, x3, x4, x5);               \
    }
                COL(0) COL(1) COL(2) COL(3) COL(4) COL(5)
#define ROW(r)                                                                                \
    {                                                                                         \
        float o0, o1, o2, o3, o4, o5;                                                         \
        F4_B(o0, o1, o2, o3, o4, o5, t##r##0, t##r##1, t##r##2, t##r##3, t##r##4, t##r##5);   \
        float *row = d + (size_t)(r) * rs;                                                    \
        row[k] += o0, row[c + k] += o1, row[2 * c + k] += o2;                                 \
        row[3 * c + k] += o3, row[4 * c + k] += o4, row[5 * c + k] += o5;                     \
    }
                ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
#undef COL
#undef LD
            }
        }
    wino_add_padded(q, P, tmp, dx);
}
#undef F4_BT
#undef F4_B
#undef F4_AT
#undef F4_A

/* ---- dispatch on the tile size ---- */
static void wino_input(const wino_geom *q, const float *P, int im, size_t sv, float *V) {
    if (q->m == 4)
        wino4_input(q, P, im, sv, V);
    else
        wino2_input(q, P, im, sv, V);
}
static void wino_output(const wino_geom *q, const float *M, int im, size_t sm, float *Y, float *y) {
    if (q->m == 4)
        wino4_output(q, M, im, sm, Y, y);
    else
        wino2_output(q, M, im, sm, Y, y);
}
static void wino_grad_output(const wino_geom *q, const float *dy, int im, size_t sm, float *G,
                             float *dM) {
    if (q->m == 4)
        wino4_grad_output(q, dy, im, sm, G, dM);
    else
        wino2_grad_output(q, dy, im, sm, G, dM);
}
static void wino_input_adjoint(const wino_geom *q, const float *dV, int im, size_t sv, float *P,
                               float *tmp, float *dx) {
    if (q->m == 4)
        wino4_input_adjoint(q, dV, im, sv, P, tmp, dx);
    else
        wino2_input_adjoint(q, dV, im, sv, P, tmp, dx);
}

dc_status dc_cpu_wino_fwd(cpu_backend *cb, const dc_win2d *g, int oc, const float *px,
                          const float *pw, const float *pb, float *py, const dc_fused_act *act) {
    const int T = omp_get_max_threads();
    const wino_geom q = wino_geometry(g, oc, (g->n + T - 1) / T, cb->winograd);
    const size_t TT = (size_t)q.ib * q.tiles, nU = (size_t)q.na * oc * q.c;
    const size_t sv = wino_stride(TT * q.c), sm = wino_stride(TT * oc);
    const size_t nP = (size_t)q.ph * q.pw * q.c, nY = (size_t)q.m * q.th * q.m * q.tw * oc;
    const size_t per = q.na * sv + q.na * sm + nP + nY;
    float *scr = dc_cpu_scratch(cb, per, T + (int)((nU + 9 * (size_t)oc * q.c + per - 1) / per));
    if (!scr) return dc_set_error(&cb->base.err, DC_ERR_OOM, "cpu conv2d (winograd): out of memory");
    float *U = scr + (size_t)T * per;
    wino_weights(&q, pw, U, U + nU);
    const size_t in_img = (size_t)q.c * q.h * q.w, out_img = (size_t)oc * q.h * q.w;
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        float *V = scr + (size_t)t * per, *M = V + q.na * sv, *P = M + q.na * sm, *Y = P + nP;
        /* the same static split of the images as the GEMM path */
        const int chunk = (g->n + T - 1) / T, n0 = t * chunk, n1 = n0 + chunk < g->n ? n0 + chunk : g->n;
        for (int i0 = n0; i0 < n1; i0 += q.ib) {
            const int nimg = i0 + q.ib < n1 ? q.ib : n1 - i0;
            const int Tn = nimg * q.tiles;
            for (int im = 0; im < nimg; im++) {
                wino_to_padded(&q, px + (size_t)(i0 + im) * in_img, P);
                wino_input(&q, P, im, sv, V);
            }
            /* M_xi [T, oc] = V_xi [T, c] U_xi^T */
            for (int xi = 0; xi < q.na; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tn, oc, q.c, 1.0f, V + xi * sv,
                            q.c, U + (size_t)xi * oc * q.c, q.c, 0.0f, M + xi * sm, oc);
            for (int im = 0; im < nimg; im++) {
                float *yn = py + (size_t)(i0 + im) * out_img;
                wino_output(&q, M, im, sm, Y, yn);
                dc_cpu_bias_act_rows(yn, pb, oc, (size_t)q.h * q.w, act);
            }
        }
    }
    return DC_OK;
}

dc_status dc_cpu_wino_bwd(cpu_backend *cb, const dc_win2d *g, int oc, const float *px,
                          const float *pw, const float *py, const float *pdy, float *pdx,
                          float *pdw, float *pdb, const dc_fused_act *act) {
    const int T = omp_get_max_threads();
    const wino_geom q = wino_geometry(g, oc, (g->n + T - 1) / T, cb->winograd);
    const size_t TT = (size_t)q.ib * q.tiles, nU = (size_t)q.na * oc * q.c;
    const size_t sv = wino_stride(TT * q.c), sm = wino_stride(TT * oc);
    const size_t out_img = (size_t)oc * q.h * q.w, in_img = (size_t)q.c * q.h * q.w;
    const size_t nP = (size_t)q.ph * q.pw * q.c, nG = (size_t)q.m * q.th * q.m * q.tw * oc;
    const size_t nS = nG > in_img ? nG : in_img; /* staging: dY tiles, then dx rows */
    const size_t per = q.na * sv + q.na * sm + nP + nS + nU + (act ? out_img : 0);
    float *scr = dc_cpu_scratch(cb, per, T + (int)((nU + 9 * (size_t)oc * q.c + per - 1) / per));
    if (!scr) return dc_set_error(&cb->base.err, DC_ERR_OOM, "cpu conv2d (winograd): out of memory");
    float *U = scr + (size_t)T * per;
    wino_weights(&q, pw, U, U + nU);
    double *part = NULL;
    if (pdb && act && !(part = dc_cpu_red_buffer(cb, (size_t)g->n * oc)))
        return dc_set_error(&cb->base.err, DC_ERR_OOM, "cpu conv2d: out of memory");
    const size_t dU_off = q.na * sv + q.na * sm + nP + nS;
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num();
        float *V = scr + (size_t)t * per, *dM = V + q.na * sv, *P = dM + q.na * sm, *S = P + nP;
        float *dU = V + dU_off, *dpre = dU + nU;
        memset(dU, 0, sizeof(float) * nU);
        const int chunk = (g->n + T - 1) / T, n0 = t * chunk, n1 = n0 + chunk < g->n ? n0 + chunk : g->n;
        for (int i0 = n0; i0 < n1; i0 += q.ib) {
            const int nimg = i0 + q.ib < n1 ? q.ib : n1 - i0;
            const int Tn = nimg * q.tiles;
            for (int im = 0; im < nimg; im++) {
                const int n = i0 + im;
                const float *dyn = dc_cpu_image_grad(act, act ? py + (size_t)n * out_img : NULL,
                                              pdy + (size_t)n * out_img, dpre, oc,
                                              (size_t)q.h * q.w, part ? part + (size_t)n * oc : NULL);
                wino_grad_output(&q, dyn, im, sm, S, dM);
                wino_to_padded(&q, px + (size_t)n * in_img, P);
                wino_input(&q, P, im, sv, V);
            }
            for (int xi = 0; xi < q.na; xi++) {
                float *Vx = V + xi * sv, *dMx = dM + xi * sm;
                /* dU_xi [oc, c] += dM_xi^T V_xi */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oc, q.c, Tn, 1.0f, dMx, oc, Vx,
                            q.c, 1.0f, dU + (size_t)xi * oc * q.c, q.c);
                /* dV_xi [T, c] = dM_xi U_xi, written over V_xi (no longer needed) */
                if (pdx)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tn, q.c, oc, 1.0f, dMx, oc,
                                U + (size_t)xi * oc * q.c, q.c, 0.0f, Vx, q.c);
            }
            if (pdx)
                for (int im = 0; im < nimg; im++)
                    wino_input_adjoint(&q, V, im, sv, P, S, pdx + (size_t)(i0 + im) * in_img);
        }
    }
    /* fixed-order reductions: per-thread dU, then the weight transform's adjoint */
    float *dU0 = scr + dU_off;
    for (int t = 1; t < T; t++) {
        const float *dUt = dU0 + (size_t)t * per;
        for (size_t i = 0; i < nU; i++) dU0[i] += dUt[i];
    }
    wino_weights_adjoint(&q, dU0, pdw, U + nU);
    if (part)
        for (int o = 0; o < oc; o++) pdb[o] += (float)dc_cpu_channel_total(part, g->n, oc, o);
    return DC_OK;
}

