/* deconv eval's report: verdict lines, JSON, and the small-data block (silhouettes). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval_report.h"

int ev_report_init(ev_report *r, FILE *text) {
    memset(r, 0, sizeof *r);
    r->text = text;
    r->root = cJSON_CreateObject();
    r->verdicts = r->root ? cJSON_AddArrayToObject(r->root, "verdicts") : NULL;
    if (!r->verdicts) {
        cJSON_Delete(r->root);
        r->root = NULL;
        return 1;
    }
    return 0;
}

void ev_report_free(ev_report *r) {
    cJSON_Delete(r->root);
    r->root = NULL;
    r->verdicts = NULL;
}

void ev_json_number(cJSON *obj, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

void ev_verdict(ev_report *r, const char *figure, int pass, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fprintf(r->text, "  %s: %s \xe2\x80\x94 %s\n", figure, pass ? "PASS" : "FAIL", why);
    if (!pass) r->n_fail++;
    cJSON *v = cJSON_CreateObject();
    if (!v) return;
    cJSON_AddStringToObject(v, "figure", figure);
    cJSON_AddBoolToObject(v, "pass", pass);
    cJSON_AddStringToObject(v, "text", why);
    cJSON_AddItemToArray(r->verdicts, v);
}

void ev_report_finish(ev_report *r) {
    if (r->n_fail == 0) {
        fprintf(r->text, "verdict: PASS (every figure within its floor's margin)\n");
    } else {
        fprintf(r->text, "verdict: FAIL (%d figure%s):", r->n_fail, r->n_fail > 1 ? "s" : "");
        const cJSON *v;
        const char *sep = " ";
        cJSON_ArrayForEach(v, r->verdicts) {
            if (cJSON_IsFalse(cJSON_GetObjectItem(v, "pass"))) {
                fprintf(r->text, "%s%s", sep, cJSON_GetObjectItem(v, "figure")->valuestring);
                sep = ", ";
            }
        }
        fprintf(r->text, "\n");
    }
    cJSON_AddBoolToObject(r->root, "pass", r->n_fail == 0);
    cJSON_AddNumberToObject(r->root, "failed", r->n_fail);
}

int ev_report_write_json(const ev_report *r, const char *path) {
    char *s = cJSON_Print(r->root);
    if (!s) return 1;
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        free(s);
        return 1;
    }
    int bad = fputs(s, f) < 0 || fputc('\n', f) == EOF;
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        bad |= fflush(f) != 0;
    free(s);
    return bad;
}

double ev_spread(const float *images, int n, size_t numel) {
    if (n < 1 || numel == 0) return 0;
    double spread = 0;
    for (size_t k = 0; k < numel; k++) {
        double mu = 0, v = 0;
        for (int i = 0; i < n; i++) mu += images[(size_t)i * numel + k];
        mu /= n;
        for (int i = 0; i < n; i++) {
            const double e = images[(size_t)i * numel + k] - mu;
            v += e * e;
        }
        spread += sqrt(v / n);
    }
    return spread / (double)numel;
}

static cJSON *small_json(const dc_memorisation *m, const dc_silhouette_figures *s, double spread) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    ev_json_number(o, "mid_grey_share", s->mid_grey_share);
    ev_json_number(o, "edge_sharpness", s->edge_sharpness);
    ev_json_number(o, "edge_length", s->edge_pairs);
    ev_json_number(o, "memorised_share", m->share_memorised);
    ev_json_number(o, "mean_nearest_ratio", m->mean_ratio);
    ev_json_number(o, "mean_nearest", m->mean_nearest);
    ev_json_number(o, "min_nearest", m->min_nearest);
    ev_json_number(o, "spread", spread);
    return o;
}

int ev_small_data(ev_report *r, const float *samples, int n, const float *train, int n_train,
                  int c, int h, int w, dc_error *err) {
    const size_t numel = (size_t)c * h * w;
    dc_memorisation ms, mt;
    dc_silhouette_figures ss, st;
    if (dc_memorisation_compute(samples, n, train, n_train, numel, NULL, NULL, NULL, &ms, err) ||
        dc_memorisation_train(train, n_train, numel, &mt, err) ||
        dc_silhouette_figures_compute(samples, n, c, h, w, &ss, err) ||
        dc_silhouette_figures_compute(train, n_train, c, h, w, &st, err))
        return 1;
    const double sp = ev_spread(samples, n, numel), spt = ev_spread(train, n_train, numel);

    cJSON *o = cJSON_AddObjectToObject(r->root, "small_data");
    if (o) {
        cJSON_AddNumberToObject(o, "n_samples", n);
        cJSON_AddNumberToObject(o, "n_train", n_train);
        ev_json_number(o, "copy_threshold", ms.threshold);
        cJSON_AddItemToObject(o, "samples", small_json(&ms, &ss, sp));
        cJSON_AddItemToObject(o, "training", small_json(&mt, &st, spt));
    }

    FILE *t = r->text;
    fprintf(t, "samples vs training images: %d samples, %d training images (RMS distances, [-1,1] scale)\n",
            n, n_train);
    fprintf(t, "  %-46s %10s %12s\n", "figure", "samples", "training");
    fprintf(t, "  %-46s %9.1f%% %11.1f%%\n", "mid-grey pixels (|v| < 0.5)", 100 * ss.mid_grey_share,
            100 * st.mid_grey_share);
    fprintf(t, "  %-46s %10.3f %12.3f\n", "edge sharpness (1 = black to white in 1 px)",
            ss.edge_sharpness, st.edge_sharpness);
    fprintf(t, "  %-46s %10.1f %12.1f\n", "edge length per image (pixel pairs)", ss.edge_pairs,
            st.edge_pairs);
    fprintf(t, "  %-46s %9.1f%% %11.1f%%\n", "near-copies (closer than any 2 training imgs)",
            100 * ms.share_memorised, 100 * mt.share_memorised);
    fprintf(t, "  %-46s %10.3f %12.3f\n", "nearest / 2nd-nearest training image, mean",
            ms.mean_ratio, mt.mean_ratio);
    fprintf(t, "  %-46s %10.4f %12.4f\n", "distance to the nearest training image, mean",
            ms.mean_nearest, mt.mean_nearest);
    fprintf(t, "  %-46s %10.4f %12.4f\n", "distance to the nearest training image, min",
            ms.min_nearest, mt.min_nearest);
    fprintf(t, "  %-46s %10.4f %12.4f\n", "spread between images (mean per-pixel std)", sp, spt);

    const int grey_ok = ss.mid_grey_share <= st.mid_grey_share + EV_MID_GREY_MARGIN;
    ev_verdict(r, "realism (mid-grey)", grey_ok, "%.0f%% mid-grey pixels vs %.0f%% in the training images%s",
               100 * ss.mid_grey_share, 100 * st.mid_grey_share,
               grey_ok ? "" : " (grey blur or noise)");
    const double len_ratio = st.edge_pairs > 0 ? ss.edge_pairs / st.edge_pairs
                                               : (ss.edge_pairs > 0 ? INFINITY : 1.0);
    const int sharp_ok = ss.edge_sharpness >= EV_SHARPNESS_SHARE * st.edge_sharpness;
    const int len_ok = len_ratio >= 1.0 / EV_EDGE_LENGTH_FACTOR && len_ratio <= EV_EDGE_LENGTH_FACTOR;
    ev_verdict(r, "realism (edges)", sharp_ok && len_ok,
               "edge sharpness %.2f vs %.2f, edge length %.0f vs %.0f pixels per image in the training "
               "images%s",
               ss.edge_sharpness, st.edge_sharpness, ss.edge_pairs, st.edge_pairs,
               !sharp_ok ? " (blurred edges)"
               : !len_ok ? (len_ratio > 1 ? " (speckle: far more edges than a silhouette has)"
                                          : " (too few edges: blank or blob-like)")
                         : "");
    const int realism_ok = grey_ok && sharp_ok && len_ok;
    const int copies_ok = ms.share_memorised <= EV_MEMORISED_MAX;
    const int ratio_ok = ms.mean_ratio >= EV_RATIO_SHARE * mt.mean_ratio;
    ev_verdict(r, "memorisation", copies_ok && ratio_ok,
               "%.0f%% of samples are closer to a training image than any two training images are "
               "(%.4f); nearest/2nd-nearest ratio %.2f vs %.2f between training images%s",
               100 * ms.share_memorised, ms.threshold, ms.mean_ratio, mt.mean_ratio,
               copies_ok && ratio_ok ? "" : " (samples replay training images)");
    if (!realism_ok)
        ev_verdict(r, "novelty", 0,
                   "not credited: mean distance to the nearest training image %.3f vs %.3f between "
                   "training images, but the samples fail realism (noise and grey are far from "
                   "everything)",
                   ms.mean_nearest, mt.mean_nearest);
    else if (!(copies_ok && ratio_ok))
        ev_verdict(r, "novelty", 0,
                   "mean distance to the nearest training image %.3f vs %.3f between training "
                   "images: the samples sit on training images",
                   ms.mean_nearest, mt.mean_nearest);
    else
        ev_verdict(r, "novelty", 1,
                   "mean distance to the nearest training image %.3f (min %.3f) vs %.3f between "
                   "training images, realistic and not copied",
                   ms.mean_nearest, ms.min_nearest, mt.mean_nearest);
    const int spread_ok = sp >= EV_SPREAD_SHARE * spt;
    ev_verdict(r, "diversity", spread_ok, "samples differ by %.3f per pixel vs %.3f between training images%s",
               sp, spt, spread_ok ? "" : " (the samples are nearly all alike)");
    return 0;
}
