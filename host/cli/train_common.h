/* Validation and sample grids of a training run (host/cli/train_samples.c). */
#ifndef DECONV_CLI_TRAIN_COMMON_H
#define DECONV_CLI_TRAIN_COMMON_H

#include "deconv/data.h"
#include "deconv/model.h"

#define TRAIN_SAMPLES_MAX 8

typedef struct train_samples {
    dc_model *m;   /* the training model (eval mode while sampling) */
    dc_model *dec; /* decoder-only model sharing m's params (vae, glo, complete) */
    const dc_dataset *train, *val;
    char dir[1100];
    char latest[1200];
    int n;                      /* fixed items shown */
    int32_t idx[TRAIN_SAMPLES_MAX];
    dc_dataset *src;            /* the fixed items: validation images first, then training */
    float *z;                   /* fixed latent draws for the decoder, [2n, latent] */
    uint64_t seed;
    dc_batch batch;
} train_samples;

dc_status train_samples_init(train_samples *s, dc_model *m, const dc_dataset *train,
                             const dc_dataset *val, const char *run_dir, uint64_t seed,
                             dc_error *err);
void train_samples_free(train_samples *s);
/* Validation loss over the whole validation split (NaN when it has no items or the kind
 * has no validation, e.g. glo) and accuracy for classifiers (NaN otherwise). */
dc_status train_samples_validate(train_samples *s, double *loss, double *accuracy, dc_error *err);
/* samples/epoch_NNNN.png, and s->latest points at it. */
dc_status train_samples_write(train_samples *s, int epoch, dc_error *err);

/* The built-in default data: $DECONV_DATA, else the source tree's assets/guns, else
 * ./assets/guns. */
void dc_cli_default_data(char *buf, size_t cap);

#endif
