/* Helpers shared by host/eval/: symmetric eigen-decomposition, the split float GEMM, and
 * the exact nearest-neighbour engine. Not installed. */
#ifndef DECONV_EVAL_INTERNAL_H
#define DECONV_EVAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/deconv.h"

/* Eigenvalues (ascending order not guaranteed) of the symmetric n x n row-major matrix a,
 * which is overwritten, by cyclic Jacobi rotations in double. When vectors is not NULL it
 * receives the eigenvectors as rows: vectors[i*n + j] is component j of the eigenvector of
 * values[i]. *sweeps (may be NULL) receives the number of sweeps. DC_ERR_NUMERIC if it has
 * not converged after 100 sweeps, DC_ERR_OOM without memory for its n / 2 rotations. */
dc_status dc_eval_sym_eigen(int n, double *a, double *values, double *vectors, int *sweeps,
                            dc_error *err);

/* C (m x n) = A (m x k) B^T (B is n x k), all row-major and dense. OpenBLAS's own threads
 * when it has more than one, else panels split over the OpenMP threads (see cpu_gemm). */
void dc_eval_sgemm_nt(int m, int n, int k, const float *a, const float *b, float *c);

/* A point set ready for the distance engine: the rows as given (for exact distances) and
 * float copies centred on a shared centre with their norms (for the GEMM). */
typedef struct dc_eval_points {
    const float *rows; /* n x dim, the caller's */
    float *centred;    /* n x dim */
    double *norm;      /* |centred row| */
    int n, dim;
} dc_eval_points;

/* Checks every value is finite (naming `what`, the row and the column otherwise). */
dc_status dc_eval_points_prepare(const float *rows, int n, int dim, const double *centre,
                                 const char *what, dc_eval_points *p, dc_error *err);
void dc_eval_points_clear(dc_eval_points *p);
/* Column means of n rows, in double. */
void dc_eval_column_means(const float *rows, int n, int dim, double *mean);
/* Exact squared Euclidean distance between two rows, in double. */
double dc_eval_exact_sq(const float *a, const float *b, int dim);

/* The k nearest rows of r for each row of q: exact squared distances sq_dist[i*k + j],
 * ascending (lower row number first on ties), and their rows in index (may be NULL).
 * exclude_self: q and r are the same set and row i is skipped for query i. */
dc_status dc_eval_knn(const dc_eval_points *q, const dc_eval_points *r, int k, int exclude_self,
                      double *sq_dist, int *index, dc_error *err);
/* How many rows of q lie within (<=) the ball of some row j of r of squared radius
 * sq_radius[j]. */
dc_status dc_eval_coverage(const dc_eval_points *q, const dc_eval_points *r,
                           const double *sq_radius, int64_t *covered, dc_error *err);

#endif
