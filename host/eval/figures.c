/* Class histograms of predicted labels, and the small-data figures of generated images:
 * memorisation / novelty against the training images, mid-grey share and edge sharpness. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/eval.h"
#include "eval/eval_internal.h"
#include "internal.h"

/* ------------------------------------------------------------ class histogram */

dc_status dc_argmax_rows(const float *scores, int n, int n_classes, int *labels, dc_error *err) {
    if ((!scores || !labels) && n > 0)
        return dc_set_error(err, DC_ERR_ARG, "dc_argmax_rows: scores or labels is NULL");
    if (n < 0 || n_classes < 1)
        return dc_set_error(err, DC_ERR_ARG, "dc_argmax_rows: %d rows of %d classes", n, n_classes);
    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * n_classes;
        int best = 0;
        for (int j = 0; j < n_classes; j++) {
            if (isnan(row[j]))
                return dc_set_error(err, DC_ERR_NUMERIC, "dc_argmax_rows: row %d, class %d is NaN",
                                    i, j);
            if (row[j] > row[best]) best = j;
        }
        labels[i] = best;
    }
    return DC_OK;
}

dc_status dc_class_histogram_compute(const int *labels, int n, int n_classes, int64_t *counts,
                                     dc_class_histogram *out, dc_error *err) {
    const char *fn = "dc_class_histogram_compute";
    if (out) memset(out, 0, sizeof *out);
    if (!counts || (!labels && n > 0))
        return dc_set_error(err, DC_ERR_ARG, "%s: labels or counts is NULL", fn);
    if (n < 0 || n_classes < 1)
        return dc_set_error(err, DC_ERR_ARG, "%s: %d labels of %d classes", fn, n, n_classes);
    memset(counts, 0, sizeof(int64_t) * (size_t)n_classes);
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes)
            return dc_set_error(err, DC_ERR_ARG, "%s: label %d of item %d is outside [0, %d)", fn,
                                labels[i], i, n_classes);
        counts[labels[i]]++;
    }
    if (!out) return DC_OK;
    out->n = n;
    out->n_classes = n_classes;
    for (int c = 0; c < n_classes; c++) {
        if (counts[c] > counts[out->top_class]) out->top_class = c;
        if (counts[c] > 0) {
            const double p = (double)counts[c] / n;
            out->entropy_bits -= p * log2(p);
        }
    }
    out->top_share = n > 0 ? (double)counts[out->top_class] / n : 0;
    out->entropy_norm = n_classes > 1 ? out->entropy_bits / log2((double)n_classes) : 0;
    return DC_OK;
}

/* --------------------------------------------------------------- memorisation */

static dc_status check_images(const float *x, int n, size_t numel, int min_n, const char *fn,
                              const char *what, dc_error *err) {
    if (!x) return dc_set_error(err, DC_ERR_ARG, "%s: %s is NULL", fn, what);
    if (n < min_n || numel < 1 || numel > (size_t)1 << 30)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: %s has %d images of %zu values (needs %d or "
                            "more)",
                            fn, what, n, numel, min_n);
    return DC_OK;
}

/* Fill out from the squared nearest / 2nd-nearest distances (n rows of 2) and the
 * training set's threshold (an RMS distance). */
static void memorisation_figures(const double *sq2, int n, size_t numel, double threshold,
                                 double *nearest, double *second, dc_memorisation *out) {
    out->threshold = threshold;
    out->min_nearest = INFINITY;
    double sum_sq = 0;
    int64_t memorised = 0;
    for (int i = 0; i < n; i++) {
        const double d1 = sqrt(sq2[2 * i] / (double)numel),
                     d2 = sqrt(sq2[2 * i + 1] / (double)numel);
        if (nearest) nearest[i] = d1;
        if (second) second[i] = d2;
        memorised += d1 < threshold;
        /* d2 == 0: the sample equals two training images, a copy (ratio 0) */
        out->mean_ratio += (d2 > 0 ? d1 / d2 : 0) / n;
        out->mean_nearest += d1 / n;
        if (d1 < out->min_nearest) out->min_nearest = d1;
        sum_sq += d1 * d1;
    }
    out->share_memorised = (double)memorised / n;
    out->rms_nearest = sqrt(sum_sq / n);
}

/* Squared nearest and 2nd-nearest training distances of q (rows of 2), and the training
 * set's smallest nearest-other distance (RMS) in *threshold. */
static dc_status nearest_two(const float *q, int nq, const float *train, int n_train, size_t numel,
                             int same, double *sq2, int *index2, double *threshold, dc_error *err) {
    const int dim = (int)numel;
    double *centre = malloc(sizeof(double) * numel);
    double *sq1 = same ? NULL : malloc(sizeof(double) * (size_t)n_train);
    if (!centre || (!same && !sq1)) {
        free(centre), free(sq1);
        return dc_set_error(err, DC_ERR_OOM, "memorisation: out of memory");
    }
    dc_eval_column_means(train, n_train, dim, centre);
    dc_eval_points pt = {0}, pq = {0};
    dc_status s = dc_eval_points_prepare(train, n_train, dim, centre, "training images", &pt, err);
    if (s == DC_OK && !same) s = dc_eval_points_prepare(q, nq, dim, centre, "samples", &pq, err);
    if (s == DC_OK) s = dc_eval_knn(same ? &pt : &pq, &pt, 2, same, sq2, index2, err);
    if (s == DC_OK && !same) s = dc_eval_knn(&pt, &pt, 1, 1, sq1, NULL, err);
    if (s == DC_OK) {
        double smallest = INFINITY;
        for (int j = 0; j < n_train; j++) {
            const double v = same ? sq2[2 * j] : sq1[j];
            if (v < smallest) smallest = v;
        }
        *threshold = sqrt(smallest / (double)numel);
    }
    dc_eval_points_clear(&pt);
    dc_eval_points_clear(&pq);
    free(centre), free(sq1);
    return s;
}

dc_status dc_memorisation_compute(const float *samples, int n_samples, const float *train,
                                  int n_train, size_t numel, double *nearest, double *second,
                                  int *nearest_index, dc_memorisation *out, dc_error *err) {
    const char *fn = "dc_memorisation_compute";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    DC_TRY(check_images(samples, n_samples, numel, 1, fn, "samples", err));
    DC_TRY(check_images(train, n_train, numel, 2, fn, "training images", err));
    double *sq2 = malloc(sizeof(double) * 2 * (size_t)n_samples);
    int *idx2 = malloc(sizeof(int) * 2 * (size_t)n_samples);
    if (!sq2 || !idx2) {
        free(sq2), free(idx2);
        return dc_set_error(err, DC_ERR_OOM, "%s: out of memory for %d samples", fn, n_samples);
    }
    double threshold = 0;
    dc_status s =
        nearest_two(samples, n_samples, train, n_train, numel, 0, sq2, idx2, &threshold, err);
    if (s == DC_OK) {
        out->n_samples = n_samples;
        out->n_train = n_train;
        memorisation_figures(sq2, n_samples, numel, threshold, nearest, second, out);
        if (nearest_index)
            for (int i = 0; i < n_samples; i++)
                nearest_index[i] = idx2[2 * i];
    }
    free(sq2), free(idx2);
    return s;
}

dc_status dc_memorisation_train(const float *train, int n_train, size_t numel, dc_memorisation *out,
                                dc_error *err) {
    const char *fn = "dc_memorisation_train";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    DC_TRY(check_images(train, n_train, numel, 3, fn, "training images", err));
    double *sq2 = malloc(sizeof(double) * 2 * (size_t)n_train);
    if (!sq2) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", fn);
    double threshold = 0;
    dc_status s = nearest_two(train, n_train, train, n_train, numel, 1, sq2, NULL, &threshold, err);
    if (s == DC_OK) {
        out->n_samples = out->n_train = n_train;
        memorisation_figures(sq2, n_train, numel, threshold, NULL, NULL, out);
    }
    free(sq2);
    return s;
}

/* ------------------------------------------------------------ silhouette figures */

static inline double clip_unit(float v) {
    return v < -1.0f ? -1.0 : v > 1.0f ? 1.0 : (double)v;
}

/* Accumulates the contrast of a pair if it crosses the mid level. */
static inline void edge_pair(float a, float b, double *sum, int64_t *count) {
    if ((a < 0.0f) != (b < 0.0f)) {
        *sum += fabs(clip_unit(a) - clip_unit(b)) * 0.5;
        (*count)++;
    }
}

dc_status dc_silhouette_figures_compute(const float *images, int n, int c, int h, int w,
                                        dc_silhouette_figures *out, dc_error *err) {
    const char *fn = "dc_silhouette_figures_compute";
    if (!out) return dc_set_error(err, DC_ERR_ARG, "%s: out is NULL", fn);
    memset(out, 0, sizeof *out);
    if (!images || n < 1 || c < 1 || h < 1 || w < 1)
        return dc_set_error(err, DC_ERR_ARG, "%s: %d images of [%d, %d, %d]%s", fn, n, c, h, w,
                            images ? "" : " (images is NULL)");
    const size_t plane = (size_t)h * w, total = (size_t)n * c * plane;
    for (size_t i = 0; i < total; i++)
        if (!isfinite(images[i]))
            return dc_set_error(err, DC_ERR_NUMERIC, "%s: image %zu has %g at value %zu", fn,
                                i / ((size_t)c * plane), (double)images[i],
                                i % ((size_t)c * plane));
    int64_t grey = 0, edges = 0;
    double contrast = 0;
#pragma omp parallel for schedule(static) reduction(+ : grey, edges, contrast)
    for (int64_t p = 0; p < (int64_t)n * c; p++) {
        const float *x = images + (size_t)p * plane;
        for (size_t i = 0; i < plane; i++)
            grey += fabsf(x[i]) < 0.5f;
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                const float v = x[(size_t)y * w + xx];
                if (xx + 1 < w) edge_pair(v, x[(size_t)y * w + xx + 1], &contrast, &edges);
                if (y + 1 < h) edge_pair(v, x[(size_t)(y + 1) * w + xx], &contrast, &edges);
            }
    }
    out->n = n;
    out->mid_grey_share = (double)grey / (double)total;
    out->edge_sharpness = edges > 0 ? contrast / (double)edges : 0;
    out->edge_pairs = (double)edges / n;
    return DC_OK;
}
