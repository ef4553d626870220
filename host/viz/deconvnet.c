/* DeconvNet (Zeiler & Fergus 2014): project one activation back to pixel space.
 *
 * The deconvnet attached to a layer is the backward pass with DC_RELU_DECONVNET: max-pool
 * backward routes the signal through the switches recorded by the forward pass
 * (unpooling), each ReLU passes only the positive part of the signal (rectification,
 * independent of the forward activation) and conv backward applies the transposed
 * filters. All other activations of the layer are set to zero, as in the paper. */
#include "viz/viz_internal.h"

dc_status dc_viz_deconvnet(dc_model *m, const float *image, const dc_viz_opts *o, float *map_chw,
                           dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_chw) return dc_set_error(err, DC_ERR_ARG, "deconvnet: NULL image or map");
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "deconvnet", &v, err));
    dc_status s;
    float *act = NULL, *seed = NULL, *grad = NULL;
    int node, shape[4], target;
    if ((s = dc_viz_find_layer(&v, o->layer, m->last_conv, &node, shape, err)) != DC_OK) goto done;
    if ((s = dc_viz_classify(&v, image, -1, &target, info, err)) != DC_OK) goto done;
    info->target = -1;
    info->node = node;
    const int LC = shape[1];
    const size_t hw = (size_t)shape[2] * shape[3], per = (size_t)LC * hw;
    act = malloc(sizeof(float) * per * v.B);
    seed = calloc(per * v.B, sizeof(float));
    grad = malloc(sizeof(float) * v.chw * v.B);
    if (!act || !seed || !grad) {
        s = dc_set_error(err, DC_ERR_OOM, "deconvnet: out of memory");
        goto done;
    }
    if (dc_graph_read(v.g, node, act) != DC_OK) {
        s = dc_viz_graph_fail(&v, err);
        goto done;
    }
    /* the strongest channel unless one is named, then its maximum */
    int ch = o->channel;
    if (ch >= LC) {
        s = dc_set_error(err, DC_ERR_ARG, "deconvnet: channel %d of layer '%s' is outside [0, %d)",
                         ch, dc_graph_node_name(v.g, node), LC);
        goto done;
    }
    size_t best = (size_t)-1;
    for (int c = 0; c < LC; c++) {
        if (ch >= 0 && c != ch) continue;
        for (size_t p = 0; p < hw; p++) {
            const size_t i = (size_t)c * hw + p;
            if (best == (size_t)-1 || act[i] > act[best]) best = i;
        }
    }
    ch = (int)(best / hw);
    info->channel = ch;
    info->pos_y = (int)((best % hw) / (size_t)shape[3]);
    info->pos_x = (int)((best % hw) % (size_t)shape[3]);
    info->activation = act[best];
    if (o->whole_map)
        memcpy(seed + (size_t)ch * hw, act + (size_t)ch * hw, sizeof(float) * hw);
    else
        seed[best] = act[best];
    if (dc_graph_backward_from(v.g, node, seed, DC_RELU_DECONVNET) != DC_OK ||
        dc_graph_read_grad(v.g, v.x, grad) != DC_OK) {
        s = dc_viz_graph_fail(&v, err);
        goto done;
    }
    memcpy(map_chw, grad, sizeof(float) * v.chw);
    s = dc_viz_map_check(map_chw, v.chw, "deconvnet", info, err);
done:
    free(act);
    free(seed);
    free(grad);
    dc_viz_close(&v);
    return s;
}
