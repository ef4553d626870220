/* Guided backpropagation (Springenberg et al. 2015): the gradient of the class score
 * with respect to the pixels, where every ReLU passes the signal only where both its
 * forward input and the incoming gradient are positive (DC_RELU_GUIDED). */
#include "viz/viz_internal.h"

dc_status dc_viz_guided(dc_model *m, const float *image, const dc_viz_opts *o, float *map_chw,
                        dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_chw) return dc_set_error(err, DC_ERR_ARG, "guided: NULL image or map");
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "guided", &v, err));
    int target;
    float *grad = malloc(sizeof(float) * v.chw * v.B);
    dc_status s = grad ? DC_OK : dc_set_error(err, DC_ERR_OOM, "guided: out of memory");
    if (s == DC_OK) s = dc_viz_classify(&v, image, o->target, &target, info, err);
    if (s == DC_OK) s = dc_viz_backward_scores(&v, &target, 1, DC_RELU_GUIDED, grad, err);
    if (s == DC_OK) {
        memcpy(map_chw, grad, sizeof(float) * v.chw);
        s = dc_viz_map_check(map_chw, v.chw, "guided", info, err);
    }
    free(grad);
    dc_viz_close(&v);
    return s;
}
