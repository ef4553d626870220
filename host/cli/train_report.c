/* The run's report.html, rewritten after every epoch and when training ends: the run's
 * status (reloading itself while it runs), its configuration, loss, learning-rate and
 * accuracy curves as inline SVG, for classifiers the validation confusion matrix and
 * predicted samples, and every sample grid written so far. Also the two things that
 * follow the validation loss: model.best.safetensors and --early-stop. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/train_common.h"
#include "deconv/image.h"
#include "deconv/io.h"
#include "deconv/report.h"

/* Seconds between reloads of a page whose run is still going. */
#define REPORT_REFRESH_S 30
#define REPORT_BEST_FILE "model.best.safetensors"
#define REPORT_ACCURACY_FILE "val_accuracy.csv"

/* A small file as a data: URI (the prediction thumbnails stay inside the page). */
static void h_data_uri(dc_text *b, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char buf[3 * 1024];
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    dc_text_printf(b, "data:image/png;base64,");
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        char out[4 * 1024 + 1];
        size_t j = 0;
        for (size_t i = 0; i < got; i += 3) {
            unsigned v = (unsigned)buf[i] << 16;
            if (i + 1 < got) v |= (unsigned)buf[i + 1] << 8;
            if (i + 2 < got) v |= buf[i + 2];
            out[j++] = tab[(v >> 18) & 63];
            out[j++] = tab[(v >> 12) & 63];
            out[j++] = i + 1 < got ? tab[(v >> 6) & 63] : '=';
            out[j++] = i + 2 < got ? tab[v & 63] : '=';
        }
        out[j] = 0;
        dc_text_printf(b, "%s", out);
        if (got < sizeof buf) break; /* full chunks are whole triples; only the last is not */
    }
    fclose(f);
}

static void utc_now(char *buf, size_t cap) {
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* ---- per-epoch state ---- */

static int is_classifier(const dc_trainer *t) {
    return dc_model_kind_has(dc_trainer_model((dc_trainer *)t)->spec.kind, DC_KIND_CLASSIFIES);
}

static int acc_reserve(train_report *r, int epoch) {
    if (epoch <= r->acc_cap) return 0;
    int cap = r->acc_cap ? r->acc_cap : 64;
    while (cap < epoch)
        cap *= 2;
    double *a = realloc(r->acc, sizeof(double) * (size_t)cap);
    if (!a) return -1;
    for (int i = r->acc_cap; i < cap; i++)
        a[i] = NAN;
    r->acc = a, r->acc_cap = cap;
    return 0;
}

/* Accuracies of earlier sessions of a resumed run. */
static void acc_read(train_report *r) {
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", r->run, REPORT_ACCURACY_FILE);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        int epoch;
        double a;
        if (sscanf(line, "%d,%lf", &epoch, &a) == 2 && epoch >= 1 && epoch < 10000000 &&
            acc_reserve(r, epoch) == 0)
            r->acc[epoch - 1] = a;
    }
    fclose(f);
}

static dc_status acc_write(const train_report *r, int upto, dc_error *err) {
    dc_text b = {0};
    dc_text_printf(&b, "epoch,val_accuracy\n");
    for (int e = 1; e <= upto && e <= r->acc_cap; e++)
        if (!isnan(r->acc[e - 1])) dc_text_printf(&b, "%d,%.6f\n", e, r->acc[e - 1]);
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", r->run, REPORT_ACCURACY_FILE);
    dc_status s = b.oom ? dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path)
                        : dc_write_file_atomic(path, b.p, b.n, err);
    free(b.p);
    return s;
}

dc_status train_report_init(train_report *r, dc_trainer *t, const char *device, int early_stop,
                            dc_error *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->run, sizeof r->run, "%s", dc_trainer_config(t)->out);
    snprintf(r->device, sizeof r->device, "%s", device ? device : "?");
    utc_now(r->started, sizeof r->started);
    r->early_stop = early_stop;
    r->last.val_loss = r->last.val_accuracy = NAN;
    /* a resumed run: the best epoch so far and the accuracies come from its files */
    dc_train_history h;
    dc_trainer_history(t, &h);
    for (int i = 0; i < h.count; i++)
        if (isfinite(h.val_loss[i]) && (r->best_epoch == 0 || h.val_loss[i] < r->best_val))
            r->best_epoch = (int)h.epoch[i], r->best_val = h.val_loss[i];
    if (is_classifier(t)) acc_read(r);
    (void)err;
    return DC_OK;
}

void train_report_free(train_report *r) {
    free(r->acc);
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

/* model.best.safetensors: the weights with the metadata a model needs to be opened by
 * visualize, eval, export (the latest checkpoint's keys, then this epoch's position). */
static dc_status save_best(train_report *r, dc_trainer *t, const dc_train_epoch *e, dc_error *err) {
    char latest[1300], path[1300], num[64];
    snprintf(latest, sizeof latest, "%s/%s", r->run, DC_RUN_CHECKPOINT);
    snprintf(path, sizeof path, "%s/%s", r->run, REPORT_BEST_FILE);
    dc_meta meta = {0};
    struct stat st;
    if (stat(latest, &st) == 0) {
        dc_error ignore = {0};
        if (dc_checkpoint_read_meta(latest, &meta, &ignore) != DC_OK) dc_meta_clear(&meta);
    }
    dc_model *m = dc_trainer_model(t);
    char *spec = dc_model_spec_to_json(&m->spec);
    char *options = dc_train_config_to_json(dc_trainer_config(t));
    dc_status s = DC_OK;
    if (!spec || !options) {
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    } else {
        dc_meta_set(&meta, "model", spec);
        dc_meta_set(&meta, "train", options);
        snprintf(num, sizeof num, "%d", e->epoch);
        dc_meta_set(&meta, "epoch", num);
        dc_meta_set(&meta, "step_in_epoch", "0");
        snprintf(num, sizeof num, "%ld", e->global_step);
        dc_meta_set(&meta, "step", num);
        snprintf(num, sizeof num, "%.9g", e->val_loss);
        dc_meta_set(&meta, "val_loss", num);
        dc_meta_set(&meta, "version", DECONV_VERSION);
        s = dc_checkpoint_save(path, m->params, NULL, &meta, err);
    }
    free(spec);
    free(options);
    dc_meta_clear(&meta);
    return s;
}

/* The model's predictions on the evaluation images (validation, or training when none is
 * held out): the confusion matrix and the first few items' labels. */
static dc_status classify_eval_set(train_report *r, dc_trainer *t, const dc_dataset *val,
                                   const dc_dataset *train, int epoch, dc_error *err) {
    const dc_dataset *ds = val && val->n > 0 ? val : train;
    dc_model *m = dc_trainer_model(t);
    const int K = m->spec.classes;
    if (!ds || ds->n == 0 || !ds->labels || K < 1) return DC_OK;
    if (!r->confusion || r->K != K) {
        free(r->confusion);
        r->confusion = calloc((size_t)K * K, sizeof(long));
        if (!r->confusion) return dc_set_error(err, DC_ERR_OOM, "confusion matrix: out of memory");
        r->K = K;
    }
    memset(r->confusion, 0, sizeof(long) * (size_t)K * K);
    dc_batch batch;
    dc_status bs = dc_batch_alloc(m, &batch, err);
    if (bs != DC_OK) return bs;
    const int B = m->batch;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)B);
    float *scores = malloc(sizeof(float) * (size_t)B * K);
    dc_status s = DC_OK;
    if (!idx || !scores) {
        s = dc_set_error(err, DC_ERR_OOM, "confusion matrix: out of memory");
        goto done;
    }
    r->n_pred = 0;
    for (int first = 0; first < ds->n; first += B) {
        const int count = ds->n - first < B ? ds->n - first : B;
        for (int i = 0; i < count; i++)
            idx[i] = first + i;
        /* a lazily loaded training set (no validation set under mpirun): a batch at a time;
         * the trainer decodes its share again at the next epoch's start */
        if (ds->lazy && (s = dc_dataset_decode_only(ds, idx, count, err)) != DC_OK) goto done;
        if ((s = dc_trainer_forward_eval(t, ds, idx, count, 0, &batch, err)) != DC_OK) goto done;
        if (dc_graph_read(m->g, m->out, scores) != DC_OK) {
            s = dc_set_error(err, DC_ERR_STATE, "confusion matrix: %s", dc_graph_error(m->g)->msg);
            goto done;
        }
        for (int i = 0; i < count; i++) {
            const float *sc = scores + (size_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (sc[k] > sc[best]) best = k;
            const int truth = ds->labels[first + i];
            if (truth >= 0 && truth < K) r->confusion[(size_t)truth * K + best]++;
            if (r->n_pred < TRAIN_REPORT_PREDICTIONS) {
                double sum = 0;
                for (int k = 0; k < K; k++)
                    sum += exp((double)sc[k] - sc[best]);
                r->pred[r->n_pred].index = first + i;
                r->pred[r->n_pred].truth = truth;
                r->pred[r->n_pred].predicted = best;
                r->pred[r->n_pred].prob = 1.0 / sum;
                r->n_pred++;
            }
        }
    }
    r->confusion_epoch = epoch;
    r->eval_is_val = ds == val;
    r->eval_n = ds->n;
    /* the thumbnails, once: the same items every epoch */
    if (ds->lazy) {
        int32_t shown[TRAIN_REPORT_PREDICTIONS];
        for (int i = 0; i < r->n_pred; i++)
            shown[i] = r->pred[i].index;
        if ((s = dc_dataset_decode_only(ds, shown, r->n_pred, err)) != DC_OK) goto done;
    }
    for (int i = 0; i < r->n_pred; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/samples/%s_%02d.png", r->run,
                 r->eval_is_val ? "val" : "train", i);
        struct stat st;
        if (stat(path, &st) == 0) continue;
        if ((s = dc_image_write_png(path, dc_dataset_image(ds, r->pred[i].index), ds->c, ds->h,
                                    ds->w, DC_RANGE_PM1, err)) != DC_OK)
            goto done;
    }
done:
    free(idx);
    free(scores);
    dc_batch_free(&batch);
    return s;
}

void train_report_epoch(train_report *r, const train_samples *s, dc_trainer *t,
                        const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                        const dc_train_epoch *e) {
    dc_error err = {0};
    r->last = *e;
    r->have_last = 1;
    if (is_classifier(t) && acc_reserve(r, e->epoch) == 0) {
        r->acc[e->epoch - 1] = e->val_accuracy;
        if (acc_write(r, e->epoch, &err) != DC_OK)
            fprintf(stderr, "deconv train: warning: %s\n", err.msg);
    }
    if (isfinite(e->val_loss) && (r->best_epoch == 0 || e->val_loss < r->best_val)) {
        r->best_epoch = e->epoch;
        r->best_val = e->val_loss;
        if (save_best(r, t, e, &err) != DC_OK)
            fprintf(stderr, "deconv train: warning: %s: %s\n", REPORT_BEST_FILE, err.msg);
    }
    if (r->early_stop > 0 && r->best_epoch > 0 && e->epoch - r->best_epoch >= r->early_stop &&
        !e->last)
        r->stop_early = 1;
    /* the classifier's confusion matrix with the sample grids' schedule, and at the end */
    if (is_classifier(t) && (e->samples_due || r->stop_early) &&
        classify_eval_set(r, t, val, train, e->epoch, &err) != DC_OK)
        fprintf(stderr, "deconv train: warning: confusion matrix: %s\n", err.msg);
    train_report_write(r, s, t, spec, train, val, e->last ? TRAIN_FINISHED : TRAIN_RUNNING, NULL);
}

/* ---- the page ---- */

static void chart(dc_text *b, const char *title, const char *ylabel, const dc_series *ser, int n,
                  int log_y, double mark_x, const char *mark_label) {
    dc_chart c = {720, 320, title, "epoch", ylabel, ser, n, log_y, 1, mark_x, mark_label};
    dc_error err = {0};
    char *svg = dc_chart_svg(&c, &err);
    if (!svg) {
        dc_text_printf(b, "<p>chart: ");
        dc_text_escaped(b, err.msg);
        dc_text_printf(b, "</p>\n");
        return;
    }
    dc_text_printf(b, "<figure>%s</figure>\n", svg);
    free(svg);
}

/* Whether the values span enough to read better on a log axis. */
static int wants_log(const double *v, int n) {
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++) {
        if (isfinite(v[i]) && v[i] <= 0) return 0; /* a log axis would leave it out */
        if (isfinite(v[i])) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    return hi > 0 && lo < INFINITY && hi / lo > 10;
}

/* One JSON value as a table cell's text. */
static void json_cell(dc_text *b, const cJSON *v) {
    if (cJSON_IsString(v)) {
        dc_text_escaped(b, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        /* options stored as float32 read back as 0.00100000005: print them as given */
        dc_text_printf(b, "%.7g", v->valuedouble);
    } else {
        char *txt = cJSON_PrintUnformatted(v);
        dc_text_escaped(b, txt ? txt : "?");
        free(txt);
    }
}

/* A JSON object as rows "key | value", nested objects as "outer.inner". */
static void json_rows(dc_text *b, const cJSON *obj, const char *prefix) {
    for (const cJSON *it = obj ? obj->child : NULL; it; it = it->next) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "",
                 it->string ? it->string : "?");
        if (cJSON_IsObject(it)) {
            json_rows(b, it, key);
            continue;
        }
        dc_text_printf(b, "<tr><th>");
        dc_text_escaped(b, key);
        dc_text_printf(b, "</th><td>");
        json_cell(b, it);
        dc_text_printf(b, "</td></tr>\n");
    }
}

static char *read_small_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

/* The configuration: config.json when the run folder holds one (every option), else what
 * the checkpoint stores (the training options and the model). */
static void config_section(dc_text *b, const train_report *r, dc_trainer *t,
                           const dc_model_spec *spec) {
    char path[1300];
    snprintf(path, sizeof path, "%s/config.json", r->run);
    char *text = read_small_file(path);
    cJSON *cfg = text ? cJSON_Parse(text) : NULL;
    dc_text_printf(b, "<h2>Configuration</h2>\n<table class=\"kv\">\n");
    if (cfg) {
        dc_text_printf(b, "<caption>from config.json</caption>\n");
        json_rows(b, cfg, "");
    } else {
        char *opts = dc_train_config_to_json(dc_trainer_config(t));
        char *model = dc_model_spec_to_json(spec);
        cJSON *o = opts ? cJSON_Parse(opts) : NULL, *m = model ? cJSON_Parse(model) : NULL;
        dc_text_printf(b, "<caption>training options and model, as stored in the checkpoint</caption>\n");
        json_rows(b, o, "train");
        json_rows(b, m, "model");
        cJSON_Delete(o);
        cJSON_Delete(m);
        free(opts);
        free(model);
    }
    dc_text_printf(b, "</table>\n");
    cJSON_Delete(cfg);
    free(text);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every samples/epoch_NNNN.png, newest first (relative links: the page sits in the run
 * folder next to them). */
static void grids_section(dc_text *b, const train_report *r) {
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/samples", r->run);
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int epoch;
        char tail[8];
        if (sscanf(de->d_name, "epoch_%d.%4s", &epoch, tail) != 2 || strcmp(tail, "png")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, sizeof(char *) * (size_t)cap);
            if (!p) break;
            names = p;
        }
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, (size_t)n, sizeof(char *), cmp_str);
    if (n > 0) {
        dc_text_printf(b, "<h2>Samples over the epochs</h2>\n<p>The same items and random draws "
                    "every time: rows and columns are labelled in each grid.</p>\n");
        for (int i = n - 1; i >= 0; i--) {
            int epoch = 0;
            sscanf(names[i], "epoch_%d", &epoch);
            dc_text_printf(b,
                     "<figure class=\"grid\"><img loading=\"lazy\" src=\"samples/%s\" "
                     "alt=\"samples at epoch %d\"><figcaption>epoch %d%s</figcaption></figure>\n",
                     names[i], epoch, epoch, i == n - 1 ? " (latest)" : "");
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static const char *class_label(const dc_dataset *ds, int k, char *buf, size_t cap) {
    if (ds && ds->class_names && k >= 0 && k < ds->n_classes)
        snprintf(buf, cap, "%s", ds->class_names[k]);
    else
        snprintf(buf, cap, "%d", k);
    return buf;
}

static void classifier_section(dc_text *b, const train_report *r, const dc_dataset *train) {
    if (!r->confusion) return;
    const int K = r->K;
    char a[128], c[128];
    long correct = 0, total = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            total += r->confusion[(size_t)i * K + j];
            if (i == j) correct += r->confusion[(size_t)i * K + j];
        }
    dc_text_printf(b,
             "<h2>Confusion matrix</h2>\n<p>The %s images (%d) after epoch %d: rows are the true "
             "class, columns the predicted one; accuracy %.4f. The shade is the share of the "
             "row.</p>\n<table class=\"cm\"><tr><th>true \\ predicted</th>",
             r->eval_is_val ? "validation" : "training (none held out)", r->eval_n,
             r->confusion_epoch, total ? (double)correct / (double)total : 0.0);
    for (int j = 0; j < K; j++) {
        dc_text_printf(b, "<th>");
        dc_text_escaped(b, class_label(train, j, a, sizeof a));
        dc_text_printf(b, "</th>");
    }
    dc_text_printf(b, "</tr>\n");
    for (int i = 0; i < K; i++) {
        long row = 0;
        for (int j = 0; j < K; j++)
            row += r->confusion[(size_t)i * K + j];
        dc_text_printf(b, "<tr><th>");
        dc_text_escaped(b, class_label(train, i, a, sizeof a));
        dc_text_printf(b, "</th>");
        for (int j = 0; j < K; j++) {
            const long v = r->confusion[(size_t)i * K + j];
            const double share = row ? (double)v / (double)row : 0.0;
            dc_text_printf(b, "<td style=\"background:rgba(%s,%.3f);color:%s\">%ld</td>",
                     i == j ? "44,160,44" : "214,39,40", share, share > 0.6 ? "#fff" : "#000", v);
        }
        dc_text_printf(b, "</tr>\n");
    }
    dc_text_printf(b, "</table>\n");
    if (r->n_pred == 0) return;
    dc_text_printf(b,
             "<h2>Predictions</h2>\n<p>The first %d %s images after epoch %d (red: wrong).</p>"
             "\n<div class=\"preds\">\n",
             r->n_pred, r->eval_is_val ? "validation" : "training", r->confusion_epoch);
    for (int i = 0; i < r->n_pred; i++) {
        char path[1400];
        snprintf(path, sizeof path, "%s/samples/%s_%02d.png", r->run,
                 r->eval_is_val ? "val" : "train", i);
        const int ok = r->pred[i].predicted == r->pred[i].truth;
        dc_text_printf(b, "<figure class=\"%s\"><img src=\"", ok ? "ok" : "wrong");
        h_data_uri(b, path);
        dc_text_printf(b, "\"><figcaption>");
        dc_text_escaped(b, class_label(train, r->pred[i].predicted, a, sizeof a));
        dc_text_printf(b, " (%.2f)<br>true: ", r->pred[i].prob);
        dc_text_escaped(b, class_label(train, r->pred[i].truth, c, sizeof c));
        dc_text_printf(b, "</figcaption></figure>\n");
    }
    dc_text_printf(b, "</div>\n");
}

void train_report_write(train_report *r, const train_samples *s, dc_trainer *t,
                        const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                        train_status status, const char *note) {
    (void)s;
    const dc_train_config *cfg = dc_trainer_config(t);
    dc_train_history h;
    dc_trainer_history(t, &h);
    /* the validated epochs only (--val-every): a line through them, where the epochs in
     * between would break it into single points */
    double *vx = malloc(sizeof(double) * (size_t)(h.count > 0 ? h.count : 1)),
           *vy = malloc(sizeof(double) * (size_t)(h.count > 0 ? h.count : 1));
    int nv = 0;
    for (int i = 0; vx && vy && i < h.count; i++)
        if (isfinite(h.val_loss[i])) vx[nv] = h.epoch[i], vy[nv++] = h.val_loss[i];
    char now[64];
    utc_now(now, sizeof now);
    {
        /* loss.png for viewers without SVG (and the folder listing) */
        char png[1300];
        dc_error err = {0};
        snprintf(png, sizeof png, "%s/loss.png", r->run);
        dc_series ser[2] = {{"train", h.epoch, h.train_loss, h.count},
                            {"validation", vx, vy, nv}};
        if (dc_chart_write_png(png, 640, 360, "loss", "epoch", ser, 2, 1, &err) != DC_OK)
            fprintf(stderr, "deconv train: warning: chart: %s\n", err.msg);
    }
    static const char *const status_name[] = {"running", "finished", "stopped", "stopped early",
                                              "failed"};
    dc_text b = {0};
    dc_text_printf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
    if (status == TRAIN_RUNNING)
        dc_text_printf(&b, "<meta http-equiv=\"refresh\" content=\"%d\">\n", REPORT_REFRESH_S);
    dc_text_printf(&b, "<title>");
    dc_text_escaped(&b, status_name[status]);
    dc_text_printf(&b, ": ");
    dc_text_escaped(&b, r->run);
    dc_text_printf(&b,
             "</title>\n<style>\n"
             "body{font-family:sans-serif;margin:1.5em 2em;background:#fafafa;color:#222}\n"
             ".status{padding:.6em 1em;border-radius:4px;font-size:1.1em;margin:1em 0}\n"
             ".running{background:#e3f0fb}.finished{background:#e3f5e3}"
             ".stopped{background:#fdf3dc}.failed{background:#fbe3e3}\n"
             "table{border-collapse:collapse;background:#fff;margin:.5em 0}\n"
             "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}\n"
             "table.kv th{font-weight:normal;color:#555}\n"
             "caption{text-align:left;color:#666;padding:2px 0;font-size:13px}\n"
             "table.cm td{text-align:right;min-width:2.5em}\n"
             "figure{display:inline-block;margin:.5em;vertical-align:top}\n"
             "figure.grid img{image-rendering:pixelated;border:1px solid #ccc;max-width:100%%}\n"
             ".preds img{width:64px;height:64px;image-rendering:pixelated;border:3px solid #2ca02c}"
             "\n.preds figure.wrong img{border-color:#d62728}\n"
             ".preds figcaption{font-size:12px;width:70px}\n"
             "</style></head><body>\n<h1>Training run ");
    dc_text_escaped(&b, r->run);
    dc_text_printf(&b, "</h1>\n");
    /* status */
    const dc_train_epoch *e = r->have_last ? &r->last : NULL;
    dc_text_printf(&b, "<div class=\"status %s\"><b>%s</b>",
             status == TRAIN_RUNNING    ? "running"
             : status == TRAIN_FINISHED ? "finished"
             : status == TRAIN_FAILED   ? "failed"
                                        : "stopped",
             status_name[status]);
    if (e) dc_text_printf(&b, " &mdash; epoch %d of %d", e->epoch, cfg->epochs);
    dc_text_printf(&b, "; last update %s", now);
    if (status == TRAIN_RUNNING)
        dc_text_printf(&b, " (this page reloads every %d s while the run goes on)", REPORT_REFRESH_S);
    if (note) {
        dc_text_printf(&b, "<br>");
        dc_text_escaped(&b, note);
    }
    dc_text_printf(&b, "</div>\n");
    /* summary */
    dc_text_printf(&b, "<table class=\"kv\">\n<tr><th>model</th><td>%s%s</td></tr>\n",
             dc_model_kind_name(spec->kind), spec->tied ? " (tied)" : "");
    dc_text_printf(&b, "<tr><th>data</th><td>");
    dc_text_escaped(&b, cfg->data);
    dc_text_printf(&b, " (%d training / %d validation images, %dx%dx%d)</td></tr>\n", train->n, val->n,
             spec->channels, spec->size, spec->size);
    dc_text_printf(&b, "<tr><th>device</th><td>");
    dc_text_escaped(&b, r->device);
    dc_text_printf(&b, "</td></tr>\n<tr><th>seed</th><td>%llu (split seed %llu)</td></tr>\n",
             (unsigned long long)cfg->seed, (unsigned long long)cfg->split_seed);
    dc_text_printf(&b, "<tr><th>this session started</th><td>%s</td></tr>\n", r->started);
    dc_text_printf(&b, "<tr><th>version</th><td>deconv %s</td></tr>\n", DECONV_VERSION);
    if (e) {
        dc_text_printf(&b,
                 "<tr><th>epoch</th><td>%d of %d (global step %ld)</td></tr>\n"
                 "<tr><th>train loss</th><td>%.6g</td></tr>\n"
                 "<tr><th>validation loss</th><td>%.6g</td></tr>\n",
                 e->epoch, cfg->epochs, e->global_step, e->train_loss, e->val_loss);
        if (!isnan(e->val_accuracy))
            dc_text_printf(&b, "<tr><th>validation accuracy</th><td>%.4f</td></tr>\n", e->val_accuracy);
        dc_text_printf(&b, "<tr><th>learning rate</th><td>%.4g</td></tr>\n", e->lr);
        dc_text_printf(&b, "<tr><th>speed</th><td>%.1f images/s</td></tr>\n", e->images_per_s);
    }
    if (r->best_epoch > 0)
        dc_text_printf(&b,
                 "<tr><th>best epoch</th><td>%d (validation loss %.6g): "
                 "<a href=\"%s\">%s</a></td></tr>\n",
                 r->best_epoch, r->best_val, REPORT_BEST_FILE, REPORT_BEST_FILE);
    if (r->early_stop > 0)
        dc_text_printf(&b,
                 "<tr><th>early stop</th><td>after %d epochs without a better validation "
                 "loss</td></tr>\n",
                 r->early_stop);
    dc_text_printf(&b,
             "<tr><th>files</th><td><a href=\"%s\">%s</a> (latest), <a href=\"loss.csv\">"
             "loss.csv</a></td></tr>\n</table>\n",
             DC_RUN_CHECKPOINT, DC_RUN_CHECKPOINT);
    /* curves */
    dc_text_printf(&b, "<h2>Curves</h2>\n");
    char mark[96];
    snprintf(mark, sizeof mark, "best epoch %d", r->best_epoch);
    const double mx = r->best_epoch > 0 ? (double)r->best_epoch : NAN;
    dc_series loss[2] = {{"train", h.epoch, h.train_loss, h.count}, {"validation", vx, vy, nv}};
    chart(&b, "Loss", "loss", loss, 2, 1, mx, mark);
    dc_series lr[1] = {{"learning rate", h.epoch, h.lr, h.count}};
    chart(&b, "Learning rate (at the end of each epoch)", "learning rate", lr, 1,
          wants_log(h.lr, h.count), NAN, NULL);
    if (r->acc && h.count > 0) {
        double *acc = malloc(sizeof(double) * (size_t)h.count);
        if (acc) {
            for (int i = 0; i < h.count; i++) {
                const int ep = (int)h.epoch[i];
                acc[i] = ep >= 1 && ep <= r->acc_cap ? r->acc[ep - 1] : NAN;
            }
            dc_series as[1] = {{"validation accuracy", h.epoch, acc, h.count}};
            chart(&b, "Validation accuracy", "accuracy", as, 1, 0, mx, mark);
            free(acc);
        }
    }
    classifier_section(&b, r, train);
    grids_section(&b, r);
    config_section(&b, r, t, spec);
    dc_text_printf(&b, "</body></html>\n");
    char path[1300];
    snprintf(path, sizeof path, "%s/report.html", r->run);
    dc_error err = {0};
    if (b.oom)
        fprintf(stderr, "deconv train: warning: %s: out of memory\n", path);
    else if (dc_write_file_atomic(path, b.p, b.n, &err) != DC_OK)
        fprintf(stderr, "deconv train: warning: report: %s\n", err.msg);
    free(b.p);
    free(vx);
    free(vy);
}

void train_report_finish(train_report *r, const train_samples *s, dc_trainer *t,
                         const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                         train_status status, const char *note) {
    dc_error err = {0};
    /* a run that stopped off the grids' schedule: the confusion matrix of where it stopped */
    /* (not after Ctrl-C: the weights are then part of the way into the next epoch) */
    if ((status == TRAIN_FINISHED || status == TRAIN_EARLY_STOPPED) && r->have_last &&
        is_classifier(t) && r->confusion_epoch != r->last.epoch &&
        classify_eval_set(r, t, val, train, r->last.epoch, &err) != DC_OK)
        fprintf(stderr, "deconv train: warning: confusion matrix: %s\n", err.msg);
    train_report_write(r, s, t, spec, train, val, status, note);
}
