/* Grad-CAM (Selvaraju et al. 2017): weight each feature map of a layer by the mean
 * gradient of the class score over its positions, sum, keep the positive part and
 * upsample to the image. Works at any layer with spatial maps. */
#include "viz/viz_internal.h"

dc_status dc_viz_gradcam(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                         dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_hw) return dc_set_error(err, DC_ERR_ARG, "gradcam: NULL image or map");
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "gradcam", &v, err));
    int node, shape[4], target;
    float *act = NULL, *grad = NULL, *low = NULL;
    dc_status s;
    if ((s = dc_viz_find_layer(&v, o->layer, m->last_conv, &node, shape, err)) != DC_OK ||
        (s = dc_viz_classify(&v, image, o->target, &target, info, err)) != DC_OK ||
        (s = dc_viz_backward_scores(&v, &target, 1, DC_RELU_NORMAL, NULL, err)) != DC_OK)
        goto done;
    info->node = node;
    if ((size_t)shape[2] * shape[3] <= 1) {
        /* one position: the weighted sum is a single number, there is no map to show */
        s = dc_set_error(err, DC_ERR_ARG,
                         "gradcam: layer '%s' is [%d, %d, %d, %d], one position per channel; "
                         "Grad-CAM needs feature maps with height and width (the last conv "
                         "layer is '%s')",
                         dc_graph_node_name(v.g, node), shape[0], shape[1], shape[2], shape[3],
                         m->last_conv >= 0 ? dc_graph_node_name(v.g, m->last_conv) : "(none)");
        goto done;
    }
    const int LC = shape[1];
    const size_t hw = (size_t)shape[2] * shape[3], all = hw * LC * v.B;
    act = malloc(sizeof(float) * all);
    grad = malloc(sizeof(float) * all);
    low = calloc(hw, sizeof(float));
    if (!act || !grad || !low) {
        s = dc_set_error(err, DC_ERR_OOM, "gradcam: out of memory");
        goto done;
    }
    if (dc_graph_read(v.g, node, act) != DC_OK || dc_graph_read_grad(v.g, node, grad) != DC_OK) {
        s = dc_viz_graph_fail(&v, err);
        goto done;
    }
    for (int c = 0; c < LC; c++) {
        double a = 0.0;
        for (size_t p = 0; p < hw; p++)
            a += grad[(size_t)c * hw + p];
        const float alpha = (float)(a / (double)hw);
        for (size_t p = 0; p < hw; p++)
            low[p] += alpha * act[(size_t)c * hw + p];
    }
    for (size_t p = 0; p < hw; p++)
        low[p] = low[p] > 0.0f ? low[p] : 0.0f;
    dc_viz_upsample_bilinear(low, shape[2], shape[3], map_hw, v.H, v.W);
    s = dc_viz_map_check(map_hw, (size_t)v.H * v.W, "gradcam", info, err);
done:
    free(act);
    free(grad);
    free(low);
    dc_viz_close(&v);
    return s;
}
