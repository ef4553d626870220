/* The first conv layer's kernels, each stretched to [0, 1] by its own range, ready for a
 * grid: the one layer whose weights can be read directly as images. */
#include "viz/viz_internal.h"

dc_status dc_viz_filters(dc_model *m, float *out, int *count, int *channels, int *k,
                         dc_error *err) {
    if (!m || !m->g) return dc_set_error(err, DC_ERR_ARG, "filters: no model");
    dc_node_info info;
    int node = -1;
    for (int i = 0; i < dc_graph_node_count(m->g); i++)
        if (dc_graph_node_info(m->g, i, &info) == DC_OK && !strcmp(info.op_name, "conv2d")) {
            node = i;
            break;
        }
    if (node < 0)
        return dc_set_error(err, DC_ERR_NOT_FOUND, "filters: the model has no conv2d layer");
    dc_params *p = dc_graph_params(m->g);
    const dc_param *w = dc_params_get(p, info.param[0]);
    if (!w || w->ndim != 4)
        return dc_set_error(err, DC_ERR_FORMAT, "filters: conv '%s' has no 4-D weight", info.name);
    const int OC = w->shape[0], C = w->shape[1], K = w->shape[2];
    if (count) *count = OC;
    if (channels) *channels = C;
    if (k) *k = K;
    if (!out) return DC_OK;
    if (dc_params_read(p, info.param[0], out) != DC_OK)
        return dc_set_error(err, dc_params_error(p)->status, "filters: %s",
                            dc_params_error(p)->msg);
    const size_t per = (size_t)C * K * K;
    for (int o = 0; o < OC; o++) {
        float *f = out + (size_t)o * per, lo = f[0], hi = f[0];
        for (size_t i = 0; i < per; i++) {
            if (!isfinite(f[i]))
                return dc_set_error(err, DC_ERR_NUMERIC, "filters: kernel %d of '%s' holds %g", o,
                                    info.name, (double)f[i]);
            if (f[i] < lo) lo = f[i];
            if (f[i] > hi) hi = f[i];
        }
        for (size_t i = 0; i < per; i++)
            f[i] = hi > lo ? (f[i] - lo) / (hi - lo) : 0.5f;
    }
    return DC_OK;
}
