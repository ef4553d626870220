/* Model presets built on the graph API.
 *
 * Encoder (all encoder-decoder kinds): `blocks` x [conv k/1/k÷2 -> relu -> maxpool 2],
 * channels base, 2*base, 4*base, ... Decoder: dense -> relu -> reshape to the encoder's
 * last feature map -> `blocks` transposed convs (k, stride 2, pad k÷2, output pad 1: each
 * doubles the size) with relu between -> tanh. With `tied`, decoder block i reuses the
 * kernel of the mirrored encoder conv (PyTorch's conv and transposed-conv layouts
 * coincide for that pairing: [C_enc_out, C_enc_in, k, k]). */
#include <math.h>

#include "deconv/model.h"
#include "internal.h"

static const char *const mask_names[] = {"none", "bottom", "top", "left", "right", "box", "random"};

const char *dc_mask_name(dc_mask_kind m) {
    return (unsigned)m < DC_ARRAY_LEN(mask_names) ? mask_names[m] : "unknown";
}

dc_status dc_mask_parse(const char *name, dc_mask_kind *out, dc_error *err) {
    for (unsigned i = 0; name && i < DC_ARRAY_LEN(mask_names); i++)
        if (!strcmp(name, mask_names[i])) {
            *out = (dc_mask_kind)i;
            return DC_OK;
        }
    return dc_set_error(err, DC_ERR_ARG,
                        "unknown mask '%s' (use none, bottom, top, left, right, box or random)",
                        name ? name : "(null)");
}

dc_status dc_model_spec_default(dc_model_spec *s, const char *kind, int channels, int size,
                                dc_error *err) {
    memset(s, 0, sizeof *s);
    if (!kind) kind = "complete";
    dc_strlcpy(s->kind, kind, sizeof s->kind);
    s->channels = channels > 0 ? channels : 1;
    s->size = size > 0 ? size : 64;
    s->kernel = 3;
    s->latent = 128;
    s->base = 32;
    s->blocks = 3;
    s->noise = 1.0f;
    s->mask = DC_MASK_BOTTOM;
    s->visible_weight = 0.1f;
    s->beta = 1.0f;
    s->glo_count = 0;
    s->classes = 10;
    if (!strcmp(kind, "complete")) {
    } else if (!strcmp(kind, "vae")) {
        s->mask = DC_MASK_NONE;
        s->noise = 0.0f;
        s->loss_full = 1;
    } else if (!strcmp(kind, "glo")) {
        s->mask = DC_MASK_NONE;
        s->noise = 0.0f;
        s->loss_full = 1;
        s->latent = 32;
    } else if (!strcmp(kind, "classifier")) {
        s->mask = DC_MASK_NONE;
        s->noise = 0.0f;
        s->base = 32;
        s->blocks = 3;
        s->batchnorm = 1;
    } else {
        return dc_set_error(err, DC_ERR_ARG,
                            "unknown model '%s' (use complete, vae, glo or classifier)", kind);
    }
    return DC_OK;
}

dc_status dc_model_spec_check(const dc_model_spec *s, dc_error *err) {
    int gen = strcmp(s->kind, "classifier") != 0;
    if (s->channels != 1 && s->channels != 3)
        return dc_set_error(err, DC_ERR_ARG, "--channels %d: use 1 or 3", s->channels);
    if (s->blocks < 1 || s->blocks > 6)
        return dc_set_error(err, DC_ERR_ARG, "--blocks %d: use 1 to 6", s->blocks);
    if (s->base < 1 || s->base > 1024)
        return dc_set_error(err, DC_ERR_ARG, "--base %d: use 1 to 1024", s->base);
    if (s->kernel < 1 || s->kernel % 2 == 0 || s->kernel > 11)
        return dc_set_error(err, DC_ERR_ARG, "--kernel %d: use an odd size from 1 to 11", s->kernel);
    if (gen && (s->size % (1 << s->blocks) || (s->size >> s->blocks) < 1))
        return dc_set_error(err, DC_ERR_SHAPE,
                            "--size %d must be divisible by 2^blocks = %d (%d pooling blocks)", s->size,
                            1 << s->blocks, s->blocks);
    if (!gen && (s->size >> (s->blocks - 1)) < 1)
        return dc_set_error(err, DC_ERR_SHAPE, "--size %d is too small for %d blocks", s->size,
                            s->blocks);
    if (gen && (s->latent < 1 || s->latent > 65536))
        return dc_set_error(err, DC_ERR_ARG, "--latent %d: use 1 to 65536", s->latent);
    if (!(s->noise >= 0) || !(s->visible_weight >= 0) || !(s->beta >= 0))
        return dc_set_error(err, DC_ERR_ARG, "--noise, --visible-weight and --beta must be >= 0");
    if (!strcmp(s->kind, "glo") && s->glo_count < 1)
        return dc_set_error(err, DC_ERR_ARG, "glo: the number of training images must be >= 1");
    if (!gen && s->classes < 2)
        return dc_set_error(err, DC_ERR_ARG, "classifier: --classes %d must be >= 2", s->classes);
    if (!(s->dropout >= 0 && s->dropout < 1))
        return dc_set_error(err, DC_ERR_ARG, "--dropout %g must be in [0, 1)", (double)s->dropout);
    return DC_OK;
}

char *dc_model_spec_to_json(const dc_model_spec *s) {
    char *buf = malloc(1024);
    if (!buf) return NULL;
    snprintf(buf, 1024,
             "{\"kind\":\"%s\",\"channels\":%d,\"size\":%d,\"base\":%d,\"blocks\":%d,\"kernel\":%d,"
             "\"latent\":%d,\"tied\":%d,\"noise\":%.9g,\"mask\":\"%s\",\"visible_weight\":%.9g,"
             "\"loss_full\":%d,\"beta\":%.9g,\"glo_count\":%d,\"classes\":%d,\"batchnorm\":%d,"
             "\"dropout\":%.9g}",
             s->kind, s->channels, s->size, s->base, s->blocks, s->kernel, s->latent, s->tied,
             (double)s->noise, dc_mask_name(s->mask), (double)s->visible_weight, s->loss_full,
             (double)s->beta, s->glo_count, s->classes, s->batchnorm, (double)s->dropout);
    return buf;
}

/* A tiny reader for the flat object written above (no nesting, no escapes). */
static const char *json_find(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? p + strlen(pat) : NULL;
}

dc_status dc_model_spec_from_json(const char *json, dc_model_spec *s, dc_error *err) {
    if (!json) return dc_set_error(err, DC_ERR_FORMAT, "model spec: missing");
    const char *k = json_find(json, "kind");
    char kind[16] = {0};
    if (!k || sscanf(k, " \"%15[^\"]\"", kind) != 1)
        return dc_set_error(err, DC_ERR_FORMAT, "model spec: no \"kind\" in %.80s", json);
    dc_model_spec d;
    DC_TRY(dc_model_spec_default(&d, kind, 1, 64, err));
#define GETI(f)                                                       \
    do {                                                              \
        const char *p_ = json_find(json, #f);                         \
        if (p_ && sscanf(p_, "%d", &d.f) != 1)                        \
            return dc_set_error(err, DC_ERR_FORMAT, "model spec: bad \"" #f "\""); \
    } while (0)
#define GETF(f)                                                       \
    do {                                                              \
        const char *p_ = json_find(json, #f);                         \
        if (p_ && sscanf(p_, "%f", &d.f) != 1)                        \
            return dc_set_error(err, DC_ERR_FORMAT, "model spec: bad \"" #f "\""); \
    } while (0)
    GETI(channels);
    GETI(size);
    GETI(base);
    GETI(blocks);
    GETI(kernel);
    GETI(latent);
    GETI(tied);
    GETF(noise);
    GETF(visible_weight);
    GETI(loss_full);
    GETF(beta);
    GETI(glo_count);
    GETI(classes);
    GETI(batchnorm);
    GETF(dropout);
#undef GETI
#undef GETF
    const char *m = json_find(json, "mask");
    char mask[16] = {0};
    if (m && sscanf(m, " \"%15[^\"]\"", mask) == 1) DC_TRY(dc_mask_parse(mask, &d.mask, err));
    DC_TRY(dc_model_spec_check(&d, err));
    *s = d;
    return DC_OK;
}

/* ---- builders ---- */
static int encoder(dc_graph *g, const dc_model_spec *s, int x, int *convs) {
    int h = x, ch = s->base;
    char name[32];
    for (int b = 0; b < s->blocks; b++) {
        snprintf(name, sizeof name, "enc%d", b + 1);
        dc_name(g, name);
        h = dc_conv2d(g, h, ch, s->kernel, 1, s->kernel / 2);
        if (convs) convs[b] = h;
        h = dc_relu(g, h);
        h = dc_maxpool2d(g, h, 2, 2, 0);
        ch *= 2;
    }
    return h;
}

static int decoder(dc_graph *g, const dc_model_spec *s, int z) {
    const int top = s->base << (s->blocks - 1), side = s->size >> s->blocks;
    char name[32];
    dc_name(g, "dec_fc");
    int h = dc_dense(g, z, top * side * side);
    h = dc_relu(g, h);
    h = dc_reshape(g, h, top, side, side);
    for (int b = s->blocks - 1, i = 1; b >= 0; b--, i++) {
        const int out = b == 0 ? s->channels : s->base << (b - 1);
        snprintf(name, sizeof name, "dec%d", i);
        dc_name(g, name);
        if (s->tied) {
            char wname[32];
            snprintf(wname, sizeof wname, "enc%d.weight", b + 1);
            h = dc_conv_transpose2d_tied_param(g, h, wname, 2, s->kernel / 2, 1);
        } else {
            h = dc_conv_transpose2d(g, h, out, s->kernel, 2, s->kernel / 2, 1);
        }
        if (b > 0) h = dc_relu(g, h);
    }
    dc_name(g, "out");
    return dc_tanh(g, h);
}

static void model_reset_ids(dc_model *m) {
    m->x = m->target = m->weight = m->labels = m->index = m->latent = m->code = m->logvar = -1;
    m->noise = m->z_in = m->out = m->loss = m->recon = m->kl = m->last_conv = -1;
}

static dc_status build(dc_model *m, dc_error *err) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    if (m->decoder_only) {
        m->z_in = dc_input(g, "z", s->latent, 1, 1);
        m->latent = m->z_in;
        m->out = decoder(g, s, m->z_in);
    } else if (!strcmp(s->kind, "complete") || !strcmp(s->kind, "vae")) {
        m->x = dc_input(g, "x", C, S, S);
        m->target = dc_input(g, "target", C, S, S);
        m->weight = dc_input(g, "weight", C, S, S);
        int h = encoder(g, s, m->x, NULL);
        if (!strcmp(s->kind, "complete")) {
            dc_name(g, "enc_fc");
            m->code = dc_dense(g, h, s->latent);
            dc_name(g, "noise");
            m->noise = dc_gaussian_noise(g, m->code, s->noise, 1);
            m->latent = m->noise;
        } else {
            dc_name(g, "enc_mu");
            m->code = dc_dense(g, h, s->latent);
            dc_name(g, "enc_logvar");
            m->logvar = dc_dense(g, h, s->latent);
            dc_name(g, "sample");
            m->latent = dc_reparameterize(g, m->code, m->logvar, 0);
        }
        m->out = decoder(g, s, m->latent);
        dc_name(g, "recon_loss");
        m->recon = dc_mse_loss(g, m->out, m->target, m->weight);
        if (!strcmp(s->kind, "vae")) {
            dc_name(g, "kl_loss");
            m->kl = dc_gaussian_kl_loss(g, m->code, m->logvar);
            dc_name(g, "loss");
            /* KL is summed over latent dims; MSE is a per-pixel mean: divide so that
             * beta = 1 weighs them as a Gaussian likelihood summed over pixels would. */
            m->loss = dc_loss_sum(g, m->recon, 1.0f, m->kl, s->beta / (float)(C * S * S));
        } else {
            m->loss = m->recon;
        }
    } else if (!strcmp(s->kind, "glo")) {
        m->index = dc_input_int(g, "index");
        m->target = dc_input(g, "target", C, S, S);
        dc_name(g, "latents");
        m->latent = dc_embedding(g, m->index, s->glo_count, s->latent, 0.1f);
        m->code = m->latent;
        m->out = decoder(g, s, m->latent);
        dc_name(g, "recon_loss");
        m->recon = dc_mse_loss(g, m->out, m->target, -1);
        m->loss = m->recon;
    } else if (!strcmp(s->kind, "classifier")) {
        m->x = dc_input(g, "x", C, S, S);
        m->labels = dc_input_int(g, "labels");
        /* the explanation methods read d(score)/d(pixel); for a 1- or 3-channel input this
         * costs one small GEMM per step */
        dc_graph_require_grad(g, m->x);
        int h = m->x, ch = s->base;
        char name[32];
        for (int b = 0; b < s->blocks; b++) {
            for (int j = 0; j < 2; j++) {
                snprintf(name, sizeof name, "conv%d_%d", b + 1, j + 1);
                dc_name(g, name);
                h = dc_conv2d_ex(g, h, ch, s->kernel, 1, s->kernel / 2, !s->batchnorm);
                if (s->batchnorm) {
                    snprintf(name, sizeof name, "bn%d_%d", b + 1, j + 1);
                    dc_name(g, name);
                    h = dc_batchnorm2d(g, h, 0.1f, 1e-5f);
                }
                snprintf(name, sizeof name, "relu%d_%d", b + 1, j + 1);
                dc_name(g, name);
                h = dc_relu(g, h);
            }
            m->last_conv = h;
            if (b + 1 < s->blocks) {
                snprintf(name, sizeof name, "pool%d", b + 1);
                dc_name(g, name);
                h = dc_maxpool2d(g, h, 2, 2, 0);
            }
            ch *= 2;
        }
        dc_name(g, "gap");
        h = dc_global_avgpool(g, h);
        if (s->dropout > 0) h = dc_dropout(g, h, s->dropout);
        dc_name(g, "fc");
        m->out = dc_dense(g, h, s->classes);
        dc_name(g, "loss");
        m->loss = dc_softmax_xent_loss(g, m->out, m->labels);
    }
    if (dc_graph_finalize(g) != DC_OK)
        return dc_set_error(err, dc_graph_error(g)->status, "model %s: %s", s->kind,
                            dc_graph_error(g)->msg);
    return DC_OK;
}

static dc_status model_new(dc_backend *be, const dc_model_spec *spec, int batch, dc_params *shared,
                           int decoder_only, int fuse, dc_model **out, dc_error *err) {
    *out = NULL;
    DC_TRY(dc_model_spec_check(spec, err));
    if (decoder_only && !strcmp(spec->kind, "classifier"))
        return dc_set_error(err, DC_ERR_ARG, "a classifier has no decoder");
    dc_model *m = calloc(1, sizeof *m);
    if (!m) return dc_set_error(err, DC_ERR_OOM, "model: out of memory");
    m->spec = *spec;
    m->be = be;
    m->batch = batch;
    m->decoder_only = decoder_only;
    model_reset_ids(m);
    dc_status s = DC_OK;
    if (shared) {
        m->params = shared;
    } else {
        s = dc_params_create(be, &m->params);
        m->owns_params = 1;
        if (s != DC_OK) {
            dc_set_error(err, s, "model: cannot create parameters");
            goto fail;
        }
    }
    if ((s = dc_graph_create(m->params, batch, &m->g)) != DC_OK) {
        dc_set_error(err, s, "model: %s", dc_params_error(m->params)->msg);
        goto fail;
    }
    if (fuse) dc_graph_set_fusion(m->g, 1);
    if ((s = build(m, err)) != DC_OK) goto fail;
    *out = m;
    return DC_OK;
fail:
    dc_model_free(m);
    return s;
}

dc_status dc_model_create(dc_backend *be, const dc_model_spec *spec, int batch, dc_model **out,
                          dc_error *err) {
    if (!be || !spec || !out) return dc_set_error(err, DC_ERR_ARG, "dc_model_create: NULL argument");
    return model_new(be, spec, batch, NULL, 0, 0, out, err);
}

dc_status dc_model_create_training(dc_backend *be, const dc_model_spec *spec, int batch,
                                   dc_model **out, dc_error *err) {
    if (!be || !spec || !out)
        return dc_set_error(err, DC_ERR_ARG, "dc_model_create_training: NULL argument");
    return model_new(be, spec, batch, NULL, 0, 1, out, err);
}

dc_status dc_model_create_shared(dc_model *src, int batch, int decoder_only, dc_model **out,
                                 dc_error *err) {
    if (!src || !out) return dc_set_error(err, DC_ERR_ARG, "dc_model_create_shared: NULL argument");
    return model_new(src->be, &src->spec, batch, src->params, decoder_only, 0, out, err);
}

void dc_model_free(dc_model *m) {
    if (!m) return;
    dc_graph_free(m->g);
    if (m->owns_params) dc_params_free(m->params);
    free(m);
}

/* ---- masks ---- */
void dc_mask_make(dc_mask_kind kind, int h, int w, dc_rng *rng, float *mask) {
    int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
    switch (kind) {
    case DC_MASK_NONE: break;
    case DC_MASK_BOTTOM: y0 = h / 2, y1 = h, x0 = 0, x1 = w; break;
    case DC_MASK_TOP: y0 = 0, y1 = h / 2, x0 = 0, x1 = w; break;
    case DC_MASK_LEFT: y0 = 0, y1 = h, x0 = 0, x1 = w / 2; break;
    case DC_MASK_RIGHT: y0 = 0, y1 = h, x0 = w / 2, x1 = w; break;
    case DC_MASK_BOX: y0 = h / 4, y1 = h - h / 4, x0 = w / 4, x1 = w - w / 4; break;
    case DC_MASK_RANDOM: {
        int bh = h / 4 + (int)dc_rng_below(rng, (uint32_t)(h / 4 + 1));
        int bw = w / 4 + (int)dc_rng_below(rng, (uint32_t)(w / 4 + 1));
        y0 = (int)dc_rng_below(rng, (uint32_t)(h - bh + 1));
        x0 = (int)dc_rng_below(rng, (uint32_t)(w - bw + 1));
        y1 = y0 + bh, x1 = x0 + bw;
        break;
    }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) mask[y * w + x] = (y >= y0 && y < y1 && x >= x0 && x < x1) ? 1.0f : 0.0f;
}

void dc_mask_apply(const float *img, const float *mask, int c, int h, int w, float fill, float vw,
                   int loss_full, float *masked, float *weight) {
    const int hw = h * w;
    for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < hw; p++) {
            const float hidden = mask[p];
            if (masked) masked[ch * hw + p] = hidden > 0.5f ? fill : img[ch * hw + p];
            if (weight) weight[ch * hw + p] = loss_full ? 1.0f : (hidden > 0.5f ? 1.0f : vw);
        }
}
