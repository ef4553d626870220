/* deconv — seeing inside a classifier: DeconvNet, guided backpropagation, saliency and
 * SmoothGrad, occlusion, class-model gradient ascent, CAM, Grad-CAM, maximally activating
 * dataset images and first-layer filters.
 *
 * Every method runs on the model's graph through the graph API (forward, backward with
 * a ReLU mode, reading node values and gradients), so it runs unchanged on every backend.
 * The graph is switched to eval mode (dc_graph_set_train(g, 0)) and left there: batch norm
 * uses its running statistics and dropout passes everything through. The backward passes
 * also add into the parameters' gradients: call dc_params_zero_grad before a training step
 * that follows.
 *
 * The model is a dc_model whose fields x (the float image input [N, C, H, W]) and out (the
 * class scores [N, K, 1, 1], before the softmax) are set, and whose input keeps a gradient
 * (the classifier preset asks for it). CAM also needs last_conv, the feature maps that a
 * global average pool feeds into the dense node `out`. A hand-built dc_model (for tests)
 * works as long as these fields are filled in. Images are float [C, H, W] in the dataset
 * convention ([-1, 1]).
 *
 * Batching: the methods that evaluate many images (SmoothGrad, occlusion, maxact) run
 * opts.batch images per pass. When that is larger than the model's batch and the model
 * is a preset (spec.kind not DC_MODEL_NONE), a model of that batch sharing the parameters
 * is built with dc_model_create_shared; otherwise they run in chunks of the model's batch.
 *
 * Maps come back in caller-provided host memory. A map that holds NaN or Inf is an
 * error (DC_ERR_NUMERIC naming the method and node); a map that is constant (all zero
 * included) is returned with info->constant set, so the caller can say so rather than
 * write a blank image.
 */
#ifndef DECONV_VIZ_H
#define DECONV_VIZ_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/data.h"
#include "deconv/deconv.h"
#include "deconv/model.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef struct dc_viz_opts {
    int target;        /* class to explain; < 0: the predicted class */
    const char *layer; /* node name; NULL: the method's default (the model's last_conv) */
    int channel;       /* deconvnet, maxact: channel of `layer`; < 0: deconvnet picks the
                          channel with the strongest activation (maxact requires one) */
    int whole_map;     /* deconvnet: project the channel's whole map, not only its maximum */
    int batch;         /* images per pass for smoothgrad / occlusion / maxact (default 64) */
    /* saliency: SmoothGrad when samples > 0 */
    int samples;   /* noisy copies averaged (0: plain gradient) */
    float noise;   /* noise std as a fraction of the image's value range (default 0.15) */
    uint64_t seed; /* smoothgrad noise, ascent start and jitter */
    /* occlusion */
    int patch, stride; /* square patch side and step in pixels (default 6 and 2) */
    float fill;        /* value of occluded pixels (default 0: mid gray in [-1, 1]) */
    /* ascent (class model visualization) */
    int steps;        /* default 200 */
    float lr;         /* step on the gradient normalised to mean |g| = 1 (default 0.05) */
    float l2;         /* decay: x *= 1 - l2 after each step (default 0.01) */
    int blur_every;   /* Gaussian blur every k steps (0: never; default 4) */
    float blur_sigma; /* default 0.5 pixels */
    int jitter;       /* random circular shift of up to +-jitter pixels per step (default 1) */
    /* maxact */
    int top; /* how many images (default 9) */
} dc_viz_opts;

void dc_viz_opts_default(dc_viz_opts *o);

/* What a method explained, and the map's statistics. */
typedef struct dc_viz_info {
    int target;        /* class explained (-1 where no class is involved) */
    int predicted;     /* arg max class on the (first) input image, -1 if not computed */
    float prob;        /* softmax probability of `target` on the input */
    float score;       /* class score (logit) of `target` on the input */
    int node;          /* the layer node used, -1 if none */
    int channel;       /* deconvnet: channel projected */
    int pos_y, pos_x;  /* deconvnet: position of the maximum in that channel */
    float activation;  /* deconvnet: the activation projected (its maximum) */
    float score_start; /* ascent: target score of the starting noise */
    float min, max;    /* of the returned map */
    int constant;      /* 1: the map is constant (max == min); see dc_viz_describe_flat */
} dc_viz_info;

/* Statistics of a map: returns DC_ERR_NUMERIC (naming `what`) if any value is not
 * finite; sets info->min, max and constant. */
dc_status dc_viz_map_check(const float *map, size_t n, const char *what, dc_viz_info *info,
                           dc_error *err);
/* "all zero" or "constant (value v)" for a flat map, into buf. Returns buf. */
const char *dc_viz_describe_flat(const dc_viz_info *info, char *buf, size_t cap);

/* [C, H, W] -> [H, W]: max over channels of |v| (saliency, guided, deconvnet heatmaps). */
void dc_viz_abs_max_channels(const float *chw, int c, int h, int w, float *hw);
/* Bilinear resize [sh, sw] -> [dh, dw], pixel centres aligned (PyTorch
 * interpolate(mode="bilinear", align_corners=False)). */
void dc_viz_upsample_bilinear(const float *src, int sh, int sw, float *dst, int dh, int dw);
/* Spearman rank correlation of two maps (ties get their average rank); 0 when either is
 * constant. Used by --sanity to say how much a map depends on the learned weights. */
double dc_viz_rank_correlation(const float *a, const float *b, size_t n);

/* Input image geometry of the model: channels, height, width, classes. */
dc_status dc_viz_model_geometry(dc_model *m, int *c, int *h, int *w, int *classes, dc_error *err);
/* Class probabilities (softmax of `out`) of one image: probs has `classes` floats. */
dc_status dc_viz_predict(dc_model *m, const float *image, float *probs, dc_error *err);

/* ---------------------------------------------------------------- methods
 * image: [C, H, W]. map_chw: C*H*W floats (signed, input space); map_hw: H*W floats. */

/* Zeiler & Fergus: one activation of `layer` (its maximum in `channel`, or the whole
 * channel map with whole_map) projected back to pixels: the other activations are set to
 * zero and the signal goes back through max-unpooling with the recorded switches,
 * rectification of the signal at each ReLU and the transposed filters
 * (backward with DC_RELU_DECONVNET). */
dc_status dc_viz_deconvnet(dc_model *m, const float *image, const dc_viz_opts *o, float *map_chw,
                           dc_viz_info *info, dc_error *err);

/* Springenberg et al.: backward from the target logit with DC_RELU_GUIDED. */
dc_status dc_viz_guided(dc_model *m, const float *image, const dc_viz_opts *o, float *map_chw,
                        dc_viz_info *info, dc_error *err);

/* Simonyan et al.: max over channels of |d score / d pixel|. With o->samples > 0,
 * SmoothGrad (Smilkov et al.): the mean of that map over `samples` copies of the image
 * with Gaussian noise of std o->noise * (max - min of the image), seeded by o->seed. */
dc_status dc_viz_saliency(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                          dc_viz_info *info, dc_error *err);

/* Zeiler & Fergus: a patch x patch square of o->fill slides with o->stride over the image
 * (the last position touches the right/bottom edge); each pixel gets the mean, over the
 * placements that cover it, of p(target | image) - p(target | occluded image). Pixels no
 * placement covers get 0. */
dc_status dc_viz_occlusion(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                           dc_viz_info *info, dc_error *err);

/* Simonyan et al. class model: from seeded noise x0 = 0.1 N(0, 1), o->steps steps of
 * x <- clamp((1 - l2) (x + lr g / mean|g|), -1, 1), where g is the gradient of the
 * target's score with respect to the image shifted circularly by a random (dy, dx) in
 * [-jitter, jitter] (and shifted back); every blur_every steps x is blurred with a
 * Gaussian of blur_sigma. o->target must be >= 0. image_out: [C, H, W]. The same seed
 * gives the same image on a given backend. info->score_start / score: the target score
 * at the start and the end. */
dc_status dc_viz_ascent(dc_model *m, const dc_viz_opts *o, float *image_out, dc_viz_info *info,
                        dc_error *err);

/* Zhou et al.: CAM(y, x) = sum_c W_fc[target, c] A_c(y, x), A = o->layer (default
 * last_conv) of the image, upsampled bilinearly to [H, W]. Signed (no ReLU). A layer that
 * does not feed global_avgpool -> dense `out` is DC_ERR_UNSUPPORTED naming it. */
dc_status dc_viz_cam(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                     dc_viz_info *info, dc_error *err);

/* Selvaraju et al.: at `layer` (default last_conv) with maps A and gradients G of the
 * target score, ReLU(sum_c mean_yx(G_c) A_c), upsampled bilinearly to [H, W]. At the last
 * conv of a GAP network this is ReLU(CAM) / (h w). A layer with 1x1 maps (global pooling,
 * dense) has no positions to weight: DC_ERR_ARG naming it. */
dc_status dc_viz_gradcam(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                         dc_viz_info *info, dc_error *err);

/* Receptive field of one position of a layer in input pixels. */
typedef struct dc_viz_hit {
    int index;          /* dataset item */
    float value;        /* the channel's maximum activation on that item */
    int y, x;           /* where, in the layer's map */
    int y0, x0, y1, x1; /* receptive field in the input, [y0, y1) x [x0, x1), clipped */
} dc_viz_hit;

/* The geometry that maps a position p of `node` to input pixels: the receptive field is
 * [p * jump + offset, p * jump + offset + size) on each axis (before clipping). Follows
 * the chain of input-0 edges from node back to the image input through conv2d and
 * maxpool2d (elementwise ops keep the geometry); other ops are DC_ERR_UNSUPPORTED. */
dc_status dc_viz_receptive_field(dc_model *m, int node, int *size, int *jump, int *offset,
                                 dc_error *err);

/* The o->top items of ds whose channel o->channel of `layer` (default last_conv) has the
 * largest maximum activation, best first (ties: lower index first). hits holds o->top
 * entries; *count gets min(top, ds->n). */
dc_status dc_viz_maxact(dc_model *m, const dc_dataset *ds, const dc_viz_opts *o, dc_viz_hit *hits,
                        int *count, dc_error *err);

/* The first conv2d layer's kernels [OC, C, k, k], each normalised to [0, 1] by its own
 * min and max (a constant kernel becomes 0.5). out holds OC*C*k*k floats (NULL to ask for
 * the sizes only). */
dc_status dc_viz_filters(dc_model *m, float *out, int *count, int *channels, int *k, dc_error *err);

/* --sanity (Adebayo et al. 2018): a model of the same spec and batch with every parameter
 * re-initialised from `seed` (batch-norm statistics reset), to run a method on and
 * compare. Needs a preset model (spec.kind not DC_MODEL_NONE). */
dc_status dc_viz_randomized_model(dc_model *m, uint64_t seed, dc_model **out, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
