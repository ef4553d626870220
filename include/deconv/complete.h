/* Completion passes of the complete model (host/models/complete.c).
 * `deconv complete --passes k` and the evaluation's refinement figure run pass 1 on the
 * masked image and feed each completion back: the next input keeps the visible pixels and
 * takes the completion where the mask hides. Training's self-feedback builds the same inputs
 * on the device (dc_complete_feedback_device, held bit for bit to the host-side
 * dc_complete_feedback_inputs by the tests), so a fed-back training input is exactly what
 * inference feeds. */
#ifndef DECONV_COMPLETE_H
#define DECONV_COMPLETE_H

#include "deconv/model.h"

DC_API_BEGIN

/* Sets the hole input of a model built with hole_input (a no-op for any other model):
 * `mask` holds one plane [S, S] for every item of the batch (per_item 0) or one plane per
 * item (per_item 1), 1 = hidden; NULL: every pixel hidden (the blank canvas). Every forward
 * of such a model reads the hole set last, so set it wherever x is set. */
dc_status dc_model_set_hole(dc_model *m, const float *mask, int per_item, dc_error *err);

/* One pass as inference runs it (the hole input as set last): eval mode, code noise std
 * `noise_std` (0: the deterministic completion; the spec's std is restored after), draws
 * from `seed`. x and out hold the model's batch. Leaves the graph in eval mode with x as
 * its input. */
dc_status dc_complete_pass(dc_model *m, const float *x, float noise_std, uint64_t seed, float *out,
                           dc_error *err);

/* The next pass's input of one image [c, hw]: input where mask (one plane, 1 = hidden) is
 * <= 0.5, completion where it is > 0.5. next may be input. */
void dc_complete_feed_back(const float *input, const float *completion, const float *mask, int c,
                           int hw, float *next);

/* Self-feedback: item i of the batch input x (masks: one plane per item) becomes the input of
 * pass passes[i] + 1, i.e. x fed back passes[i] times (0: unchanged), every pass run by
 * dc_complete_pass at code noise std noise_std (0: as `deconv complete` and the evaluation
 * run by default), pass p drawing from dc_seed_mix(seed, p). scratch holds a batch of
 * outputs. Leaves the graph in eval mode with the new x as its input (and masks as its
 * hole input, for a model that has one). */
dc_status dc_complete_feedback_inputs(dc_model *m, float *x, const float *masks, const int *passes,
                                      float noise_std, uint64_t seed, float *scratch,
                                      dc_error *err);

/* Self-feedback on the device, for a training graph (dc_model_create_training with
 * spec.feedback > 0, whose x input keeps a buffer of its own) whose inputs are set
 * (dc_model_set_batch: x, and the masks as the hole input): item i becomes the input of
 * pass passes[i] + 1 exactly as dc_complete_feedback_inputs computes it at code noise std
 * 0, but nothing is read back: each pass runs forward (eval mode, draws from
 * dc_seed_mix(seed, p)) and replaces, on the device, the hidden pixels of the items still
 * being fed back by the pass's output (select_planes, reading one uploaded plane per item:
 * its pass count where hidden). masks: one plane per item. Leaves the
 * graph in eval mode; x on the host is not updated (dc_graph_read reads the new x). */
dc_status dc_complete_feedback_device(dc_model *m, const float *masks, const int *passes,
                                      uint64_t seed, dc_error *err);

/* A training step's self-feedback (spec.feedback = p; a no-op for p = 0): each image with
 * probability p trains on the input of a later refinement pass, its hidden pixels replaced
 * by the model's own completion fed back 1 to DC_FEEDBACK_MAX_PASSES times (uniformly, drawn
 * from seed), each pass as `deconv complete --passes` runs it by default
 * (dc_complete_feedback_device). No gradient flows through those passes (their output is
 * data here). Leaves the graph in training mode with draws from seed. `deconv train` and
 * `deconv bench` run it after dc_model_set_batch. */
/* up to 3: the evaluation's refinement figure feeds back twice, and one pass only (the
 * first design) left later passes' inputs unseen */
#define DC_FEEDBACK_MAX_PASSES 3
dc_status dc_complete_self_feedback(dc_model *m, const float *masks, uint64_t seed,
                                    dc_error *err);

DC_API_END

#endif
