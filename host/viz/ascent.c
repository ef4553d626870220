/* Class model visualization (Simonyan et al. 2014): gradient ascent on the image to
 * maximise a class score, from seeded noise, regularised as in Yosinski et al. 2015:
 * L2 decay, a Gaussian blur every few steps and a random jitter (circular shift) of the
 * image before each gradient, so the result does not lock onto one pixel grid. */
#include "viz/viz_internal.h"

/* Separable Gaussian blur of each [h, w] plane, borders replicated. tmp: h*w floats. */
static void gaussian_blur(float *img, int c, int h, int w, float sigma, float *tmp) {
    if (!(sigma > 0.0f)) return;
    int r = (int)ceilf(3.0f * sigma);
    if (r < 1) r = 1;
    if (r > 32) r = 32;
    float k[65];
    float sum = 0.0f;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] /= sum;
    for (int ch = 0; ch < c; ch++) {
        float *p = img + (size_t)ch * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float a = 0.0f;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                    a += k[i + r] * p[y * w + xx];
                }
                tmp[y * w + x] = a;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float a = 0.0f;
                for (int i = -r; i <= r; i++) {
                    int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                    a += k[i + r] * tmp[yy * w + x];
                }
                p[y * w + x] = a;
            }
    }
}

/* dst(y, x) = src((y - dy) mod h, (x - dx) mod w) on each plane. */
static void roll(const float *src, float *dst, int c, int h, int w, int dy, int dx) {
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            const int sy = ((y - dy) % h + h) % h;
            for (int x = 0; x < w; x++) {
                const int sx = ((x - dx) % w + w) % w;
                dst[((size_t)ch * h + y) * w + x] = src[((size_t)ch * h + sy) * w + sx];
            }
        }
}

static dc_status score_of(viz_ctx *v, const float *img, int target, float *scores, float *score,
                          dc_error *err) {
    DC_TRY(dc_viz_forward(v, img, 1, -1, err));
    DC_TRY(dc_viz_read_scores(v, scores, err));
    if (!isfinite(scores[target]))
        return dc_set_error(err, DC_ERR_NUMERIC, "ascent: the score of class %d became %g", target,
                            (double)scores[target]);
    *score = scores[target];
    return DC_OK;
}

dc_status dc_viz_ascent(dc_model *m, const dc_viz_opts *o, float *image_out, dc_viz_info *info,
                        dc_error *err) {
    dc_viz_opts def;
    dc_viz_info local;
    dc_viz_defaults(&o, &def, &info, &local);
    if (!image_out) return dc_set_error(err, DC_ERR_ARG, "ascent: NULL output image");
    if (o->steps < 0 || !(o->lr >= 0.0f) || !(o->l2 >= 0.0f && o->l2 < 1.0f) || o->blur_every < 0 ||
        !(o->blur_sigma >= 0.0f) || o->jitter < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "ascent: --steps %d, --lr %g, --l2 %g (< 1), --blur-every %d, "
                            "--blur-sigma %g and --jitter %d must be >= 0",
                            o->steps, (double)o->lr, (double)o->l2, o->blur_every,
                            (double)o->blur_sigma, o->jitter);
    viz_ctx v;
    DC_TRY(dc_viz_open(m, 0, "ascent", &v, err));
    const int target = o->target;
    dc_status s = DC_OK;
    float *x = image_out, *xr = malloc(sizeof(float) * v.chw),
          *gr = malloc(sizeof(float) * v.chw * v.B);
    float *g = malloc(sizeof(float) * v.chw), *tmp = malloc(sizeof(float) * (size_t)v.H * v.W);
    float *scores = malloc(sizeof(float) * (size_t)v.K * v.B);
    if (!xr || !gr || !g || !tmp || !scores) {
        s = dc_set_error(err, DC_ERR_OOM, "ascent: out of memory");
        goto done;
    }
    if (target < 0 || target >= v.K) {
        s = dc_set_error(err, DC_ERR_ARG, "ascent: --class %d must be in [0, %d)", target, v.K);
        goto done;
    }
    info->target = target;
    dc_rng rng;
    dc_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < v.chw; i++)
        x[i] = 0.1f * dc_rng_normal(&rng);
    if ((s = score_of(&v, x, target, scores, &info->score_start, err)) != DC_OK) goto done;
    for (int step = 0; step < o->steps; step++) {
        const int span = 2 * o->jitter + 1;
        const int dy = (int)dc_rng_below(&rng, (uint32_t)span) - o->jitter;
        const int dx = (int)dc_rng_below(&rng, (uint32_t)span) - o->jitter;
        roll(x, xr, v.C, v.H, v.W, dy, dx);
        if ((s = dc_viz_forward(&v, xr, 1, -1, err)) != DC_OK ||
            (s = dc_viz_backward_scores(&v, &target, 1, DC_RELU_NORMAL, gr, err)) != DC_OK)
            goto done;
        roll(gr, g, v.C, v.H, v.W, -dy, -dx);
        double mean = 0.0;
        for (size_t i = 0; i < v.chw; i++)
            mean += fabsf(g[i]);
        mean /= (double)v.chw;
        if (!isfinite(mean)) {
            s = dc_set_error(err, DC_ERR_NUMERIC, "ascent: non-finite gradient at step %d", step);
            goto done;
        }
        const float scale = mean > 0.0 ? (float)(o->lr / mean) : 0.0f;
        for (size_t i = 0; i < v.chw; i++) {
            float t = (1.0f - o->l2) * (x[i] + scale * g[i]);
            x[i] = t < -1.0f ? -1.0f : t > 1.0f ? 1.0f : t;
        }
        if (o->blur_every > 0 && (step + 1) % o->blur_every == 0)
            gaussian_blur(x, v.C, v.H, v.W, o->blur_sigma, tmp);
    }
    if ((s = score_of(&v, x, target, scores, &info->score, err)) != DC_OK) goto done;
    dc_viz_softmax(scores, v.K, scores);
    info->prob = scores[target];
    info->predicted = dc_viz_argmax(scores, v.K);
    s = dc_viz_map_check(x, v.chw, "ascent", info, err);
done:
    free(xr);
    free(gr);
    free(g);
    free(tmp);
    free(scores);
    dc_viz_close(&v);
    return s;
}
