/* Class activation mapping (Zhou et al. 2016). In a network that ends with
 * feature maps A -> global average pool -> dense, the class score is
 * sum_c W[k, c] mean_yx A_c(y, x) + b_k, so sum_c W[k, c] A_c(y, x) says where in the image
 * the score comes from. Needs that exact ending; Grad-CAM works on any layer. */
#include "viz/viz_internal.h"

/* Check last_conv -> global_avgpool -> [dropout] -> dense(out) and return the dense
 * weight's parameter index. */
static dc_status cam_weight(viz_ctx *v, int last, int *param, dc_error *err) {
    dc_node_info fc, n;
    if (dc_graph_node_info(v->g, v->out, &fc) != DC_OK || strcmp(fc.op_name, "dense"))
        return dc_set_error(err, DC_ERR_UNSUPPORTED,
                            "cam: the class scores are not a dense layer (use gradcam)");
    int cur = fc.inputs[0];
    while (cur >= 0 && dc_graph_node_info(v->g, cur, &n) == DC_OK && !strcmp(n.op_name, "dropout"))
        cur = n.inputs[0];
    if (cur < 0 || dc_graph_node_info(v->g, cur, &n) != DC_OK ||
        strcmp(n.op_name, "global_avgpool") || n.inputs[0] != last)
        return dc_set_error(err, DC_ERR_UNSUPPORTED,
                            "cam: needs feature maps '%s' -> global_avgpool -> dense '%s'; the "
                            "dense layer reads '%s' instead (use gradcam)",
                            last >= 0 ? dc_graph_node_name(v->g, last) : "(none)", fc.name,
                            cur >= 0 ? dc_graph_node_name(v->g, cur) : "(none)");
    *param = fc.param[0];
    return DC_OK;
}

dc_status dc_viz_cam(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                     dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_hw) return dc_set_error(err, DC_ERR_ARG, "cam: NULL image or map");
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "cam", &v, err));
    int node, shape[4], target, param = -1;
    float *act = NULL, *wt = NULL, *low = NULL;
    dc_status s;
    if ((s = dc_viz_find_layer(&v, o->layer, m->last_conv, &node, shape, err)) != DC_OK ||
        (s = cam_weight(&v, node, &param, err)) != DC_OK ||
        (s = dc_viz_classify(&v, image, o->target, &target, info, err)) != DC_OK)
        goto done;
    info->node = node;
    const int LC = shape[1];
    const size_t hw = (size_t)shape[2] * shape[3];
    act = malloc(sizeof(float) * hw * LC * v.B);
    wt = malloc(sizeof(float) * (size_t)LC * v.K);
    low = calloc(hw, sizeof(float));
    if (!act || !wt || !low) {
        s = dc_set_error(err, DC_ERR_OOM, "cam: out of memory");
        goto done;
    }
    if (dc_graph_read(v.g, node, act) != DC_OK) {
        s = dc_viz_graph_fail(&v, err);
        goto done;
    }
    if (dc_params_read(dc_graph_params(v.g), param, wt) != DC_OK) {
        s = dc_set_error(err, dc_params_error(dc_graph_params(v.g))->status, "cam: %s",
                         dc_params_error(dc_graph_params(v.g))->msg);
        goto done;
    }
    for (int c = 0; c < LC; c++) {
        const float wc = wt[(size_t)target * LC + c];
        for (size_t p = 0; p < hw; p++)
            low[p] += wc * act[(size_t)c * hw + p];
    }
    dc_viz_upsample_bilinear(low, shape[2], shape[3], map_hw, v.H, v.W);
    s = dc_viz_map_check(map_hw, (size_t)v.H * v.W, "cam", info, err);
done:
    free(act);
    free(wt);
    free(low);
    dc_viz_close(&v);
    return s;
}
