/* The model kind table: what differs between the presets, one row per kind. The hooks live
 * in each kind's file (complete.c, vae.c, glo.c, classifier.c). */
#include "internal.h"
#include "models/kinds.h"

/* Command-line training defaults, tuned so the default run gives recognisable results in
 * minutes. On the bundled guns (26 images): small batches give more updates in the same
 * time (measured: the same images/s at batch 16 and 64); 400 epochs of 2 steps take about
 * 3 minutes on two cores and give recognisable completions of the training guns. */
#define GENERATIVE_TRAIN_DEFAULTS(augment)                                                     \
    {.size = 64, .epochs = 20, .epochs_bundled = 400, .batch_bundled = 16,                      \
     .save_every_bundled = 50, .augment_bundled = (augment)}

/* The diffusion U-Net at 32x32 (base 32, 3 levels: 32, 16, 8 pixels; 1.53 M parameters) on
 * the guns: 3000 epochs of 2 steps of 16 images = 96,000 images. At 64x64 with 800 epochs
 * (the first design) the samples stayed fragmented patches; at 32x32 the same time buys
 * four times the steps, and by about 1250 epochs the samples are recognisable guns. EMA
 * weights sample; cosine decay settles the weights the fixed-noise grids read at the end.
 * Fashion-MNIST (60,000 images, letterboxed to 32x32) gets 4 epochs, about 3,400 steps of
 * 64. Validation (one forward of the whole batch for the 3 held-out guns), loss.csv and the
 * report every 10 epochs: every epoch they took about a third of the run's time. */
#define DIFFUSION_TRAIN_DEFAULTS                                                               \
    {.size = 32, .epochs = 4, .epochs_bundled = 3000, .batch_bundled = 16,                      \
     .save_every_bundled = 250, .val_every_bundled = 10, .augment_bundled = 1,                 \
     .schedule = "cosine", .ema = 0.999f}

static const dc_kind_row rows[DC_MODEL_KIND_COUNT] = {
    [DC_MODEL_COMPLETE] =
        {
            .info = {DC_MODEL_COMPLETE, "complete",
                     DC_KIND_ENCODER | DC_KIND_DECODER | DC_KIND_CODE_NOISE,
                     "blank canvas + random codes", GENERATIVE_TRAIN_DEFAULTS(1)},
            .defaults = dc_kind_complete_defaults,
            .build = dc_kind_complete_build,
            .onnx_output = "output",
            .onnx_doc = "deconv completion model: image = the image with its hidden region filled "
                        "as in training (0), hole [N, 1, S, S] = 1 where hidden, 0 where visible "
                        "(models with the hole input, the default since it exists), noise = the "
                        "random code added to the encoder's code (std * N(0,1), or zeros for the "
                        "mean completion) -> output in [-1, 1]",
        },
    [DC_MODEL_VAE] =
        {
            .info = {DC_MODEL_VAE, "vae", DC_KIND_ENCODER | DC_KIND_DECODER | DC_KIND_SAMPLED_CODE,
                     "z ~ N(0, I)", GENERATIVE_TRAIN_DEFAULTS(1)},
            .defaults = dc_kind_vae_defaults,
            .build = dc_kind_vae_build,
            .onnx_output = "output",
        },
    [DC_MODEL_GLO] =
        {
            /* no augmentation: each image has its own learned latent */
            .info = {DC_MODEL_GLO, "glo", DC_KIND_DECODER | DC_KIND_LEARNED_LATENTS,
                     "Gaussian fitted to the learned latents", GENERATIVE_TRAIN_DEFAULTS(0)},
            .defaults = dc_kind_glo_defaults,
            .check = dc_kind_glo_check,
            .build = dc_kind_glo_build,
            .shape_latents = dc_kind_glo_shape_latents,
            .validate = dc_kind_glo_validate,
            .onnx_output = "output",
        },
    [DC_MODEL_CLASSIFIER] =
        {
            /* measured: cosine decay reaches 0.925 test accuracy on Fashion-MNIST in 10 epochs */
            .info = {DC_MODEL_CLASSIFIER, "classifier", DC_KIND_CLASSIFIES, NULL,
                     {.size = 28, .epochs = 10, .epochs_bundled = 10, .batch = 128,
                      .augment_bundled = 1, .schedule = "cosine"}},
            .defaults = dc_kind_classifier_defaults,
            .check = dc_kind_classifier_check,
            .build = dc_kind_classifier_build,
            .onnx_output = "logits",
            .onnx_doc = "deconv classifier: image [N, C, S, S] -> probabilities (softmax) and "
                        "logits [N, classes]",
        },
    [DC_MODEL_DIFFUSION] =
        {
            /* see DIFFUSION_TRAIN_DEFAULTS */
            .info = {DC_MODEL_DIFFUSION, "diffusion", DC_KIND_FLOW,
                     "ODE from Gaussian noise (flow matching)", DIFFUSION_TRAIN_DEFAULTS},
            .defaults = dc_kind_diffusion_defaults,
            .check = dc_kind_diffusion_check,
            .build = dc_kind_diffusion_build,
            .fill_batch = dc_kind_diffusion_fill_batch,
            .onnx_output = "velocity",
            .onnx_doc = "deconv flow-matching U-Net (the denoiser): x [N, C, S, S] = (1 - t) "
                        "image + t noise, t [N, 1] in [0, 1], aug [N, 5] the augmentation "
                        "parameters (zeros to sample), and for a class-conditioned model "
                        "class [N] int64 (0 .. classes - 1, or classes: the null class of "
                        "classifier-free guidance) -> velocity [N, C, S, S] (noise - image)",
        },
};

const dc_kind_row *dc_kind_row_get(dc_model_kind kind) {
    return kind > DC_MODEL_NONE && kind < DC_MODEL_KIND_COUNT ? &rows[kind] : NULL;
}

const dc_model_kind_info *dc_model_kind_get(dc_model_kind kind) {
    const dc_kind_row *r = dc_kind_row_get(kind);
    return r ? &r->info : NULL;
}

const char *dc_model_kind_name(dc_model_kind kind) {
    const dc_kind_row *r = dc_kind_row_get(kind);
    return r ? r->info.name : kind == DC_MODEL_NONE ? "none" : "unknown";
}

dc_status dc_model_kind_parse(const char *name, dc_model_kind *out, dc_error *err) {
    for (int k = DC_MODEL_NONE + 1; name && k < DC_MODEL_KIND_COUNT; k++)
        if (!strcmp(name, rows[k].info.name)) {
            *out = (dc_model_kind)k;
            return DC_OK;
        }
    /* "complete, vae, glo or classifier", from the table */
    char list[256] = "";
    size_t used = 0;
    for (int k = DC_MODEL_NONE + 1; k < DC_MODEL_KIND_COUNT && used < sizeof list; k++) {
        const char *sep = k == DC_MODEL_NONE + 1         ? ""
                          : k + 1 == DC_MODEL_KIND_COUNT ? " or "
                                                         : ", ";
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", sep, rows[k].info.name);
    }
    return dc_set_error(err, DC_ERR_ARG, "unknown model '%s' (use %s)", name ? name : "(null)",
                        list);
}

int dc_model_kind_has(dc_model_kind kind, unsigned flags) {
    const dc_kind_row *r = dc_kind_row_get(kind);
    return r && (r->info.flags & flags) == flags;
}
