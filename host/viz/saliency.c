/* Saliency (Simonyan et al. 2014): max over channels of |d score / d pixel|, and
 * SmoothGrad (Smilkov et al. 2017): the same map averaged over noisy copies of the image.
 * The noisy copies go through the graph a batch at a time, each row seeded with its own
 * one-hot class gradient. */
#include "viz/viz_internal.h"

dc_status dc_viz_saliency(dc_model *m, const float *image, const dc_viz_opts *o, float *map_hw,
                          dc_viz_info *info, dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image || !map_hw) return dc_set_error(err, DC_ERR_ARG, "saliency: NULL image or map");
    if (o->samples < 0 || (o->samples > 0 && !(o->noise >= 0.0f)))
        return dc_set_error(err, DC_ERR_ARG, "saliency: --samples %d and --noise %g must be >= 0",
                            o->samples, (double)o->noise);
    const int samples = o->samples;
    viz_ctx v;
    DC_TRY(dc_viz_open(m, samples > 0 ? (samples < o->batch ? samples : o->batch) : 0,
                    samples > 0 ? "smoothgrad" : "saliency", &v, err));
    const size_t hw = (size_t)v.H * v.W;
    int target;
    float *grad = malloc(sizeof(float) * v.chw * v.B), *batch = malloc(sizeof(float) * v.chw * v.B);
    float *one = malloc(sizeof(float) * hw);
    int *targets = malloc(sizeof(int) * v.B);
    double *acc = calloc(hw, sizeof(double));
    dc_status s = DC_OK;
    if (!grad || !batch || !one || !targets || !acc) {
        s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", v.method);
        goto done;
    }
    if ((s = dc_viz_classify(&v, image, o->target, &target, info, err)) != DC_OK) goto done;
    for (int i = 0; i < v.B; i++)
        targets[i] = target;
    if (samples == 0) {
        /* dc_viz_classify left the image's forward pass in the graph */
        if ((s = dc_viz_backward_scores(&v, targets, 1, DC_RELU_NORMAL, grad, err)) != DC_OK)
            goto done;
        dc_viz_abs_max_channels(grad, v.C, v.H, v.W, map_hw);
    } else {
        float lo = image[0], hi = image[0];
        for (size_t i = 1; i < v.chw; i++) {
            if (image[i] < lo) lo = image[i];
            if (image[i] > hi) hi = image[i];
        }
        const float std = o->noise * (hi - lo);
        dc_rng rng;
        dc_rng_seed(&rng, o->seed);
        for (int done_n = 0; done_n < samples;) {
            const int cnt = samples - done_n < v.B ? samples - done_n : v.B;
            for (int i = 0; i < cnt; i++)
                for (size_t j = 0; j < v.chw; j++)
                    batch[(size_t)i * v.chw + j] = image[j] + std * dc_rng_normal(&rng);
            if ((s = dc_viz_forward(&v, batch, cnt, -1, err)) != DC_OK ||
                (s = dc_viz_backward_scores(&v, targets, cnt, DC_RELU_NORMAL, grad, err)) != DC_OK)
                goto done;
            for (int i = 0; i < cnt; i++) {
                dc_viz_abs_max_channels(grad + (size_t)i * v.chw, v.C, v.H, v.W, one);
                for (size_t p = 0; p < hw; p++)
                    acc[p] += one[p];
            }
            done_n += cnt;
        }
        for (size_t p = 0; p < hw; p++)
            map_hw[p] = (float)(acc[p] / samples);
    }
    s = dc_viz_map_check(map_hw, hw, v.method, info, err);
done:
    free(grad);
    free(batch);
    free(one);
    free(targets);
    free(acc);
    dc_viz_close(&v);
    return s;
}
