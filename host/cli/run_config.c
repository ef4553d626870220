/* A run folder's config.json (every option, seed, version, device, data, progress) and the
 * class names stored in a checkpoint's metadata. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/train_common.h"

int dc_cli_run_classes(const dc_meta *meta, char ***names, int *count) {
    *names = NULL;
    *count = 0;
    const char *js = dc_meta_get(meta, "classes");
    if (!js) return 0;
    cJSON *arr = cJSON_Parse(js);
    const int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    char **out = n > 0 ? calloc((size_t)n, sizeof(char *)) : NULL;
    int ok = out != NULL;
    for (int i = 0; ok && i < n; i++) {
        const cJSON *item = cJSON_GetArrayItem(arr, i);
        const char *s = cJSON_GetStringValue(item);
        ok = s && (out[i] = strdup(s)) != NULL;
    }
    cJSON_Delete(arr);
    if (!ok) {
        dc_cli_names_free(out, n);
        return -1;
    }
    *names = out;
    *count = n;
    return 0;
}

void dc_cli_names_free(char **names, int count) {
    if (!names) return;
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The fingerprint run folders stored before item-wise ones (dc_train_data_fingerprint):
 * FNV-1a over the sizes, all pixels' bytes in item order, the labels and class names. A
 * lazily loaded set is decoded a part at a time (the same bytes in the same order). */
static dc_status hash_dataset_whole(uint64_t *h, const dc_dataset *ds, dc_error *err) {
    const int32_t dims[4] = {ds->n, ds->c, ds->h, ds->w};
    *h = fnv1a(*h, dims, sizeof dims);
    const int part = 1024;
    int32_t items[1024];
    for (int first = 0; first < ds->n; first += part) {
        const int count = ds->n - first < part ? ds->n - first : part;
        for (int k = 0; k < count; k++)
            items[k] = first + k;
        const dc_status s = dc_dataset_decode_only(ds, items, count, err);
        if (s != DC_OK) return s;
        for (int k = 0; k < count; k++)
            *h = fnv1a(*h, dc_dataset_image(ds, first + k),
                       sizeof(float) * dc_dataset_image_numel(ds));
    }
    if (ds->labels) *h = fnv1a(*h, ds->labels, sizeof(int32_t) * (size_t)ds->n);
    for (int k = 0; ds->class_names && k < ds->n_classes; k++)
        *h = fnv1a(*h, ds->class_names[k], strlen(ds->class_names[k]) + 1);
    return DC_OK;
}

dc_status dc_cli_data_fingerprint_whole(const dc_dataset *train, const dc_dataset *val, char *hex,
                                        size_t cap, dc_error *err) {
    uint64_t h = 14695981039346656037ull;
    dc_status s = hash_dataset_whole(&h, train, err);
    if (s == DC_OK) s = hash_dataset_whole(&h, val, err);
    if (s != DC_OK) return s;
    snprintf(hex, cap, "%016llx", (unsigned long long)h);
    return DC_OK;
}

char *dc_cli_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        const size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    const int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

/* A JSON text as an object member (NULL text: skipped). */
static void add_json(cJSON *obj, const char *key, char *text) {
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    if (v) cJSON_AddItemToObject(obj, key, v);
    free(text);
}

static void add_number_or_null(cJSON *obj, const char *key, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

int dc_cli_config_write(const dc_cli_run_config *rc, dc_trainer *t, const char *status) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return -1;
    char now[32];
    const time_t secs = time(NULL);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(root, "version", DECONV_VERSION);
    cJSON_AddStringToObject(root, "status", status);
    cJSON_AddStringToObject(root, "started", rc->started);
    cJSON_AddStringToObject(root, "updated", now);
    cJSON_AddStringToObject(root, "command", rc->command);
    char *abs_folder = realpath(rc->folder, NULL);
    cJSON_AddStringToObject(root, "run", abs_folder ? abs_folder : rc->folder);
    free(abs_folder);
    cJSON_AddStringToObject(root, "device", rc->device);
    cJSON_AddStringToObject(root, "backend", rc->backend);
    cJSON_AddNumberToObject(root, "threads", rc->threads);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)rc->cfg->seed);
    cJSON_AddStringToObject(root, "seed", num); /* digits: a 64-bit seed does not fit a double */
    snprintf(num, sizeof num, "%llu", (unsigned long long)rc->cfg->split_seed);
    cJSON_AddStringToObject(root, "split_seed", num);
    add_json(root, "model", dc_model_spec_to_json(rc->spec));
    add_json(root, "train", dc_train_config_to_json(rc->cfg));
    cJSON *data = cJSON_AddObjectToObject(root, "data");
    if (data) {
        cJSON_AddStringToObject(data, "path", rc->cfg->data);
        cJSON_AddNumberToObject(data, "images", rc->train->n + rc->val->n);
        cJSON_AddNumberToObject(data, "train_images", rc->train->n);
        cJSON_AddNumberToObject(data, "val_images", rc->val->n);
        cJSON_AddNumberToObject(data, "channels", rc->spec->channels);
        cJSON_AddStringToObject(data, "channels_chosen", rc->channels_note);
        cJSON_AddNumberToObject(data, "size", rc->spec->size);
        if (rc->train->class_names && rc->train->n_classes > 0)
            cJSON_AddItemToObject(
                data, "classes",
                cJSON_CreateStringArray((const char *const *)rc->train->class_names,
                                        rc->train->n_classes));
        cJSON_AddStringToObject(data, "fingerprint", rc->fingerprint);
    }
    if (t) {
        int epoch = 0, step_in_epoch = 0;
        long step = 0;
        dc_trainer_position(t, &epoch, &step_in_epoch, &step);
        cJSON *progress = cJSON_AddObjectToObject(root, "progress");
        if (progress) {
            cJSON_AddNumberToObject(progress, "epochs_done", epoch);
            cJSON_AddNumberToObject(progress, "epochs", rc->cfg->epochs);
            cJSON_AddNumberToObject(progress, "step", (double)step);
            dc_train_history h;
            dc_trainer_history(t, &h);
            double best = NAN, last_train = NAN;
            int best_epoch = 0;
            for (int i = 0; i < h.count; i++) {
                if (isfinite(h.val_loss[i]) && !(h.val_loss[i] >= best)) {
                    best = h.val_loss[i];
                    best_epoch = (int)h.epoch[i];
                }
                last_train = h.train_loss[i];
            }
            add_number_or_null(progress, "last_train_loss", last_train);
            add_number_or_null(progress, "best_val_loss", best);
            if (best_epoch > 0) cJSON_AddNumberToObject(progress, "best_epoch", best_epoch);
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return -1;
    /* written beside and renamed over: a reader never sees half a file */
    char path[1200], tmp[1240];
    int rc_code = -1;
    /* NAME.tmp.PID: the run folder's convention, so a stale one is cleaned up later */
    if (snprintf(path, sizeof path, "%s/config.json", rc->folder) < (int)sizeof path &&
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) < (int)sizeof tmp) {
        FILE *f = fopen(tmp, "wb");
        if (f) {
            const size_t n = strlen(text);
            const int ok = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
            if (fclose(f) == 0 && ok && rename(tmp, path) == 0)
                rc_code = 0;
            else
                remove(tmp);
        }
    }
    if (rc_code)
        fprintf(stderr, "deconv train: warning: cannot write %s: %s\n", path, strerror(errno));
    cJSON_free(text);
    return rc_code;
}
