/* deconv train: options, progress display and the run's report around the library's
 * training loop (include/deconv/train.h), which writes the run folder: model.safetensors,
 * loss.csv. The callbacks here add loss.png, samples/epoch_NNNN.png and report.html
 * (train_samples.c).
 *
 * Ctrl-C: the signal handler only sets a flag; the trainer polls it between steps, saves a
 * checkpoint at the end of the current step and stops. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/train_common.h"
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
    dc_model_spec spec;
    const dc_dataset *train, *val;
    dc_backend *be;
    train_samples samples;
} train_cli;

static void usage(void) {
    printf(
        "usage: deconv train [options]\n"
        "Trains a model and writes a run folder (checkpoint, loss.csv, loss.png, samples/,\n"
        "report.html). Without --data it trains the completion model on the gun silhouettes\n"
        "in assets/guns.\n\n"
        "data:      --data FOLDER|IDX|fashion-mnist  --size N (64; classifier 28)\n"
        "           --channels 1|3  --val FRACTION (0.1)  --augment / --no-augment\n"
        "           --max-image-pixels N (width x height cap per image file; 64 Mpx)\n"
        "model:     --model complete|vae|glo|diffusion|classifier  --base N (32)\n"
        "           --blocks N (3; diffusion: U-Net levels)\n"
        "           --kernel K (3)  --latent N (128; glo 32)  --tied  --noise STD (1.0)\n"
        "           --mask mix|full|bottom|top|left|right|box|random|none (complete: mix)\n"
        "           --visible-weight W (0.1)  --loss mse|bce[,masked|full] (near-binary data:\n"
        "           bce, else mse)  --beta B (vae and --code vae, 1.0)\n"
        "           --code noise|vae  --bottleneck dense|conv  --feedback P (0.3)  (complete)\n"
        "           --classes N  --no-batchnorm\n"
        "           --dropout P\n"
        "           --label-dropout P (0.1)  --unconditional  (diffusion: data with classes\n"
        "           conditions the model on them unless --unconditional)\n"
        "training:  --epochs N (guns 400, diffusion on guns 800, other data 20 (diffusion 2),\n"
        "           classifier 10)\n"
        "           --batch N (guns 16, classifier 128, else 64)  --optim adam|adamw|sgd  --lr LR\n"
        "           --schedule constant|cosine|step (classifier: cosine)  --weight-decay W\n"
        "           --clip NORM  --ema DECAY (EMA weights for sampling; diffusion 0.999)\n"
        "           --seed N (1)  --device cpu|opencl|opencl:P:D|auto  --threads N\n"
        "           --split-seed N (1: which images are held out; --seed leaves it alone)\n"
        "output:    --out RUN (runs/MODEL)  --save-every N  --sample-every N  --log-every STEPS\n"
        "           --quiet  --force (replace the old run's files in a non-empty --out)\n"
        "resume:    --resume RUN  (continues from RUN/model.safetensors; --epochs may extend)\n"
        "A non-empty run folder is refused without --resume or --force; one training at a\n"
        "time per folder (locked). Ctrl-C saves a checkpoint at the end of the current step and\n"
        "exits. A diverged run (NaN/Inf loss or weights) stops without saving.\n");
}

/* ---- callbacks of the trainer ---- */
static void on_progress(void *user, const dc_train_progress *p) {
    const train_cli *c = user;
    if (!c->quiet)
        dc_cli_progress(c->tty, p->epoch, p->epochs, p->step, p->steps_per_epoch, p->loss,
                        p->images_per_s, p->eta_s);
}

static void on_warning(void *user, const char *message) {
    (void)user;
    fprintf(stderr, "deconv train: warning: %s\n", message);
}

static int should_stop(void *user) {
    (void)user;
    return g_stop_requested;
}

static void on_epoch_end(void *user, dc_trainer *t, const dc_train_epoch *e) {
    train_cli *c = user;
    if (!c->quiet && (!c->tty || e->samples_due)) {
        if (c->tty) fputc('\n', stderr);
        fprintf(stderr, "epoch %d: train loss %.6f  val loss %.6f", e->epoch, e->train_loss,
                e->val_loss);
        if (!isnan(e->val_accuracy)) fprintf(stderr, "  val accuracy %.4f", e->val_accuracy);
        fputc('\n', stderr);
    }
    if (!e->samples_due) return;
    dc_error err = {0};
    if (train_samples_write(&c->samples, e->epoch, &err) != DC_OK)
        fprintf(stderr, "deconv train: warning: samples: %s\n", err.msg);
    const char *device = dc_backend_device(c->be);
    train_report_write(&c->samples, t, &c->spec, c->train, c->val, device, e);
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
        const char *optim = dc_args_str(a, "optim", "adam"),
                   *sched = dc_args_str(a, "schedule", NULL);
        if (dc_optim_kind_parse(optim, &o->optim, NULL) != DC_OK)
            return dc_cli_fail("train", "--optim %s: use adam, adamw or sgd", optim);
        if (sched && dc_schedule_parse(sched, &o->schedule, NULL) != DC_OK)
            return dc_cli_fail("train", "--schedule %s: use constant, cosine or step", sched);
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
    }
    o->epochs = dc_args_int(a, "epochs", o->epochs);
    o->save_every = dc_args_int(a, "save-every", o->save_every);
    o->sample_every = dc_args_int(a, "sample-every", o->sample_every);
    o->log_every = dc_args_int(a, "log-every", o->log_every);
    c->threads = dc_args_int(a, "threads", 0);
    c->quiet = dc_args_flag(a, "quiet");
    if (!(o->ema >= 0 && o->ema < 1)) return dc_cli_fail("train", "--ema %g: use a decay in [0, 1)", (double)o->ema);
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0) || !(o->val >= 0 && o->val < 1) ||
        o->save_every < 1 || o->sample_every < 1) {
        fprintf(stderr,
                "deconv train: --epochs, --batch, --save-every, --sample-every must be >= 1, "
                "--lr > 0, --val in [0, 1)\n");
        return 2;
    }
    return 0;
}

/* A new run's options: the defaults per model kind and data, then the command line. */
static int new_run_opts(dc_args *a, train_cli *c) {
    dc_train_config *o = &c->cfg;
    if (dc_cli_model_spec(a, &c->spec)) return 2;
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
    }
    o->augment = -1;
    int rc = read_opts(a, c, 0);
    if (rc) return rc;
    if (o->augment < 0) o->augment = is_guns && td->augment_bundled;
    char def_out[1100];
    snprintf(def_out, sizeof def_out, "runs/%s", dc_model_kind_name(spec->kind));
    return dc_cli_copy_path("train", "--out", dc_args_str(a, "out", def_out), o->out, sizeof o->out);
}

int dc_cmd_train(int argc, char **argv) {
    static const char *const flags[] = {"help",  "tied",  "augment", "no-augment", "no-batchnorm",
                                        "quiet", "force", "unconditional", NULL};
    dc_args a;
    if (dc_args_parse(&a, "train", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help")) {
        usage();
        return 0;
    }
    dc_error err = {0};
    train_cli c;
    memset(&c, 0, sizeof c);
    dc_train_config_default(&c.cfg);
    const char *resume = dc_args_str(&a, "resume", NULL);
    dc_train_checkpoint at = {0};
    int rc;
    if (resume) {
        if (dc_train_read_checkpoint(resume, &at, &err) != DC_OK)
            return dc_cli_fail("train", "%s", err.msg);
        c.spec = at.spec;
        c.cfg = at.config;
        if ((rc = dc_cli_copy_path("train", "--resume", resume, c.cfg.out, sizeof c.cfg.out)))
            return rc;
        if ((rc = read_opts(&a, &c, 1))) return rc;
    } else if ((rc = new_run_opts(&a, &c))) {
        return rc;
    }
    const char *devspec = dc_args_str(&a, "device", "auto");
    c.force = dc_args_flag(&a, "force");
    if (resume && c.force) {
        fprintf(stderr, "deconv train: --force replaces a run, --resume continues one: give one\n");
        return 2;
    }
    if (dc_args_check_unused(&a)) return 2;
    c.tty = isatty(2);
    if (c.cfg.log_every <= 0 && c.tty) c.cfg.log_every = 5; /* else once per epoch */

    dc_dataset *train = NULL, *val = NULL;
    if (dc_train_load_data_opts(&c.cfg, c.spec.size, c.spec.channels, &c.load, &train, &val,
                                &err) != DC_OK)
        return dc_cli_fail("train", "--data %s: %s", c.cfg.data, err.msg);
    c.train = train;
    c.val = val;
    dc_trainer *t = NULL;
    rc = 1;
    const char *loss_opt = dc_args_str(&a, "loss", NULL);
    const int named = loss_opt && (strstr(loss_opt, "mse") || strstr(loss_opt, "bce"));
    char note[256];
    if (dc_model_spec_fit_data(&c.spec, train,
                               (dc_args_str(&a, "classes", NULL) ? DC_FIT_CLASSES_GIVEN : 0) |
                                   (named ? DC_FIT_LOSS_GIVEN : 0) | (resume ? DC_FIT_RESUMING : 0),
                               note, sizeof note, &err) != DC_OK) {
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
    const dc_train_callbacks cb = {&c, on_progress, on_epoch_end, NULL, on_warning, should_stop};
    dc_status s = resume ? dc_trainer_resume(c.be, resume, train, val, &c.cfg, &cb, &t, &err)
                         : dc_trainer_create(c.be, &c.spec, train, val, &c.cfg, &cb, &t, &err);
    if (s != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    /* the trainer holds the folder's lock now: nobody else writes there while the old run's
     * files are checked or cleared */
    if (!resume && c.force && dc_run_folder_clear(c.cfg.out, &err) != DC_OK) {
        dc_cli_fail("train", "--force: %s", err.msg);
        goto done;
    }
    if (!resume && !c.force && dc_run_folder_check_empty(c.cfg.out, &err) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    if (train_samples_init(&c.samples, t, train, val, &err) != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
        goto done;
    }
    if (!c.quiet) {
        fprintf(stderr,
                "deconv train: %s on %s (%d train / %d val images, %dx%dx%d), %d epochs x %d steps "
                "of %d, run folder %s\n",
                dc_model_kind_name(c.spec.kind), c.cfg.data, train->n, val->n, c.spec.channels, c.spec.size,
                c.spec.size, c.cfg.epochs, dc_trainer_steps_per_epoch(t), c.cfg.batch, c.cfg.out);
        if (resume)
            fprintf(stderr, "deconv train: resuming at epoch %d step %d (global step %ld)\n",
                    at.epoch + 1, at.step_in_epoch, at.step);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const double t_start = dc_cli_now_s();
    s = dc_trainer_run(t, &err);
    if (s == DC_ERR_INTERRUPTED) {
        if (c.tty && !c.quiet) fputc('\n', stderr);
        fprintf(stderr, "deconv train: %s; continue with: deconv train --resume %s\n", err.msg,
                c.cfg.out);
        rc = 130;
    } else if (s != DC_OK) {
        dc_cli_fail("train", "%s", err.msg);
    } else {
        rc = 0;
        if (!c.quiet)
            fprintf(stderr, "deconv train: done in %.1f s; run folder %s (open %s/report.html)\n",
                    dc_cli_now_s() - t_start, c.cfg.out, c.cfg.out);
    }
done:
    train_samples_free(&c.samples);
    dc_trainer_free(t);
    dc_backend_free(c.be);
    dc_dataset_free(train);
    dc_dataset_free(val);
    return rc;
}
