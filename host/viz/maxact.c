/* Maximally activating images: run a dataset through the graph up to one layer, score
 * each image by the maximum of one channel, keep the best few, and say where in the
 * image the winning unit looks (its receptive field, from the conv / pool geometry). */
#include "viz/viz_internal.h"

static int keeps_geometry(const char *op) {
    static const char *const ops[] = {"relu",        "leaky_relu", "tanh",          "sigmoid",
                                      "batchnorm2d", "dropout",    "gaussian_noise"};
    for (size_t i = 0; i < DC_ARRAY_LEN(ops); i++)
        if (!strcmp(op, ops[i])) return 1;
    return 0;
}

dc_status dc_viz_receptive_field(dc_model *m, int node, int *size, int *jump, int *offset,
                                 dc_error *err) {
    if (!m || !m->g) return dc_set_error(err, DC_ERR_ARG, "receptive field: no model");
    int chain[256], n = 0;
    /* walk back to the image input along input 0 */
    for (int cur = node; cur != m->x;) {
        dc_node_info info;
        if (cur < 0 || dc_graph_node_info(m->g, cur, &info) != DC_OK)
            return dc_set_error(err, DC_ERR_ARG,
                                "receptive field: node %d does not lead to the input", node);
        if (n == (int)DC_ARRAY_LEN(chain))
            return dc_set_error(err, DC_ERR_UNSUPPORTED,
                                "receptive field: path longer than %d nodes", n);
        if (strcmp(info.op_name, "conv2d") && strcmp(info.op_name, "maxpool2d") &&
            !keeps_geometry(info.op_name))
            return dc_set_error(err, DC_ERR_UNSUPPORTED,
                                "receptive field of '%s': cannot follow %s '%s' (only conv2d, "
                                "maxpool2d and elementwise ops)",
                                dc_graph_node_name(m->g, node), info.op_name, info.name);
        chain[n++] = cur;
        if (info.n_inputs < 1)
            return dc_set_error(err, DC_ERR_ARG,
                                "receptive field: '%s' is not computed from the "
                                "image input",
                                dc_graph_node_name(m->g, node));
        cur = info.inputs[0];
    }
    int J = 1, off = 0, R = 1;
    for (int i = n - 1; i >= 0; i--) {
        dc_node_info info;
        dc_graph_node_info(m->g, chain[i], &info);
        if (keeps_geometry(info.op_name)) continue;
        /* unit p reads units [p s - pad, p s - pad + k - 1] of the layer below */
        off -= info.pad * J;
        R += (info.k - 1) * J;
        J *= info.stride;
    }
    if (size) *size = R;
    if (jump) *jump = J;
    if (offset) *offset = off;
    return DC_OK;
}

dc_status dc_viz_maxact(dc_model *m, const dc_dataset *ds, const dc_viz_opts *o, dc_viz_hit *hits,
                        int *count, dc_error *err) {
    dc_viz_opts def;
    if (!o) dc_viz_opts_default(&def), o = &def;
    if (count) *count = 0;
    if (!ds || !hits || !count) return dc_set_error(err, DC_ERR_ARG, "maxact: NULL argument");
    if (o->top < 1) return dc_set_error(err, DC_ERR_ARG, "maxact: --top %d must be >= 1", o->top);
    if (ds->n < 1) return dc_set_error(err, DC_ERR_ARG, "maxact: dataset %s is empty", ds->source);
    int c, h, w;
    DC_TRY(dc_viz_model_geometry(m, &c, &h, &w, NULL, err));
    if (ds->c != c || ds->h != h || ds->w != w)
        return dc_set_error(err, DC_ERR_SHAPE,
                            "maxact: dataset %s holds %dx%dx%d images, the model takes %dx%dx%d",
                            ds->source, ds->c, ds->h, ds->w, c, h, w);
    viz_ctx v;
    DC_TRY(dc_viz_open(m, ds->n < o->batch ? ds->n : o->batch, "maxact", &v, err));
    int node, shape[4], R, J, off;
    float *act = NULL;
    dc_status s;
    if ((s = dc_viz_find_layer(&v, o->layer, m->last_conv, &node, shape, err)) != DC_OK ||
        (s = dc_viz_receptive_field(v.m, node, &R, &J, &off, err)) != DC_OK)
        goto done;
    const int LC = shape[1], lw = shape[3];
    if (o->channel < 0 || o->channel >= LC) {
        s = dc_set_error(err, DC_ERR_ARG, "maxact: --channel %d of layer '%s' must be in [0, %d)",
                         o->channel, dc_graph_node_name(v.g, node), LC);
        goto done;
    }
    const size_t hw = (size_t)shape[2] * shape[3], per = hw * LC;
    act = malloc(sizeof(float) * per * v.B);
    if (!act) {
        s = dc_set_error(err, DC_ERR_OOM, "maxact: out of memory");
        goto done;
    }
    int kept = 0;
    for (int i0 = 0; i0 < ds->n; i0 += v.B) {
        const int cnt = ds->n - i0 < v.B ? ds->n - i0 : v.B;
        if ((s = dc_viz_forward(&v, dc_dataset_image(ds, i0), cnt, node, err)) != DC_OK) goto done;
        if (dc_graph_read(v.g, node, act) != DC_OK) {
            s = dc_viz_graph_fail(&v, err);
            goto done;
        }
        for (int i = 0; i < cnt; i++) {
            const float *a = act + (size_t)i * per + (size_t)o->channel * hw;
            size_t best = 0;
            for (size_t p = 1; p < hw; p++)
                if (a[p] > a[best]) best = p;
            if (!isfinite(a[best])) {
                s = dc_set_error(err, DC_ERR_NUMERIC, "maxact: activation of item %d is %g", i0 + i,
                                 (double)a[best]);
                goto done;
            }
            /* insertion into the sorted top list; equal values keep the earlier item first */
            int pos = kept;
            while (pos > 0 && a[best] > hits[pos - 1].value)
                pos--;
            if (pos >= o->top) continue;
            if (kept < o->top) kept++;
            memmove(hits + pos + 1, hits + pos, sizeof *hits * (size_t)(kept - 1 - pos));
            dc_viz_hit hit;
            hit.index = i0 + i;
            hit.value = a[best];
            hit.y = (int)(best / (size_t)lw);
            hit.x = (int)(best % (size_t)lw);
            hit.y0 = hit.y * J + off;
            hit.x0 = hit.x * J + off;
            hit.y1 = hit.y0 + R;
            hit.x1 = hit.x0 + R;
            if (hit.y0 < 0) hit.y0 = 0;
            if (hit.x0 < 0) hit.x0 = 0;
            if (hit.y1 > h) hit.y1 = h;
            if (hit.x1 > w) hit.x1 = w;
            hits[pos] = hit;
        }
    }
    *count = kept;
done:
    free(act);
    dc_viz_close(&v);
    return s;
}
