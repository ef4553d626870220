/* Helpers shared by the explanation methods in host/viz/. Not installed. */
#ifndef DECONV_VIZ_INTERNAL_H
#define DECONV_VIZ_INTERNAL_H

#include <math.h>

#include "deconv/viz.h"
#include "internal.h"

/* The graph a method runs on: the caller's model, or a larger-batch model that shares its
 * parameters. Node ids are the same in both (same builder). */
typedef struct viz_ctx {
    const char *method;
    dc_model *m;     /* the model the work runs on */
    dc_model *owned; /* a shared copy made here, freed by dc_viz_close */
    dc_graph *g;
    int x, out; /* image input and class-score nodes */
    int B, C, H, W, K;
    size_t chw;
} viz_ctx;

/* want_batch <= 1: the model as it is. */
dc_status dc_viz_open(dc_model *m, int want_batch, const char *method, viz_ctx *v, dc_error *err);
void dc_viz_close(viz_ctx *v);
/* Record the graph's error, prefixed with the method name. */
dc_status dc_viz_graph_fail(viz_ctx *v, dc_error *err);
/* Upload `count` images (count <= B; the rest of the batch is zero) and run the forward
 * pass up to node `last` (< 0: the class scores). */
dc_status dc_viz_forward(viz_ctx *v, const float *images, int count, int last, dc_error *err);
/* After dc_viz_forward: read all B rows of class scores (B*K floats). */
dc_status dc_viz_read_scores(viz_ctx *v, float *scores, dc_error *err);
/* Backward from the class scores with seed one-hot(targets[i]) in rows i < count (zero
 * elsewhere), then read the input gradient (B*chw floats) when input_grad is not NULL. */
dc_status dc_viz_backward_scores(viz_ctx *v, const int *targets, int count, dc_relu_mode mode,
                              float *input_grad, dc_error *err);
/* Resolve a layer name (NULL: def) to a 4-D node. */
dc_status dc_viz_find_layer(viz_ctx *v, const char *layer, int def, int *node, int shape[4],
                         dc_error *err);
/* Softmax of K scores into probs (probs may alias scores). */
void dc_viz_softmax(const float *scores, int K, float *probs);
int dc_viz_argmax(const float *v, int n);
/* Forward one image, fill info->predicted/target/prob/score; *target gets the class to
 * explain (o->target, or the predicted class when o->target < 0). */
dc_status dc_viz_classify(viz_ctx *v, const float *image, int want_target, int *target,
                       dc_viz_info *info, dc_error *err);
void dc_viz_info_reset(dc_viz_info *info);
/* The start of every method: *o -> def filled with the defaults when NULL, *info -> local
 * when NULL, and the info reset. */
void dc_viz_defaults(const dc_viz_opts **o, dc_viz_opts *def, dc_viz_info **info,
                  dc_viz_info *local);

#endif
