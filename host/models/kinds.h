/* The model kind table: one row per dc_model_kind (host/models/kinds.c), with the hooks each
 * kind's own file (complete.c, vae.c, glo.c, classifier.c) defines. Adding a kind: a value in
 * dc_model_kind, a file with its hooks, their declarations below, and a row in kinds.c.
 * Not installed. */
#ifndef DECONV_MODELS_KINDS_H
#define DECONV_MODELS_KINDS_H

#include "deconv/data.h"
#include "deconv/model.h"

typedef struct dc_kind_row {
    dc_model_kind_info info;
    /* the kind's own defaults, applied over the common ones of dc_model_spec_defaults */
    void (*defaults)(dc_model_spec *s);
    /* the kind's own checks, after the common ones (NULL: none) */
    dc_status (*check)(const dc_model_spec *s, dc_error *err);
    /* the training graph and its named nodes in m (the caller finalizes the graph; the
     * decoder-only graph of the DC_KIND_DECODER kinds is common, see models.c) */
    void (*build)(dc_model *m);
    /* turns n x latent draws of t * N(0, 1) into the kind's latent distribution (NULL: keep) */
    dc_status (*shape_latents)(const dc_model *m, int n, float *z, dc_error *err);
    /* the validation loss of held-out images when the training graph cannot compute it
     * (glo: their latents are fitted first); NULL: the training graph's loss */
    dc_status (*validate)(dc_model *m, const dc_dataset *val, double *loss, dc_error *err);
    /* the kind's own inputs, after the common preparation of a batch (images augmented
     * into b->target, masks, labels), drawn from the step's seed and each item's slot in
     * the global batch, first_slot + its place in b (NULL: none) */
    dc_status (*fill_batch)(const dc_model *m, dc_batch *b, uint64_t seed, int first_slot,
                            dc_error *err);
    /* ONNX export: the name of the graph output, and the description of the training graph
     * (NULL: the kind exports its decoder-only graph, the generator, instead) */
    const char *onnx_output;
    const char *onnx_doc;
} dc_kind_row;

/* The row of a kind; NULL for DC_MODEL_NONE and values outside the enum. */
const dc_kind_row *dc_kind_row_get(dc_model_kind kind);

/* Shared builders (host/models/common.c). Encoder: `blocks` x [conv -> relu -> maxpool 2];
 * returns the last feature map. Decoder: dense -> relu -> reshape -> `blocks` transposed
 * convs -> tanh; returns the image output. */
int dc_model_build_encoder(dc_graph *g, const dc_model_spec *s, int x);
/* The same with the mask of the hidden pixels as a second input (hole >= 0): the first conv
 * is one convolution over [image, mask] ("enc_in" concatenates them; "enc1" has C + 1
 * input channels), or with `tied` the image's conv "enc1" (whose kernel the decoder
 * reuses) plus a bias-free conv of the mask "enc1_hole", added before the ReLU. acts (NULL:
 * not kept; else spec.blocks entries) receives each block's ReLU output before its pool. */
int dc_model_build_encoder_hole(dc_graph *g, const dc_model_spec *s, int x, int hole, int *acts);
/* Size limits with overflow-safe arithmetic: every tensor fits an int, the parameters fit
 * 2^31 floats. The error names what is too big and the options that make it so. */
dc_status dc_model_check_sizes(const dc_model_spec *s, int has_decoder, int classifies,
                               int learned_latents, dc_error *err);
int dc_model_build_decoder(dc_graph *g, const dc_model_spec *s, int z);
/* The same with U-Net skips (spec.skips): after decoder block b > 0 (the feature map of
 * encoder block b's size) the encoder's activations skips[b] are concatenated ("decI_skip")
 * before the next transposed conv. skips: acts as dc_model_build_encoder_hole records them
 * (acts[b]: block b's ReLU output before its pool); NULL: none. */
int dc_model_build_decoder_skips(dc_graph *g, const dc_model_spec *s, int z, const int *skips);
/* The encoder with its layers named PREFIX1, PREFIX2, ... (a second encoder's weights). */
int dc_model_build_encoder_named(dc_graph *g, const dc_model_spec *s, int x, const char *prefix);
/* The encoder's feature map -> a [latent, 1, 1] code: dense, or with the conv bottleneck a
 * 3x3 conv + relu + 1x1 conv to latent/side^2 channels (named NAME_conv, NAME). */
int dc_model_build_code(dc_graph *g, const dc_model_spec *s, int h, const char *name);
/* The spec's reconstruction loss of m->out against m->target, weighted by m->weight: MSE, or binary cross-entropy read from the logits before the final tanh. */
int dc_model_build_recon_loss(dc_model *m);
/* The same for another output node of the same shape (an unrolled pass's). */
int dc_model_build_recon_loss_of(dc_model *m, int out);

/* complete.c */
void dc_kind_complete_defaults(dc_model_spec *s);
void dc_kind_complete_build(dc_model *m);
/* vae.c */
void dc_kind_vae_defaults(dc_model_spec *s);
void dc_kind_vae_build(dc_model *m);
/* glo.c */
void dc_kind_glo_defaults(dc_model_spec *s);
dc_status dc_kind_glo_check(const dc_model_spec *s, dc_error *err);
void dc_kind_glo_build(dc_model *m);
dc_status dc_kind_glo_shape_latents(const dc_model *m, int n, float *z, dc_error *err);
dc_status dc_kind_glo_validate(dc_model *m, const dc_dataset *val, double *loss, dc_error *err);
/* classifier.c */
void dc_kind_classifier_defaults(dc_model_spec *s);
dc_status dc_kind_classifier_check(const dc_model_spec *s, dc_error *err);
void dc_kind_classifier_build(dc_model *m);

/* diffusion.c */
void dc_kind_diffusion_defaults(dc_model_spec *s);
dc_status dc_kind_diffusion_check(const dc_model_spec *s, dc_error *err);
void dc_kind_diffusion_build(dc_model *m);
dc_status dc_kind_diffusion_fill_batch(const dc_model *m, dc_batch *b, uint64_t seed,
                                       int first_slot, dc_error *err);

#endif
