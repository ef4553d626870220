/* Seeded geometric augmentation: flip, rotation, scale and translation about the image
 * centre, applied by inverse mapping with bilinear sampling. */
#include <math.h>

#include "data/data_internal.h"

typedef struct similarity {
    int flip;
    float tx, ty;  /* pixels */
    float scale;
    float angle;   /* radians */
} similarity;

void dc_augment_config_identity(dc_augment_config *cfg) {
    cfg->hflip_prob = 0.0f;
    cfg->max_translate = 0.0f;
    cfg->scale_min = cfg->scale_max = 1.0f;
    cfg->max_rotate_deg = 0.0f;
    cfg->fill = 1.0f;
    cfg->geometric_prob = 1.0f;
    cfg->fine = NULL;
}

dc_status dc_augment_config_check(const dc_augment_config *cfg, dc_error *err) {
    if (!cfg) return dc_set_error(err, DC_ERR_ARG, "augment config: NULL");
    if (!(cfg->hflip_prob >= 0.0f && cfg->hflip_prob <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "augment config: hflip_prob %g is outside [0, 1]",
                            (double)cfg->hflip_prob);
    if (!(cfg->max_translate >= 0.0f && isfinite(cfg->max_translate)))
        return dc_set_error(err, DC_ERR_ARG, "augment config: max_translate %g must be >= 0",
                            (double)cfg->max_translate);
    if (!(cfg->scale_min > 0.0f && cfg->scale_max >= cfg->scale_min && isfinite(cfg->scale_max)))
        return dc_set_error(err, DC_ERR_ARG,
                            "augment config: scale range [%g, %g] must satisfy 0 < min <= max",
                            (double)cfg->scale_min, (double)cfg->scale_max);
    if (!(cfg->max_rotate_deg >= 0.0f && cfg->max_rotate_deg <= 180.0f))
        return dc_set_error(err, DC_ERR_ARG,
                            "augment config: max_rotate_deg %g is outside [0, 180]",
                            (double)cfg->max_rotate_deg);
    if (!(cfg->geometric_prob >= 0.0f && cfg->geometric_prob <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "augment config: geometric_prob %g is outside [0, 1]",
                            (double)cfg->geometric_prob);
    if (!isfinite(cfg->fill))
        return dc_set_error(err, DC_ERR_ARG, "augment config: fill must be finite");
    return DC_OK;
}

/* Always five draws, in this order, whatever the config (a sixth when geometric_prob < 1,
 * so that configs without it draw the streams they always drew). */
static similarity draw_similarity(const dc_augment_config *cfg, dc_rng *rng) {
    float u_flip = dc_rng_uniform(rng), u_tx = dc_rng_uniform(rng), u_ty = dc_rng_uniform(rng);
    float u_scale = dc_rng_uniform(rng), u_angle = dc_rng_uniform(rng);
    similarity t;
    t.flip = u_flip < cfg->hflip_prob;
    if (cfg->geometric_prob < 1.0f && !(dc_rng_uniform(rng) < cfg->geometric_prob)) {
        t.tx = t.ty = t.angle = 0.0f;
        t.scale = 1.0f;
        return t;
    }
    t.tx = (2.0f * u_tx - 1.0f) * cfg->max_translate;
    t.ty = (2.0f * u_ty - 1.0f) * cfg->max_translate;
    t.scale = cfg->scale_min + u_scale * (cfg->scale_max - cfg->scale_min);
    t.angle = (2.0f * u_angle - 1.0f) * cfg->max_rotate_deg * (3.14159265358979f / 180.0f);
    return t;
}

static int is_identity(const similarity *t) {
    return !t->flip && t->tx == 0.0f && t->ty == 0.0f && t->scale == 1.0f && t->angle == 0.0f;
}

static float pixel_or_fill(const float *plane, int h, int w, int x, int y, float fill) {
    if (x < 0 || y < 0 || x >= w || y >= h) return fill;
    return plane[(size_t)y * (size_t)w + (size_t)x];
}

static float sample_bilinear(const float *plane, int h, int w, float sx, float sy, float fill) {
    float fx0 = floorf(sx), fy0 = floorf(sy);
    if (!(fabsf(fx0) < 1e6f && fabsf(fy0) < 1e6f)) return fill; /* far away, or NaN */
    int x0 = (int)fx0, y0 = (int)fy0;
    float fx = sx - fx0, fy = sy - fy0;
    float a = pixel_or_fill(plane, h, w, x0, y0, fill);
    if (fx == 0.0f && fy == 0.0f) return a; /* exact on the grid */
    float b = pixel_or_fill(plane, h, w, x0 + 1, y0, fill);
    float c = pixel_or_fill(plane, h, w, x0, y0 + 1, fill);
    float d = pixel_or_fill(plane, h, w, x0 + 1, y0 + 1, fill);
    return (1.0f - fy) * ((1.0f - fx) * a + fx * b) + fy * ((1.0f - fx) * c + fx * d);
}

/* dst(q) = src(p) where q = R(angle) * scale * flip(p) + t, about the centre: so
 * p = flip(R(-angle) * (q - t) / scale). */
static void apply_similarity(const float *src, float *dst, int c, int h, int w,
                             const similarity *t, float fill) {
    float cx = 0.5f * (float)(w - 1), cy = 0.5f * (float)(h - 1);
    float cs = cosf(t->angle) / t->scale, sn = sinf(t->angle) / t->scale;
    float flip = t->flip ? -1.0f : 1.0f;
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++) {
        float v = (float)y - cy - t->ty;
        for (int x = 0; x < w; x++) {
            float u = (float)x - cx - t->tx;
            float sx = flip * (cs * u + sn * v) + cx;
            float sy = (-sn * u + cs * v) + cy;
            for (int ch = 0; ch < c; ch++)
                dst[(size_t)ch * plane + (size_t)y * (size_t)w + (size_t)x] =
                    sample_bilinear(src + (size_t)ch * plane, h, w, sx, sy, fill);
        }
    }
}

/* A draw and the DC_AUGMENT_PARAMS numbers a conditioned model reads for it. */
static similarity draw_with_params(const dc_augment_config *cfg, dc_rng *rng, int h, int w,
                                   float *params) {
    similarity t = draw_similarity(cfg, rng);
    params[0] = t.flip ? 1.0f : 0.0f;
    params[1] = t.tx / (float)w;
    params[2] = t.ty / (float)h;
    params[3] = logf(t.scale);
    params[4] = t.angle;
    return t;
}

void dc_augment_image_params(const float *src, float *dst, int c, int h, int w,
                             const dc_augment_config *cfg, dc_rng *rng, float *params) {
    similarity t = draw_with_params(cfg, rng, h, w, params);
    if (is_identity(&t)) {
        memcpy(dst, src, (size_t)c * (size_t)h * (size_t)w * sizeof(float));
        return;
    }
    apply_similarity(src, dst, c, h, w, &t, cfg->fill);
}

dc_status dc_augment_image_fine(const float *src, const float *fine_src, float *dst, int c,
                                int size, const dc_augment_config *cfg, dc_rng *rng,
                                float *params, dc_error *err) {
    const dc_dataset *fine = cfg->fine;
    if (!fine || fine->c != c || fine->h != fine->w || size < 1 || fine->h % size != 0)
        return dc_set_error(err, DC_ERR_SHAPE,
                            "augment: the fine copy of the data holds %dx%dx%d images, not a "
                            "multiple of the %dx%dx%d images it augments",
                            fine ? fine->c : 0, fine ? fine->h : 0, fine ? fine->w : 0, c, size,
                            size);
    const int k = fine->h / size, big = fine->h;
    similarity t = draw_with_params(cfg, rng, size, size, params);
    if (is_identity(&t)) {
        memcpy(dst, src, (size_t)c * (size_t)size * (size_t)size * sizeof(float));
        return DC_OK;
    }
    /* the same transform in the fine grid: only the shift is in pixels */
    t.tx *= (float)k;
    t.ty *= (float)k;
    float *tmp = malloc(sizeof(float) * (size_t)c * (size_t)big * (size_t)big);
    if (!tmp) return dc_set_error(err, DC_ERR_OOM, "augment: out of memory");
    apply_similarity(fine_src, tmp, c, big, big, &t, cfg->fill);
    dc_status s = dc_image_fit(tmp, c, big, big, dst, size, err);
    free(tmp);
    return s;
}

void dc_augment_image(const float *src, float *dst, int c, int h, int w,
                      const dc_augment_config *cfg, dc_rng *rng) {
    float params[DC_AUGMENT_PARAMS];
    dc_augment_image_params(src, dst, c, h, w, cfg, rng, params);
}

void dc_augment_batch(const float *src, float *dst, int n, int c, int h, int w,
                      const dc_augment_config *cfg, dc_rng *rng) {
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++)
        dc_augment_image(src + (size_t)i * per, dst + (size_t)i * per, c, h, w, cfg, rng);
}
