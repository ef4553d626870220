/* Builders shared by the encoder-decoder kinds.
 *
 * Encoder: `blocks` x [conv k/1/k÷2 -> relu -> maxpool 2], channels base, 2*base, 4*base, ...
 * Decoder: dense -> relu -> reshape to the encoder's last feature map -> `blocks` transposed
 * convs (k, stride 2, pad k÷2, output pad 1: each doubles the size) with relu between ->
 * tanh. With `tied`, decoder block i reuses the kernel of the mirrored encoder conv
 * (PyTorch's conv and transposed-conv layouts coincide for that pairing:
 * [C_enc_out, C_enc_in, k, k]). */
#include "graph_internal.h"
#include "internal.h"
#include "models/kinds.h"

int dc_model_build_encoder(dc_graph *g, const dc_model_spec *s, int x) {
    return dc_model_build_encoder_named(g, s, x, "enc");
}

int dc_model_build_encoder_named(dc_graph *g, const dc_model_spec *s, int x, const char *prefix) {
    int h = x, ch = s->base;
    char name[32];
    for (int b = 0; b < s->blocks; b++) {
        snprintf(name, sizeof name, "%s%d", prefix, b + 1);
        dc_name(g, name);
        h = dc_conv2d(g, h, ch, s->kernel, 1, s->kernel / 2);
        h = dc_relu(g, h);
        h = dc_maxpool2d(g, h, 2, 2, 0);
        ch *= 2;
    }
    return h;
}

int dc_model_build_decoder(dc_graph *g, const dc_model_spec *s, int z) {
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
    dc_graph *g = m->g;
    const int w = m->weight; /* all ones with loss_full (dc_mask_apply) */
    dc_name(g, "recon_loss");
    if (m->spec.loss != DC_LOSS_BCE) return dc_mse_loss(g, m->out, m->target, w);
    /* the decoder ends in tanh: the loss reads its input, the logits */
    if (m->out < 0 || g->nodes[m->out].op != DC_OP_TANH)
        return dc_graph_fail(g, DC_ERR_STATE, "bce loss: the output is not a tanh node");
    return dc_bce_tanh_loss(g, g->nodes[m->out].in[0], m->target, w);
}
