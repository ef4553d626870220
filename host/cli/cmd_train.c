/* deconv train: train a model preset on an image folder / IDX / Fashion-MNIST and write a
 * run folder: model.safetensors (atomic, every --save-every epochs and at the end),
 * loss.csv, loss.png, samples/epoch_NNNN.png, report.html.
 *
 * Reproducibility: every random draw is keyed by (seed, epoch) or (seed, global step):
 * the epoch's order, the batch's augmentation and masks, the graph's dropout/noise. The
 * checkpoint stores the position (epoch, step in epoch, global step) and the optimizer
 * state, so an interrupted-and-resumed run on the CPU backend ends bit-identical to an
 * uninterrupted one. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/train_common.h"
#include "internal.h"
#include "deconv/data.h"
#include "deconv/image.h"
#include "deconv/report.h"

/* The one piece of process state: set by SIGINT/SIGTERM, read between steps. */
static volatile sig_atomic_t g_stop_requested = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop_requested = 1;
}

typedef struct train_opts {
    char data[1024];
    char out[1024];
    int epochs, batch, save_every, sample_every, augment, threads, log_every, quiet;
    float lr, val, weight_decay, clip;
    char optim[16], schedule[16];
    uint64_t seed;
} train_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mkdir_p(const char *path) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    return 0;
}

static char *opts_to_json(const train_opts *o) {
    char *buf = malloc(2600);
    if (!buf) return NULL;
    snprintf(buf, 2600,
             "{\"data\":\"%s\",\"epochs\":%d,\"batch\":%d,\"lr\":%.9g,\"optim\":\"%s\","
             "\"schedule\":\"%s\",\"weight_decay\":%.9g,\"clip\":%.9g,\"val\":%.9g,\"augment\":%d,"
             "\"seed\":%llu,\"save_every\":%d,\"sample_every\":%d}",
             o->data, o->epochs, o->batch, (double)o->lr, o->optim, o->schedule,
             (double)o->weight_decay, (double)o->clip, (double)o->val, o->augment,
             (unsigned long long)o->seed, o->save_every, o->sample_every);
    return buf;
}

static const char *jfind(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? p + strlen(pat) : NULL;
}

static int opts_from_json(const char *json, train_opts *o) {
    const char *p;
    if (!json) return -1;
    if ((p = jfind(json, "data"))) sscanf(p, " \"%1023[^\"]\"", o->data);
    if ((p = jfind(json, "epochs"))) sscanf(p, "%d", &o->epochs);
    if ((p = jfind(json, "batch"))) sscanf(p, "%d", &o->batch);
    if ((p = jfind(json, "lr"))) sscanf(p, "%f", &o->lr);
    if ((p = jfind(json, "optim"))) sscanf(p, " \"%15[^\"]\"", o->optim);
    if ((p = jfind(json, "schedule"))) sscanf(p, " \"%15[^\"]\"", o->schedule);
    if ((p = jfind(json, "weight_decay"))) sscanf(p, "%f", &o->weight_decay);
    if ((p = jfind(json, "clip"))) sscanf(p, "%f", &o->clip);
    if ((p = jfind(json, "val"))) sscanf(p, "%f", &o->val);
    if ((p = jfind(json, "augment"))) sscanf(p, "%d", &o->augment);
    unsigned long long seed;
    if ((p = jfind(json, "seed")) && sscanf(p, "%llu", &seed) == 1) o->seed = seed;
    if ((p = jfind(json, "save_every"))) sscanf(p, "%d", &o->save_every);
    if ((p = jfind(json, "sample_every"))) sscanf(p, "%d", &o->sample_every);
    return 0;
}

static void usage(void) {
    printf(
        "usage: deconv train [options]\n"
        "Trains a model and writes a run folder (checkpoint, loss.csv, loss.png, samples/,\n"
        "report.html). Without --data it trains the completion model on the gun silhouettes\n"
        "in assets/guns.\n\n"
        "data:      --data FOLDER|IDX|fashion-mnist  --size N (64; classifier 28)\n"
        "           --channels 1|3  --val FRACTION (0.1)  --augment / --no-augment\n"
        "model:     --model complete|vae|glo|classifier  --base N (32)  --blocks N (3)\n"
        "           --kernel K (3)  --latent N (128; glo 32)  --tied  --noise STD (1.0)\n"
        "           --mask bottom|top|left|right|box|random|none  --visible-weight W (0.1)\n"
        "           --loss masked|full  --beta B (vae, 1.0)  --classes N  --no-batchnorm\n"
        "           --dropout P\n"
        "training:  --epochs N (guns 400, other data 20, classifier 10)\n"
        "           --batch N (guns 16, classifier 128, else 64)  --optim adam|adamw|sgd  --lr LR\n"
        "           --schedule constant|cosine|step (classifier: cosine)  --weight-decay W\n"
        "           --clip NORM\n"
        "           --seed N (1)  --device cpu|opencl|opencl:P:D|auto  --threads N\n"
        "output:    --out RUN (runs/MODEL)  --save-every N  --sample-every N  --log-every STEPS\n"
        "           --quiet\n"
        "resume:    --resume RUN  (continues from RUN/model.safetensors; --epochs may extend)\n"
        "Ctrl-C saves a checkpoint at the end of the current step and exits.\n");
}

/* ---- progress ---- */
static void progress(const train_opts *o, int tty, int epoch, int epochs, int step, int steps,
                     double loss, double ips, double eta) {
    if (o->quiet) return;
    int m = (int)(eta / 60), s = (int)eta % 60;
    if (tty) {
        int width = 24, fill = (int)(width * (double)(step) / (steps ? steps : 1));
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r epoch %d/%d [%s] step %d/%d  loss %.5f  %.1f img/s  ETA %02d:%02d ",
                epoch + 1, epochs, bar, step, steps, loss, ips, m, s);
        fflush(stderr);
    } else {
        fprintf(stderr, "epoch %d/%d step %d/%d loss %.6f %.1f img/s ETA %02d:%02d\n", epoch + 1,
                epochs, step, steps, loss, ips, m, s);
    }
}

typedef struct history {
    double *epoch, *train, *val;
    int n, cap;
} history;

static void hist_add(history *h, double e, double t, double v) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 64;
        h->epoch = realloc(h->epoch, sizeof(double) * cap);
        h->train = realloc(h->train, sizeof(double) * cap);
        h->val = realloc(h->val, sizeof(double) * cap);
        h->cap = cap;
    }
    h->epoch[h->n] = e, h->train[h->n] = t, h->val[h->n] = v, h->n++;
}

/* Rebuild the loss history from loss.csv (after a resume). */
static void hist_load(history *h, const char *csv, int upto_epoch) {
    FILE *f = fopen(csv, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        double e, t, v;
        if (sscanf(line, "%lf,%*d,%lf,%lf", &e, &t, &v) == 3 && e <= upto_epoch) hist_add(h, e, t, v);
    }
    fclose(f);
}

static void hist_free(history *h) {
    free(h->epoch);
    free(h->train);
    free(h->val);
}

static int write_loss_csv(const char *path, const history *h, const double *lr, const double *ips,
                          const long *steps, dc_error *err) {
    size_t cap = 128 + (size_t)h->n * 160;
    char *buf = malloc(cap);
    if (!buf) return -1;
    size_t n = (size_t)snprintf(buf, cap, "epoch,step,train_loss,val_loss,lr,images_per_s\n");
    for (int i = 0; i < h->n; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%d,%ld,%.8g,%.8g,%.6g,%.2f\n", (int)h->epoch[i],
                              steps[i], h->train[i], h->val[i], lr[i], ips[i]);
    dc_status s = dc_write_file_atomic(path, buf, n, err);
    free(buf);
    return s == DC_OK ? 0 : -1;
}

static int save_checkpoint(const char *run, dc_model *m, dc_optim *opt, const train_opts *o,
                           int epoch, int step_in_epoch, long global_step, const dc_dataset *ds,
                           dc_error *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", run, DC_RUN_CHECKPOINT);
    dc_meta meta = {0};
    char *spec = dc_model_spec_to_json(&m->spec), *tj = opts_to_json(o);
    char num[64];
    dc_meta_set(&meta, "model", spec);
    dc_meta_set(&meta, "train", tj);
    snprintf(num, sizeof num, "%d", epoch);
    dc_meta_set(&meta, "epoch", num);
    snprintf(num, sizeof num, "%d", step_in_epoch);
    dc_meta_set(&meta, "step_in_epoch", num);
    snprintf(num, sizeof num, "%ld", global_step);
    dc_meta_set(&meta, "step", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)o->seed);
    dc_meta_set(&meta, "seed", num);
    dc_meta_set(&meta, "dataset", ds->source);
    snprintf(num, sizeof num, "%d", ds->n);
    dc_meta_set(&meta, "dataset_size", num);
    dc_meta_set(&meta, "version", DECONV_VERSION);
    dc_meta_set(&meta, "backend", dc_backend_name(m->be));
    free(spec);
    free(tj);
    dc_status s = dc_checkpoint_save(path, m->params, opt, &meta, err);
    dc_meta_clear(&meta);
    return s == DC_OK ? 0 : -1;
}

static int read_opts(dc_args *a, train_opts *o, int resumed) {
    char def_data[1024];
    dc_cli_default_data(def_data, sizeof def_data);
    if (!resumed) {
        snprintf(o->data, sizeof o->data, "%s", dc_args_str(a, "data", def_data));
        snprintf(o->optim, sizeof o->optim, "%s", dc_args_str(a, "optim", "adam"));
        const char *sched = dc_args_str(a, "schedule", NULL);
        if (sched) snprintf(o->schedule, sizeof o->schedule, "%s", sched);
        o->batch = dc_args_int(a, "batch", o->batch);
        o->lr = dc_args_float(a, "lr", o->lr);
        o->val = dc_args_float(a, "val", o->val);
        o->weight_decay = dc_args_float(a, "weight-decay", o->weight_decay);
        o->clip = dc_args_float(a, "clip", o->clip);
        o->seed = (uint64_t)dc_args_long(a, "seed", (long)o->seed);
        if (dc_args_flag(a, "augment")) o->augment = 1;
        if (dc_args_flag(a, "no-augment")) o->augment = 0;
    }
    o->epochs = dc_args_int(a, "epochs", o->epochs);
    o->save_every = dc_args_int(a, "save-every", o->save_every);
    o->sample_every = dc_args_int(a, "sample-every", o->sample_every);
    o->log_every = dc_args_int(a, "log-every", o->log_every);
    o->threads = dc_args_int(a, "threads", 0);
    o->quiet = dc_args_flag(a, "quiet");
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->val >= 0 && o->val < 1) ||
        o->save_every < 1 || o->sample_every < 1) {
        fprintf(stderr, "deconv train: --epochs, --batch, --save-every, --sample-every must be >= 1, "
                        "--lr > 0, --val in [0, 1)\n");
        return 2;
    }
    return 0;
}

int dc_cmd_train(int argc, char **argv) {
    static const char *const flags[] = {"help", "tied", "augment", "no-augment", "no-batchnorm",
                                        "quiet", NULL};
    dc_args a;
    if (dc_args_parse(&a, "train", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help")) {
        usage();
        return 0;
    }
    dc_error err = {0};
    train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 0;
    o.batch = 64;
    o.lr = 1e-3f;
    o.val = 0.1f;
    o.seed = 1;
    o.save_every = 10;
    o.sample_every = 10;
    o.augment = -1;
    snprintf(o.schedule, sizeof o.schedule, "constant");
    dc_model_spec spec;
    const char *resume = dc_args_str(&a, "resume", NULL);
    int start_epoch = 0, start_step = 0;
    long global_step = 0;
    dc_meta meta = {0};
    char ckpt[1200];
    if (resume) {
        dc_cli_checkpoint_path(resume, ckpt, sizeof ckpt);
        if (dc_checkpoint_read_meta(ckpt, &meta, &err) != DC_OK) return dc_cli_fail("train", "%s", err.msg);
        if (!dc_meta_get(&meta, "model") ||
            dc_model_spec_from_json(dc_meta_get(&meta, "model"), &spec, &err) != DC_OK ||
            opts_from_json(dc_meta_get(&meta, "train"), &o) != 0) {
            dc_meta_clear(&meta);
            return dc_cli_fail("train", "--resume %s: the checkpoint does not describe a training run",
                               resume);
        }
        start_epoch = atoi(dc_meta_get(&meta, "epoch") ? dc_meta_get(&meta, "epoch") : "0");
        start_step = atoi(dc_meta_get(&meta, "step_in_epoch") ? dc_meta_get(&meta, "step_in_epoch") : "0");
        global_step = atol(dc_meta_get(&meta, "step") ? dc_meta_get(&meta, "step") : "0");
        snprintf(o.out, sizeof o.out, "%s", resume);
        if (read_opts(&a, &o, 1)) return 2;
    } else {
        if (dc_cli_model_spec(&a, &spec)) return 2;
        int is_guns = !dc_args_str(&a, "data", NULL);
        /* the kind's defaults (host/models/kinds.c), tuned so the default run gives
         * recognisable results in minutes */
        const dc_model_train_defaults *td = &dc_model_kind_get(spec.kind)->train;
        o.epochs = is_guns ? td->epochs_bundled : td->epochs;
        if (td->batch) o.batch = td->batch;
        if (td->schedule) snprintf(o.schedule, sizeof o.schedule, "%s", td->schedule);
        if (is_guns && td->batch_bundled) {
            o.batch = td->batch_bundled;
            o.save_every = o.sample_every = td->save_every_bundled;
        }
        if (read_opts(&a, &o, 0)) return 2;
        if (o.augment < 0) o.augment = is_guns && td->augment_bundled;
        if (o.log_every <= 0) o.log_every = 0;
        char def_out[1100];
        snprintf(def_out, sizeof def_out, "runs/%s", dc_model_kind_name(spec.kind));
        snprintf(o.out, sizeof o.out, "%s", dc_args_str(&a, "out", def_out));
    }
    const char *devspec = dc_args_str(&a, "device", "auto");
    if (dc_args_check_unused(&a)) {
        dc_meta_clear(&meta);
        return 2;
    }

    /* ---- data ---- */
    dc_dataset *all = NULL, *train = NULL, *val = NULL;
    if (dc_dataset_load_path(o.data, spec.size, spec.channels, &all, &err) != DC_OK) {
        dc_meta_clear(&meta);
        return dc_cli_fail("train", "--data %s: %s", o.data, err.msg);
    }
    if (dc_model_kind_has(spec.kind, DC_KIND_CLASSIFIES) && all->n_classes > 0) {
        if (!resume && !dc_args_str(&a, "classes", NULL)) spec.classes = all->n_classes;
        if (all->n_classes > spec.classes) {
            dc_dataset_free(all);
            return dc_cli_fail("train", "--data %s has %d classes, the model has %d", o.data,
                               all->n_classes, spec.classes);
        }
    }
    if (dc_dataset_split(all, o.val, o.seed, &train, &val, &err) != DC_OK) {
        dc_dataset_free(all);
        return dc_cli_fail("train", "%s", err.msg);
    }
    dc_dataset_free(all);
    if (dc_model_kind_has(spec.kind, DC_KIND_LEARNED_LATENTS)) {
        if (resume && spec.glo_count != train->n) {
            dc_cli_fail("train", "glo: the checkpoint has %d latents, the data gives %d images",
                        spec.glo_count, train->n);
            goto fail_data;
        }
        spec.glo_count = train->n;
    }
    if (o.epochs <= start_epoch) {
        fprintf(stderr, "deconv train: %s already finished %d epochs (use --epochs to extend)\n",
                o.out, start_epoch);
        dc_dataset_free(train);
        dc_dataset_free(val);
        dc_meta_clear(&meta);
        return 0;
    }

    /* ---- engine ---- */
    dc_backend *be = NULL;
    if (dc_backend_create_from_spec(devspec, !o.quiet, &be, &err) != DC_OK) {
        dc_cli_fail("train", "--device %s: %s", devspec, err.msg);
        goto fail_data;
    }
    if (o.threads > 0) dc_backend_set_threads(be, o.threads);
    int rc = 1;
    dc_model *m = NULL;
    dc_optim *opt = NULL;
    dc_batch batch = {0};
    dc_buffer *acc = NULL;
    history hist = {0};
    double *hist_lr = NULL, *hist_ips = NULL;
    long *hist_steps = NULL;
    train_samples smp = {0};
    if (dc_model_create_training(be, &spec, o.batch, &m, &err) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    dc_optim_config oc;
    dc_optim_kind kind = !strcmp(o.optim, "sgd") ? DC_OPTIM_SGD
                         : !strcmp(o.optim, "adamw") ? DC_OPTIM_ADAMW
                         : !strcmp(o.optim, "adam") ? DC_OPTIM_ADAM
                                                    : (dc_optim_kind)-1;
    if ((int)kind < 0) {
        dc_cli_fail("train", "--optim %s: use adam, adamw or sgd", o.optim);
        goto done;
    }
    dc_optim_config_default(&oc, kind);
    oc.lr = o.lr;
    if (o.weight_decay > 0 || kind != DC_OPTIM_ADAMW) oc.weight_decay = o.weight_decay;
    oc.clip_norm = o.clip;
    const int steps_per_epoch = (train->n + o.batch - 1) / o.batch;
    if (!strcmp(o.schedule, "cosine")) {
        oc.schedule = DC_SCHED_COSINE;
        oc.total_steps = (long)steps_per_epoch * o.epochs;
    } else if (!strcmp(o.schedule, "step")) {
        oc.schedule = DC_SCHED_STEP;
        oc.step_size = steps_per_epoch * (o.epochs / 3 > 0 ? o.epochs / 3 : 1);
    } else if (strcmp(o.schedule, "constant") != 0) {
        dc_cli_fail("train", "--schedule %s: use constant, cosine or step", o.schedule);
        goto done;
    }
    if (dc_optim_create(m->params, &oc, &opt) != DC_OK) {
        dc_cli_fail("train", "%s", dc_params_error(m->params)->msg);
        goto done;
    }
    if (resume) {
        if (dc_checkpoint_load(ckpt, m->params, opt, NULL, &err) != DC_OK) {
            dc_cli_fail("train", "%s", err.msg);
            goto done;
        }
        dc_optim_set_steps(opt, global_step);
    } else {
        dc_rng rng;
        dc_rng_seed(&rng, o.seed);
        if (dc_params_init(m->params, &rng) != DC_OK) {
            dc_cli_fail("train", "%s", dc_params_error(m->params)->msg);
            goto done;
        }
    }
    if (mkdir_p(o.out) != 0) {
        dc_cli_fail("train", "cannot create run folder '%s': %s", o.out, strerror(errno));
        goto done;
    }
    if (dc_batch_alloc(m, &batch, &err) != DC_OK ||
        be->ops->alloc(be, 16 * sizeof(float), &acc) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg[0] ? err.msg : be->err.msg);
        goto done;
    }
    if (train_samples_init(&smp, m, train, val, o.out, o.seed, &err) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    dc_augment_config aug;
    dc_augment_config_identity(&aug);
    if (o.augment) {
        aug.hflip_prob = 0.5f;
        aug.max_translate = spec.size / 16.0f;
        aug.scale_min = 0.9f;
        aug.scale_max = 1.1f;
        aug.max_rotate_deg = 8.0f;
        /* fill uncovered pixels with the data's background: the mean of the corner pixels
         * (+1 for the white guns, -1 for Fashion-MNIST's black) */
        double corner = 0;
        const int S = spec.size;
        for (int i = 0; i < train->n; i++) {
            const float *im = dc_dataset_image(train, i);
            corner += (im[0] + im[S - 1] + im[(S - 1) * S] + im[S * S - 1]) / 4.0;
        }
        aug.fill = (float)(corner / train->n);
    }
    char csv[1200];
    snprintf(csv, sizeof csv, "%s/loss.csv", o.out);
    if (resume) hist_load(&hist, csv, start_epoch);
    hist_lr = calloc((size_t)o.epochs + 1, sizeof(double));
    hist_ips = calloc((size_t)o.epochs + 1, sizeof(double));
    hist_steps = calloc((size_t)o.epochs + 1, sizeof(long));
    for (int i = 0; i < hist.n && i <= o.epochs; i++) hist_steps[i] = (long)(hist.epoch[i]) * steps_per_epoch;

    if (!o.quiet) {
        fprintf(stderr, "deconv train: %s on %s (%d train / %d val images, %dx%dx%d), %d epochs x %d steps of %d, run folder %s\n",
                dc_model_kind_name(spec.kind), o.data, train->n, val->n, spec.channels, spec.size, spec.size, o.epochs,
                steps_per_epoch, o.batch, o.out);
        if (resume)
            fprintf(stderr, "deconv train: resuming at epoch %d step %d (global step %ld)\n",
                    start_epoch + 1, start_step, global_step);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    const int tty = isatty(2);
    const int log_every = o.log_every > 0 ? o.log_every : (tty ? 5 : steps_per_epoch);
    int32_t *perm = malloc(sizeof(int32_t) * train->n);
    dc_ptr acc_loss = {acc, 0};
    double t_start = now_s(), t_epoch = now_s();
    long images_done = 0;
    int interrupted = 0;
    for (int epoch = start_epoch; epoch < o.epochs && !interrupted; epoch++) {
        dc_epoch_permutation(perm, train->n, o.seed, epoch);
        be->ops->fill(be, acc_loss, 2, 0.0f);
        int acc_steps = 0;
        double epoch_loss = 0;
        int epoch_loss_n = 0;
        t_epoch = now_s();
        long epoch_images = 0;
        dc_graph_set_train(m->g, 1);
        for (int step = epoch == start_epoch ? start_step : 0; step < steps_per_epoch; step++) {
            const int first = step * o.batch;
            const int count = train->n - first < o.batch ? train->n - first : o.batch;
            const uint64_t step_seed = dc_seed_mix(o.seed, (uint64_t)global_step + 1);
            dc_status s;
            if ((s = dc_model_fill_batch(m, train, perm + first, count, o.augment ? &aug : NULL,
                                         step_seed, &batch, &err)) ||
                (s = dc_model_set_batch(m, &batch, &err))) {
                dc_cli_fail("train", "%s", err.msg);
                goto done_loop;
            }
            dc_graph_set_seed(m->g, step_seed);
            if (dc_graph_forward(m->g, -1) != DC_OK || dc_params_zero_grad(m->params) != DC_OK ||
                dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL) != DC_OK) {
                dc_cli_fail("train", "step %ld: %s", global_step, dc_graph_error(m->g)->msg);
                goto done_loop;
            }
            if (dc_optim_step(opt) != DC_OK) {
                dc_cli_fail("train", "%s", dc_optim_error(opt)->msg);
                goto done_loop;
            }
            /* the loss stays on the device until a logging point */
            be->ops->axpy(be, acc_loss, dc_tensor_ptr(dc_graph_value(m->g, m->loss)), 1, 1.0f);
            acc_steps++;
            global_step++;
            images_done += o.batch;
            epoch_images += o.batch;
            if (acc_steps >= log_every || step + 1 == steps_per_epoch) {
                float l;
                be->ops->read(be, acc_loss, &l, sizeof l);
                if (!isfinite(l)) {
                    dc_cli_fail("train", "loss became %g at step %ld: lower --lr or set --clip", (double)l,
                                global_step);
                    goto done_loop;
                }
                epoch_loss += l;
                epoch_loss_n += acc_steps;
                double el = now_s() - t_start, ips = images_done / (el > 1e-9 ? el : 1e-9);
                long left = (long)(o.epochs - epoch) * steps_per_epoch - step - 1;
                progress(&o, tty, epoch, o.epochs, step + 1, steps_per_epoch, l / acc_steps, ips,
                         left * (double)o.batch / (ips > 0 ? ips : 1));
                be->ops->fill(be, acc_loss, 1, 0.0f);
                acc_steps = 0;
            }
            if (g_stop_requested) {
                interrupted = 1;
                if (tty && !o.quiet) fputc('\n', stderr);
                int e2 = step + 1 == steps_per_epoch ? epoch + 1 : epoch;
                int s2 = step + 1 == steps_per_epoch ? 0 : step + 1;
                if (save_checkpoint(o.out, m, opt, &o, e2, s2, global_step, train, &err) != 0) {
                    dc_cli_fail("train", "interrupted, and the checkpoint could not be saved: %s", err.msg);
                    goto done_loop;
                }
                fprintf(stderr, "deconv train: interrupted; checkpoint saved at epoch %d step %d; "
                                "continue with: deconv train --resume %s\n", e2 + 1, s2, o.out);
                rc = 130;
                goto done_loop;
            }
        }
        /* ---- end of epoch: validation, history, samples, checkpoint ---- */
        double train_loss = epoch_loss_n ? epoch_loss / epoch_loss_n : NAN;
        double val_loss = NAN, val_acc = NAN;
        if (train_samples_validate(&smp, &val_loss, &val_acc, &err) != DC_OK) {
            dc_cli_fail("train", "validation: %s", err.msg);
            goto done_loop;
        }
        double ept = now_s() - t_epoch;
        hist_add(&hist, epoch + 1, train_loss, val_loss);
        int hi = hist.n - 1 <= o.epochs ? hist.n - 1 : o.epochs;
        hist_lr[hi] = dc_optim_lr_at(&oc, global_step);
        hist_ips[hi] = epoch_images / (ept > 1e-9 ? ept : 1e-9);
        hist_steps[hi] = global_step;
        const int last = epoch + 1 == o.epochs;
        if (!o.quiet && (!tty || last || (epoch + 1) % o.sample_every == 0)) {
            if (tty) fputc('\n', stderr);
            if (isnan(val_acc))
                fprintf(stderr, "epoch %d: train loss %.6f  val loss %.6f\n", epoch + 1, train_loss, val_loss);
            else
                fprintf(stderr, "epoch %d: train loss %.6f  val loss %.6f  val accuracy %.4f\n",
                        epoch + 1, train_loss, val_loss, val_acc);
        }
        if (write_loss_csv(csv, &hist, hist_lr, hist_ips, hist_steps, &err) != 0)
            fprintf(stderr, "deconv train: warning: %s\n", err.msg);
        if ((epoch + 1) % o.sample_every == 0 || last) {
            if (train_samples_write(&smp, epoch + 1, &err) != DC_OK)
                fprintf(stderr, "deconv train: warning: samples: %s\n", err.msg);
            char chart[1200], report[1200], summary[2048];
            snprintf(chart, sizeof chart, "%s/loss.png", o.out);
            dc_series ser[2] = {{"train", hist.epoch, hist.train, hist.n}, {"validation", hist.epoch, hist.val, hist.n}};
            if (dc_chart_write_png(chart, 640, 360, "loss", "epoch", ser, 2, 1, &err) != DC_OK)
                fprintf(stderr, "deconv train: warning: chart: %s\n", err.msg);
            snprintf(report, sizeof report, "%s/report.html", o.out);
            snprintf(summary, sizeof summary,
                     "model      %s%s\ndata       %s (%d train / %d validation images)\n"
                     "device     %s\nepoch      %d of %d (global step %ld)\n"
                     "train loss %.6f\nval loss   %.6f%s\nspeed      %.1f images/s\n",
                     dc_model_kind_name(spec.kind), spec.tied ? " (tied)" : "", o.data, train->n, val->n,
                     dc_backend_device(be), epoch + 1, o.epochs, global_step, train_loss, val_loss,
                     isnan(val_acc) ? "" : "", hist_ips[hi]);
            if (!isnan(val_acc)) {
                size_t len = strlen(summary);
                snprintf(summary + len, sizeof summary - len, "val acc    %.4f\n", val_acc);
            }
            dc_report_image imgs[2] = {{"loss", chart}, {"samples (latest)", smp.latest}};
            if (dc_report_write_html(report, "deconv training run", summary, imgs, 2, &err) != DC_OK)
                fprintf(stderr, "deconv train: warning: report: %s\n", err.msg);
        }
        if ((epoch + 1) % o.save_every == 0 || last) {
            if (save_checkpoint(o.out, m, opt, &o, epoch + 1, 0, global_step, train, &err) != 0) {
                dc_cli_fail("train", "saving the checkpoint: %s", err.msg);
                goto done_loop;
            }
        }
    }
    if (!interrupted) {
        rc = 0;
        if (!o.quiet)
            fprintf(stderr, "deconv train: done in %.1f s; run folder %s (open %s/report.html)\n",
                    now_s() - t_start, o.out, o.out);
    }
done_loop:
    free(perm);
done:
    train_samples_free(&smp);
    if (acc) be->ops->free(be, acc);
    dc_batch_free(&batch);
    dc_optim_free(opt);
    dc_model_free(m);
    dc_backend_free(be);
    dc_dataset_free(train);
    dc_dataset_free(val);
    hist_free(&hist);
    free(hist_lr);
    free(hist_ips);
    free(hist_steps);
    dc_meta_clear(&meta);
    return rc;
fail_data:
    dc_dataset_free(train);
    dc_dataset_free(val);
    dc_meta_clear(&meta);
    return 1;
}
