/* deconv — the training loop: steps, epochs, validation, checkpoints and resume.
 *
 * A trainer owns a model preset built from a spec, its optimizer and the position in the
 * run, and writes a run folder: model.safetensors (atomic; every save_every epochs, at the
 * end, and when should_stop asks) and loss.csv. It holds the folder's lock
 * (dc_run_lock_acquire) from create or resume to free, so a second trainer on the same
 * folder is refused, naming the holder's process id.
 *
 * Divergence: the loss is checked after every step and the parameters every 100 steps, at
 * every epoch's end and before every checkpoint; a NaN or infinity stops run() with
 * DC_ERR_NUMERIC naming the step and the first non-finite tensor, and nothing is saved
 * (the checkpoint on disk stays the last good one; dc_checkpoint_save refuses non-finite
 * weights anyway). Everything else a program wants to show
 * (progress bars, sample images, reports) hangs off the callbacks.
 *
 * Reproducibility: every random draw is keyed by (seed, epoch) or (seed, global step): the
 * epoch's order, the batch's augmentation and masks, the graph's dropout and noise. The
 * checkpoint stores the position (epoch, step in epoch, global step) and the optimizer
 * state, so a run stopped and resumed on the CPU backend ends bit-identical to an
 * uninterrupted one.
 *
 * The library installs no signal handler: a program that wants Ctrl-C to save and stop sets
 * a flag in its own handler and returns it from should_stop, which is polled after every
 * step.
 *
 * Data-parallel (config.dist, deconv/dist.h): every rank creates or resumes the trainer
 * with the same options and runs it; batch is the global batch. Rank 0 alone takes the
 * folder's lock and writes the checkpoint and loss.csv (dc_trainer_save does nothing on
 * the others); the callbacks run on every rank that passes them; should_stop is agreed by
 * all ranks after every step. A rank whose call fails must end the others
 * (dc_dist_abort): they wait for it in the next exchange. */
#ifndef DECONV_TRAIN_H
#define DECONV_TRAIN_H

#include "deconv/data.h"
#include "deconv/deconv.h"
#include "deconv/model.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

/* Plain options. The fields from `data` to `sample_every` are stored in the checkpoint
 * (metadata key "train", a JSON object) and come back on a resume. */
typedef struct dc_train_config {
    char data[1024]; /* where the images came from (dc_dataset_load_path spec) */
    int epochs;
    int batch;
    float lr;
    dc_optim_kind optim;
    dc_schedule schedule; /* cosine decays over all epochs; step: x gamma every third */
    float weight_decay;   /* 0 keeps the optimizer's default for adamw */
    float clip;           /* gradient norm clipping; <= 0: none */
    float ema;            /* > 0: keep EMA weights with this decay (sampling uses them) */
    float val;            /* validation fraction of the data, [0, 1) */
    int augment;          /* flips, shifts, scaling, rotation (dc_augment_config) */
    int augment_oversample; /* 2..4: the trainer loads `data` again at this many times the
                               model's size and augments there (dc_augment_config.fine), so
                               augmented images stay as sharp as the data; 0 or 1: augment
                               at the model's size (runs made before it existed) */
    uint64_t seed;        /* initialisation, epoch order, augmentation, masks, noise */
    uint64_t split_seed;  /* which images are held out for validation: a seed of its own, so
                             that changing `seed` compares runs on the same held-out images */
    int save_every;   /* checkpoint every N epochs (and at the end) */
    int sample_every; /* epoch_end's samples_due every N epochs (and at the end) */
    int val_every;    /* validation, loss.csv and epoch_end's `validated` every N epochs, and
                         at every checkpoint, sample epoch and the end (runs of thousands of
                         short epochs spent a third of their time there) */
    /* not stored */
    char out[1024]; /* run folder (created when missing) */
    int log_every;  /* progress callback every N steps; <= 0: once per epoch */
    struct dc_dist *dist; /* NULL: one process; else data-parallel over its ranks, batch
                             being the global batch (deconv/dist.h) */
    int64_t max_image_pixels; /* the image loaders' cap when the trainer loads `data` itself
                                 (augment_oversample); <= 0: the default */
} dc_train_config;

/* epochs 10, batch 64, lr 1e-3, adam, constant, val 0.1, seed 1, split seed
 * DC_TRAIN_SPLIT_SEED, save and sample every 10 epochs, validate every epoch, no
 * augmentation, data and out empty. */
#define DC_TRAIN_SPLIT_SEED 1
void dc_train_config_default(dc_train_config *c);
/* The stored fields as a JSON object (caller frees), and back: fields missing from the
 * JSON keep their value in c, except split_seed: JSON without it comes from a run made
 * before the split had its own seed, which split by `seed`, so split_seed = seed. */
char *dc_train_config_to_json(const dc_train_config *c);
dc_status dc_train_config_from_json(const char *json, dc_train_config *c, dc_error *err);
const char *dc_optim_kind_name(dc_optim_kind k);
dc_status dc_optim_kind_parse(const char *name, dc_optim_kind *out, dc_error *err);
const char *dc_schedule_name(dc_schedule s);
dc_status dc_schedule_parse(const char *name, dc_schedule *out, dc_error *err);

/* Load c->data at the model's size and channels and split it into training and validation
 * parts by c->val and c->split_seed (the split a resume must repeat). */
dc_status dc_train_load_data(const dc_train_config *c, int size, int channels, dc_dataset **train,
                             dc_dataset **val, dc_error *err);
/* The same with the image loaders' options (NULL: the defaults, e.g. the pixel cap). */
dc_status dc_train_load_data_opts(const dc_train_config *c, int size, int channels,
                                  const dc_load_options *opts, dc_dataset **train,
                                  dc_dataset **val, dc_error *err);

/* The content fingerprint of a run's data, as run folders store it (config.json):
 * "i1-" and 16 hex digits of a 64-bit FNV-1a hash over both sets' sizes, each item's pixel
 * hash (dc_dataset_item_hashes) in item order, the labels and the class names. Under
 * data-parallel training (dist not NULL) every rank calls it: each hashes every N-th item
 * (a lazily loaded set decodes only those, a part at a time) and the item hashes are
 * exchanged, so every rank gets what one process computes. cap >= DC_DATA_FINGERPRINT_CHARS. */
#define DC_DATA_FINGERPRINT_PREFIX "i1-"
#define DC_DATA_FINGERPRINT_CHARS 20
struct dc_dist;
dc_status dc_train_data_fingerprint(const dc_dataset *train, const dc_dataset *val,
                                    struct dc_dist *dist, char *hex, size_t cap, dc_error *err);
/* dc_near_binary_share over all training pixels (for dc_model_spec_fit_data_share),
 * counted from the ranks' shares as dc_train_data_fingerprint does: equal on every rank
 * and to one process's figure. */
dc_status dc_train_near_binary_share(const dc_dataset *train, struct dc_dist *dist, double *share,
                                     dc_error *err);

/* A run folder (its model.safetensors) or a checkpoint file: the model, the options and the
 * position it was saved at. */
typedef struct dc_train_checkpoint {
    dc_model_spec spec;
    dc_train_config config; /* out: the folder holding the checkpoint */
    int epoch;              /* epochs completed */
    int step_in_epoch;      /* steps done in epoch `epoch` (0 at an epoch boundary) */
    long step;              /* global step */
} dc_train_checkpoint;
dc_status dc_train_read_checkpoint(const char *run_or_file, dc_train_checkpoint *out,
                                   dc_error *err);

/* What the callbacks see. Epochs count from 1 here; steps within an epoch from 1. */
typedef struct dc_train_progress {
    int epoch, epochs;
    int step, steps_per_epoch;
    long global_step;
    double loss;         /* mean over the steps since the last report */
    double images_per_s; /* since run() started */
    double eta_s;
} dc_train_progress;

typedef struct dc_train_epoch {
    int epoch, epochs; /* epoch just finished */
    long global_step;
    double train_loss;
    double val_loss;     /* NaN when none is held out (glo: after projection) */
    double val_accuracy; /* classifiers; NaN otherwise */
    double lr;           /* at the end of the epoch */
    double images_per_s; /* this epoch */
    int last;            /* the final epoch of the run */
    int samples_due;     /* every sample_every epochs and at the last */
    int validated;       /* validated this epoch (every val_every epochs, at checkpoints,
                            sample epochs and the last); val_loss is NaN otherwise */
} dc_train_epoch;

typedef struct dc_trainer dc_trainer;

typedef struct dc_train_callbacks {
    void *user;
    /* every log_every steps and at the end of each epoch */
    void (*progress)(void *user, const dc_train_progress *p);
    /* after validation and loss.csv, before the epoch's checkpoint */
    void (*epoch_end)(void *user, dc_trainer *t, const dc_train_epoch *e);
    /* a checkpoint was written at this position */
    void (*checkpoint_saved)(void *user, const char *path, int epoch, int step_in_epoch);
    /* something failed that does not stop training (e.g. loss.csv could not be written) */
    void (*warning)(void *user, const char *message);
    /* polled after every step: nonzero saves a checkpoint and stops run() */
    int (*should_stop)(void *user);
} dc_train_callbacks;

/* A new run: builds the spec's model on be (batch = config->batch; glo gets one latent per
 * training image), initialises it from config->seed and creates config->out. train and val
 * (val may hold no items) must outlive the trainer; callbacks may be NULL. */
dc_status dc_trainer_create(dc_backend *be, const dc_model_spec *spec, const dc_dataset *train,
                            const dc_dataset *val, const dc_train_config *config,
                            const dc_train_callbacks *callbacks, dc_trainer **out, dc_error *err);
/* Continue a run from a run folder or checkpoint file: model, weights, optimizer state and
 * position come from it. config NULL: the stored options with out = the checkpoint's
 * folder; otherwise config is used as given (a different epochs extends the run; changing
 * what was stored, e.g. batch or seed, gives another run). train and val must be what
 * dc_train_load_data gives for the stored options. */
dc_status dc_trainer_resume(dc_backend *be, const char *run_or_file, const dc_dataset *train,
                            const dc_dataset *val, const dc_train_config *config,
                            const dc_train_callbacks *callbacks, dc_trainer **out, dc_error *err);
void dc_trainer_free(dc_trainer *t);

/* Train from the current position to config->epochs. DC_OK when finished (at once when
 * the position is already there); DC_ERR_INTERRUPTED when should_stop asked and the
 * checkpoint was saved; any other status is an error with its message in err. */
dc_status dc_trainer_run(dc_trainer *t, dc_error *err);
/* From epoch_end (e.g. early stopping): run() saves the checkpoint at the end of this
 * epoch and returns DC_ERR_INTERRUPTED instead of going on (nothing changes when the
 * epoch was the last). */
void dc_trainer_request_stop(dc_trainer *t);
/* Write the checkpoint at the current position now. */
dc_status dc_trainer_save(dc_trainer *t, dc_error *err);

dc_model *dc_trainer_model(dc_trainer *t);
const dc_train_config *dc_trainer_config(const dc_trainer *t);
int dc_trainer_steps_per_epoch(const dc_trainer *t);
void dc_trainer_position(const dc_trainer *t, int *epoch, int *step_in_epoch, long *step);
/* The run's loss history, one row per epoch (rows of earlier sessions read back from
 * loss.csv on a resume). The arrays stay valid until the next epoch ends. */
typedef struct dc_train_history {
    int count;
    const double *epoch, *train_loss, *val_loss, *lr, *images_per_s;
    const long *step;
} dc_train_history;
void dc_trainer_history(const dc_trainer *t, dc_train_history *out);
/* Validation loss over the whole validation part (NaN when it is empty; glo: the
 * reconstruction error after fitting the images' latents, dc_model_project_latents with
 * DC_PROJECT_STEPS) and accuracy for classifiers (NaN otherwise). */
dc_status dc_trainer_validate(dc_trainer *t, double *loss, double *accuracy, dc_error *err);
/* Forward the model in evaluation mode (no dropout; the completion model's random code off
 * unless noise_seed != 0) on items idx[0..count) of ds, prepared into batch (allocated with
 * dc_batch_alloc for the trainer's model). Read the outputs with dc_graph_read. */
dc_status dc_trainer_forward_eval(dc_trainer *t, const dc_dataset *ds, const int32_t *idx,
                                  int count, uint64_t noise_seed, dc_batch *batch, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
