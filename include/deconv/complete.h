/* Completion passes of the complete model (host/models/complete.c).
 * `deconv complete --passes k` and the evaluation's refinement figure run pass 1 on the
 * masked image and feed each completion back: the next input keeps the visible pixels and
 * takes the completion where the mask hides. Training's self-feedback builds its inputs with
 * the same functions, so a fed-back training input is exactly what inference feeds. */
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

DC_API_END

#endif
