/* Train, stop, resume — through the public API only.
 *
 * Trains a small completion model on a folder of images twice: once straight through, and
 * once stopped after a few steps (the checkpoint is written at the stop), then resumed from
 * the run folder. On the CPU backend the two end with bit-identical weights.
 *
 *   train_resume [IMAGE_FOLDER [WORK_FOLDER]]     (defaults: assets/guns, train_resume_runs)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/data.h"
#include "deconv/deconv.h"
#include "deconv/model.h"
#include "deconv/train.h"

/* should_stop callback: ask to stop once `left` steps have run. */
static int stop_after(void *user) {
    int *left = user;
    return --*left <= 0;
}

/* All of a model's parameter values, one array. */
static float *read_weights(dc_model *m, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < dc_params_count(m->params); i++)
        total += dc_params_get(m->params, i)->numel;
    float *w = malloc(total * sizeof(float)), *at = w;
    for (int i = 0; w && i < dc_params_count(m->params); i++) {
        dc_params_read(m->params, i, at);
        at += dc_params_get(m->params, i)->numel;
    }
    *count = total;
    return w;
}

static int fail(const char *what, const dc_error *err) {
    fprintf(stderr, "train_resume: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *images = argc > 1 ? argv[1] : "assets/guns";
    const char *work = argc > 2 ? argv[2] : "train_resume_runs";
    dc_error err = {0};

    /* a small preset: 16x16 gray images, two conv blocks, an 8-number code */
    dc_model_spec spec;
    if (dc_model_spec_default(&spec, "complete", 1, 16, &err) != DC_OK) return fail("spec", &err);
    spec.base = 4;
    spec.blocks = 2;
    spec.latent = 8;
    spec.mask = DC_MASK_RANDOM;

    dc_train_config config;
    dc_train_config_default(&config);
    snprintf(config.data, sizeof config.data, "%s", images);
    config.epochs = 2;
    config.batch = 4;
    config.augment = 1;

    /* the same split for both runs: it depends only on (data, val, seed) */
    dc_dataset *train = NULL, *val = NULL;
    if (dc_train_load_data(&config, spec.size, spec.channels, &train, &val, &err) != DC_OK)
        return fail(images, &err);
    /* one thread: the same sums in the same order every time */
    dc_backend *be = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return fail("backend", &err);

    /* 1. straight through */
    dc_trainer *straight = NULL;
    snprintf(config.out, sizeof config.out, "%s/straight", work);
    if (dc_trainer_create(be, &spec, train, val, &config, NULL, &straight, &err) != DC_OK ||
        dc_trainer_run(straight, &err) != DC_OK)
        return fail("straight run", &err);

    /* 2. stopped after 3 steps (mid-epoch): run() saves a checkpoint and says so */
    int steps_left = 3;
    dc_train_callbacks stop = {0};
    stop.user = &steps_left;
    stop.should_stop = stop_after;
    dc_trainer *stopped = NULL;
    snprintf(config.out, sizeof config.out, "%s/stopped", work);
    if (dc_trainer_create(be, &spec, train, val, &config, &stop, &stopped, &err) != DC_OK)
        return fail("stopped run", &err);
    if (dc_trainer_run(stopped, &err) != DC_ERR_INTERRUPTED) return fail("stopped run", &err);
    dc_trainer_free(stopped);
    printf("train_resume: %s\n", err.msg);

    /* 3. resumed from the run folder: model, options, optimizer state and position */
    dc_trainer *resumed = NULL;
    if (dc_trainer_resume(be, config.out, train, val, NULL, NULL, &resumed, &err) != DC_OK ||
        dc_trainer_run(resumed, &err) != DC_OK)
        return fail("resumed run", &err);

    size_t n_straight, n_resumed;
    float *w_straight = read_weights(dc_trainer_model(straight), &n_straight);
    float *w_resumed = read_weights(dc_trainer_model(resumed), &n_resumed);
    const int same = w_straight && w_resumed && n_straight == n_resumed &&
                     memcmp(w_straight, w_resumed, n_straight * sizeof(float)) == 0;
    printf("train_resume: %zu weights, resumed run %s the straight one\n", n_straight,
           same ? "bit-identical to" : "DIFFERS from");

    free(w_straight);
    free(w_resumed);
    dc_trainer_free(straight);
    dc_trainer_free(resumed);
    dc_backend_free(be);
    dc_dataset_free(train);
    dc_dataset_free(val);
    return same ? 0 : 1;
}
