/* The training loop (include/deconv/train.h): steps, epochs, validation, the run folder's
 * checkpoint and loss.csv, resume. The order of every random draw below is part of the
 * bit-identical resume guarantee: an epoch's order comes from (seed, epoch), a step's
 * augmentation, masks, dropout and noise from (seed, global step). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "deconv/complete.h"
#include "deconv/dist.h"
#include "deconv/io.h"
#include "deconv/report.h"
#include "deconv/train.h"
#include "internal.h"
#include "models/kinds.h"
#include "train_dist.h"

#define CHECKPOINT_FILE "model.safetensors"
/* Parameters are checked for NaN/Inf this often (and at every epoch's end and checkpoint);
 * the loss after every step. */
#define PARAM_CHECK_EVERY 100

/* ------------------------------------------------------------------------------------
 * Per-kind rules, read from the kind table (host/models/kinds.c). */
/* Classifiers validate by cross-entropy and accuracy, the rest by weighted pixel MSE. */
static int kind_is_classifier(const dc_model_spec *s) {
    return dc_model_kind_has(s->kind, DC_KIND_CLASSIFIES);
}
static dc_status kind_fit_spec_to_data(dc_model_spec *s, const dc_dataset *train, int resuming,
                                       dc_error *err) {
    if (dc_model_kind_has(s->kind, DC_KIND_LEARNED_LATENTS)) {
        if (resuming && s->glo_count != train->n)
            return dc_set_error(err, DC_ERR_SHAPE,
                                "%s: the checkpoint has %d latents, the data gives %d images",
                                dc_model_kind_name(s->kind), s->glo_count, train->n);
        s->glo_count = train->n;
    }
    return DC_OK;
}
/* ------------------------------------------------------------------------------------ */

typedef struct history {
    double *epoch, *train, *val, *lr, *ips;
    long *step;
    int n, cap;
} history;

struct dc_trainer {
    dc_backend *be;
    dc_model *m;
    dc_optim *opt;
    dc_optim_config oc;
    dc_train_config cfg;
    dc_train_callbacks cb;
    const dc_dataset *train, *val;
    dc_batch batch, eval_batch;
    dc_buffer *acc; /* the loss summed on the device between logging points */
    dc_augment_config aug;
    dc_dataset *fine; /* the training images at augment_oversample x the size, or NULL */
    int32_t *perm;
    int steps_per_epoch;
    int epoch, step_in_epoch; /* position: epochs completed, steps done in the next one */
    long global_step;
    history hist;
    dc_run_lock *lock; /* held on the run folder while the trainer lives */
    float *check_buf;  /* host copy of one parameter for the finiteness check */
    int stop_at_epoch_end; /* dc_trainer_request_stop */
};

/* ---------------------------------------------------------------------- options */
static const char *const optim_names[] = {"sgd", "adam", "adamw"};
static const char *const schedule_names[] = {"constant", "step", "cosine"};

const char *dc_optim_kind_name(dc_optim_kind k) {
    return (unsigned)k < DC_ARRAY_LEN(optim_names) ? optim_names[k] : "?";
}
const char *dc_schedule_name(dc_schedule s) {
    return (unsigned)s < DC_ARRAY_LEN(schedule_names) ? schedule_names[s] : "?";
}
dc_status dc_optim_kind_parse(const char *name, dc_optim_kind *out, dc_error *err) {
    for (size_t i = 0; name && i < DC_ARRAY_LEN(optim_names); i++)
        if (!strcmp(name, optim_names[i])) return *out = (dc_optim_kind)i, DC_OK;
    return dc_set_error(err, DC_ERR_ARG, "optimizer '%s': use adam, adamw or sgd",
                        name ? name : "(null)");
}
dc_status dc_schedule_parse(const char *name, dc_schedule *out, dc_error *err) {
    for (size_t i = 0; name && i < DC_ARRAY_LEN(schedule_names); i++)
        if (!strcmp(name, schedule_names[i])) return *out = (dc_schedule)i, DC_OK;
    return dc_set_error(err, DC_ERR_ARG, "schedule '%s': use constant, cosine or step",
                        name ? name : "(null)");
}

void dc_train_config_default(dc_train_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 64;
    c->lr = 1e-3f;
    c->optim = DC_OPTIM_ADAM;
    c->schedule = DC_SCHED_CONSTANT;
    c->val = 0.1f;
    c->seed = 1;
    c->split_seed = DC_TRAIN_SPLIT_SEED;
    c->save_every = 10;
    c->sample_every = 10;
    c->val_every = 1;
}

static dc_status config_check(const dc_train_config *c, dc_error *err) {
    if (c->epochs < 1 || c->batch < 1 || c->save_every < 1 || c->sample_every < 1 ||
        c->val_every < 1)
        return dc_set_error(err, DC_ERR_ARG,
                            "training options: epochs %d, batch %d, save_every %d, sample_every "
                            "%d, val_every %d must be >= 1",
                            c->epochs, c->batch, c->save_every, c->sample_every, c->val_every);
    if (c->augment_oversample < 0 || c->augment_oversample > DC_AUGMENT_OVERSAMPLE_MAX)
        return dc_set_error(err, DC_ERR_ARG,
                            "training options: augment_oversample %d is outside [0, %d]",
                            c->augment_oversample, DC_AUGMENT_OVERSAMPLE_MAX);
    if (!(c->lr > 0) || !(c->val >= 0 && c->val < 1) || !(c->ema >= 0 && c->ema < 1))
        return dc_set_error(err, DC_ERR_ARG,
                            "training options: lr %g must be > 0, val %g in [0, 1), ema %g in [0, 1)",
                            (double)c->lr, (double)c->val, (double)c->ema);
    if ((unsigned)c->optim >= DC_ARRAY_LEN(optim_names) ||
        (unsigned)c->schedule >= DC_ARRAY_LEN(schedule_names))
        return dc_set_error(err, DC_ERR_ARG, "training options: unknown optimizer or schedule");
    return DC_OK;
}

/* A float as the double its shortest round-trip decimal names, so the JSON shows "0.001"
 * rather than the binary expansion of 1e-3f, and reads back as the same float. */
static double float_decimal(float f) {
    char text[32];
    snprintf(text, sizeof text, "%.9g", (double)f);
    return strtod(text, NULL);
}

char *dc_train_config_to_json(const dc_train_config *c) {
    cJSON *o = cJSON_CreateObject();
    char seed[32], split_seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    snprintf(split_seed, sizeof split_seed, "%llu", (unsigned long long)c->split_seed);
    /* the seed as written digits: a double would round seeds above 2^53 */
    if (!o || !cJSON_AddStringToObject(o, "data", c->data) ||
        !cJSON_AddNumberToObject(o, "epochs", c->epochs) ||
        !cJSON_AddNumberToObject(o, "batch", c->batch) ||
        !cJSON_AddNumberToObject(o, "lr", float_decimal(c->lr)) ||
        !cJSON_AddStringToObject(o, "optim", dc_optim_kind_name(c->optim)) ||
        !cJSON_AddStringToObject(o, "schedule", dc_schedule_name(c->schedule)) ||
        !cJSON_AddNumberToObject(o, "weight_decay", float_decimal(c->weight_decay)) ||
        !cJSON_AddNumberToObject(o, "clip", float_decimal(c->clip)) ||
        !cJSON_AddNumberToObject(o, "ema", float_decimal(c->ema)) ||
        !cJSON_AddNumberToObject(o, "val", float_decimal(c->val)) ||
        !cJSON_AddNumberToObject(o, "augment", c->augment) ||
        !cJSON_AddNumberToObject(o, "augment_oversample", c->augment_oversample) ||
        !cJSON_AddRawToObject(o, "seed", seed) ||
        !cJSON_AddRawToObject(o, "split_seed", split_seed) ||
        !cJSON_AddNumberToObject(o, "save_every", c->save_every) ||
        !cJSON_AddNumberToObject(o, "sample_every", c->sample_every) ||
        !cJSON_AddNumberToObject(o, "val_every", c->val_every)) {
        cJSON_Delete(o);
        return NULL;
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int json_int(const cJSON *o, const char *key, int *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return 0;
    *dst = v->valueint;
    return 1;
}
static void json_float(const cJSON *o, const char *key, float *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v)) *dst = (float)v->valuedouble;
}

/* A seed (written as digits); 0 when the key is missing. */
static int json_seed(const cJSON *o, const char *key, uint64_t *dst) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 18446744073709551616.0))
        return 0;
    *dst = (uint64_t)v->valuedouble;
    return 1;
}

dc_status dc_train_config_from_json(const char *json, dc_train_config *c, dc_error *err) {
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dc_set_error(err, DC_ERR_FORMAT, "training options: not a JSON object");
    }
    dc_status s = DC_OK;
    const cJSON *v;
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "data"))) {
        if (strlen(v->valuestring) >= sizeof c->data) {
            cJSON_Delete(o);
            return dc_set_error(err, DC_ERR_FORMAT,
                                "training options: \"data\" is longer than %zu characters",
                                sizeof c->data - 1);
        }
        dc_strlcpy(c->data, v->valuestring, sizeof c->data);
    }
    json_int(o, "epochs", &c->epochs);
    json_int(o, "batch", &c->batch);
    json_float(o, "lr", &c->lr);
    if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "optim")))
        s = dc_optim_kind_parse(v->valuestring, &c->optim, err);
    if (s == DC_OK && cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(o, "schedule")))
        s = dc_schedule_parse(v->valuestring, &c->schedule, err);
    json_float(o, "weight_decay", &c->weight_decay);
    json_float(o, "clip", &c->clip);
    json_float(o, "ema", &c->ema);
    json_float(o, "val", &c->val);
    json_int(o, "augment", &c->augment);
    /* runs made before it augmented at the model's size */
    if (!json_int(o, "augment_oversample", &c->augment_oversample)) c->augment_oversample = 1;
    json_seed(o, "seed", &c->seed);
    /* runs made before the split had its own seed split by the seed */
    if (!json_seed(o, "split_seed", &c->split_seed)) c->split_seed = c->seed;
    json_int(o, "save_every", &c->save_every);
    json_int(o, "sample_every", &c->sample_every);
    /* runs made before it validated every epoch */
    if (!json_int(o, "val_every", &c->val_every)) c->val_every = 1;
    cJSON_Delete(o);
    return s;
}

/* -------------------------------------------------------------------- data, files */
dc_status dc_train_load_data(const dc_train_config *c, int size, int channels, dc_dataset **train,
                             dc_dataset **val, dc_error *err) {
    return dc_train_load_data_opts(c, size, channels, NULL, train, val, err);
}

dc_status dc_train_load_data_opts(const dc_train_config *c, int size, int channels,
                                  const dc_load_options *opts, dc_dataset **train,
                                  dc_dataset **val, dc_error *err) {
    dc_dataset *all = NULL;
    *train = *val = NULL;
    DC_TRY(dc_dataset_load_path_opts(c->data, size, channels, opts, &all, err));
    dc_status s = dc_dataset_split(all, c->val, c->split_seed, train, val, err);
    dc_dataset_free(all);
    /* lazy loading (opts->lazy) leaves the training set to the trainer's epochs; every
     * rank validates on all of the validation set */
    if (s == DC_OK) s = dc_dataset_decode_all(*val, err);
    if (s != DC_OK) {
        dc_dataset_free(*train), dc_dataset_free(*val);
        *train = *val = NULL;
    }
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "a/b" on the heap (NULL when out of memory): paths are never cut to a buffer's size. */
static char *path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (p) {
        memcpy(p, a, na);
        p[na] = '/';
        memcpy(p + na + 1, b, nb + 1);
    }
    return p;
}

/* RUN/model.safetensors for a folder, else the path itself (heap, NULL when out of memory);
 * folder (when given) gets the directory that holds it, DC_ERR_ARG when it does not fit. */
static dc_status checkpoint_path(const char *run_or_file, char **path, char *folder,
                                 size_t folder_cap, dc_error *err) {
    struct stat st;
    const int is_dir = stat(run_or_file, &st) == 0 && S_ISDIR(st.st_mode);
    const char *slash = strrchr(run_or_file, '/');
    const size_t folder_len = is_dir ? strlen(run_or_file)
                              : slash ? (size_t)(slash - run_or_file)
                                      : 1;
    if (folder && folder_len >= folder_cap)
        return dc_set_error(err, DC_ERR_ARG, "run folder '%.100s...' is longer than %zu characters",
                            run_or_file, folder_cap - 1);
    if (folder) {
        if (!is_dir && !slash)
            strcpy(folder, ".");
        else
            memcpy(folder, run_or_file, folder_len), folder[folder_len] = 0;
    }
    if (is_dir) {
        *path = path_join(run_or_file, CHECKPOINT_FILE);
    } else if ((*path = malloc(strlen(run_or_file) + 1))) {
        strcpy(*path, run_or_file);
    }
    return *path ? DC_OK : dc_set_error(err, DC_ERR_OOM, "checkpoint path: out of memory");
}

/* A stored integer: all of the text is a number in [lo, hi]. */
static dc_status meta_long(const dc_meta *meta, const char *key, long lo, long hi, long *out,
                           const char *path, dc_error *err) {
    const char *v = dc_meta_get(meta, key);
    if (!v) return DC_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: stored position \"%s\" = \"%.40s\" is not a whole number in "
                            "[%ld, %ld]",
                            path, key, v, lo, hi);
    *out = x;
    return DC_OK;
}

dc_status dc_train_read_checkpoint(const char *run_or_file, dc_train_checkpoint *out,
                                   dc_error *err) {
    char *path = NULL;
    memset(out, 0, sizeof *out);
    dc_train_config_default(&out->config);
    if (!run_or_file) return dc_set_error(err, DC_ERR_ARG, "no checkpoint given");
    DC_TRY(checkpoint_path(run_or_file, &path, out->config.out, sizeof out->config.out, err));
    dc_meta meta = {0};
    dc_status ms = dc_checkpoint_read_meta(path, &meta, err);
    if (ms != DC_OK) {
        free(path);
        return ms;
    }
    const char *model = dc_meta_get(&meta, "model"), *train = dc_meta_get(&meta, "train");
    dc_status s = DC_OK;
    if (!model || !train)
        s = dc_set_error(err, DC_ERR_FORMAT, "%s: the checkpoint does not describe a training run",
                         path);
    else if ((s = dc_model_spec_from_json(model, &out->spec, err)) != DC_OK ||
             (s = dc_train_config_from_json(train, &out->config, err)) != DC_OK)
        dc_wrap_error(err, s, "%s", path);
    if (s == DC_OK) {
        const char *v;
        if ((v = dc_meta_get(&meta, "seed"))) {
            out->config.seed = strtoull(v, NULL, 10);
            /* a run from before split_seed split by the seed: its exact digits, not the
             * JSON number (a double above 2^53 is rounded) */
            if (!strstr(train, "\"split_seed\"")) out->config.split_seed = out->config.seed;
        }
        /* every stored position is checked before a resume trusts it (a negative step in
         * an epoch would index before the epoch's order) */
        long epoch = 0, step_in_epoch = 0, step = 0;
        if ((s = meta_long(&meta, "epoch", 0, INT_MAX, &epoch, path, err)) == DC_OK &&
            (s = meta_long(&meta, "step_in_epoch", 0, INT_MAX, &step_in_epoch, path, err)) ==
                DC_OK &&
            (s = meta_long(&meta, "step", 0, LONG_MAX, &step, path, err)) == DC_OK) {
            out->epoch = (int)epoch;
            out->step_in_epoch = (int)step_in_epoch;
            out->step = step;
        }
        if (s == DC_OK && (out->config.epochs < 1 || out->config.batch < 1 ||
                           out->config.save_every < 1 || out->config.sample_every < 1 ||
                           out->config.val_every < 1))
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "%s: stored training options out of range (epochs %d, batch %d, "
                             "save_every %d, sample_every %d, val_every %d; each must be >= 1)",
                             path, out->config.epochs, out->config.batch, out->config.save_every,
                             out->config.sample_every, out->config.val_every);
        if (s == DC_OK && (long)out->epoch + (out->step_in_epoch > 0) > out->step)
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "%s: stored position epoch %d, step %d in it, global step %ld does "
                             "not add up",
                             path, out->epoch, out->step_in_epoch, out->step);
    }
    dc_meta_clear(&meta);
    free(path);
    return s;
}

static dc_status save_checkpoint(dc_trainer *t, dc_error *err) {
    if (dc_dist_rank(t->cfg.dist) != 0) return DC_OK; /* rank 0 alone writes the run folder */
    char num[64];
    char *path = path_join(t->cfg.out, CHECKPOINT_FILE);
    dc_meta meta = {0};
    char *spec = dc_model_spec_to_json(&t->m->spec), *options = dc_train_config_to_json(&t->cfg);
    dc_status s =
        path && spec && options ? DC_OK : dc_set_error(err, DC_ERR_OOM, "checkpoint metadata");
    if (s == DC_OK) {
        dc_meta_set(&meta, "model", spec);
        dc_meta_set(&meta, "train", options);
        snprintf(num, sizeof num, "%d", t->epoch);
        dc_meta_set(&meta, "epoch", num);
        snprintf(num, sizeof num, "%d", t->step_in_epoch);
        dc_meta_set(&meta, "step_in_epoch", num);
        snprintf(num, sizeof num, "%ld", t->global_step);
        dc_meta_set(&meta, "step", num);
        snprintf(num, sizeof num, "%llu", (unsigned long long)t->cfg.seed);
        dc_meta_set(&meta, "seed", num);
        dc_meta_set(&meta, "dataset", t->train->source);
        snprintf(num, sizeof num, "%d", t->train->n);
        dc_meta_set(&meta, "dataset_size", num);
        dc_meta_set(&meta, "version", DECONV_VERSION);
        dc_meta_set(&meta, "backend", dc_backend_name(t->be));
        /* the class names, so that predictions and evaluation folders map by name */
        if (t->train->class_names && t->train->n_classes > 0) {
            cJSON *names = cJSON_CreateStringArray((const char *const *)t->train->class_names,
                                                   t->train->n_classes);
            char *js = names ? cJSON_PrintUnformatted(names) : NULL;
            if (js) dc_meta_set(&meta, "classes", js);
            cJSON_free(js);
            cJSON_Delete(names);
        }
        s = dc_checkpoint_save(path, t->m->params, t->opt, &meta, err);
    }
    free(spec);
    free(options);
    dc_meta_clear(&meta);
    if (s == DC_OK && t->cb.checkpoint_saved)
        t->cb.checkpoint_saved(t->cb.user, path, t->epoch, t->step_in_epoch);
    free(path);
    return s;
}

void dc_trainer_request_stop(dc_trainer *t) {
    if (t) t->stop_at_epoch_end = 1;
}

dc_status dc_trainer_save(dc_trainer *t, dc_error *err) {
    if (!t) return dc_set_error(err, DC_ERR_ARG, "dc_trainer_save: no trainer");
    return save_checkpoint(t, err);
}

/* ----------------------------------------------------------------- loss history */
static dc_status hist_add(history *h, double epoch, long step, double train, double val, double lr,
                          double ips) {
    if (h->n == h->cap) {
        const int cap = h->cap ? 2 * h->cap : 64;
        double **cols[] = {&h->epoch, &h->train, &h->val, &h->lr, &h->ips};
        for (size_t i = 0; i < DC_ARRAY_LEN(cols); i++) {
            double *p = realloc(*cols[i], sizeof(double) * cap);
            if (!p) return DC_ERR_OOM;
            *cols[i] = p;
        }
        long *p = realloc(h->step, sizeof(long) * cap);
        if (!p) return DC_ERR_OOM;
        h->step = p;
        h->cap = cap;
    }
    h->epoch[h->n] = epoch, h->step[h->n] = step, h->train[h->n] = train, h->val[h->n] = val;
    h->lr[h->n] = lr, h->ips[h->n] = ips, h->n++;
    return DC_OK;
}

static void hist_free(history *h) {
    free(h->epoch);
    free(h->train);
    free(h->val);
    free(h->lr);
    free(h->ips);
    free(h->step);
    memset(h, 0, sizeof *h);
}

/* The rows of loss.csv for epochs 1..upto_epoch (later ones were never checkpointed), one
 * per epoch, in order, exactly as stored. A row that does not parse, an epoch out of that
 * range or out of order is refused: a resume must not build on a history it cannot trust. */
static dc_status hist_load(history *h, const char *csv, int upto_epoch, dc_error *err) {
    FILE *f = fopen(csv, "r");
    if (!f) {
        if (errno == ENOENT) return DC_OK; /* killed before its first epoch ended */
        return dc_set_error(err, DC_ERR_IO, "cannot read '%s': %s", csv, strerror(errno));
    }
    char line[512];
    dc_status s = DC_OK;
    long row = 0, expect = 1;
    while (s == DC_OK && fgets(line, sizeof line, f)) {
        row++;
        if (row == 1 && !strncmp(line, "epoch,", 6)) continue; /* the header */
        double t, v, lr, ips;
        long e, step;
        int end = 0;
        if (!strchr(line, '\n') && !feof(f))
            s = dc_set_error(err, DC_ERR_FORMAT, "%s: row %ld is too long", csv, row);
        else if (sscanf(line, "%ld,%ld,%lf,%lf,%lf,%lf%n", &e, &step, &t, &v, &lr, &ips, &end) !=
                     6 ||
                 (line[end] && line[end] != '\n'))
            s = dc_set_error(err, DC_ERR_FORMAT, "%s: row %ld is not \"epoch,step,train_loss,"
                                                 "val_loss,lr,images_per_s\"",
                             csv, row);
        else if (e != expect++ || step < 0)
            s = dc_set_error(err, DC_ERR_FORMAT,
                             "%s: row %ld is epoch %ld step %ld, expected epoch %ld (the "
                             "checkpoint is at epoch %d)",
                             csv, row, e, step, expect - 1, upto_epoch);
        /* rows after the checkpoint are dropped: those epochs are trained again */
        else if (e <= upto_epoch && hist_add(h, (double)e, step, t, v, lr, ips) != DC_OK)
            s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", csv);
    }
    fclose(f);
    return s;
}

static dc_status write_loss_csv(const dc_trainer *t, dc_error *err) {
    char *path = path_join(t->cfg.out, "loss.csv");
    const history *h = &t->hist;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    dc_status s = DC_OK;
    if (!path || !buf) {
        s = dc_set_error(err, DC_ERR_OOM, "loss.csv: out of memory");
        goto out;
    }
    n = (size_t)snprintf(buf, cap, "epoch,step,train_loss,val_loss,lr,images_per_s\n");
    for (int i = 0; i < h->n; i++) {
        for (;;) {
            /* every row is measured before it is kept: no value can write past the buffer */
            const int len = snprintf(buf + n, cap - n, "%d,%ld,%.8g,%.8g,%.6g,%.2f\n",
                                     (int)h->epoch[i], h->step[i], h->train[i], h->val[i],
                                     h->lr[i], h->ips[i]);
            if (len < 0) {
                s = dc_set_error(err, DC_ERR_FORMAT, "%s: cannot format row %d", path, i + 1);
                goto out;
            }
            if ((size_t)len < cap - n) {
                n += (size_t)len;
                break;
            }
            char *grown = realloc(buf, 2 * cap + (size_t)len);
            if (!grown) {
                s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
                goto out;
            }
            buf = grown;
            cap = 2 * cap + (size_t)len;
        }
    }
    s = dc_write_file_atomic(path, buf, n, err);
out:
    free(buf);
    free(path);
    return s;
}

void dc_trainer_history(const dc_trainer *t, dc_train_history *out) {
    memset(out, 0, sizeof *out);
    if (!t) return;
    out->count = t->hist.n;
    out->epoch = t->hist.epoch;
    out->train_loss = t->hist.train;
    out->val_loss = t->hist.val;
    out->lr = t->hist.lr;
    out->images_per_s = t->hist.ips;
    out->step = t->hist.step;
}

/* -------------------------------------------------------------- create, resume */
void dc_trainer_free(dc_trainer *t) {
    if (!t) return;
    if (t->acc) DC_BE(t->be, free, t->acc);
    dc_batch_free(&t->batch);
    dc_batch_free(&t->eval_batch);
    dc_optim_free(t->opt);
    dc_model_free(t->m);
    free(t->perm);
    dc_dataset_free(t->fine);
    free(t->check_buf);
    hist_free(&t->hist);
    dc_run_lock_release(t->lock);
    free(t);
}

/* Everything but the weights and the position. */
/* The training images again at augment_oversample x the model's size, split as the
 * training set was (the same data, fraction and split seed); each item must be the same
 * image as the training set's. */
static dc_status load_fine(dc_trainer *t, const dc_model_spec *spec, dc_error *err) {
    const dc_train_config *cfg = &t->cfg;
    const int k = cfg->augment_oversample;
    if (!cfg->data[0])
        return dc_set_error(err, DC_ERR_ARG,
                            "dc_trainer: augment_oversample %d loads the data again, but the "
                            "config names no data",
                            k);
    dc_load_options lo = {cfg->max_image_pixels, t->train->lazy != NULL};
    dc_dataset *val = NULL;
    dc_status s = dc_train_load_data_opts(cfg, spec->size * k, spec->channels, &lo, &t->fine,
                                          &val, err);
    dc_dataset_free(val);
    if (s != DC_OK) return s;
    const dc_dataset *a = t->train, *b = t->fine;
    int same = b->n == a->n;
    for (int i = 0; same && a->names && i < a->n; i++)
        same = b->names && b->names[i] && a->names[i] && strcmp(a->names[i], b->names[i]) == 0;
    if (!same)
        return dc_set_error(err, DC_ERR_ARG,
                            "dc_trainer: %s loaded at %dx%d for augmentation holds other "
                            "training images (%d) than the training set given (%d): pass the "
                            "training set of config.data, split by config.val and split_seed",
                            cfg->data, spec->size * k, spec->size * k, b->n, a->n);
    t->aug.fine = t->fine;
    return DC_OK;
}

static dc_status trainer_build(dc_backend *be, const dc_model_spec *spec, const dc_dataset *train,
                               const dc_dataset *val, const dc_train_config *cfg,
                               const dc_train_callbacks *cb, dc_trainer **out, dc_error *err) {
    *out = NULL;
    if (!be || !spec || !train || !val || !cfg)
        return dc_set_error(err, DC_ERR_ARG, "dc_trainer: backend, spec, data and config needed");
    DC_TRY(config_check(cfg, err));
    if (!cfg->out[0])
        return dc_set_error(err, DC_ERR_ARG, "dc_trainer: no run folder (config.out)");
    if (train->n < 1) return dc_set_error(err, DC_ERR_ARG, "%s: no training images", train->source);
    if (val->lazy)
        return dc_set_error(err, DC_ERR_ARG,
                            "%s: the validation set is lazily loaded: decode it first "
                            "(dc_dataset_decode_all)",
                            val->source);
    dc_trainer *t = calloc(1, sizeof *t);
    if (!t) return dc_set_error(err, DC_ERR_OOM, "dc_trainer: out of memory");
    t->be = be;
    t->cfg = *cfg;
    if (cb) t->cb = *cb;
    t->train = train;
    t->val = val;
    t->steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    dc_status s;
    int local_batch, first_slot; /* data-parallel: the model holds this rank's slice */
    if ((s = dc_dist_batch_slice(cfg->dist, cfg->batch, &local_batch, &first_slot, err)) ||
        (s = dc_model_create_training(be, spec, local_batch, &t->m, err)) != DC_OK ||
        (s = dc_dist_attach(cfg->dist, t->m, err)) != DC_OK)
        goto fail;
    dc_optim_config *oc = &t->oc;
    dc_optim_config_default(oc, cfg->optim);
    oc->lr = cfg->lr;
    if (cfg->weight_decay > 0 || cfg->optim != DC_OPTIM_ADAMW) oc->weight_decay = cfg->weight_decay;
    oc->clip_norm = cfg->clip;
    oc->ema_decay = cfg->ema;
    if (cfg->schedule == DC_SCHED_COSINE) {
        oc->schedule = DC_SCHED_COSINE;
        oc->total_steps = (long)t->steps_per_epoch * cfg->epochs;
    } else if (cfg->schedule == DC_SCHED_STEP) {
        oc->schedule = DC_SCHED_STEP;
        oc->step_size = t->steps_per_epoch * (cfg->epochs / 3 > 0 ? cfg->epochs / 3 : 1);
    }
    if (dc_optim_create(t->m->params, oc, &t->opt) != DC_OK) {
        s = dc_set_error(err, dc_params_error(t->m->params)->status, "%s",
                         dc_params_error(t->m->params)->msg);
        goto fail;
    }
    /* one training per folder at a time; files dead writers left are removed once the
     * folder is ours */
    if (dc_dist_rank(cfg->dist) == 0) {
        if ((s = dc_run_lock_acquire(cfg->out, &t->lock, err)) != DC_OK) goto fail;
        dc_run_clean_temp(cfg->out);
    }
    size_t largest = 1;
    for (int i = 0; i < dc_params_count(t->m->params); i++)
        if (dc_params_get(t->m->params, i)->numel > largest)
            largest = dc_params_get(t->m->params, i)->numel;
    if (!(t->check_buf = malloc(largest * sizeof(float)))) {
        s = dc_set_error(err, DC_ERR_OOM, "dc_trainer: out of memory");
        goto fail;
    }
    if ((s = dc_batch_alloc(t->m, &t->batch, err)) != DC_OK ||
        (s = dc_batch_alloc(t->m, &t->eval_batch, err)) != DC_OK)
        goto fail;
    if ((s = DC_BE(be, alloc, 16 * sizeof(float), &t->acc)) != DC_OK) {
        s = dc_set_error(err, s, "%s", be->err.msg);
        goto fail;
    }
    t->perm = malloc(sizeof(int32_t) * train->n);
    if (!t->perm) {
        s = dc_set_error(err, DC_ERR_OOM, "dc_trainer: out of memory");
        goto fail;
    }
    dc_augment_config_identity(&t->aug);
    if (cfg->augment) {
        dc_augment_config *aug = &t->aug;
        aug->hflip_prob = 0.5f;
        aug->max_translate = spec->size / 16.0f;
        aug->scale_min = 0.9f;
        aug->scale_max = 1.1f;
        aug->max_rotate_deg = 8.0f;
        /* fill uncovered pixels with the data's background: the mean of the corner pixels
         * (+1 for the white guns, -1 for Fashion-MNIST's black), from the ranks' shares */
        if ((s = dc_train_corner_fill(train, cfg->dist, &aug->fill, err)) != DC_OK) goto fail;
        if (cfg->augment_oversample > 1 && (s = load_fine(t, spec, err)) != DC_OK) goto fail;
    }
    *out = t;
    return DC_OK;
fail:
    dc_trainer_free(t);
    return s;
}

dc_status dc_trainer_create(dc_backend *be, const dc_model_spec *spec, const dc_dataset *train,
                            const dc_dataset *val, const dc_train_config *config,
                            const dc_train_callbacks *callbacks, dc_trainer **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_trainer_create: out is NULL");
    *out = NULL;
    if (!spec || !train)
        return dc_set_error(err, DC_ERR_ARG, "dc_trainer_create: spec and data needed");
    dc_model_spec fitted = *spec;
    DC_TRY(kind_fit_spec_to_data(&fitted, train, 0, err));
    dc_trainer *t;
    DC_TRY(trainer_build(be, &fitted, train, val, config, callbacks, &t, err));
    dc_rng rng;
    dc_rng_seed(&rng, t->cfg.seed);
    if (dc_params_init(t->m->params, &rng) != DC_OK) {
        dc_status s = dc_set_error(err, dc_params_error(t->m->params)->status, "%s",
                                   dc_params_error(t->m->params)->msg);
        dc_trainer_free(t);
        return s;
    }
    *out = t;
    return DC_OK;
}

dc_status dc_trainer_resume(dc_backend *be, const char *run_or_file, const dc_dataset *train,
                            const dc_dataset *val, const dc_train_config *config,
                            const dc_train_callbacks *callbacks, dc_trainer **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_trainer_resume: out is NULL");
    *out = NULL;
    if (!run_or_file || !train)
        return dc_set_error(err, DC_ERR_ARG, "dc_trainer_resume: checkpoint and data needed");
    dc_train_checkpoint at;
    DC_TRY(dc_train_read_checkpoint(run_or_file, &at, err));
    DC_TRY(kind_fit_spec_to_data(&at.spec, train, 1, err));
    dc_trainer *t;
    DC_TRY(
        trainer_build(be, &at.spec, train, val, config ? config : &at.config, callbacks, &t, err));
    char *path = NULL, *csv = NULL;
    dc_status s = checkpoint_path(run_or_file, &path, NULL, 0, err);
    /* the stored position must lie inside this run: its step within an epoch of this data
     * and batch, and (same batch) the global step what the epochs and steps add up to */
    const int same_batch = t->cfg.batch == at.config.batch;
    if (s == DC_OK && at.step_in_epoch >= t->steps_per_epoch)
        s = dc_set_error(err, DC_ERR_FORMAT,
                         "%s: stored step %d of epoch %d is past the epoch's %d steps (%d "
                         "images, batch %d): the data or the batch changed",
                         path, at.step_in_epoch, at.epoch + 1, t->steps_per_epoch, train->n,
                         t->cfg.batch);
    else if (s == DC_OK && same_batch &&
             (long)at.epoch * t->steps_per_epoch + at.step_in_epoch != at.step)
        s = dc_set_error(err, DC_ERR_FORMAT,
                         "%s: stored global step %ld is not epoch %d x %d steps + %d: the data "
                         "changed or the checkpoint is damaged",
                         path, at.step, at.epoch, t->steps_per_epoch, at.step_in_epoch);
    if (s == DC_OK) s = dc_checkpoint_load(path, t->m->params, t->opt, NULL, err);
    if (s == DC_OK) {
        dc_optim_set_steps(t->opt, at.step);
        t->epoch = at.epoch;
        t->step_in_epoch = at.step_in_epoch;
        t->global_step = at.step;
        csv = path_join(t->cfg.out, "loss.csv");
        s = csv ? hist_load(&t->hist, csv, at.epoch, err)
                : dc_set_error(err, DC_ERR_OOM, "loss.csv: out of memory");
    }
    free(path);
    free(csv);
    if (s != DC_OK) {
        dc_trainer_free(t);
        return s;
    }
    *out = t;
    return DC_OK;
}

dc_model *dc_trainer_model(dc_trainer *t) {
    return t ? t->m : NULL;
}
const dc_train_config *dc_trainer_config(const dc_trainer *t) {
    return t ? &t->cfg : NULL;
}
int dc_trainer_steps_per_epoch(const dc_trainer *t) {
    return t ? t->steps_per_epoch : 0;
}
void dc_trainer_position(const dc_trainer *t, int *epoch, int *step_in_epoch, long *step) {
    if (epoch) *epoch = t ? t->epoch : 0;
    if (step_in_epoch) *step_in_epoch = t ? t->step_in_epoch : 0;
    if (step) *step = t ? t->global_step : 0;
}

/* ------------------------------------------------------------------ validation */
dc_status dc_trainer_forward_eval(dc_trainer *t, const dc_dataset *ds, const int32_t *idx,
                                  int count, uint64_t noise_seed, dc_batch *batch, dc_error *err) {
    dc_model *m = t->m;
    DC_TRY(dc_model_fill_batch(m, ds, idx, count, NULL, dc_seed_mix(t->cfg.seed, 77), batch, err));
    DC_TRY(dc_model_set_batch(m, batch, err));
    dc_graph_set_train(m->g, 0);
    if (m->noise >= 0) dc_graph_set_noise_std(m->g, m->noise, noise_seed ? m->spec.noise : 0.0f);
    dc_graph_set_seed(m->g, noise_seed);
    dc_status st = dc_graph_forward(m->g, m->out);
    if (m->noise >= 0) dc_graph_set_noise_std(m->g, m->noise, m->spec.noise);
    dc_graph_set_train(m->g, 1);
    if (st != DC_OK) return dc_set_error(err, st, "%s", dc_graph_error(m->g)->msg);
    return DC_OK;
}

dc_status dc_trainer_validate(dc_trainer *t, double *loss, double *accuracy, dc_error *err) {
    *loss = NAN;
    *accuracy = NAN;
    dc_model *m = t->m;
    const dc_dataset *ds = t->val;
    if (ds->n == 0) return DC_OK;
    /* kinds whose training graph cannot take held-out images (glo: one latent per
     * training image) validate by their own rule (glo: projection) */
    const dc_kind_row *row = dc_kind_row_get(m->spec.kind);
    if (row && row->validate) return row->validate(m, ds, loss, err);
    const int B = m->batch, is_cls = kind_is_classifier(&m->spec);
    dc_batch *batch = &t->eval_batch;
    const size_t per = is_cls ? (size_t)m->spec.classes : batch->image_numel;
    float *out = malloc(sizeof(float) * (size_t)B * per);
    int32_t *idx = malloc(sizeof(int32_t) * B);
    if (!out || !idx) {
        free(out);
        free(idx);
        return dc_set_error(err, DC_ERR_OOM, "validation: out of memory");
    }
    double total = 0;
    long correct = 0, items = 0;
    dc_status st = DC_OK;
    for (int first = 0; first < ds->n; first += B) {
        int count = ds->n - first < B ? ds->n - first : B;
        for (int i = 0; i < count; i++)
            idx[i] = first + i;
        if ((st = dc_trainer_forward_eval(t, ds, idx, count, 0, batch, err))) break;
        if ((st = dc_graph_read(m->g, m->out, out))) {
            dc_set_error(err, st, "%s", dc_graph_error(m->g)->msg);
            break;
        }
        for (int i = 0; i < count; i++) {
            const float *o = out + (size_t)i * per;
            if (is_cls) {
                /* cross-entropy from the logits, and whether the top class is the label */
                int y = batch->labels[i], best = 0;
                double mx = o[0], sum = 0;
                for (int k = 1; k < m->spec.classes; k++)
                    if (o[k] > mx) mx = o[k], best = k;
                for (int k = 0; k < m->spec.classes; k++)
                    sum += exp(o[k] - mx);
                total += -(o[y] - mx - log(sum));
                correct += best == y;
            } else {
                const float *tg = batch->target + (size_t)i * per,
                            *w = batch->weight + (size_t)i * per;
                double e = 0;
                for (size_t p = 0; p < per; p++)
                    e += (double)w[p] * (o[p] - tg[p]) * (o[p] - tg[p]);
                total += e / (double)per;
            }
            items++;
        }
    }
    free(out);
    free(idx);
    if (st != DC_OK) return st;
    *loss = total / (double)items;
    if (is_cls) *accuracy = (double)correct / (double)items;
    return DC_OK;
}

/* ------------------------------------------------------------------------- run */
static void warn(dc_trainer *t, const char *message) {
    if (t->cb.warning) t->cb.warning(t->cb.user, message);
}

/* DC_ERR_NUMERIC naming the first parameter that holds a NaN or an infinity. */
static dc_status check_params(dc_trainer *t, dc_error *err) {
    dc_params *p = t->m->params;
    for (int i = 0; i < dc_params_count(p); i++) {
        const dc_param *q = dc_params_get(p, i);
        if (dc_params_read(p, i, t->check_buf) != DC_OK)
            return dc_set_error(err, dc_params_error(p)->status, "reading '%s': %s", q->name,
                                dc_params_error(p)->msg);
        for (size_t k = 0; k < q->numel; k++)
            if (!isfinite(t->check_buf[k]))
                return dc_set_error(err, DC_ERR_NUMERIC,
                                    "training diverged by step %ld: parameter '%s' holds %g "
                                    "(element %zu of %zu); stopped without saving, the last "
                                    "checkpoint stays as it was; lower the learning rate (lr) or "
                                    "set clipping (clip)",
                                    t->global_step, q->name, (double)t->check_buf[k], k,
                                    q->numel);
    }
    return DC_OK;
}

/* One optimizer step on items perm[first..first+count); its loss is added to acc_loss on
 * the device. */
static dc_status train_step(dc_trainer *t, int first, int count, dc_ptr acc_loss, dc_error *err) {
    dc_model *m = t->m;
    const uint64_t step_seed = dc_seed_mix(t->cfg.seed, (uint64_t)t->global_step + 1);
    int local, first_slot; /* this rank's slots of the global batch (all of it in one process) */
    DC_TRY(dc_dist_batch_slice(t->cfg.dist, t->cfg.batch, &local, &first_slot, err));
    DC_TRY(dc_model_fill_batch_slice(m, t->train, t->perm + first, count, t->cfg.batch,
                                     t->cfg.augment ? &t->aug : NULL, step_seed, first_slot,
                                     &t->batch, err));
    DC_TRY(dc_model_set_batch(m, &t->batch, err));
    /* draws inside the graph and self-feedback's picks: a stream per rank (rank 0's is the
     * one-process stream) */
    const uint64_t draw_seed = dc_dist_draw_seed(t->cfg.dist, step_seed);
    dc_graph_set_seed(m->g, draw_seed);
    dc_status s;
    /* self-feedback (complete): the batch's inputs replaced on the device, no read-back */
    if ((s = dc_complete_self_feedback(m, t->batch.mask, draw_seed, err)) != DC_OK) return s;
    DC_TRY(dc_dist_backward_begin(t->cfg.dist, m, err)); /* buckets start during backward */
    if ((s = dc_graph_forward(m->g, -1)) != DC_OK ||
        (s = dc_params_zero_grad(m->params)) != DC_OK ||
        (s = dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL)) != DC_OK)
        return dc_set_error(err, s, "step %ld: %s", t->global_step, dc_graph_error(m->g)->msg);
    DC_TRY(dc_dist_reduce_step(t->cfg.dist, m, &t->batch, err));
    if ((s = dc_optim_step(t->opt)) != DC_OK)
        return dc_set_error(err, s, "%s", dc_optim_error(t->opt)->msg);
    DC_BE(t->be, axpy, acc_loss, dc_tensor_ptr(dc_graph_value(m->g, m->loss)), 1, 1.0f);
    return DC_OK;
}

/* loss.csv as the history stands (rank 0), before any checkpoint: a resume reads its rows
 * up to the checkpoint's epoch */
static void flush_loss_csv(dc_trainer *t) {
    dc_error csv_err = {0};
    if (dc_dist_rank(t->cfg.dist) == 0 && write_loss_csv(t, &csv_err) != DC_OK)
        warn(t, csv_err.msg);
}

/* Validation and loss.csv when due, the epoch_end callback and the checkpoint when one is
 * due. Every rank takes the same decisions (they depend on the epoch only). */
static dc_status end_epoch(dc_trainer *t, int epoch, double train_loss, double seconds,
                           long epoch_images, dc_error *err) {
    dc_train_epoch e = {0};
    e.epoch = epoch + 1;
    e.epochs = t->cfg.epochs;
    e.last = epoch + 1 == t->cfg.epochs;
    e.samples_due = (epoch + 1) % t->cfg.sample_every == 0 || e.last;
    const int save_due = (epoch + 1) % t->cfg.save_every == 0 || e.last;
    e.validated = (epoch + 1) % t->cfg.val_every == 0 || e.samples_due || save_due;
    DC_TRY(check_params(t, err));
    e.val_loss = e.val_accuracy = NAN;
    if (e.validated) {
        dc_status s = dc_trainer_validate(t, &e.val_loss, &e.val_accuracy, err);
        if (s != DC_OK) return dc_wrap_error(err, s, "validation");
    }
    e.global_step = t->global_step;
    e.train_loss = train_loss;
    e.lr = dc_optim_lr_at(&t->oc, t->global_step);
    e.images_per_s = epoch_images / (seconds > 1e-9 ? seconds : 1e-9);
    if (hist_add(&t->hist, e.epoch, e.global_step, e.train_loss, e.val_loss, e.lr,
                 e.images_per_s) != DC_OK)
        return dc_set_error(err, DC_ERR_OOM, "loss history: out of memory");
    if (e.validated) flush_loss_csv(t);
    t->epoch = epoch + 1;
    t->step_in_epoch = 0;
    if (t->cb.epoch_end) t->cb.epoch_end(t->cb.user, t, &e);
    if (save_due) {
        dc_status s;
        if ((s = save_checkpoint(t, err)) != DC_OK)
            return dc_wrap_error(err, s, "saving the checkpoint");
    }
    return DC_OK;
}

dc_status dc_trainer_run(dc_trainer *t, dc_error *err) {
    if (!t) return dc_set_error(err, DC_ERR_ARG, "dc_trainer_run: no trainer");
    dc_backend *be = t->be;
    const dc_train_config *c = &t->cfg;
    const int steps = t->steps_per_epoch;
    const int log_every = c->log_every > 0 ? c->log_every : steps;
    const dc_ptr acc_loss = {t->acc, 0};
    const double t_start = now_s();
    long images_done = 0;
    for (int epoch = t->epoch; epoch < c->epochs; epoch++) {
        dc_epoch_permutation(t->perm, t->train->n, c->seed, epoch);
        /* a lazily loaded set: this rank's share of the epoch (host/train_dist.c) */
        DC_TRY(dc_train_decode_epoch_share(t->train, t->fine, t->perm,
                                           epoch == t->epoch ? t->step_in_epoch : 0, steps,
                                           c->batch, c->dist, err));
        DC_BE(be, fill, acc_loss, 2, 0.0f);
        int acc_steps = 0, epoch_loss_n = 0;
        double epoch_loss = 0;
        const double t_epoch = now_s();
        long epoch_images = 0;
        dc_graph_set_train(t->m->g, 1);
        for (int step = epoch == t->epoch ? t->step_in_epoch : 0; step < steps; step++) {
            const int first = step * c->batch;
            const int count = t->train->n - first < c->batch ? t->train->n - first : c->batch;
            DC_TRY(train_step(t, first, count, acc_loss, err));
            acc_steps++;
            t->global_step++;
            /* the running sum turns NaN/Inf with the first bad step's loss: one float read
             * per step finds it at that step */
            float sum;
            DC_BE(be, read, acc_loss, &sum, sizeof sum);
            DC_TRY(dc_dist_mean(c->dist, &sum, 1, err)); /* every rank sees a bad loss */
            if (!isfinite(sum))
                return dc_set_error(err, DC_ERR_NUMERIC,
                                    "training diverged at step %ld: the loss became %g; stopped "
                                    "without saving, the last checkpoint stays as it was; lower "
                                    "the learning rate (lr) or set clipping (clip)",
                                    t->global_step, (double)sum);
            if (t->global_step % PARAM_CHECK_EVERY == 0) DC_TRY(check_params(t, err));
            images_done += c->batch;
            epoch_images += c->batch;
            /* the loss stays on the device until a logging point */
            if (acc_steps >= log_every || step + 1 == steps) {
                float l = sum; /* the sum since the last logging point */
                if (!isfinite(l))
                    return dc_set_error(err, DC_ERR_NUMERIC,
                                        "loss became %g at step %ld: lower the learning rate (lr) "
                                        "or set clipping (clip)",
                                        (double)l, t->global_step);
                epoch_loss += l;
                epoch_loss_n += acc_steps;
                if (t->cb.progress) {
                    const double elapsed = now_s() - t_start;
                    dc_train_progress p = {epoch + 1,      c->epochs,     step + 1, steps,
                                           t->global_step, l / acc_steps, 0,        0};
                    p.images_per_s = images_done / (elapsed > 1e-9 ? elapsed : 1e-9);
                    const long left = (long)(c->epochs - epoch) * steps - step - 1;
                    p.eta_s = left * (double)c->batch / (p.images_per_s > 0 ? p.images_per_s : 1);
                    t->cb.progress(t->cb.user, &p);
                }
                DC_BE(be, fill, acc_loss, 1, 0.0f);
                acc_steps = 0;
            }
            t->step_in_epoch = step + 1;
            /* all ranks stop after the same step */
            if (dc_dist_any(c->dist, t->cb.should_stop && t->cb.should_stop(t->cb.user))) {
                /* a stop after the epoch's last step resumes at the next epoch's start */
                if (t->step_in_epoch == steps) t->epoch = epoch + 1, t->step_in_epoch = 0;
                DC_TRY(check_params(t, err));
                flush_loss_csv(t); /* the epochs since the last validation */
                dc_status s = save_checkpoint(t, err);
                if (s != DC_OK)
                    return dc_wrap_error(err, s,
                                         "interrupted, and the checkpoint could not be saved");
                return dc_set_error(err, DC_ERR_INTERRUPTED,
                                    "interrupted; checkpoint saved at epoch %d step %d",
                                    t->epoch + 1, t->step_in_epoch);
            }
        }
        const double train_loss = epoch_loss_n ? epoch_loss / epoch_loss_n : NAN;
        DC_TRY(end_epoch(t, epoch, train_loss, now_s() - t_epoch, epoch_images, err));
        /* epoch_end may have asked to stop here (early stopping) */
        if (t->stop_at_epoch_end && epoch + 1 < c->epochs) {
            t->stop_at_epoch_end = 0;
            flush_loss_csv(t);
            dc_status s = save_checkpoint(t, err);
            if (s != DC_OK)
                return dc_wrap_error(err, s, "stopped, and the checkpoint could not be saved");
            return dc_set_error(err, DC_ERR_INTERRUPTED,
                                "stopped at the end of epoch %d as asked; checkpoint saved",
                                t->epoch);
        }
        t->stop_at_epoch_end = 0;
    }
    return DC_OK;
}
