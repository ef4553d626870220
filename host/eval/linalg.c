/* Dense linear algebra for the evaluation figures: a cyclic Jacobi eigen-solver for
 * symmetric matrices (the covariances of the Frechet distance) and a float GEMM A B^T
 * split over the available threads (the pairwise distances). */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval_internal.h"
#include "internal.h"

#define JACOBI_MAX_SWEEPS 100

/* One rotation of a round: the pair (p, q) and the rotation that zeroes a_pq. */
typedef struct jacobi_pair {
    int p, q;
    double c, s; /* cos and sin; c = 1, s = 0: no rotation */
    double new_pp, new_qq;
} jacobi_pair;

/* Pair k of round t in the round-robin ("chess tournament") order over m players (m even):
 * the player m - 1 stays, the others turn. Every pair meets once in m - 1 rounds, and the
 * pairs of one round are disjoint. */
static void round_pair(int m, int t, int k, int *p, int *q) {
    int a, b;
    if (k == 0) {
        a = t, b = m - 1;
    } else {
        a = (t + k) % (m - 1);
        b = (t - k + (m - 1)) % (m - 1);
    }
    *p = a < b ? a : b;
    *q = a < b ? b : a;
}

/* Cyclic Jacobi in the round-robin order: the rotations of one round act on disjoint row
 * pairs, so A <- J^T A J is one pass over the row pairs and one over the rows, both in
 * memory order (the classic one-rotation-at-a-time order updates a column per rotation,
 * a strided walk: 3x the time at 256 x 256). Single-threaded on purpose: a round is
 * ~9 n^2 flops, too little work per barrier on a busy machine (splitting the passes over
 * two OpenMP threads was 10x slower in wall time under load). 512 x 512: ~3 s. */
dc_status dc_eval_sym_eigen(int n, double *a, double *values, double *vectors, int *sweeps,
                            dc_error *err) {
    if (sweeps) *sweeps = 0;
    if (n <= 0 || !a || !values)
        return dc_set_error(err, DC_ERR_ARG, "symmetric eigen-decomposition: bad arguments (n %d)",
                            n);
    if (vectors) {
        memset(vectors, 0, sizeof(double) * (size_t)n * n);
        for (int i = 0; i < n; i++)
            vectors[(size_t)i * n + i] = 1.0;
    }
    const int m = n + (n & 1); /* with an odd n, a dummy player n sits out each round */
    jacobi_pair *pairs = malloc(sizeof(jacobi_pair) * (size_t)(m / 2));
    if (!pairs)
        return dc_set_error(err, DC_ERR_OOM,
                            "symmetric eigen-decomposition of %d x %d: out of "
                            "memory",
                            n, n);
    double norm2 = 0;
    for (size_t i = 0; i < (size_t)n * n; i++)
        norm2 += a[i] * a[i];
    /* Off-diagonal mass below half a unit of rounding of the whole matrix moves no
     * eigenvalue by more than rounding does (Weyl): stop there. */
    const double stop2 = norm2 * (0.25 * DBL_EPSILON * DBL_EPSILON);
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += a[(size_t)p * n + q] * a[(size_t)p * n + q];
        if (off == 0 || off <= stop2) {
            for (int i = 0; i < n; i++)
                values[i] = a[(size_t)i * n + i];
            if (sweeps) *sweeps = sweep;
            free(pairs);
            return DC_OK;
        }
        for (int t = 0; t < m - 1; t++) {
            int count = 0;
            for (int k = 0; k < m / 2; k++) {
                int p, q;
                round_pair(m, t, k, &p, &q);
                if (q >= n) continue; /* the dummy */
                const double apq = a[(size_t)p * n + q], app = a[(size_t)p * n + p],
                             aqq = a[(size_t)q * n + q];
                if (apq == 0) continue;
                jacobi_pair *jp = &pairs[count++];
                jp->p = p, jp->q = q;
                /* Past the first sweeps an element too small to change either diagonal
                 * entry is rounding: drop it instead of rotating. */
                if (sweep > 3 && fabs(app) + 100.0 * fabs(apq) == fabs(app) &&
                    fabs(aqq) + 100.0 * fabs(apq) == fabs(aqq)) {
                    jp->c = 1, jp->s = 0, jp->new_pp = app, jp->new_qq = aqq;
                    continue;
                }
                /* Rutishauser's rotation: tan of the smaller angle that zeroes a_pq; the
                 * new diagonal entries as corrections, for accuracy */
                const double theta = (aqq - app) / (2.0 * apq);
                double tn = 1.0 / (fabs(theta) + sqrt(theta * theta + 1.0));
                if (theta < 0) tn = -tn;
                jp->c = 1.0 / sqrt(tn * tn + 1.0);
                jp->s = tn * jp->c;
                jp->new_pp = app - tn * apq;
                jp->new_qq = aqq + tn * apq;
            }
            /* rows: A <- J^T A */
            for (int k = 0; k < count; k++) {
                const jacobi_pair *jp = &pairs[k];
                if (jp->s == 0) continue;
                double *rp = a + (size_t)jp->p * n, *rq = a + (size_t)jp->q * n;
                const double c = jp->c, s = jp->s;
                for (int r = 0; r < n; r++) {
                    const double g = rp[r], h = rq[r];
                    rp[r] = c * g - s * h;
                    rq[r] = s * g + c * h;
                }
                if (vectors) {
                    double *vp = vectors + (size_t)jp->p * n, *vq = vectors + (size_t)jp->q * n;
                    for (int r = 0; r < n; r++) {
                        const double g = vp[r], h = vq[r];
                        vp[r] = c * g - s * h;
                        vq[r] = s * g + c * h;
                    }
                }
            }
            /* columns: A <- A J, row by row */
            for (int r = 0; r < n; r++) {
                double *row = a + (size_t)r * n;
                for (int k = 0; k < count; k++) {
                    const jacobi_pair *jp = &pairs[k];
                    if (jp->s == 0) continue;
                    const double g = row[jp->p], h = row[jp->q];
                    row[jp->p] = jp->c * g - jp->s * h;
                    row[jp->q] = jp->s * g + jp->c * h;
                }
            }
            /* each 2 x 2 block depends only on its own rotation: set it exactly */
            for (int k = 0; k < count; k++) {
                const jacobi_pair *jp = &pairs[k];
                a[(size_t)jp->p * n + jp->p] = jp->new_pp;
                a[(size_t)jp->q * n + jp->q] = jp->new_qq;
                a[(size_t)jp->p * n + jp->q] = a[(size_t)jp->q * n + jp->p] = 0;
            }
        }
    }
    free(pairs);
    return dc_set_error(err, DC_ERR_NUMERIC,
                        "symmetric eigen-decomposition of a %d x %d matrix: no convergence after "
                        "%d Jacobi sweeps",
                        n, n, JACOBI_MAX_SWEEPS);
}

void dc_eval_sgemm_nt(int m, int n, int k, const float *a, const float *b, float *c) {
    const int threads = omp_get_max_threads();
    if (openblas_get_num_threads() > 1 || threads <= 1 || 2.0 * m * n * k < 4e6 || m < 32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
        return;
    }
    /* OpenBLAS runs single-threaded (a CPU backend sets it so that one threading runtime
     * owns the cores): split the rows of C over the OpenMP threads. */
    const int panel = (m + threads - 1) / threads;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < threads; t++) {
        const int m0 = t * panel, m1 = m0 + panel < m ? m0 + panel : m;
        if (m0 >= m) continue;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, n, k, 1.0f,
                    a + (size_t)m0 * k, k, b, k, 0.0f, c + (size_t)m0 * n, n);
    }
}
