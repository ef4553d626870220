/* Occlusion sensitivity (Zeiler & Fergus 2014): hide a square of the image and see how
 * much the probability of the class drops. The occluded copies go through a larger-batch
 * graph that shares the model's parameters. */
#include "viz/viz_internal.h"

/* Patch origins along one axis: 0, stride, ... and the last one flush with the edge. */
static int positions(int size, int patch, int stride, int *pos) {
    int n = 0;
    if (patch >= size) {
        pos[n++] = 0;
        return n;
    }
    for (int p = 0; p + patch <= size; p += stride)
        pos[n++] = p;
    if (pos[n - 1] + patch < size) pos[n++] = size - patch;
    return n;
}

dc_status dc_viz_occlusion(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                           dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_hw) return dc_set_error(err, DC_ERR_ARG, "occlusion: NULL image or map");
    if (o->patch < 1 || o->stride < 1)
        return dc_set_error(err, DC_ERR_ARG, "occlusion: --patch %d and --stride %d must be >= 1",
                            o->patch, o->stride);
    int c, h, w, k;
    DC_TRY(dc_viz_model_geometry(m, &c, &h, &w, &k, err));
    (void)c, (void)k;
    int *ys = malloc(sizeof(int) * (size_t)(h + 1)), *xs = malloc(sizeof(int) * (size_t)(w + 1));
    if (!ys || !xs) {
        free(ys);
        free(xs);
        return dc_set_error(err, DC_ERR_OOM, "occlusion: out of memory");
    }
    const int ny = positions(h, o->patch, o->stride, ys),
              nx = positions(w, o->patch, o->stride, xs);
    const int total = ny * nx, ph = o->patch < h ? o->patch : h, pw = o->patch < w ? o->patch : w;
    viz_ctx v;
    dc_status s = dc_viz_open(m, total < o->batch ? total : o->batch, "occlusion", &v, err);
    if (s != DC_OK) {
        free(ys);
        free(xs);
        return s;
    }
    const size_t hw = (size_t)h * w;
    float *batch = malloc(sizeof(float) * v.chw * v.B), *scores = malloc(sizeof(float) * v.K * v.B);
    float *probs = malloc(sizeof(float) * v.K);
    double *sum = calloc(hw, sizeof(double));
    int *cover = calloc(hw, sizeof(int));
    int target;
    if (!batch || !scores || !probs || !sum || !cover) {
        s = dc_set_error(err, DC_ERR_OOM, "occlusion: out of memory");
        goto done;
    }
    if ((s = dc_viz_classify(&v, image, o->target, &target, info, err)) != DC_OK) goto done;
    const double p0 = info->prob;
    for (int w0 = 0; w0 < total;) {
        const int cnt = total - w0 < v.B ? total - w0 : v.B;
        for (int i = 0; i < cnt; i++) {
            const int y0 = ys[(w0 + i) / nx], x0 = xs[(w0 + i) % nx];
            float *d = batch + (size_t)i * v.chw;
            memcpy(d, image, sizeof(float) * v.chw);
            for (int ch = 0; ch < v.C; ch++)
                for (int y = y0; y < y0 + ph; y++)
                    for (int x = x0; x < x0 + pw; x++)
                        d[(size_t)ch * hw + (size_t)y * w + x] = o->fill;
        }
        if ((s = dc_viz_forward(&v, batch, cnt, -1, err)) != DC_OK ||
            (s = dc_viz_read_scores(&v, scores, err)) != DC_OK)
            goto done;
        for (int i = 0; i < cnt; i++) {
            dc_viz_softmax(scores + (size_t)i * v.K, v.K, probs);
            if (!isfinite(probs[target])) {
                s = dc_set_error(err, DC_ERR_NUMERIC, "occlusion: probability of class %d is %g",
                                 target, (double)probs[target]);
                goto done;
            }
            const double drop = p0 - probs[target];
            const int y0 = ys[(w0 + i) / nx], x0 = xs[(w0 + i) % nx];
            for (int y = y0; y < y0 + ph; y++)
                for (int x = x0; x < x0 + pw; x++) {
                    sum[(size_t)y * w + x] += drop;
                    cover[(size_t)y * w + x]++;
                }
        }
        w0 += cnt;
    }
    for (size_t p = 0; p < hw; p++)
        map_hw[p] = cover[p] ? (float)(sum[p] / cover[p]) : 0.0f;
    s = dc_viz_map_check(map_hw, hw, "occlusion", info, err);
done:
    free(ys);
    free(xs);
    free(batch);
    free(scores);
    free(probs);
    free(sum);
    free(cover);
    dc_viz_close(&v);
    return s;
}
