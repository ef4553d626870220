/* deconv — model presets: the generative encoder-decoders (complete, vae, glo) and the
 * classifier, each built on the graph API from a spec of plain options. */
#ifndef DECONV_MODEL_H
#define DECONV_MODEL_H

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef enum dc_mask_kind {
    DC_MASK_NONE = 0,
    DC_MASK_BOTTOM,
    DC_MASK_TOP,
    DC_MASK_LEFT,
    DC_MASK_RIGHT,
    DC_MASK_BOX,    /* centred square, half the side */
    DC_MASK_RANDOM, /* random box, 1/4 to 1/2 of each side, random place */
    DC_MASK_FULL,   /* everything hidden: the blank canvas new images start from */
    DC_MASK_MIX,    /* per image: full 25 %, random 25 %, bottom, top, left, right, box 10 %
                     * each (dc_mask_make) */
} dc_mask_kind;

/* The reconstruction loss of the decoder kinds. */
typedef enum dc_loss_kind {
    DC_LOSS_MSE = 0, /* per-pixel squared error of the tanh output */
    DC_LOSS_BCE,     /* per-pixel binary cross-entropy, targets [-1, 1] read as [0, 1]
                      * (dc_bce_tanh_loss): sharp optimum on near-binary images */
} dc_loss_kind;

/* complete: where the decoder's random code comes from. */
typedef enum dc_code_kind {
    DC_CODE_NOISE = 0, /* code(masked image) + noise * N(0, I); nothing ties the noise to
                        * the image, so training can learn to ignore it */
    DC_CODE_VAE,       /* code(masked image) + z, z ~ q(z | full image) in training with a
                        * KL term to N(0, I) (weight beta); z = noise * N(0, I) otherwise */
} dc_code_kind;

/* complete: the layers between the encoder's last feature map and the decoder's first. */
typedef enum dc_bottleneck_kind {
    DC_BOTTLENECK_DENSE = 0, /* dense to `latent` and dense back (most of the parameters) */
    DC_BOTTLENECK_CONV,      /* 3x3 conv + 1x1 conv to latent/side^2 channels at the lowest
                              * resolution, and a 3x3 conv back */
} dc_bottleneck_kind;

/* The model presets. A checkpoint names its kind by dc_model_kind_name ("complete", ...). */
typedef enum dc_model_kind {
    DC_MODEL_NONE = 0,   /* not a preset: a graph wrapped in a dc_model by hand */
    DC_MODEL_COMPLETE,   /* completion: masked image -> code + noise -> image */
    DC_MODEL_VAE,        /* variational autoencoder */
    DC_MODEL_GLO,        /* generative latent optimisation: one learned latent per image */
    DC_MODEL_CLASSIFIER, /* conv classifier */
    DC_MODEL_DIFFUSION,  /* flow-matching U-Net: (x_t, t) -> velocity; samples by an ODE */
    DC_MODEL_KIND_COUNT
} dc_model_kind;

/* What the code outside a kind's own file may ask about it. */
enum {
    DC_KIND_ENCODER = 1 << 0,     /* image -> code encoder (m->x, m->code) */
    DC_KIND_DECODER = 1 << 1,     /* latent -> image decoder (dc_model_create_shared's
                                   * decoder_only) */
    DC_KIND_CLASSIFIES = 1 << 2,  /* image -> class logits; trains on labelled data */
    DC_KIND_CODE_NOISE = 1 << 3,  /* latent = code + random noise; new images come from a blank
                                   * canvas forwarded through the training graph */
    DC_KIND_SAMPLED_CODE = 1 << 4,/* training-mode forward samples z ~ q(z|x) */
    DC_KIND_LEARNED_LATENTS = 1 << 5, /* one learned latent per training image
                                       * ("latents.weight", spec.glo_count rows) */
    DC_KIND_FLOW = 1 << 6,        /* (x_t, t) -> velocity; new images integrate the ODE from
                                   * noise (dc_flow_sample), no latent or decoder */
};

/* Defaults the command line applies for a kind when no option overrides them. `bundled`:
 * the bundled demo data set (assets/guns, a few dozen images). 0 / NULL: the command's
 * general default. */
typedef struct dc_model_train_defaults {
    int size;                  /* image side */
    int epochs, epochs_bundled;
    int batch;                 /* any data */
    int batch_bundled, save_every_bundled; /* the bundled data (batch_bundled 0: as `batch`) */
    int val_every_bundled;     /* validate every N epochs on the bundled data (0: every one) */
    int augment_bundled;       /* augment the bundled data by default */
    const char *schedule;      /* learning-rate schedule */
    float ema;                 /* EMA weight decay (dc_optim_config.ema_decay); 0: none */
} dc_model_train_defaults;

/* One row of the kind table: its name, what it has, and its defaults. */
typedef struct dc_model_kind_info {
    dc_model_kind kind;
    const char *name;
    unsigned flags;             /* DC_KIND_* */
    const char *generation;     /* how new images are drawn, for reports (NULL: none) */
    dc_model_train_defaults train;
} dc_model_kind_info;

/* The row of a kind; NULL for DC_MODEL_NONE and values outside the enum. */
const dc_model_kind_info *dc_model_kind_get(dc_model_kind kind);
/* "complete", "vae", "glo", "classifier"; "none" / "unknown" otherwise. */
const char *dc_model_kind_name(dc_model_kind kind);
dc_status dc_model_kind_parse(const char *name, dc_model_kind *out, dc_error *err);
/* Whether the kind's row has all of `flags` (0 for unknown kinds). */
int dc_model_kind_has(dc_model_kind kind, unsigned flags);

#define DC_MAX_UNROLL 4 /* dc_model_spec.unroll */
#define DC_MAX_BLOCKS 16 /* dc_model_spec.blocks */

typedef struct dc_model_spec {
    dc_model_kind kind;
    int channels, size;  /* input images: channels x size x size */
    int base;            /* channels of the first conv block (doubles per block) */
    int blocks;          /* encoder conv-relu-maxpool blocks */
    int kernel;          /* conv kernel size (odd) */
    int latent;          /* latent dimension */
    int tied;            /* decoder reuses the encoder's kernels */
    float noise;         /* complete: std of the random code added to the latent */
    dc_mask_kind mask;   /* which region is hidden from the encoder */
    float visible_weight;/* loss weight of the visible region (hidden region: 1) */
    int loss_full;       /* every pixel weighs 1 (no hidden/visible weighting) */
    dc_loss_kind loss;   /* decoder kinds: MSE or binary cross-entropy */
    dc_code_kind code;   /* complete: noise code or the VAE-style posterior code */
    dc_bottleneck_kind bottleneck; /* complete: dense or convolutional */
    float feedback;      /* complete: probability that a training image's input is the
                          * model's own completion of it (self-feedback, for --passes) */
    int hole_input;      /* complete: 1 gives the encoder the mask of the hidden pixels
                          * (the "hole" input, 1 = hidden) next to the image, so a refinement
                          * pass can tell its own guess from the visible pixels; 0 (runs
                          * made before the option): the image alone */
    int skips;           /* complete: 1 adds U-Net skip connections: after each decoder block
                          * but the last, the encoder's activations of that size are
                          * concatenated before the next transposed conv (a path around the
                          * code at every resolution); 0 (the default, and runs made before
                          * the option): none */
    int unroll;          /* complete: passes trained as one network (1: the single pass; K > 1:
                          * the training graph feeds each pass's output back as the next
                          * pass's input, as `deconv complete --passes` does, with the same
                          * weights, and the loss is the mean of every pass's loss, so the
                          * gradient runs through the passes and a pass learns to refine) */
    float beta;          /* vae: weight of the KL term */
    int glo_count;       /* glo: number of learned latents (training images) */
    int classes;         /* classifier */
    int batchnorm;       /* classifier: batch norm after each conv */
    float dropout;       /* classifier: dropout before the last dense layer */
    int cond_classes;    /* diffusion: classes the denoiser is conditioned on (0: none,
                          * unconditional; -1: as many as the training data has, set by
                          * dc_model_spec_fit_data); class K is row K of the class embedding,
                          * row cond_classes the learned "null" class */
    float label_dropout; /* diffusion with classes: share of the training images whose
                          * label is replaced by the null class (classifier-free guidance) */
    int time_dist;       /* diffusion: the training times, 0: t ~ U(0, 1); 1: logit-normal,
                          * t = sigmoid(n), n ~ N(0, 1) (more steps at mid noise levels) */
    float cond_mask;     /* diffusion: share of the training images shown with a random part
                          * known (the denoiser's "cond" input: the known pixels and the
                          * mask; the rest see nothing known, as new images do); 0: no such
                          * input (the graph of runs made before it existed) */
    int attention;       /* diffusion: 1 adds a self-attention block at the lowest
                          * resolution, after the middle ResBlock; 0 (the default, and runs
                          * made before the option): none */
} dc_model_spec;

/* Defaults for a kind at the given image size and channels. */
dc_status dc_model_spec_defaults(dc_model_spec *s, dc_model_kind kind, int channels, int size,
                                 dc_error *err);
/* The same with the kind by name ("complete" if NULL). */
dc_status dc_model_spec_default(dc_model_spec *s, const char *kind, int channels, int size,
                                dc_error *err);
/* Checks sizes (e.g. size divisible by 2^blocks) and names the option at fault. */
dc_status dc_model_spec_check(const dc_model_spec *s, dc_error *err);
const char *dc_mask_name(dc_mask_kind m);
dc_status dc_mask_parse(const char *name, dc_mask_kind *out, dc_error *err);
const char *dc_loss_kind_name(dc_loss_kind k);
dc_status dc_loss_kind_parse(const char *name, dc_loss_kind *out, dc_error *err);
const char *dc_code_kind_name(dc_code_kind k);
dc_status dc_code_kind_parse(const char *name, dc_code_kind *out, dc_error *err);
const char *dc_bottleneck_kind_name(dc_bottleneck_kind k);
dc_status dc_bottleneck_kind_parse(const char *name, dc_bottleneck_kind *out, dc_error *err);
/* Share of the pixels of `images` (n values in [-1, 1]) within 0.1 of -1 or 1: the loss
 * the command line picks by default reads it (>= DC_NEAR_BINARY_SHARE: binary
 * cross-entropy). */
#define DC_NEAR_BINARY_SHARE 0.9
double dc_near_binary_share(const float *images, size_t n);
/* What a new run's spec takes from its training data, with flags: a classifier's class
 * count (unless DC_FIT_CLASSES_GIVEN; more classes in the data than the model has is an
 * error either way) and, for encoder-decoders, the loss: binary cross-entropy on
 * near-binary data, MSE otherwise (unless DC_FIT_LOSS_GIVEN; nothing on DC_FIT_RESUMING).
 * `note` (may be NULL) gets one line saying which loss and why, or "". */
enum { DC_FIT_CLASSES_GIVEN = 1, DC_FIT_LOSS_GIVEN = 2, DC_FIT_RESUMING = 4 };
struct dc_dataset;
dc_status dc_model_spec_fit_data(dc_model_spec *s, const struct dc_dataset *train, int flags,
                                 char *note, size_t cap, dc_error *err);
/* The same with the training pixels' near-binary share given (>= 0; e.g. counted over the
 * ranks of data-parallel training, dc_train_near_binary_share); < 0: computed from train
 * (a lazily loaded set is decoded a part at a time for it). */
dc_status dc_model_spec_fit_data_share(dc_model_spec *s, const struct dc_dataset *train, int flags,
                                       double near_binary_share, char *note, size_t cap,
                                       dc_error *err);
/* Spec <-> JSON object text (for checkpoints' metadata; the kind by name). Caller frees
 * the string; NULL when out of memory. */
char *dc_model_spec_to_json(const dc_model_spec *s);
dc_status dc_model_spec_from_json(const char *json, dc_model_spec *s, dc_error *err);

typedef struct dc_model {
    dc_model_spec spec;
    dc_backend *be;
    dc_params *params;
    int owns_params;
    dc_graph *g;
    int batch;
    /* named nodes (-1 when the kind has none) */
    int x;        /* image input (masked for complete) */
    int target;   /* full image target */
    int weight;   /* per-pixel loss weight */
    int labels;   /* classifier labels; diffusion with classes: the class of each image
                   * (the input "class"; cond_classes is the null class) */
    int index;    /* glo: training-image index */
    int latent;   /* the code the decoder starts from (after noise / sampling) */
    int code;     /* complete: encoder code before noise; vae: mu */
    int logvar;   /* vae */
    int noise;    /* complete: the gaussian_noise node */
    int z_in;     /* decoder-only graphs: latent input */
    int out;      /* image output (tanh) or logits */
    int loss;     /* total loss */
    int recon;    /* reconstruction loss */
    int kl;       /* vae KL */
    int last_conv;/* classifier: last conv (for CAM / Grad-CAM) */
    int time;     /* diffusion: the time t of each image, [N, 1, 1, 1] */
    int aug;      /* diffusion: the augmentation applied to each training image,
                   * [N, DC_AUGMENT_PARAMS, 1, 1]; zeros (none) when sampling */
    int cond;     /* diffusion with cond_mask > 0: the known pixels (hidden ones 0) and the
                   * mask (1 = hidden) as one more channel, [N, C + 1, S, S]; nothing known:
                   * zeros and a mask of ones */
    int hole;     /* complete with hole_input, or its unrolled training graph: the mask of
                   * the hidden pixels, [N, 1, S, S] (1 = hidden; set with every x:
                   * dc_model_set_hole, dc_model_set_batch) */
    int decoder_only;
    int training; /* built by dc_model_create_training (complete: with the unrolled passes) */
    /* complete's self-feedback on the device: each item's pass count where hidden, one
     * plane per item (freed with the model) */
    dc_buffer *feedback_planes;
    size_t feedback_planes_bytes;
} dc_model;

/* Build the training graph of a spec with fresh parameters. */
dc_status dc_model_create(dc_backend *be, const dc_model_spec *spec, int batch, dc_model **out,
                          dc_error *err);
/* The same for training: activations fused into the convolutions where the backend can
 * (dc_graph_set_fusion); the named nodes above read the same, conv and batch-norm nodes
 * followed by a ReLU hold the activated values. */
dc_status dc_model_create_training(dc_backend *be, const dc_model_spec *spec, int batch,
                                   dc_model **out, dc_error *err);
/* Same layers and parameters as `src`, another batch size. decoder_only: only the
 * latent -> image decoder with a latent input (generation, dreams). */
dc_status dc_model_create_shared(dc_model *src, int batch, int decoder_only, dc_model **out,
                                 dc_error *err);
void dc_model_free(dc_model *m);
/* Draw n latents [n, latent] for the decoder at temperature t: N(0, t^2) per dimension,
 * or the kind's own distribution (glo: a full-covariance Gaussian fitted to the learned
 * latents, scaled by t). The draws come from dc_seed_mix(seed, DC_SAMPLING_STREAM), a
 * stream independent of a training run's initialisation from the same seed. */
#define DC_SAMPLING_STREAM 0x5a4d504cULL
dc_status dc_model_sample_latents(const dc_model *m, int n, float t, uint64_t seed, float *z,
                                  dc_error *err);
/* GLO's projection: fit latents to images [n, C, S, S] with the decoder frozen. From the
 * mean of the learned latents, `steps` Adam steps at rate lr on the latents only reduce
 * each image's mean squared error; z (may be NULL) gets the fitted latents [n, latent] and
 * loss the mean over the images of their per-pixel squared error after the last step.
 * Kinds with learned latents (glo) only. The model's parameter gradients are overwritten
 * (the decoder's backward runs through them); its parameters are not changed. */
dc_status dc_model_project_latents(dc_model *m, const float *images, int n, int steps, float lr,
                                   float *z, double *loss, dc_error *err);
/* The projection of a training run's validation (glo): fixed, so every epoch's validation
 * loss measures the decoder the same way. */
#define DC_PROJECT_STEPS 20
#define DC_PROJECT_LR 0.05f
static inline dc_graph *dc_model_graph(dc_model *m) { return m ? m->g : NULL; }

/* Fill mask (1 = hidden) for one image. rng NULL: the drawn kinds take a fixed region
 * (random: box, mix: bottom). */
void dc_mask_make(dc_mask_kind kind, int h, int w, dc_rng *rng, float *mask);
/* Prepare the complete-model inputs for one image: masked input (hidden pixels set to
 * `fill`), loss weight (hidden 1, visible vw). */
void dc_mask_apply(const float *img, const float *mask, int c, int h, int w, float fill, float vw,
                   int loss_full, float *masked, float *weight);

/* ---- batches: host-side preparation of a model's inputs from a dataset ---- */
struct dc_dataset;
struct dc_augment_config;
typedef struct dc_batch {
    int n;             /* the model's batch size */
    size_t image_numel;
    float *x;          /* encoder input (masked image for complete) */
    float *target;     /* full image */
    float *weight;     /* per-pixel loss weight */
    float *mask;       /* 1 = hidden, one plane per image */
    int32_t *labels;   /* classifier; diffusion with classes: the class input, after label
                        * dropout */
    int32_t *index;    /* glo: dataset index of each item */
    float *t;          /* diffusion: the time of each item (x = the noised image, target =
                        * the velocity) */
    float *aug;        /* the augmentation of each item, DC_AUGMENT_PARAMS per item (zeros
                        * without augmentation) */
    float *cond;       /* diffusion with cond_mask > 0: the cond input of each item,
                        * (channels + 1) planes */
} dc_batch;

dc_status dc_batch_alloc(const dc_model *m, dc_batch *b, dc_error *err);
void dc_batch_free(dc_batch *b);
/* Fill the batch from items idx[0..count) of ds (count <= batch; the remaining slots repeat
 * the items cyclically so every batch is full). With aug != NULL each image is augmented
 * by a dc_rng seeded from (seed, slot); masks (random kind) likewise, so a batch depends
 * only on (seed, idx). */
dc_status dc_model_fill_batch(const dc_model *m, const struct dc_dataset *ds, const int32_t *idx,
                              int count, const struct dc_augment_config *aug, uint64_t seed,
                              dc_batch *b, dc_error *err);
/* One rank's share of a global batch of global_n slots (data-parallel training): b (the
 * model's batch) gets slots first_slot .. first_slot + b->n - 1, each filled exactly as
 * dc_model_fill_batch fills that slot of a global_n batch (item idx[slot % count], random
 * draws from (seed, slot)). */
dc_status dc_model_fill_batch_slice(const dc_model *m, const struct dc_dataset *ds,
                                    const int32_t *idx, int count, int global_n,
                                    const struct dc_augment_config *aug, uint64_t seed,
                                    int first_slot, dc_batch *b, dc_error *err);
/* Upload a prepared batch into the model's graph inputs. */
dc_status dc_model_set_batch(dc_model *m, const dc_batch *b, dc_error *err);

/* ---- flow matching (the diffusion kind: host/models/diffusion.c trains, flow_sample.c
 * samples) ----
 * Rectified flow: x_t = (1 - t) x0 + t * noise for t in [0, 1], so dx_t/dt = noise - x0:
 * the model learns that velocity by MSE, and new images integrate dx/dt = v(x, t) from
 * pure noise at t = 1 back to t = 0. */
typedef enum dc_sampler {
    DC_SAMPLER_EULER = 0, /* one velocity per step, first order */
    DC_SAMPLER_HEUN,      /* Euler predictor + trapezoidal corrector: two velocities per
                           * step (the last step, ending at t = 0, is Euler), second order */
    DC_SAMPLER_SDE,       /* Euler-Maruyama of the reverse SDE with the flow's marginals:
                           * dx = [v - (g^2 / 2) score] dt + g dW, g(t)^2 = 2 churn t, with
                           * score = -(x + (1 - t) v) / t, so one step of size h is
                           * x - h v - h churn eps_hat + sqrt(2 churn t h) z (eps_hat =
                           * x + (1 - t) v, the predicted noise). One velocity per step;
                           * the last step, ending at t = 0, is Euler's. churn 0 is Euler. */
} dc_sampler;
#define DC_FLOW_STEPS 32   /* the default number of sampler steps */
#define DC_FLOW_CHURN 1.0f /* the SDE sampler's default churn */
const char *dc_sampler_name(dc_sampler s);
dc_status dc_sampler_parse(const char *name, dc_sampler *out, dc_error *err);
/* Velocity network evaluations per sample for `steps` steps of a sampler. */
int dc_sampler_evaluations(dc_sampler s, int steps);

/* How a flow model samples. */
typedef struct dc_flow_config {
    int steps; /* equal steps from the start time to t = 0 */
    dc_sampler sampler;
    uint64_t seed;   /* the starting noises (dc_flow_noise) and, per sample, the
                      * stochastic draws (SDE, inpainting's noised known pixels and
                      * re-noising), so sample i does not depend on how many run */
    float churn;     /* DC_SAMPLER_SDE: g(t)^2 = 2 churn t (>= 0) */
    int class_label; /* -1: unconditional; >= 0: class-conditioned models only (the
                      * velocity function takes it) */
    float guidance;  /* with a class: classifier-free guidance weight w, v = v_null + w
                      * (v_class - v_null) (1: the conditional velocity); 0 without */
} dc_flow_config;
/* DC_FLOW_STEPS Euler steps, seed 1, churn DC_FLOW_CHURN, unconditional, no guidance. */
void dc_flow_config_default(dc_flow_config *c);

/* The velocity field at time t of n states x (each `numel` floats) into v. */
typedef dc_status (*dc_velocity_fn)(void *user, const float *x, float t, int n, float *v,
                                    dc_error *err);
/* Integrates x (n states, in place) from t = 1 to t = 0 in `steps` equal steps (the SDE
 * sampler: churn DC_FLOW_CHURN, seed 1). */
dc_status dc_flow_integrate(dc_velocity_fn velocity, void *user, int n, size_t numel, int steps,
                            dc_sampler sampler, float *x, dc_error *err);
/* The same with every setting of a config (class_label and guidance are the velocity's
 * business and ignored here), from t = t_start in (0, 1] to 0. */
dc_status dc_flow_integrate_config(dc_velocity_fn velocity, void *user, int n, size_t numel,
                                   const dc_flow_config *cfg, float t_start, float *x,
                                   dc_error *err);
/* Inpainting (as dc_flow_inpaint below) with any velocity field: x (n states, in place)
 * from the starting noise at t = 1 to t = 0; known [n, numel], masks [n, plane] (1 =
 * hidden, the same for each of the numel / plane channels). The result keeps the known
 * values exactly; nothing is clamped. */
dc_status dc_flow_integrate_inpaint(dc_velocity_fn velocity, void *user, int n, size_t numel,
                                    size_t plane, const dc_flow_config *cfg, const float *known,
                                    const float *masks, int resample, float *x, dc_error *err);
/* The starting noise of n samples [n, C, S, S]: sample i's noise comes from
 * (dc_seed_mix(seed, DC_SAMPLING_STREAM), i), so it does not depend on n. */
void dc_flow_noise(const dc_model *m, int n, uint64_t seed, float *noise);
/* n new images [n, C, S, S] from a diffusion model: the ODE integrated from
 * dc_flow_noise(m, n, seed) (or from `noise` when it is not NULL), in chunks of the
 * model's batch, in eval mode, and clamped to the data's range [-1, 1]. trajectory (NULL:
 * none) gets `snapshots` >= 2 states of every sample, at evenly spaced steps from the noise
 * to the result: [snapshots, n, C, S, S]. The graph's inputs are overwritten. */
dc_status dc_flow_sample(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                         const float *noise, float *out, float *trajectory, int snapshots,
                         dc_error *err);
/* dc_flow_sample with every setting of a config. */
dc_status dc_flow_generate(dc_model *m, int n, const dc_flow_config *cfg, const float *noise,
                           float *out, float *trajectory, int snapshots, dc_error *err);
/* SDEdit: each canvas [n, C, S, S] noised to t = strength in (0, 1] by sample i's
 * dc_flow_noise (x = (1 - s) canvas + s noise), then integrated to t = 0 in
 * max(1, round(cfg->steps * strength)) steps (the full sampler's step size); clamped to
 * [-1, 1]. Strength 1 ignores the canvas (plain sampling). */
dc_status dc_flow_edit(dc_model *m, int n, const dc_flow_config *cfg, const float *canvas,
                       float strength, float *out, dc_error *err);
/* Inpainting (RePaint-style) of n images [n, C, S, S] with masks [n, S, S] (1 = hidden,
 * all channels): from noise, before every step the known pixels are replaced by the image
 * noised to that step's t (x_t = (1 - t) x0 + t z, a fresh z each time), and each step but
 * the last is repeated `resample` >= 1 times, the state re-noised from t_next back to t in
 * between (x_t = a x_next + sqrt(t^2 - a^2 t_next^2) z, a = (1 - t) / (1 - t_next)) so the
 * hole harmonises with its surroundings. The result keeps the known pixels exactly and
 * clamps the hole to [-1, 1]. Network evaluations: about resample x those of cfg's sampler.
 * A mask-conditioned model (cond >= 0) is also given the known pixels and the mask as its
 * cond input at every step. Two samples of one image differ by their index (the seed's streams). */
dc_status dc_flow_inpaint(dc_model *m, int n, const dc_flow_config *cfg, const float *images,
                          const float *masks, int resample, float *out, dc_error *err);
/* The cond input (m->cond) of one image for the mask-conditioned denoiser: its pixels
 * where mask <= 0.5 (known), 0 where hidden, then the mask plane as 0/1; mask NULL:
 * nothing known (zeros and ones). cond holds (channels + 1) x size x size. */
void dc_flow_cond_fill(const float *image, const float *mask, int channels, int size,
                       float *cond);
/* The resampling inpainting needs by default: 1 for a mask-conditioned denoiser (cond >= 0:
 * it sees the known pixels and the mask, and has learned to complete), else 3. */
int dc_flow_default_resample(const dc_model *m);
/* The same for a class-conditioned model (spec.cond_classes > 0): class_label in
 * [0, cond_classes) samples that class with classifier-free guidance weight `guidance`,
 * v = v_null + guidance * (v_class - v_null) (1: the conditional velocity, 0: the
 * unconditional one, > 1: stronger class likeness); class_label -1 samples unconditionally
 * (the null class; guidance unused). A class for a model without classes is an error.
 * dc_flow_sample is class -1. */
dc_status dc_flow_sample_guided(dc_model *m, int n, int steps, dc_sampler sampler, uint64_t seed,
                                const float *noise, float *out, float *trajectory, int snapshots,
                                int class_label, float guidance, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
