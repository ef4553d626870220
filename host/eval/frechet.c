/* Frechet distance between two Gaussians fitted to feature sets. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/eval.h"
#include "eval/eval_internal.h"
#include "internal.h"

/* Rows accumulated per covariance update (bounds the double copy to 1024 x dim). */
#define STATS_BLOCK 1024

dc_status dc_feature_stats(const float *features, int n, int dim, double *mean, double *cov,
                           dc_error *err) {
    const char *fn = "dc_feature_stats";
    if (!features || !mean || !cov)
        return dc_set_error(err, DC_ERR_ARG, "%s: features, mean or cov is NULL", fn);
    if (n < 2 || dim < 1)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: %d rows of %d features (a covariance needs 2 rows or more)", fn, n,
                            dim);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        if (!isfinite(features[i]))
            return dc_set_error(err, DC_ERR_NUMERIC, "%s: row %zu, feature %zu is %g", fn,
                                i / (size_t)dim, i % (size_t)dim, (double)features[i]);
    const int rows_per_block = n < STATS_BLOCK ? n : STATS_BLOCK;
    double *centred = malloc(sizeof(double) * (size_t)rows_per_block * dim);
    if (!centred)
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d x %d features", fn,
                            rows_per_block, dim);
    dc_eval_column_means(features, n, dim, mean);
    memset(cov, 0, sizeof(double) * (size_t)dim * dim);
    /* two passes (mean first, then centred products) keep the cancellation small */
    for (int i0 = 0; i0 < n; i0 += rows_per_block) {
        const int rows = n - i0 < rows_per_block ? n - i0 : rows_per_block;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < dim; j++)
                centred[(size_t)i * dim + j] =
                    (double)features[(size_t)(i0 + i) * dim + j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, rows, 1.0, centred, dim, 1.0, cov,
                    dim);
    }
    free(centred);
    for (int i = 0; i < dim; i++)
        for (int j = i; j < dim; j++) {
            const double v = cov[(size_t)i * dim + j] / (n - 1);
            cov[(size_t)i * dim + j] = cov[(size_t)j * dim + i] = v;
        }
    return DC_OK;
}

/* Clamp the tiny negative eigenvalues of a PSD matrix named `what`; fail on a real one. */
static dc_status clamp_eigenvalues(double *values, int n, const char *what, dc_frechet_result *out,
                                   dc_error *err) {
    double largest = 0;
    for (int i = 0; i < n; i++)
        if (fabs(values[i]) > largest) largest = fabs(values[i]);
    for (int i = 0; i < n; i++) {
        if (values[i] >= 0) continue;
        if (values[i] < out->most_negative) out->most_negative = values[i];
        if (values[i] < -1e-9 * largest)
            return dc_set_error(err, DC_ERR_NUMERIC,
                                "dc_frechet_distance: %s is not positive semi-definite "
                                "(eigenvalue %.6g, largest %.6g)",
                                what, values[i], largest);
        values[i] = 0;
        out->clamped++;
    }
    return DC_OK;
}

dc_status dc_frechet_distance_stats(int dim, const double *mean1, const double *cov1,
                                    const double *mean2, const double *cov2, dc_frechet_result *out,
                                    dc_error *err) {
    const char *fn = "dc_frechet_distance_stats";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (dim < 1 || !mean1 || !cov1 || !mean2 || !cov2)
        return dc_set_error(err, DC_ERR_ARG, "%s: dim %d, or a mean or covariance is NULL", fn,
                            dim);
    const size_t dd = (size_t)dim * dim;
    const double *arrays[4] = {mean1, cov1, mean2, cov2};
    const char *names[4] = {"mean 1", "covariance 1", "mean 2", "covariance 2"};
    for (int a = 0; a < 4; a++) {
        const size_t len = a % 2 ? dd : (size_t)dim;
        for (size_t i = 0; i < len; i++)
            if (!isfinite(arrays[a][i]))
                return dc_set_error(err, DC_ERR_NUMERIC, "%s: %s has %g at index %zu", fn, names[a],
                                    arrays[a][i], i);
    }
    double *s1 = malloc(sizeof(double) * dd), *s2 = malloc(sizeof(double) * dd);
    double *vec = malloc(sizeof(double) * dd), *tmp = malloc(sizeof(double) * dd);
    double *val = malloc(sizeof(double) * (size_t)dim);
    dc_status s = DC_OK;
    if (!s1 || !s2 || !vec || !tmp || !val) {
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d x %d matrices", fn, dim, dim);
        goto done;
    }
    double trace1 = 0, trace2 = 0;
    for (int i = 0; i < dim; i++) {
        const double d = mean1[i] - mean2[i];
        out->mean_term += d * d;
        trace1 += cov1[(size_t)i * dim + i];
        trace2 += cov2[(size_t)i * dim + i];
        for (int j = 0; j < dim; j++) {
            s1[(size_t)i * dim + j] = 0.5 * (cov1[(size_t)i * dim + j] + cov1[(size_t)j * dim + i]);
            s2[(size_t)i * dim + j] = 0.5 * (cov2[(size_t)i * dim + j] + cov2[(size_t)j * dim + i]);
        }
    }
    /* S1 = V^T diag(l) V (eigenvectors as the rows of V). With D = diag(sqrt(l)),
     * M = (D V) S2 (D V)^T = V (S1^1/2 S2 S1^1/2) V^T: symmetric, with the eigenvalues of
     * S1 S2, so Tr (S1 S2)^1/2 = sum sqrt(eig(M)). */
    int sweeps = 0;
    s = dc_eval_sym_eigen(dim, s1, val, vec, &sweeps, err);
    out->sweeps += sweeps;
    if (s != DC_OK) goto done;
    s = clamp_eigenvalues(val, dim, "covariance 1", out, err);
    if (s != DC_OK) goto done;
    for (int i = 0; i < dim; i++) {
        const double r = sqrt(val[i]);
        for (int j = 0; j < dim; j++)
            vec[(size_t)i * dim + j] *= r;
    }
    /* tmp = (D V) S2, then s1 = tmp (D V)^T */
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, dim, dim, 1.0, s2, dim, vec, dim, 0.0, tmp,
                dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, dim, dim, dim, 1.0, tmp, dim, vec, dim,
                0.0, s1, dim);
    for (int i = 0; i < dim; i++)
        for (int j = i + 1; j < dim; j++) {
            const double v = 0.5 * (s1[(size_t)i * dim + j] + s1[(size_t)j * dim + i]);
            s1[(size_t)i * dim + j] = s1[(size_t)j * dim + i] = v;
        }
    s = dc_eval_sym_eigen(dim, s1, val, NULL, &sweeps, err);
    out->sweeps += sweeps;
    if (s != DC_OK) goto done;
    s = clamp_eigenvalues(val, dim, "S1^1/2 S2 S1^1/2 (covariance 2)", out, err);
    if (s != DC_OK) goto done;
    double trace_sqrt = 0;
    for (int i = 0; i < dim; i++)
        trace_sqrt += sqrt(val[i]);
    out->trace_term = trace1 + trace2 - 2.0 * trace_sqrt;
    out->distance = out->mean_term + out->trace_term;
    /* rounding can leave a tiny negative trace term for identical covariances */
    if (out->distance < 0) out->distance = 0;
done:
    free(s1), free(s2), free(vec), free(tmp), free(val);
    return s;
}

dc_status dc_frechet_distance(const float *features1, int n1, const float *features2, int n2,
                              int dim, dc_frechet_result *out, dc_error *err) {
    const char *fn = "dc_frechet_distance";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (dim < 1) return dc_set_error(err, DC_ERR_ARG, "%s: %d features", fn, dim);
    const size_t dd = (size_t)dim * dim;
    double *m1 = malloc(sizeof(double) * (size_t)dim), *m2 = malloc(sizeof(double) * (size_t)dim);
    double *c1 = malloc(sizeof(double) * dd), *c2 = malloc(sizeof(double) * dd);
    dc_status s = DC_OK;
    if (!m1 || !m2 || !c1 || !c2)
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d x %d covariances", fn, dim,
                         dim);
    if (s == DC_OK && (s = dc_feature_stats(features1, n1, dim, m1, c1, err)) != DC_OK)
        dc_wrap_error(err, s, "%s: feature set 1", fn);
    if (s == DC_OK && (s = dc_feature_stats(features2, n2, dim, m2, c2, err)) != DC_OK)
        dc_wrap_error(err, s, "%s: feature set 2", fn);
    if (s == DC_OK) s = dc_frechet_distance_stats(dim, m1, c1, m2, c2, out, err);
    free(m1), free(m2), free(c1), free(c2);
    return s;
}
