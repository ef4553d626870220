/* deconv — figures that judge generated samples: realism (Frechet distance, k-NN precision
 * and recall, class histogram, silhouette mid-grey share and edge sharpness), memorisation
 * and novelty.
 *
 * Data: feature sets are row-major float arrays, one row per sample (n rows, dim columns);
 * images are n consecutive planar images of c * h * w floats in [-1, 1] (a dc_dataset's
 * layout). Arithmetic is in double. Every function is a plain computation over its
 * arguments: nothing is kept between calls, nothing is printed.
 *
 * Errors: every call returns dc_status and leaves a message in err (may be NULL) naming the
 * argument, row or column at fault; non-finite inputs are DC_ERR_NUMERIC.
 *
 * Threads: the distance code runs its products through CBLAS and its loops through
 * OpenMP. When OpenBLAS runs single-threaded (a CPU backend sets it so), the products are
 * split over the OpenMP threads instead, as the CPU backend's GEMM does.
 *
 * Every figure is computable on a training set too (pass it as the samples, or use the
 * *_train variants), so a report can print the floor next to the model's figure.
 */
#ifndef DECONV_EVAL_H
#define DECONV_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

/* --------------------------------------------------------- Frechet distance
 * FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})  (Heusel et al. 2017; FID when the
 * features are an Inception network's).
 * The trace of (S1 S2)^{1/2} is computed in the symmetric form: with R = S1^{1/2} (from a
 * symmetric eigen-decomposition of S1), R S2 R is symmetric positive semi-definite and has
 * the eigenvalues of S1 S2, so Tr (S1 S2)^{1/2} = sum_i sqrt(eig_i(R S2 R)). Both
 * decompositions use cyclic Jacobi rotations in double (accurate to rounding for the
 * feature sizes used here, up to a few hundred). Eigenvalues below zero are rounding when
 * they are tiny (|l| <= 1e-9 * the largest |eigenvalue|): they are set to zero and counted
 * in `clamped`; a larger negative eigenvalue means a covariance that is not positive
 * semi-definite and is DC_ERR_NUMERIC. */
typedef struct dc_frechet_result {
    double distance;      /* mean_term + trace_term, clamped at 0 */
    double mean_term;     /* |mu1 - mu2|^2 */
    double trace_term;    /* Tr(S1) + Tr(S2) - 2 Tr (S1 S2)^{1/2} */
    int clamped;          /* negative eigenvalues set to 0 (both decompositions) */
    double most_negative; /* the most negative eigenvalue seen (0 when none) */
    int sweeps;           /* Jacobi sweeps used (both decompositions) */
} dc_frechet_result;

/* Mean (dim doubles) and unbiased covariance (dim x dim doubles, row-major, divided by
 * n - 1, as numpy.cov(rowvar=False)) of n >= 2 feature rows. */
dc_status dc_feature_stats(const float *features, int n, int dim, double *mean, double *cov,
                           dc_error *err);
/* FD between two Gaussians given as (mean, covariance); covariances are symmetrised
 * ((S + S^T) / 2) before use. */
dc_status dc_frechet_distance_stats(int dim, const double *mean1, const double *cov1,
                                    const double *mean2, const double *cov2, dc_frechet_result *out,
                                    dc_error *err);
/* FD between two feature sets (n1, n2 >= 2 rows of dim features). */
dc_status dc_frechet_distance(const float *features1, int n1, const float *features2, int n2,
                              int dim, dc_frechet_result *out, dc_error *err);

/* --------------------------------------------------------- nearest neighbours
 * Exact Euclidean distances: a float GEMM gives |a|^2 + |b|^2 - 2 a.b for every pair (on
 * mean-centred copies, so the cancellation is small), and every pair whose approximate
 * value lies within the GEMM's rounding bound of a decision (a k-th smallest distance, a
 * radius) is recomputed exactly in double. Results are therefore those of the exact
 * double distances, whatever the rounding of the product.
 *
 * For each query row i, the k nearest reference rows: dist[i*k + j] (ascending, j < k)
 * and, when index is not NULL, their row numbers index[i*k + j]. exclude_self: the query
 * and reference sets are the same rows (query == ref, n_query == n_ref) and row i is not
 * its own neighbour. Needs k <= n_ref (k < n_ref with exclude_self). */
dc_status dc_knn_distances(const float *query, int n_query, const float *ref, int n_ref, int dim,
                           int k, int exclude_self, double *dist, int *index, dc_error *err);

/* Improved precision and recall (Kynkaenniemi et al. 2019). The manifold of a set is the
 * union of balls centred on its samples, each with the radius of the distance to that
 * sample's k-th nearest other sample of the same set.
 *   precision = share of generated samples inside the real manifold
 *   recall    = share of real samples inside the generated manifold
 * A point is inside a ball when its distance is <= the radius (as the authors' code). */
#define DC_PRECISION_RECALL_K 3
typedef struct dc_precision_recall {
    double precision, recall;
    int k;
} dc_precision_recall;

/* k <= 0 means DC_PRECISION_RECALL_K; needs k < n_real and k < n_fake. */
dc_status dc_precision_recall_compute(const float *real, int n_real, const float *fake, int n_fake,
                                      int dim, int k, dc_precision_recall *out, dc_error *err);

/* -------------------------------------------------------------- class histogram */
typedef struct dc_class_histogram {
    int n; /* labels counted */
    int n_classes;
    int top_class;       /* the most frequent class (lowest index on ties) */
    double top_share;    /* its count / n */
    double entropy_bits; /* -sum p log2 p over the classes with p > 0 */
    double entropy_norm; /* entropy_bits / log2(n_classes): 1 = all classes equally often */
} dc_class_histogram;

/* labels[i] = argmax_j scores[i * n_classes + j] (lowest index on ties). */
dc_status dc_argmax_rows(const float *scores, int n, int n_classes, int *labels, dc_error *err);
/* counts[c] (n_classes entries) = how many labels equal c; every label must be in
 * [0, n_classes). out may be NULL. */
dc_status dc_class_histogram_compute(const int *labels, int n, int n_classes, int64_t *counts,
                                     dc_class_histogram *out, dc_error *err);

/* ---------------------------------------------- small-data figures (silhouettes)
 * Distances between images are RMS distances: sqrt(sum (a - b)^2 / (c*h*w)), the scale of
 * the pixel values ([-1, 1]), the same as deconv eval's novelty figure.
 *
 * Memorisation and novelty: for each sample its nearest and 2nd-nearest training image.
 *   threshold       = the smallest distance between two training images (each training
 *                     image to its nearest other one): nothing in the training set is
 *                     closer to another training image than this
 *   share_memorised = share of samples whose nearest training image is closer than the
 *                     threshold (strictly): near-copies
 *   mean_ratio      = mean of nearest / 2nd-nearest over the samples: near 1 when a
 *                     sample sits between training images, near 0 for a copy of one
 *   mean_nearest, min_nearest, rms_nearest = novelty: mean, minimum and RMS of the
 *                     distances to the nearest training image
 * The training set's own figures (each training image against the others) are the floor:
 * dc_memorisation_train. There share_memorised is 0 by definition and mean_ratio,
 * mean_nearest are what replaying the training set scores. */
typedef struct dc_memorisation {
    int n_samples, n_train;
    double threshold;
    double share_memorised;
    double mean_ratio;
    double mean_nearest, min_nearest, rms_nearest;
} dc_memorisation;

/* numel = c*h*w values per image; n_train >= 2. nearest, second (n_samples doubles) and
 * nearest_index (n_samples ints) receive the per-sample values when not NULL. */
dc_status dc_memorisation_compute(const float *samples, int n_samples, const float *train,
                                  int n_train, size_t numel, double *nearest, double *second,
                                  int *nearest_index, dc_memorisation *out, dc_error *err);
/* The same figures for the training images themselves, each against the others
 * (n_train >= 3). */
dc_status dc_memorisation_train(const float *train, int n_train, size_t numel, dc_memorisation *out,
                                dc_error *err);

/* Realism proxies for black-and-white silhouettes:
 *   mid_grey_share = share of values with |v| < 0.5: neither black nor white (MSE's grey
 *                    blur, noise); a silhouette set has almost none.
 *   edge_sharpness = mean contrast across the edges, as a share of the full range: over
 *                    every pair of horizontally or vertically adjacent pixels (same image,
 *                    same channel) whose values lie on opposite sides of 0 (one < 0, the
 *                    other >= 0), the mean of |a - b| / 2 with a, b clipped to [-1, 1].
 *                    1 when every edge steps from black to white within one pixel; a
 *                    blurred edge crosses 0 in a smaller step and scores lower (a Gaussian
 *                    blur of sigma 1 pixel brings a straight step to about 0.38). 0 when
 *                    no pair crosses 0 (edge_pairs == 0).
 *   edge_pairs     = the number of such pairs, per image (edge length in pixels). */
typedef struct dc_silhouette_figures {
    int n;
    double mid_grey_share;
    double edge_sharpness;
    double edge_pairs;
} dc_silhouette_figures;

dc_status dc_silhouette_figures_compute(const float *images, int n, int c, int h, int w,
                                        dc_silhouette_figures *out, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif

#endif
