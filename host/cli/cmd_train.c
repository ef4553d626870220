/* deconv train: options, progress display and the run's report around the library's
 * training loop (include/deconv/train.h), which writes the run folder: model.safetensors,
 * loss.csv. The callbacks here add loss.png, samples/epoch_NNNN.png and report.html
 * (train_samples.c).
 *
 * Ctrl-C: the signal handler only sets a flag; the trainer polls it between steps, saves a
 * checkpoint at the end of the current step and stops.
 *
 * Under mpirun every rank runs this command (data-parallel, deconv/dist.h): rank 0 prints
 * and writes the run folder, the other ranks stay silent unless they fail, and a failing
 * rank ends all of them (MPI_Abort) so none waits forever on a dead peer. mpirun passes a
 * Ctrl-C on to the ranks as SIGTERM: they agree on the step to stop after, and rank 0
 * saves there. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/progress.h"
#include "cli/train_common.h"
#include "deconv/dist.h"
#include "deconv/train.h"

/* The one piece of process state: set by SIGINT/SIGTERM, read between steps. */
static volatile sig_atomic_t g_stop_requested = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop_requested = 1;
}

typedef struct train_cli {
    dc_train_config cfg;
    dc_load_options load;
    int threads, quiet, tty, force;
    int early_stop;        /* --early-stop N: patience in epochs (0: off) */
    double progress_every; /* --progress-every S */
    dc_cli_progress progress;
    train_report report;
    dc_model_spec spec;
    const dc_dataset *train, *val;
    dc_backend *be;
    train_samples samples;
    char channels_note[200]; /* how the channels were chosen, for the line and config.json */
    char fingerprint[32];
    char command[2048], started[32];
    dc_cli_run_config run_config;
    int config_ok; /* run_config is complete: config.json may be written */
} train_cli;

/* assets/guns holds 64x64 PNGs (assets/make_guns.sh) */
#define DC_GUNS_NATIVE_SIZE 64

static const dc_option train_options[] = {
    {"data", 0, DC_OPT_TEXT, "FOLDER|IDX|fashion-mnist", "training images", "assets/guns", NULL},
    {"val", 0, DC_OPT_NUM, "FRACTION", "held out for validation", "0.1", NULL},
    {"augment", 0, DC_OPT_FLAG, NULL, "random flips and shifts (default: on for the guns)", NULL,
     NULL},
    {"no-augment", 0, DC_OPT_FLAG, NULL, "no augmentation", NULL, NULL},
    {"augment-oversample", 0, DC_OPT_INT, "K",
     "augment at K x the size and filter down (edges stay sharp;\nfor images at least K x --size)",
     "2 for the bundled guns at --size <= 32, else 1", NULL},
    {"max-image-pixels", 0, DC_OPT_INT, "N", "width x height cap per image file", "64 Mpx",
     NULL},
    {"epochs", 0, DC_OPT_INT, "N", "epochs to train",
     "guns 400, diffusion on guns 3000,\nother data 20 (diffusion 4), classifier 10", NULL},
    {"batch", 0, DC_OPT_INT, "N", "images per step", "guns 16, classifier 128, else 64", NULL},
    {"optim", 0, DC_OPT_TEXT, "adam|adamw|sgd", "optimizer", "adam", NULL},
    {"lr", 0, DC_OPT_NUM, "LR", "learning rate", NULL, NULL},
    {"schedule", 0, DC_OPT_TEXT, "constant|cosine|step", "learning-rate schedule",
     "classifier: cosine", NULL},
    {"weight-decay", 0, DC_OPT_NUM, "W", "weight decay", NULL, NULL},
    {"clip", 0, DC_OPT_NUM, "NORM", "gradient norm clipping", NULL, NULL},
    {"ema", 0, DC_OPT_NUM, "DECAY", "EMA weights for sampling", "diffusion 0.999", NULL},
    {"seed", 0, DC_OPT_INT, "N", "random seed", "1", NULL},
    {"split-seed", 0, DC_OPT_INT, "N", "which images are held out (--seed leaves it alone)", "1",
     NULL},
    DC_OPT_DEVICE_ENTRY,
    {"out", 'o', DC_OPT_TEXT, "RUN", "the run folder", "runs/MODEL", "output dir"},
    {"save-every", 0, DC_OPT_INT, "N", "checkpoint every N epochs", NULL, NULL},
    {"sample-every", 0, DC_OPT_INT, "N", "sample grid every N epochs", NULL, NULL},
    {"val-every", 0, DC_OPT_INT, "N",
     "validation loss, loss.csv and report every N epochs\n(and at checkpoints and sample "
     "epochs)",
     "diffusion on guns 10, else 1", NULL},
    {"log-every", 0, DC_OPT_INT, "STEPS", "loss.csv line every STEPS steps", NULL, NULL},
    {"progress-every", 0, DC_OPT_NUM, "S",
     "a plain progress line every S seconds when stderr is not a terminal", "10", NULL},
    {"early-stop", 0, DC_OPT_INT, "N",
     "stop after N epochs without a better validation loss\n(model.best.safetensors always keeps "
     "the best epoch)",
     NULL, NULL},
    {"force", 0, DC_OPT_FLAG, NULL, "replace the old run's files in a non-empty --out", NULL,
     NULL},
    {"resume", 0, DC_OPT_TEXT, "RUN", "continue from RUN/model.safetensors (see below)", NULL,
     NULL},
    {"sync-batchnorm", 0, DC_OPT_FLAG, NULL,
     "data-parallel: batch norm over the global batch (else per rank)", NULL, NULL},
    {"serial-exchange", 0, DC_OPT_FLAG, NULL,
     "data-parallel: all-reduce after backward, not overlapped with it", NULL, NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL},
};

static void train_notes(FILE *f) {
    fprintf(f,
            "Resume: --resume RUN may change --epochs (extends), --save-every, --sample-every,\n"
            "--val-every, --log-every, --device, --threads, --quiet, --max-image-pixels, and\n"
            "--data only to a\n"
            "copy of the run's data (moved or renamed: its content must match config.json's\n"
            "fingerprint). Model and training options (--model, --size, --lr, --batch, --seed,\n"
            "...) are the run's own; start a new run (--out) to change them.\n"
            "Without --channels the data's images are looked at: colour gives 3, grey 1 (said in\n"
            "one line). --data is stored as an absolute path, so a run resumes from any folder.\n"
            "config.json in the run folder records every option, the seed, version, device, the\n"
            "data (path, image counts, channels, class names) and the progress; the checkpoint\n"
            "stores the class names (deconv predict, eval and visualize --class use them).\n"
            "Data-parallel: mpirun -np N deconv train ... splits every batch over N ranks (--batch\n"
            "is the global batch, a multiple of N; --threads per rank).\n"
            "A non-empty run folder is refused without --resume or --force; one training at a\n"
            "time per folder (locked). Ctrl-C saves a checkpoint at the end of the current step\n"
            "and exits with status 130. A diverged run (NaN/Inf loss or weights) stops without\n"
            "saving.\n");
}

static const dc_command train_command = {
    .name = "train",
    .synopsis = "[options]",
    .about = "Trains a model and writes a run folder (checkpoint, loss.csv, loss.png, samples/,\n"
             "report.html). Without --data it trains the completion model on the gun silhouettes\n"
             "in assets/guns.\n",
    .options = train_options,
    .shared = dc_cli_model_options,
    .notes = train_notes,
    .max_positional = 0,
    .positional_what = "options only",
    .takes_data = 1,
    .computes = 1,
};

/* ---- callbacks of the trainer ---- */
static void on_progress(void *user, const dc_train_progress *p) {
    train_cli *c = user;
    if (!c->quiet) dc_cli_progress_update(&c->progress, p);
}

static void on_warning(void *user, const char *message) {
    dc_cli_progress_clear(&((train_cli *)user)->progress);
    fprintf(stderr, "deconv train: warning: %s\n", message);
}

static int should_stop(void *user) {
    (void)user;
    return g_stop_requested;
}

static void on_epoch_end(void *user, dc_trainer *t, const dc_train_epoch *e) {
    train_cli *c = user;
    /* config.json, the log line and the report follow the validation's cadence (samples
     * and checkpoints are always validated epochs) */
    if (!e->validated) return;
    if (c->config_ok) dc_cli_config_write(&c->run_config, t, "running");
    if (!c->quiet && (!c->tty || e->samples_due)) {
        dc_cli_progress_clear(&c->progress);
        fprintf(stderr, "epoch %d: train loss %.6f  val loss %.6f", e->epoch, e->train_loss,
                e->val_loss);
        if (!isnan(e->val_accuracy)) fprintf(stderr, "  val accuracy %.4f", e->val_accuracy);
        fputc('\n', stderr);
    }
    dc_error err = {0};
    if (e->samples_due && train_samples_write(&c->samples, e->epoch, &err) != DC_OK)
        fprintf(stderr, "deconv train: warning: samples: %s\n", err.msg);
    train_report_epoch(&c->report, &c->samples, t, &c->spec, c->train, c->val, e);
    if (c->report.stop_early) dc_trainer_request_stop(t);
    if (c->report.stop_early && !c->quiet)
        fprintf(stderr,
                "deconv train: stopping early: no better validation loss for %d epochs (best: "
                "epoch %d, %.6g)\n",
                e->epoch - c->report.best_epoch, c->report.best_epoch, c->report.best_val);
}

/* ---- options ---- */
static int read_opts(dc_args *a, train_cli *c, int resumed) {
    dc_train_config *o = &c->cfg;
    if (dc_cli_load_options(a, &c->load)) return 2;
    if (!resumed) {
        char def_data[1024];
        dc_cli_default_data(def_data, sizeof def_data);
        if (dc_cli_copy_path("train", "--data", dc_args_str(a, "data", def_data), o->data,
                             sizeof o->data))
            return 2;
        /* absolute, so that a resume from another working folder finds the data */
        if (dc_cli_absolute_data(o->data, sizeof o->data)) return 2;
        const char *optim = dc_args_str(a, "optim", "adam"),
                   *sched = dc_args_str(a, "schedule", NULL);
        if (dc_optim_kind_parse(optim, &o->optim, NULL) != DC_OK)
            return dc_cli_usage("train", "--optim %s: use adam, adamw or sgd", optim);
        if (sched && dc_schedule_parse(sched, &o->schedule, NULL) != DC_OK)
            return dc_cli_usage("train", "--schedule %s: use constant, cosine or step", sched);
        o->batch = dc_args_int(a, "batch", o->batch);
        o->lr = dc_args_float(a, "lr", o->lr);
        o->val = dc_args_float(a, "val", o->val);
        o->weight_decay = dc_args_float(a, "weight-decay", o->weight_decay);
        o->clip = dc_args_float(a, "clip", o->clip);
        o->ema = dc_args_float(a, "ema", o->ema);
        o->seed = (uint64_t)dc_args_long(a, "seed", (long)o->seed);
        o->split_seed = (uint64_t)dc_args_long(a, "split-seed", (long)o->split_seed);
        if (dc_args_flag(a, "augment")) o->augment = 1;
        if (dc_args_flag(a, "no-augment")) o->augment = 0;
        o->augment_oversample = dc_args_int(a, "augment-oversample", o->augment_oversample);
        if (o->augment_oversample != -1 &&
            (o->augment_oversample < 1 || o->augment_oversample > DC_AUGMENT_OVERSAMPLE_MAX))
            return dc_cli_usage("train", "--augment-oversample %d: use 1 to %d",
                                o->augment_oversample, DC_AUGMENT_OVERSAMPLE_MAX);
    }
    o->epochs = dc_args_int(a, "epochs", o->epochs);
    o->save_every = dc_args_int(a, "save-every", o->save_every);
    o->sample_every = dc_args_int(a, "sample-every", o->sample_every);
    o->val_every = dc_args_int(a, "val-every", o->val_every);
    o->log_every = dc_args_int(a, "log-every", o->log_every);
    c->threads = dc_args_int(a, "threads", 0);
    c->early_stop = dc_args_int(a, "early-stop", 0);
    c->progress_every = dc_args_float(a, "progress-every", (float)DC_PROGRESS_EVERY_S);
    if (c->early_stop < 0 || c->progress_every < 0) {
        fprintf(stderr, "deconv train: --early-stop and --progress-every must be >= 0\n");
        return 2;
    }
    c->quiet = a->quiet;
    if (!(o->ema >= 0 && o->ema < 1)) return dc_cli_usage("train", "--ema %g: use a decay in [0, 1)", (double)o->ema);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->val >= 0 && o->val < 1) ||
        o->save_every < 1 || o->sample_every < 1 || o->val_every < 1) {
        fprintf(stderr,
                "deconv train: --epochs, --batch, --save-every, --sample-every, --val-every must "
                "be >= 1, --lr > 0, --val in [0, 1)\n");
        return 2;
    }
    return 0;
}

/* A new run's options: the defaults per model kind and data, then the command line. */
static int new_run_opts(dc_args *a, train_cli *c) {
    dc_train_config *o = &c->cfg;
    int channels = 1;
    const char *channels_opt = dc_args_str(a, "channels", NULL);
    if (channels_opt) {
        snprintf(c->channels_note, sizeof c->channels_note, "given (--channels %s)", channels_opt);
    } else {
        char def_data[1024], why[160];
        dc_cli_default_data(def_data, sizeof def_data);
        dc_error err = {0};
        if (dc_dataset_detect_channels(dc_args_str(a, "data", def_data), &channels, why, sizeof why,
                                       &err) != DC_OK)
            return dc_cli_fail("train", "--data %s: %s", dc_args_str(a, "data", def_data), err.msg);
        snprintf(c->channels_note, sizeof c->channels_note, "detected: %s", why);
    }
    if (dc_cli_model_spec_channels(a, &c->spec, channels)) return 2;
    const dc_model_spec *spec = &c->spec;
    int is_guns = !dc_args_str(a, "data", NULL);
    /* the kind's defaults (host/models/kinds.c), tuned so the default run gives
     * recognisable results in minutes */
    const dc_model_train_defaults *td = &dc_model_kind_get(spec->kind)->train;
    o->epochs = is_guns ? td->epochs_bundled : td->epochs;
    if (td->batch) o->batch = td->batch;
    if (td->schedule && dc_schedule_parse(td->schedule, &o->schedule, NULL) != DC_OK) return 2;
    o->ema = td->ema;
    if (is_guns && td->batch_bundled) {
        o->batch = td->batch_bundled;
        o->save_every = o->sample_every = td->save_every_bundled;
        if (td->val_every_bundled) o->val_every = td->val_every_bundled;
    }
    o->augment = -1;
    o->augment_oversample = -1;
    int rc = read_opts(a, c, 0);
    if (rc) return rc;
    if (o->augment < 0) o->augment = is_guns && td->augment_bundled;
    /* only where the images hold the detail: the bundled guns are 64x64 (at 64 the copy
     * loaded at 128 would be upsampled, blurring them more than resampling at 64 does) */
    if (o->augment_oversample < 0)
        o->augment_oversample = is_guns && 2 * spec->size <= DC_GUNS_NATIVE_SIZE ? 2 : 1;
    char def_out[1100];
    snprintf(def_out, sizeof def_out, "runs/%s", dc_model_kind_name(spec->kind));
    return dc_cli_copy_path("train", "--out", dc_args_str(a, "out", def_out), o->out, sizeof o->out);
}

/* On a resume the run keeps its model and training options: one given is refused, naming
 * what may change instead of calling it unknown. */
static int resume_fixed_options(dc_args *a) {
    static const char *const valued[] = {
        "model",      "size",     "channels",     "base",       "blocks",
        "kernel",     "latent",   "noise",        "mask",       "visible-weight",
        "loss",       "beta",     "code",         "bottleneck", "feedback",
        "classes",    "dropout",  "glo-count",    "batch",      "lr",
        "optim",      "schedule", "weight-decay", "clip",       "seed",
        "split-seed", "val",      "out",          "label-dropout", "time-dist",
        "augment-oversample", "cond-mask", "unroll", NULL};
    static const char *const flags[] = {"tied",          "no-batchnorm", "augment", "no-augment",
                                        "unconditional", "attention",    "no-hole-input", "skips", "no-skips", NULL};
    const char *given = NULL;
    for (int i = 0; !given && valued[i]; i++)
        if (dc_args_str(a, valued[i], NULL)) given = valued[i];
    for (int i = 0; !given && flags[i]; i++)
        if (dc_args_flag(a, flags[i])) given = flags[i];
    if (!given) return 0;
    fprintf(stderr,
            "deconv train: --%s cannot change on --resume: the run keeps the value it was made "
            "with (see RUN/config.json). A resume may change --epochs, --save-every, "
            "--sample-every, --val-every, --log-every, --device, --threads, --quiet, --max-image-pixels, and "
            "--data to a copy of the run's data; to change --%s, start a new run (--out)\n",
            given, given);
    return 2;
}

/* The fingerprint config.json of run folder `folder` stores, into buf ("" when none). */
static void stored_fingerprint(const char *folder, char *buf, size_t cap) {
    char path[1200];
    buf[0] = 0;
    if (snprintf(path, sizeof path, "%s/config.json", folder) >= (int)sizeof path) return;
    char *text = dc_cli_read_text(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const char *fp = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(root, "data"), "fingerprint"));
    if (fp) snprintf(buf, cap, "%s", fp);
    cJSON_Delete(root);
    free(text);
}

/* The command line as typed, for config.json (before the parser reorders argv). */
static void join_command(char *buf, size_t cap, int argc, char **argv) {
    size_t n = (size_t)snprintf(buf, cap, "deconv");
    for (int i = 0; i < argc && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, " %s", argv[i]);
}

int dc_cmd_train(int argc, char **argv) {
    dc_args a;
    train_cli c;
    memset(&c, 0, sizeof c);
    join_command(c.command, sizeof c.command, argc, argv);
    if (dc_args_parse(&a, &train_command, argc, argv)) return a.status;
    dc_error err = {0};
    dc_train_config_default(&c.cfg);
    const char *resume = dc_args_str(&a, "resume", NULL);
    dc_train_checkpoint at = {0};
    int rc, data_moved = 0;
    if (resume) {
        if (dc_train_read_checkpoint(resume, &at, &err) != DC_OK)
            return dc_cli_fail("train", "%s", err.msg);
        c.spec = at.spec;
        c.cfg = at.config;
        if ((rc = dc_cli_copy_path("train", "--resume", resume, c.cfg.out, sizeof c.cfg.out)))
            return rc;
        if ((rc = read_opts(&a, &c, 1))) return rc;
        if ((rc = resume_fixed_options(&a))) return rc;
        const char *moved = dc_args_str(&a, "data", NULL);
        if (moved) {
            if ((rc = dc_cli_copy_path("train", "--data", moved, c.cfg.data, sizeof c.cfg.data)) ||
                (rc = dc_cli_absolute_data(c.cfg.data, sizeof c.cfg.data)))
                return rc;
            data_moved = strcmp(c.cfg.data, at.config.data) != 0;
        }
        snprintf(c.channels_note, sizeof c.channels_note, "the run's (%d)", c.spec.channels);
    } else if ((rc = new_run_opts(&a, &c))) {
        return rc;
    }
    const char *devspec = dc_args_str(&a, "device", "auto");
    c.force = dc_args_flag(&a, "force");
    if (resume && c.force) {
        fprintf(stderr, "deconv train: --force replaces a run, --resume continues one: give one\n");
        return 2;
    }
    dc_dist_options dist_opt = {0}; /* read before the check for unknown options */
    dist_opt.sync_batchnorm = dc_args_flag(&a, "sync-batchnorm");
    dist_opt.serial_exchange = dc_args_flag(&a, "serial-exchange");
    if (dc_args_check_unused(&a)) return 2;
    c.tty = isatty(2);
    dc_dist *dist = NULL;
    if (dc_dist_launched()) {
        if (dc_dist_create(&dist_opt, &dist, &err) != DC_OK)
            return dc_cli_fail("train", "started by mpirun: %s", err.msg);
        c.cfg.dist = dist;
        if (dc_dist_rank(dist) != 0) c.quiet = 1, c.tty = 0;
    }
    const int rank0 = dc_dist_rank(dist) == 0;
    /* a report every step: the display decides how often to draw (the loss is read from
     * the device after every step anyway, for the divergence check) */
    if (c.cfg.log_every <= 0) c.cfg.log_every = 1;
    dc_cli_progress_init(&c.progress, 2, c.progress_every);

    /* under mpirun every rank decodes only its share of each epoch: the fingerprint and
     * the default loss are computed from the ranks' shares, the samples and the report
     * decode the few images they show */
    c.load.lazy = dist != NULL;
    c.cfg.max_image_pixels = c.load.max_image_pixels;
    dc_dataset *train = NULL, *val = NULL;
    if (dc_train_load_data_opts(&c.cfg, c.spec.size, c.spec.channels, &c.load, &train, &val,
                                &err) != DC_OK) {
        rc = dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
        dc_dist_abort(dist, rc, "deconv train failed (message above)");
        dc_dist_free(dist);
        return rc;
    }
    c.train = train;
    c.val = val;
    dc_trainer *t = NULL;
    rc = 1;
    /* every rank hashes its share; the item hashes are exchanged */
    if (dc_train_data_fingerprint(train, val, dist, c.fingerprint, sizeof c.fingerprint, &err) !=
        DC_OK) {
        dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
        goto done;
    }
    if (resume && rank0) { /* a refusal on rank 0 ends every rank */
        char stored[32];
        stored_fingerprint(c.cfg.out, stored, sizeof stored);
        /* a run folder from before item-wise fingerprints: compared the old way (rank 0
         * reads every image, a part at a time) */
        if (stored[0] &&
            strncmp(stored, DC_DATA_FINGERPRINT_PREFIX, strlen(DC_DATA_FINGERPRINT_PREFIX)) != 0 &&
            dc_cli_data_fingerprint_whole(train, val, c.fingerprint, sizeof c.fingerprint, &err) !=
                DC_OK) {
            dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
            goto done;
        }
        if (data_moved && !stored[0]) {
            dc_cli_fail("train",
                        "--data %s: cannot check that it holds the run's data (%s has no "
                        "config.json with a fingerprint); resume without --data",
                        c.cfg.data, c.cfg.out);
            goto done;
        }
        if (data_moved && strcmp(stored, c.fingerprint) != 0) {
            dc_cli_fail("train",
                        "--data %s: its images differ from the data run %s was trained on "
                        "(content fingerprint %s, the run's %s); a resume continues on the "
                        "same data only",
                        c.cfg.data, c.cfg.out, c.fingerprint, stored);
            goto done;
        }
        if (!data_moved && stored[0] && strcmp(stored, c.fingerprint) != 0)
            fprintf(stderr,
                    "deconv train: warning: the images in %s have changed since the run "
                    "started (content fingerprint %s, was %s)\n",
                    c.cfg.data, c.fingerprint, stored);
    }
    if (!c.quiet)
        fprintf(stderr, "deconv train: %d channel(s): %s\n", c.spec.channels, c.channels_note);
    const char *loss_opt = dc_args_str(&a, "loss", NULL);
    const int named = loss_opt && (strstr(loss_opt, "mse") || strstr(loss_opt, "bce"));
    char note[256];
    /* the default loss reads the training pixels' near-binary share: under mpirun counted
     * over the ranks' shares (every rank gets the same figure, and so the same loss) */
    double share = -1.0;
    if (dist && !resume && dc_model_kind_has(c.spec.kind, DC_KIND_ENCODER) &&
        dc_model_kind_has(c.spec.kind, DC_KIND_DECODER) &&
        !dc_model_kind_has(c.spec.kind, DC_KIND_FLOW) &&
        dc_train_near_binary_share(train, dist, &share, &err) != DC_OK) {
        dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
        goto done;
    }
    if (dc_model_spec_fit_data_share(&c.spec, train,
                                     (dc_args_str(&a, "classes", NULL) ? DC_FIT_CLASSES_GIVEN : 0) |
                                         (named ? DC_FIT_LOSS_GIVEN : 0) |
                                         (resume ? DC_FIT_RESUMING : 0),
                                     share, note, sizeof note, &err) != DC_OK) {
        dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
        goto done;
    }
    if (note[0] && !c.quiet) fprintf(stderr, "deconv train: %s\n", note);
    if (c.cfg.epochs <= at.epoch) {
        fprintf(stderr, "deconv train: %s already finished %d epochs (use --epochs to extend)\n",
                c.cfg.out, at.epoch);
        rc = 0;
        goto done;
    }
    if (dc_backend_create_from_spec(devspec, !c.quiet, &c.be, &err) != DC_OK) {
        dc_cli_fail("train", "--device %s: %s", devspec, err.msg);
        goto done;
    }
    if (c.threads > 0) dc_backend_set_threads(c.be, c.threads);
    /* the other ranks only take part in the stop agreement */
    const dc_train_callbacks cb = rank0 ? (dc_train_callbacks){&c, on_progress, on_epoch_end, NULL,
                                                               on_warning, should_stop}
                                        : (dc_train_callbacks){&c, NULL, NULL, NULL, NULL,
                                                               should_stop};
    dc_status s = resume ? dc_trainer_resume(c.be, resume, train, val, &c.cfg, &cb, &t, &err)
                         : dc_trainer_create(c.be, &c.spec, train, val, &c.cfg, &cb, &t, &err);
    if (s != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    /* the trainer holds the folder's lock now: nobody else writes there while the old run's
     * files are checked or cleared */
    if (rank0 && !resume && c.force && dc_run_folder_clear(c.cfg.out, &err) != DC_OK) {
        dc_cli_fail("train", "--force: %s", err.msg);
        goto done;
    }
    if (rank0 && !resume && !c.force && dc_run_folder_check_empty(c.cfg.out, &err) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    if (rank0 && (train_samples_init(&c.samples, t, train, val, &err) != DC_OK ||
                  train_report_init(&c.report, t, dc_backend_device(c.be), c.early_stop, &err) !=
                      DC_OK)) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    c.run_config = (dc_cli_run_config){.folder = c.cfg.out,
                                       .command = c.command,
                                       .device = dc_backend_device(c.be),
                                       .backend = dc_backend_name(c.be),
                                       .started = c.started,
                                       .channels_note = c.channels_note,
                                       .fingerprint = c.fingerprint,
                                       .threads = c.threads,
                                       .spec = &c.spec,
                                       .cfg = &c.cfg,
                                       .train = train,
                                       .val = val};
    {
        const time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(c.started, sizeof c.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    c.config_ok = rank0; /* one writer of the run folder */
    if (c.config_ok) dc_cli_config_write(&c.run_config, t, "running");
    if (rank0) train_report_write(&c.report, &c.samples, t, &c.spec, train, val, TRAIN_RUNNING, NULL);
    if (!c.quiet) {
        fprintf(stderr,
                "deconv train: %s on %s (%d train / %d val images, %dx%dx%d), %d epochs x %d steps "
                "of %d, run folder %s\n",
                dc_model_kind_name(c.spec.kind), c.cfg.data, train->n, val->n, c.spec.channels, c.spec.size,
                c.spec.size, c.cfg.epochs, dc_trainer_steps_per_epoch(t), c.cfg.batch, c.cfg.out);
        if (resume)
            fprintf(stderr, "deconv train: resuming at epoch %d step %d (global step %ld)\n",
                    at.epoch + 1, at.step_in_epoch, at.step);
        if (dist)
            fprintf(stderr, "deconv train: data-parallel over %d ranks, %d images per rank\n",
                    dc_dist_size(dist), c.cfg.batch / dc_dist_size(dist));
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const double t_start = dc_cli_now_s();
    c.progress.t_start = t_start; /* elapsed counts training, not loading the data */
    s = dc_trainer_run(t, &err);
    if (dist && dc_dist_size(dist) > 1 && !c.quiet) {
        /* the figures bench/mpi.sh reads: the exchange's volume and share of the time */
        dc_dist_stats st;
        dc_dist_get_stats(dist, &st);
        const double elapsed = dc_cli_now_s() - t_start;
        fprintf(stderr,
                "deconv train: all-reduced %.0f bytes per step; %ld steps in %.3f s: %.3f s "
                "(%.1f %%) in the exchange after backward, %.3f s (%.1f %%) in it during "
                "backward, %.3f s (%.1f %%) waiting for the slowest rank\n",
                st.bytes_per_step, st.steps, elapsed, st.comm_s,
                elapsed > 0 ? 100 * st.comm_s / elapsed : 0.0, st.overlap_s,
                elapsed > 0 ? 100 * st.overlap_s / elapsed : 0.0, st.wait_s,
                elapsed > 0 ? 100 * st.wait_s / elapsed : 0.0);
    }
    dc_cli_progress_clear(&c.progress);
    char stop_note[2600];
    if (s == DC_ERR_INTERRUPTED && rank0 && c.report.stop_early && !g_stop_requested) {
        snprintf(stop_note, sizeof stop_note,
                 "no better validation loss for %d epochs (--early-stop %d); the best epoch is "
                 "%d, kept in model.best.safetensors; model.safetensors holds epoch %d",
                 c.report.last.epoch - c.report.best_epoch, c.early_stop, c.report.best_epoch,
                 c.report.last.epoch);
        train_report_finish(&c.report, &c.samples, t, &c.spec, train, val, TRAIN_EARLY_STOPPED,
                            stop_note);
        if (!c.quiet)
            fprintf(stderr,
                    "deconv train: stopped early at epoch %d; run folder %s (open "
                    "%s/report.html)\n",
                    c.report.last.epoch, c.cfg.out, c.cfg.out);
        rc = 0;
    } else if (s == DC_ERR_INTERRUPTED) {
        snprintf(stop_note, sizeof stop_note, "%s; continue with: deconv train --resume %s",
                 err.msg, c.cfg.out);
        if (rank0) {
            train_report_finish(&c.report, &c.samples, t, &c.spec, train, val, TRAIN_STOPPED,
                                stop_note);
            fprintf(stderr, "deconv train: %s\n", stop_note);
        }
        rc = 130;
    } else if (s != DC_OK) {
        if (rank0)
            train_report_finish(&c.report, &c.samples, t, &c.spec, train, val, TRAIN_FAILED,
                                err.msg);
        dc_cli_fail("train", "%s", err.msg);
    } else {
        if (c.config_ok) dc_cli_config_write(&c.run_config, t, "finished");
        if (rank0)
            train_report_finish(&c.report, &c.samples, t, &c.spec, train, val, TRAIN_FINISHED, NULL);
        rc = 0;
        if (!c.quiet)
            fprintf(stderr, "deconv train: done in %.1f s; run folder %s (open %s/report.html)\n",
                    dc_cli_now_s() - t_start, c.cfg.out, c.cfg.out);
    }
    if (c.config_ok && s == DC_ERR_INTERRUPTED) dc_cli_config_write(&c.run_config, t, "interrupted");
    if (c.config_ok && s != DC_OK && s != DC_ERR_INTERRUPTED)
        dc_cli_config_write(&c.run_config, t, "failed");
done:
    /* the other ranks wait in the next exchange: end them too */
    if (rc != 0 && rc != 130) dc_dist_abort(dist, rc, "deconv train failed (message above)");
    train_report_free(&c.report);
    train_samples_free(&c.samples);
    dc_trainer_free(t);
    dc_backend_free(c.be);
    dc_dataset_free(train);
    dc_dataset_free(val);
    dc_dist_free(dist);
    return rc;
}
