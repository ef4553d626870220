/* Exact nearest neighbours and k-NN manifolds (precision and recall).
 *
 * A float GEMM on mean-centred copies gives every pair's squared distance
 * |a|^2 + |b|^2 - 2 a.b up to a rounding bound; only the pairs whose approximate value is
 * within that bound of a decision are recomputed exactly in double, so the results are
 * those of exact double distances at the cost of one GEMM. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/eval.h"
#include "eval/eval_internal.h"
#include "internal.h"

/* The GEMM's distance block stays under this many floats (64 MB). */
#define BLOCK_FLOATS ((size_t)16 << 20)

void dc_eval_column_means(const float *rows, int n, int dim, double *mean) {
    for (int j = 0; j < dim; j++)
        mean[j] = 0;
    for (int i = 0; i < n; i++) {
        const float *x = rows + (size_t)i * dim;
        for (int j = 0; j < dim; j++)
            mean[j] += x[j];
    }
    for (int j = 0; j < dim; j++)
        mean[j] /= n > 0 ? n : 1;
}

double dc_eval_exact_sq(const float *a, const float *b, int dim) {
    double s = 0;
    for (int j = 0; j < dim; j++) {
        const double d = (double)a[j] - (double)b[j];
        s += d * d;
    }
    return s;
}

void dc_eval_points_clear(dc_eval_points *p) {
    if (!p) return;
    free(p->centred);
    free(p->norm);
    memset(p, 0, sizeof *p);
}

dc_status dc_eval_points_prepare(const float *rows, int n, int dim, const double *centre,
                                 const char *what, dc_eval_points *p, dc_error *err) {
    memset(p, 0, sizeof *p);
    for (size_t i = 0; i < (size_t)n * dim; i++)
        if (!isfinite(rows[i]))
            return dc_set_error(err, DC_ERR_NUMERIC, "%s: row %zu, column %zu is %g", what,
                                i / (size_t)dim, i % (size_t)dim, (double)rows[i]);
    p->rows = rows;
    p->n = n;
    p->dim = dim;
    p->centred = malloc(sizeof(float) * (n > 0 ? (size_t)n * dim : 1)); /* never malloc(0) */
    p->norm = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (!p->centred || !p->norm) {
        dc_eval_points_clear(p);
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d x %d features", what, n,
                            dim);
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *x = rows + (size_t)i * dim;
        float *y = p->centred + (size_t)i * dim;
        double s = 0;
        for (int j = 0; j < dim; j++) {
            y[j] = (float)((double)x[j] - centre[j]);
            s += (double)y[j] * y[j];
        }
        p->norm[i] = sqrt(s);
    }
    return DC_OK;
}

/* Bound on |approximate - exact| squared distance for rows of centred norms na and nb:
 * the float dot product errs by at most dim * u * na * nb (u = FLT_EPSILON / 2, any
 * summation order), counted twice in -2 a.b, plus its rounding to float; centring in
 * float moves the distance by at most u (na + nb) per unit of distance, i.e. about
 * 2 u (na + nb)^2 on its square. Doubled for safety: a loose bound only costs exact
 * recomputations. */
static inline double gemm_tolerance(int dim, double na, double nb) {
    const double u = 0.5 * FLT_EPSILON;
    return 2.0 * u * ((2.0 * dim + 4.0) * na * nb + 2.2 * (na + nb) * (na + nb));
}

static int block_rows(int n_ref) {
    size_t rows = BLOCK_FLOATS / (size_t)(n_ref > 0 ? n_ref : 1);
    if (rows < 16) rows = 16;
    if (rows > 2048) rows = 2048;
    return (int)rows;
}

/* Insert (value, idx) into the ascending list of at most k entries, count of them now
 * filled; ties keep the earlier entry first. */
static inline void top_insert(double *val, int *idx, int *count, int k, double v, int j) {
    int pos = *count < k ? *count : k - 1;
    if (*count >= k && !(v < val[k - 1])) return;
    while (pos > 0 && val[pos - 1] > v) {
        val[pos] = val[pos - 1];
        if (idx) idx[pos] = idx[pos - 1];
        pos--;
    }
    val[pos] = v;
    if (idx) idx[pos] = j;
    if (*count < k) (*count)++;
}

dc_status dc_eval_knn(const dc_eval_points *q, const dc_eval_points *r, int k, int exclude_self,
                      double *sq_dist, int *index, dc_error *err) {
    const int dim = q->dim, nr = r->n;
    const int available = nr - (exclude_self ? 1 : 0);
    if (k < 1 || k > available)
        return dc_set_error(err, DC_ERR_ARG,
                            "nearest neighbours: k = %d but the reference set offers %d rows%s", k,
                            available, exclude_self ? " besides the query itself" : "");
    double rmax = 0;
    for (int j = 0; j < nr; j++)
        if (r->norm[j] > rmax) rmax = r->norm[j];
    const int bs = block_rows(nr);
    float *block = malloc(sizeof(float) * (size_t)bs * nr);
    double *approx_top = malloc(sizeof(double) * (size_t)bs * k);
    int *idx_top = malloc(sizeof(int) * (size_t)bs * k);
    if (!block || !approx_top || !idx_top) {
        free(block), free(approx_top), free(idx_top);
        return dc_set_error(err, DC_ERR_OOM,
                            "nearest neighbours: out of memory for a %d x %d "
                            "distance block",
                            bs, nr);
    }
    for (int i0 = 0; i0 < q->n; i0 += bs) {
        const int rows = q->n - i0 < bs ? q->n - i0 : bs;
        dc_eval_sgemm_nt(rows, nr, dim, q->centred + (size_t)i0 * dim, r->centred, block);
#pragma omp parallel for schedule(dynamic, 8)
        for (int li = 0; li < rows; li++) {
            const int i = i0 + li;
            const float *dot = block + (size_t)li * nr;
            const double na = q->norm[i];
            double *atop = approx_top + (size_t)li * k;
            double *etop = sq_dist + (size_t)i * k;
            int *itop = index ? index + (size_t)i * k : idx_top + (size_t)li * k;
            /* pass 1: the k smallest approximate squared distances */
            int filled = 0;
            for (int j = 0; j < nr; j++) {
                if (exclude_self && j == i) continue;
                const double d = na * na + r->norm[j] * r->norm[j] - 2.0 * (double)dot[j];
                top_insert(atop, NULL, &filled, k, d, j);
            }
            /* pass 2: every row that may beat the exact k-th smallest, exactly. The exact
             * k-th smallest is at most atop[k-1] + the largest bound of this row. */
            const double limit = atop[k - 1] + gemm_tolerance(dim, na, rmax);
            filled = 0;
            for (int j = 0; j < nr; j++) {
                if (exclude_self && j == i) continue;
                const double d = na * na + r->norm[j] * r->norm[j] - 2.0 * (double)dot[j];
                if (d - gemm_tolerance(dim, na, r->norm[j]) > limit) continue;
                const double e =
                    dc_eval_exact_sq(q->rows + (size_t)i * dim, r->rows + (size_t)j * dim, dim);
                top_insert(etop, itop, &filled, k, e, j);
            }
        }
    }
    free(block), free(approx_top), free(idx_top);
    return DC_OK;
}

dc_status dc_eval_coverage(const dc_eval_points *q, const dc_eval_points *r,
                           const double *sq_radius, int64_t *covered, dc_error *err) {
    const int dim = q->dim, nr = r->n;
    const int bs = block_rows(nr);
    float *block = malloc(sizeof(float) * (size_t)bs * nr);
    if (!block)
        return dc_set_error(err, DC_ERR_OOM,
                            "manifold coverage: out of memory for a %d x %d "
                            "distance block",
                            bs, nr);
    int64_t count = 0;
    for (int i0 = 0; i0 < q->n; i0 += bs) {
        const int rows = q->n - i0 < bs ? q->n - i0 : bs;
        dc_eval_sgemm_nt(rows, nr, dim, q->centred + (size_t)i0 * dim, r->centred, block);
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : count)
        for (int li = 0; li < rows; li++) {
            const int i = i0 + li;
            const float *dot = block + (size_t)li * nr;
            const double na = q->norm[i];
            int inside = 0;
            for (int j = 0; j < nr && !inside; j++) {
                const double d = na * na + r->norm[j] * r->norm[j] - 2.0 * (double)dot[j];
                const double tol = gemm_tolerance(dim, na, r->norm[j]);
                if (d - tol > sq_radius[j]) continue;
                if (d + tol <= sq_radius[j])
                    inside = 1;
                else
                    inside = dc_eval_exact_sq(q->rows + (size_t)i * dim, r->rows + (size_t)j * dim,
                                              dim) <= sq_radius[j];
            }
            count += inside;
        }
    }
    free(block);
    *covered = count;
    return DC_OK;
}

/* ------------------------------------------------------------------ public API */

static dc_status check_set(const float *x, int n, int dim, const char *fn, const char *what,
                           dc_error *err) {
    if (!x && n > 0) return dc_set_error(err, DC_ERR_ARG, "%s: %s is NULL", fn, what);
    if (n < 0 || dim < 1)
        return dc_set_error(err, DC_ERR_ARG, "%s: %s has %d rows of %d features", fn, what, n, dim);
    return DC_OK;
}

dc_status dc_knn_distances(const float *query, int n_query, const float *ref, int n_ref, int dim,
                           int k, int exclude_self, double *dist, int *index, dc_error *err) {
    const char *fn = "dc_knn_distances";
    DC_TRY(check_set(query, n_query, dim, fn, "query", err));
    DC_TRY(check_set(ref, n_ref, dim, fn, "reference", err));
    if (!dist && n_query > 0) return dc_set_error(err, DC_ERR_ARG, "%s: dist is NULL", fn);
    if (exclude_self && (query != ref || n_query != n_ref))
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: exclude_self needs the query and reference to be the same "
                            "rows",
                            fn);
    double *centre = malloc(sizeof(double) * (size_t)dim);
    if (!centre) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", fn);
    dc_eval_column_means(ref, n_ref, dim, centre);
    dc_eval_points q = {0}, r = {0};
    dc_status s = dc_eval_points_prepare(query, n_query, dim, centre, "query", &q, err);
    if (s == DC_OK) s = dc_eval_points_prepare(ref, n_ref, dim, centre, "reference", &r, err);
    if (s == DC_OK) s = dc_eval_knn(&q, &r, k, exclude_self, dist, index, err);
    if (s == DC_OK)
        for (size_t i = 0; i < (size_t)n_query * k; i++)
            dist[i] = sqrt(dist[i]);
    dc_eval_points_clear(&q);
    dc_eval_points_clear(&r);
    free(centre);
    return s;
}

dc_status dc_precision_recall_compute(const float *real, int n_real, const float *fake, int n_fake,
                                      int dim, int k, dc_precision_recall *out, dc_error *err) {
    const char *fn = "dc_precision_recall_compute";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (k <= 0) k = DC_PRECISION_RECALL_K;
    DC_TRY(check_set(real, n_real, dim, fn, "real features", err));
    DC_TRY(check_set(fake, n_fake, dim, fn, "generated features", err));
    if (n_real <= k || n_fake <= k)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: k = %d needs more than k samples in each set (real %d, "
                            "generated %d)",
                            fn, k, n_real, n_fake);
    double *centre = malloc(sizeof(double) * (size_t)dim);
    double *kth_real = malloc(sizeof(double) * (size_t)n_real * k);
    double *kth_fake = malloc(sizeof(double) * (size_t)n_fake * k);
    double *rad_real = malloc(sizeof(double) * (size_t)n_real);
    double *rad_fake = malloc(sizeof(double) * (size_t)n_fake);
    dc_eval_points pr = {0}, pf = {0};
    dc_status s = DC_OK;
    if (!centre || !kth_real || !kth_fake || !rad_real || !rad_fake) {
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d + %d samples", fn, n_real,
                         n_fake);
        goto done;
    }
    /* one centre for both sets: the cross distances need the same shift on each side */
    dc_eval_column_means(real, n_real, dim, centre);
    s = dc_eval_points_prepare(real, n_real, dim, centre, "real features", &pr, err);
    if (s == DC_OK)
        s = dc_eval_points_prepare(fake, n_fake, dim, centre, "generated features", &pf, err);
    if (s == DC_OK) s = dc_eval_knn(&pr, &pr, k, 1, kth_real, NULL, err);
    if (s == DC_OK) s = dc_eval_knn(&pf, &pf, k, 1, kth_fake, NULL, err);
    if (s != DC_OK) goto done;
    for (int i = 0; i < n_real; i++)
        rad_real[i] = kth_real[(size_t)i * k + k - 1];
    for (int i = 0; i < n_fake; i++)
        rad_fake[i] = kth_fake[(size_t)i * k + k - 1];
    int64_t fake_inside = 0, real_inside = 0;
    s = dc_eval_coverage(&pf, &pr, rad_real, &fake_inside, err);
    if (s == DC_OK) s = dc_eval_coverage(&pr, &pf, rad_fake, &real_inside, err);
    if (s != DC_OK) goto done;
    out->precision = (double)fake_inside / n_fake;
    out->recall = (double)real_inside / n_real;
    out->k = k;
done:
    dc_eval_points_clear(&pr);
    dc_eval_points_clear(&pf);
    free(centre), free(kth_real), free(kth_fake), free(rad_real), free(rad_fake);
    return s;
}
