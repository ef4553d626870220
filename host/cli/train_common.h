/* Sample grids and the HTML report of a training run (host/cli/train_samples.c). */
#ifndef DECONV_CLI_TRAIN_COMMON_H
#define DECONV_CLI_TRAIN_COMMON_H

#include "deconv/data.h"
#include "deconv/model.h"
#include "deconv/train.h"

#define TRAIN_SAMPLES_MAX 8

typedef struct train_samples {
    dc_trainer *trainer;
    dc_model *m;   /* the training model (eval mode while sampling) */
    dc_model *dec; /* decoder-only model sharing m's params (vae, glo, complete) */
    const dc_dataset *train, *val;
    char dir[1100];
    char latest[1200];
    int n;                      /* fixed items shown */
    int nval;                   /* the first nval of them are held-out (validation) images */
    int32_t idx[TRAIN_SAMPLES_MAX];
    dc_dataset *src;            /* the fixed items: validation images first, then training */
    float *z;                   /* latent draws for the decoder, [2n, latent] */
    uint64_t seed;
    dc_batch batch;
} train_samples;

/* The fixed items come from val and train (the trainer's data); the grids go to the
 * trainer's run folder, samples/. */
dc_status train_samples_init(train_samples *s, dc_trainer *trainer, const dc_dataset *train,
                             const dc_dataset *val, dc_error *err);
void train_samples_free(train_samples *s);
/* samples/epoch_NNNN.png, and s->latest points at it. */
dc_status train_samples_write(train_samples *s, int epoch, dc_error *err);

/* ---- report.html, model.best.safetensors and --early-stop (host/cli/train_report.c) ---- */
typedef enum train_status {
    TRAIN_RUNNING,
    TRAIN_FINISHED,
    TRAIN_STOPPED, /* Ctrl-C: resumable */
    TRAIN_EARLY_STOPPED,
    TRAIN_FAILED
} train_status;

#define TRAIN_REPORT_PREDICTIONS 16

typedef struct train_report {
    char run[1100];
    char device[256];
    char started[64]; /* UTC, when this session started */
    double *acc;      /* validation accuracy of epoch e at acc[e - 1]; NaN: unknown */
    int acc_cap;
    int best_epoch; /* by validation loss; 0: none yet */
    double best_val;
    int early_stop; /* patience in epochs; 0: off */
    int stop_early; /* set when the patience ran out */
    dc_train_epoch last;
    int have_last;
    /* classifiers: predictions on the validation images (training images without any) */
    long *confusion; /* [K, K], rows the true class */
    int K, confusion_epoch, eval_is_val, eval_n;
    int n_pred;
    struct {
        int index, truth, predicted;
        double prob;
    } pred[TRAIN_REPORT_PREDICTIONS];
} train_report;

/* The best epoch of a resumed run from its history, its accuracies from val_accuracy.csv. */
dc_status train_report_init(train_report *r, dc_trainer *t, const char *device, int early_stop,
                            dc_error *err);
void train_report_free(train_report *r);
/* After epoch e: the accuracy (val_accuracy.csv), model.best.safetensors when the
 * validation loss improved, the early-stop decision (r->stop_early), and report.html and
 * loss.png. Failures are printed as warnings (training goes on). */
void train_report_epoch(train_report *r, const train_samples *s, dc_trainer *t,
                        const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                        const dc_train_epoch *e);
/* report.html (and loss.png) with this status; note (may be NULL) says more. */
void train_report_write(train_report *r, const train_samples *s, dc_trainer *t,
                        const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                        train_status status, const char *note);
/* The last report when training ends: brings the confusion matrix up to the last epoch. */
void train_report_finish(train_report *r, const train_samples *s, dc_trainer *t,
                         const dc_model_spec *spec, const dc_dataset *train, const dc_dataset *val,
                         train_status status, const char *note);

/* What config.json records of a run (host/cli/run_config.c). */
typedef struct dc_cli_run_config {
    const char *folder, *command, *device, *backend, *started; /* started: ISO 8601, UTC */
    const char *channels_note;                                 /* how the channels were chosen */
    const char *fingerprint; /* dc_train_data_fingerprint of the run's data */
    int threads;
    const dc_model_spec *spec;
    const dc_train_config *cfg;
    const dc_dataset *train, *val;
} dc_cli_run_config;

/* Write FOLDER/config.json atomically: every option, seed, version, device, data (path,
 * image counts, channels, classes, fingerprint), status and, with t, the progress (epochs
 * done, best validation loss). 0, or -1 after a warning. */
int dc_cli_config_write(const dc_cli_run_config *rc, dc_trainer *t, const char *status);
/* A content check of the data a run trains on: a hash of every image, label and class
 * name of both parts, as 16 hex digits. */
/* The data fingerprint run folders stored before dc_train_data_fingerprint (16 hex
 * digits, no prefix): a resume of such a run compares with it. */
dc_status dc_cli_data_fingerprint_whole(const dc_dataset *train, const dc_dataset *val,
                                        char *hex, size_t cap, dc_error *err);

/* The built-in default data: $DECONV_DATA, else the source tree's assets/guns, else
 * ./assets/guns. */
void dc_cli_default_data(char *buf, size_t cap);

#endif
