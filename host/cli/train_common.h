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

/* loss.png and report.html in the trainer's run folder after epoch e (warnings printed). */
void train_report_write(const train_samples *s, dc_trainer *t, const dc_model_spec *spec,
                        const dc_dataset *train, const dc_dataset *val, const char *device,
                        const dc_train_epoch *e);

/* What config.json records of a run (host/cli/run_config.c). */
typedef struct dc_cli_run_config {
    const char *folder, *command, *device, *backend, *started; /* started: ISO 8601, UTC */
    const char *channels_note;                                 /* how the channels were chosen */
    const char *fingerprint; /* dc_cli_data_fingerprint of the run's data */
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
void dc_cli_data_fingerprint(const dc_dataset *train, const dc_dataset *val, char *hex, size_t cap);

/* The built-in default data: $DECONV_DATA, else the source tree's assets/guns, else
 * ./assets/guns. */
void dc_cli_default_data(char *buf, size_t cap);

#endif
