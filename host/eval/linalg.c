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

dc_status dc_eval_sym_eigen(int n, double *a, double *values, double *vectors, int *sweeps,
                            dc_error *err) {
    if (sweeps) *sweeps = 0;
    if (n <= 0 || !a || !values)
        return dc_set_error(err, DC_ERR_ARG, "symmetric eigen-decomposition: bad arguments (n %d)", n);
    if (vectors) {
        memset(vectors, 0, sizeof(double) * (size_t)n * n);
        for (int i = 0; i < n; i++) vectors[(size_t)i * n + i] = 1.0;
    }
    double norm2 = 0;
    for (size_t i = 0; i < (size_t)n * n; i++) norm2 += a[i] * a[i];
    /* Off-diagonal mass below half a unit of rounding of the whole matrix moves no
     * eigenvalue by more than rounding does (Weyl): stop there. */
    const double stop2 = norm2 * (0.25 * DBL_EPSILON * DBL_EPSILON);
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += a[(size_t)p * n + q] * a[(size_t)p * n + q];
        if (off == 0 || off <= stop2) {
            for (int i = 0; i < n; i++) values[i] = a[(size_t)i * n + i];
            if (sweeps) *sweeps = sweep;
            return DC_OK;
        }
        for (int p = 0; p < n - 1; p++) {
            double *rp = a + (size_t)p * n;
            for (int q = p + 1; q < n; q++) {
                double *rq = a + (size_t)q * n;
                const double apq = rp[q];
                if (apq == 0) continue;
                const double app = rp[p], aqq = rq[q];
                /* Past the first sweeps an element too small to change either diagonal
                 * entry is rounding: drop it instead of rotating. */
                if (sweep > 3 && fabs(app) + 100.0 * fabs(apq) == fabs(app) &&
                    fabs(aqq) + 100.0 * fabs(apq) == fabs(aqq)) {
                    rp[q] = rq[p] = 0;
                    continue;
                }
                /* Rutishauser's rotation: t = tan(phi) of the smaller angle that zeroes
                 * a_pq, with the updates written as corrections for accuracy. */
                const double theta = (aqq - app) / (2.0 * apq);
                double t = 1.0 / (fabs(theta) + sqrt(theta * theta + 1.0));
                if (theta < 0) t = -t;
                const double c = 1.0 / sqrt(t * t + 1.0), s = t * c, tau = s / (1.0 + c);
                rp[p] = app - t * apq;
                rq[q] = aqq + t * apq;
                rp[q] = rq[p] = 0;
                /* rows p and q are contiguous; the columns are their mirror images */
                for (int r = 0; r < n; r++) {
                    if (r == p || r == q) continue;
                    const double g = rp[r], h = rq[r];
                    rp[r] = g - s * (h + g * tau);
                    rq[r] = h + s * (g - h * tau);
                }
                for (int r = 0; r < n; r++) {
                    if (r == p || r == q) continue;
                    a[(size_t)r * n + p] = rp[r];
                    a[(size_t)r * n + q] = rq[r];
                }
                if (vectors) {
                    double *vp = vectors + (size_t)p * n, *vq = vectors + (size_t)q * n;
                    for (int r = 0; r < n; r++) {
                        const double g = vp[r], h = vq[r];
                        vp[r] = g - s * (h + g * tau);
                        vq[r] = h + s * (g - h * tau);
                    }
                }
            }
        }
    }
    return dc_set_error(err, DC_ERR_NUMERIC,
                        "symmetric eigen-decomposition of a %d x %d matrix: no convergence after "
                        "%d Jacobi sweeps",
                        n, n, JACOBI_MAX_SWEEPS);
}

void dc_eval_sgemm_nt(int m, int n, int k, const float *a, const float *b, float *c) {
    const int threads = omp_get_max_threads();
    if (openblas_get_num_threads() > 1 || threads <= 1 || 2.0 * m * n * k < 4e6 || m < 32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c,
                    n);
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
