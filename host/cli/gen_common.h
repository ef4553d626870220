/* Shared pieces of the generative commands (generate, complete, dream, interpolate, eval). */
#ifndef DECONV_CLI_GEN_COMMON_H
#define DECONV_CLI_GEN_COMMON_H

#include "cli/cli.h"
#include "deconv/data.h"
#include "deconv/image.h"

/* Load images given on the command line (each resized to the model's size/channels). */
int gen_load_images(const char *cmd, const dc_model *m, char **paths, int n, float **out);
/* Run the encoder part of the training graph on `count` images (masked with the model's
 * mask; random -> box) and read the codes [count, latent] (complete: before the noise;
 * vae: mu). The model's batch must be >= count. */
int gen_encode(const char *cmd, dc_model *m, const float *images, int count, float *codes);
/* Decode latents [count, latent] through a decoder-only model (batch == count). */
int gen_decode(const char *cmd, dc_model *dec, const float *z, float *images);
/* Draw n latents for the decoder (dc_model_sample_latents): N(0, t^2), or the kind's own
 * distribution (glo: a full-covariance Gaussian fitted to the learned latents). */
int gen_sample_latents(const char *cmd, dc_model *m, int n, float t, uint64_t seed, float *z);
/* Complete-model forward on prepared inputs (x, mask applied) with a noise std and seed;
 * mask: the hidden pixels, one plane for every item (NULL: all hidden, the blank canvas),
 * for a model with the hole input (dc_model_set_hole). */
int gen_forward_complete(const char *cmd, dc_model *m, const float *x, const float *mask,
                         float noise_std, uint64_t seed, float *out);
/* Diffusion: n new images by integrating the model's velocity from the seed's noises
 * (dc_flow_generate); with trajectory_png, a grid of each sample's path (9 rows, t = 1 to 0)
 * is written there. Prints the sampling time per image and per step unless quiet. */
int gen_flow_sample(const char *cmd, dc_model *m, int n, const dc_flow_config *cfg, float *images,
                    const char *trajectory_png, int quiet);
/* Diffusion: the sampler options every flow command takes (--steps, --sampler, --churn,
 * --seed; --class, --guidance) into cfg. Non-zero (after a message) when one is bad. */
int gen_flow_config(const char *cmd, dc_args *a, dc_flow_config *cfg);
/* A grid of images in [-1, 1] (dc_image_write_grid), every pixel drawn as a block of
 * --zoom x --zoom (as gen_flow_config read it; 1 before). */
dc_status gen_write_grid(const char *path, const float *nchw, int n, int c, int h, int w, int rows,
                         int cols, dc_error *err);
/* Their table entries (with --device and --zoom), the shared table of those commands. */
extern const dc_option gen_flow_options[];
/* Re-create the run's training and validation split from its checkpoint metadata. */
int gen_run_split(const char *cmd, const dc_meta *meta, const dc_model *m, dc_dataset **train,
                  dc_dataset **val);
/* The mask a command applies for this model (random -> box so results repeat). */
dc_mask_kind gen_mask_kind(const dc_model *m);

#endif
