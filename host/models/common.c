/* Builders shared by the encoder-decoder kinds.
 *
 * Encoder: `blocks` x [conv k/1/k÷2 -> relu -> maxpool 2], channels base, 2*base, 4*base, ...
 * Decoder: dense -> relu -> reshape to the encoder's last feature map -> `blocks` transposed
 * convs (k, stride 2, pad k÷2, output pad 1: each doubles the size) with relu between ->
 * tanh. With `tied`, decoder block i reuses the kernel of the mirrored encoder conv
 * (PyTorch's conv and transposed-conv layouts coincide for that pairing:
 * [C_enc_out, C_enc_in, k, k]). */
#include <stdint.h>

#include "graph_internal.h"
#include "internal.h"
#include "models/kinds.h"

/* Every tensor shape is int-sized, and a model's parameters live in one arena: the limits
 * a spec must fit before anything is built. */
#define MODEL_MAX_TENSOR ((uint64_t)INT32_MAX)
#define MODEL_MAX_PARAMS ((uint64_t)1 << 31) /* 8 GiB of float32 weights */

/* a * b, or UINT64_MAX when it overflows (every factor here is >= 0 and < 2^31, so the
 * saturated value is always over the limits above). */
static uint64_t mul_sat(uint64_t a, uint64_t b) {
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}
static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static dc_status too_big(const dc_model_spec *s, const char *what, uint64_t n, uint64_t limit,
                         const char *options, dc_error *err) {
    char num[32];
    if (n == UINT64_MAX)
        snprintf(num, sizeof num, "more than 2^64");
    else
        snprintf(num, sizeof num, "%llu", (unsigned long long)n);
    return dc_set_error(err, DC_ERR_ARG,
                        "model too big: %s would hold %s values (the limit is %llu) with --size %d "
                        "--base %d --blocks %d --kernel %d%s",
                        what, num, (unsigned long long)limit, s->size, s->base, s->blocks,
                        s->kernel, options);
}

dc_status dc_model_check_sizes(const dc_model_spec *s, int has_decoder, int classifies,
                               int learned_latents, dc_error *err) {
    if (s->size < 1) return dc_set_error(err, DC_ERR_ARG, "--size %d must be >= 1", s->size);
    if (s->classes < 0 || s->glo_count < 0 || s->latent < 0)
        return dc_set_error(err, DC_ERR_ARG, "classes %d, latents %d, latent size %d must be >= 0",
                            s->classes, s->glo_count, s->latent);
    char latent[32], classes[32], latents[64];
    snprintf(latent, sizeof latent, " --latent %d", s->latent);
    snprintf(classes, sizeof classes, " --classes %d", s->classes);
    snprintf(latents, sizeof latents, " --latent %d and %d learned latents", s->latent,
             s->glo_count);
    const uint64_t k2 = (uint64_t)s->kernel * (uint64_t)s->kernel;
    uint64_t total = 0, ch_in = (uint64_t)s->channels, ch = (uint64_t)s->base;
    for (int b = 0; b < s->blocks; b++, ch_in = ch, ch = mul_sat(ch, 2)) {
        const uint64_t side = (uint64_t)s->size >> b;
        const uint64_t map = mul_sat(mul_sat(side, side), ch);
        if (map > MODEL_MAX_TENSOR)
            return too_big(s, "a feature map of one image", map, MODEL_MAX_TENSOR, "", err);
        const uint64_t w = mul_sat(mul_sat(ch_in, ch), k2);
        if (w > MODEL_MAX_TENSOR)
            return too_big(s, "a convolution's kernel", w, MODEL_MAX_TENSOR, "", err);
        /* classifiers have two convolutions per block, the decoder mirrors the encoder */
        total = add_sat(total, mul_sat(w, 2));
    }
    const uint64_t top = ch_in; /* the last block's channels */
    if (has_decoder) {
        const uint64_t side = (uint64_t)s->size >> s->blocks;
        const uint64_t fc_out = mul_sat(mul_sat(side, side), top);
        if (fc_out > MODEL_MAX_TENSOR)
            return too_big(s, "the decoder's first feature map", fc_out, MODEL_MAX_TENSOR, "",
                           err);
        const uint64_t fc = mul_sat(fc_out, (uint64_t)s->latent);
        if (fc > MODEL_MAX_TENSOR)
            return too_big(s, "the decoder's dense layer", fc, MODEL_MAX_TENSOR, latent, err);
        /* the encoder's code layer has the same size (its input is that feature map) */
        total = add_sat(total, mul_sat(fc, 3));
    }
    if (classifies) {
        const uint64_t fc = mul_sat(top, (uint64_t)s->classes);
        if (fc > MODEL_MAX_TENSOR)
            return too_big(s, "the classifier's dense layer", fc, MODEL_MAX_TENSOR, classes, err);
        total = add_sat(total, fc);
    }
    if (learned_latents) {
        const uint64_t table = mul_sat((uint64_t)s->glo_count, (uint64_t)s->latent);
        if (table > MODEL_MAX_TENSOR)
            return too_big(s, "the table of learned latents", table, MODEL_MAX_TENSOR, latents,
                           err);
        total = add_sat(total, table);
    }
    if (total > MODEL_MAX_PARAMS)
        return too_big(s, "the parameters", total, MODEL_MAX_PARAMS,
                       learned_latents ? latents : classifies ? classes : latent, err);
    return DC_OK;
}

static int build_encoder(dc_graph *g, const dc_model_spec *s, int x, int hole, const char *prefix,
                         int *acts) {
    int h = x, ch = s->base;
    char name[32];
    /* untied: one conv over [image, mask] (the conv keeps its fused bias + ReLU) */
    if (hole >= 0 && !s->tied) {
        snprintf(name, sizeof name, "%s_in", prefix);
        dc_name(g, name);
        h = dc_concat(g, x, hole);
    }
    for (int b = 0; b < s->blocks; b++) {
        snprintf(name, sizeof name, "%s%d", prefix, b + 1);
        dc_name(g, name);
        h = dc_conv2d(g, h, ch, s->kernel, 1, s->kernel / 2);
        if (b == 0 && hole >= 0 && s->tied) {
            /* tied: the decoder's last layer reuses enc1's kernel, which must map the image
             * channels alone; the mask gets its own bias-free conv, added (the same sum) */
            snprintf(name, sizeof name, "%s1_hole", prefix);
            dc_name(g, name);
            h = dc_add(g, h, dc_conv2d_ex(g, hole, ch, s->kernel, 1, s->kernel / 2, 0));
        }
        h = dc_relu(g, h);
        if (acts) acts[b] = h; /* block b's activations before the pool: a skip's source */
        h = dc_maxpool2d(g, h, 2, 2, 0);
        ch *= 2;
    }
    return h;
}

int dc_model_build_encoder(dc_graph *g, const dc_model_spec *s, int x) {
    return build_encoder(g, s, x, -1, "enc", NULL);
}

int dc_model_build_encoder_hole(dc_graph *g, const dc_model_spec *s, int x, int hole, int *acts) {
    return build_encoder(g, s, x, hole, "enc", acts);
}

int dc_model_build_encoder_named(dc_graph *g, const dc_model_spec *s, int x, const char *prefix) {
    return build_encoder(g, s, x, -1, prefix, NULL);
}

int dc_model_build_decoder(dc_graph *g, const dc_model_spec *s, int z) {
    return dc_model_build_decoder_skips(g, s, z, NULL);
}

int dc_model_build_decoder_skips(dc_graph *g, const dc_model_spec *s, int z, const int *skips) {
    const int top = s->base << (s->blocks - 1), side = s->size >> s->blocks;
    char name[32];
    int h;
    if (s->bottleneck == DC_BOTTLENECK_CONV) {
        /* the code is a small feature map at the lowest resolution */
        h = dc_reshape(g, z, s->latent / (side * side), side, side);
        dc_name(g, "dec_conv");
        h = dc_conv2d(g, h, top, 3, 1, 1);
    } else {
        dc_name(g, "dec_fc");
        h = dc_dense(g, z, top * side * side);
    }
    h = dc_relu(g, h);
    if (s->bottleneck != DC_BOTTLENECK_CONV) h = dc_reshape(g, h, top, side, side);
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
        if (b > 0 && skips) {
            /* U-Net skip: the encoder's activations of this size beside the decoder's */
            snprintf(name, sizeof name, "dec%d_skip", i);
            dc_name(g, name);
            h = dc_concat(g, h, skips[b]);
        }
    }
    dc_name(g, "out");
    return dc_tanh(g, h);
}

int dc_model_build_code(dc_graph *g, const dc_model_spec *s, int h, const char *name) {
    if (s->bottleneck != DC_BOTTLENECK_CONV) {
        dc_name(g, name);
        return dc_dense(g, h, s->latent);
    }
    const int top = s->base << (s->blocks - 1), side = s->size >> s->blocks;
    char layer[40];
    snprintf(layer, sizeof layer, "%s_conv", name);
    dc_name(g, layer);
    h = dc_relu(g, dc_conv2d(g, h, top, 3, 1, 1));
    dc_name(g, name);
    h = dc_conv2d(g, h, s->latent / (side * side), 1, 1, 0);
    /* the same [latent] code as the dense bottleneck's, for noise, interpolation and the
     * decoder-only graph */
    return dc_reshape(g, h, s->latent, 1, 1);
}

int dc_model_build_recon_loss(dc_model *m) {
    return dc_model_build_recon_loss_of(m, m->out);
}

int dc_model_build_recon_loss_of(dc_model *m, int out) {
    dc_graph *g = m->g;
    const int w = m->weight; /* all ones with loss_full (dc_mask_apply) */
    dc_name(g, "recon_loss");
    if (m->spec.loss != DC_LOSS_BCE) return dc_mse_loss(g, out, m->target, w);
    /* the decoder ends in tanh: the loss reads its input, the logits */
    if (out < 0 || g->nodes[out].op != DC_OP_TANH)
        return dc_graph_fail(g, DC_ERR_STATE, "bce loss: the output is not a tanh node");
    return dc_bce_tanh_loss(g, g->nodes[out].in[0], m->target, w);
}
