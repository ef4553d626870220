/* The completion model: the image with a region hidden -> encoder -> code -> decoder, with a
 * random code added so one input has many completions:
 *   code noise: code + noise * N(0, I);
 *   code vae:   code + z, z ~ q(z | full image) = N(mu, exp(logvar)) from a second encoder
 *               in training, with beta * KL(q || N(0, I)) per pixel in the loss (so z carries
 *               what the masked image cannot tell); z = noise * N(0, I) when generating.
 * Trained on a per-pixel weighted MSE or binary cross-entropy (hidden region 1, visible
 * region visible_weight), by default with masks drawn from the mix that includes the blank
 * canvas. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "deconv/complete.h"
#include "models/kinds.h"

void dc_kind_complete_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_MIX;
    /* most images see the model's own completions fed back as input: refinement passes
     * (deconv complete --passes) then meet inputs like those of training. 0.3 left the
     * fed-back inputs too rare: 3 passes lowered the hidden-region PSNR; 0.6 raises it
     * (README, "Results: what the generative models learn") */
    s->feedback = 0.6f;
    /* the encoder sees which pixels are hidden: with it, the passes stopped lowering the
     * hidden-region PSNR by 0.12 dB (guns, 8 splits: -0.05 to +0.02 now; Fashion-MNIST
     * -0.01 to +0.09) and one pass on Fashion-MNIST rose (README, "Refinement passes") */
    s->hole_input = 1;
    /* U-Net skips and two passes trained as one network: together the refinement passes
     * help (guns, 8 splits: +0.08 +- 0.04 dB, 7 of 8 up, where the plain model lost 0.11)
     * and one pass gains 0.22 dB (README, "Refinement passes"). --tied turns both off
     * (its kernels take no skips; the CLI keeps that variant as it was designed) */
    s->skips = 1;
    s->unroll = 2;
}

/* The pass from input x after its code: the code noise, or the VAE's posterior draw `z`
 * added (z >= 0), then the decoder. Returns the output (tanh) node. */
static int build_decode(dc_model *m, int code, int z, const int *acts) {
    dc_graph *g = m->g;
    int latent;
    if (z >= 0) {
        latent = dc_add(g, code, z);
    } else {
        dc_name(g, "noise");
        latent = dc_gaussian_noise(g, code, m->spec.noise, 1);
    }
    if (m->latent < 0) m->latent = latent;
    return dc_model_build_decoder_skips(g, &m->spec, latent, m->spec.skips ? acts : NULL);
}

/* x -> the code; acts (DC_MAX_BLOCKS entries) receives the encoder's activations for the
 * skips */
static int build_encode(dc_model *m, int x, int *acts) {
    const int hole = m->spec.hole_input ? m->hole : -1;
    int h = dc_model_build_encoder_hole(m->g, &m->spec, x, hole, acts);
    return dc_model_build_code(m->g, &m->spec, h, "enc_fc");
}

/* Passes 2..K of the unrolled training graph (spec.unroll = K), each in its own share scope
 * ("pass2", ...: the same parameters as pass 1, their gradients summed): pass k + 1's input
 * is where(hole, out_k, x), the visible pixels of x with pass k's completion where hidden
 * (exactly dc_complete_feed_back, in the graph: nothing more to upload), and the loss is the
 * mean of the K reconstruction losses. Returns that loss. */
static int build_unrolled(dc_model *m, int z) {
    dc_graph *g = m->g;
    const int K = m->spec.unroll;
    const float w = 1.0f / (float)K;
    int loss = -1, out = m->out, recon = m->recon;
    for (int k = 2; k <= K; k++) {
        char scope[16];
        snprintf(scope, sizeof scope, "pass%d", k);
        dc_graph_share_scope(g, scope);
        dc_name(g, "feed_input");
        int x = dc_where(g, m->hole, out, m->x);
        int acts[DC_MAX_BLOCKS];
        out = build_decode(m, build_encode(m, x, acts), z, acts);
        int r = dc_model_build_recon_loss_of(m, out);
        dc_name(g, "loss_sum");
        loss = dc_loss_sum(g, loss < 0 ? recon : loss, loss < 0 ? w : 1.0f, r, w);
    }
    dc_graph_share_scope(g, NULL);
    return loss;
}

void dc_kind_complete_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    const int unroll = m->training && s->unroll > 1;
    m->x = dc_input(g, "x", C, S, S);
    /* self-feedback rewrites x on the device (dc_complete_feedback_device) */
    if (m->training && s->feedback > 0) dc_graph_keep_buffer(g, m->x);
    m->target = dc_input(g, "target", C, S, S);
    m->weight = dc_input(g, "weight", C, S, S);
    /* the mask of the hidden pixels: the encoder's second input (hole_input), and what the
     * unrolled passes feed back into */
    if (s->hole_input || unroll) m->hole = dc_input(g, "hole", 1, S, S);
    int acts[DC_MAX_BLOCKS];
    m->code = build_encode(m, m->x, acts);
    int z = -1, mu = -1, logvar = -1;
    if (s->code == DC_CODE_VAE) {
        int post = dc_model_build_encoder_named(g, s, m->target, "post");
        mu = dc_model_build_code(g, s, post, "post_mu");
        dc_name(g, "post_logvar");
        logvar = dc_dense(g, post, s->latent);
        dc_name(g, "noise");
        z = m->noise = dc_reparameterize_prior(g, mu, logvar, s->noise);
    }
    m->out = build_decode(m, m->code, z, acts);
    if (z < 0) m->noise = m->latent;
    m->recon = dc_model_build_recon_loss(m);
    m->loss = unroll ? build_unrolled(m, z) : m->recon;
    if (s->code == DC_CODE_VAE) {
        dc_name(g, "kl_loss");
        m->kl = dc_gaussian_kl_loss(g, mu, logvar);
        dc_name(g, "loss");
        /* as the vae: KL summed over the code, the reconstruction a per-pixel mean */
        m->loss = dc_loss_sum(g, m->loss, 1.0f, m->kl, s->beta / (float)(C * S * S));
    }
}

dc_status dc_model_set_hole(dc_model *m, const float *mask, int per_item, dc_error *err) {
    if (!m) return dc_set_error(err, DC_ERR_ARG, "hole input: a NULL model");
    if (m->hole < 0) return DC_OK;
    dc_status s;
    if (mask && per_item) { /* already one plane per item: straight to the input */
        if ((s = dc_graph_set_input(m->g, m->hole, mask)) != DC_OK)
            return dc_set_error(err, s, "hole input: %s", dc_graph_error(m->g)->msg);
        return DC_OK;
    }
    const size_t hw = (size_t)m->spec.size * m->spec.size;
    float *planes = malloc(sizeof(float) * hw * (size_t)m->batch);
    if (!planes) return dc_set_error(err, DC_ERR_OOM, "hole input: out of memory");
    for (int i = 0; i < m->batch; i++) {
        float *dst = planes + (size_t)i * hw;
        if (!mask)
            for (size_t p = 0; p < hw; p++) dst[p] = 1.0f;
        else
            memcpy(dst, mask + (per_item ? (size_t)i * hw : 0), sizeof(float) * hw);
    }
    s = dc_graph_set_input(m->g, m->hole, planes);
    free(planes);
    if (s != DC_OK) return dc_set_error(err, s, "hole input: %s", dc_graph_error(m->g)->msg);
    return DC_OK;
}

dc_status dc_complete_pass(dc_model *m, const float *x, float noise_std, uint64_t seed, float *out,
                           dc_error *err) {
    if (!m || !x || !out || m->x < 0 || m->out < 0)
        return dc_set_error(err, DC_ERR_ARG,
                            "completion pass: needs a model with an image input and an output, "
                            "and input and output buffers");
    dc_graph *g = m->g;
    dc_graph_set_train(g, 0);
    if (m->noise >= 0) dc_graph_set_noise_std(g, m->noise, noise_std);
    dc_graph_set_seed(g, seed);
    dc_status s = dc_graph_set_input(g, m->x, x);
    if (s == DC_OK) s = dc_graph_forward(g, m->out);
    if (s == DC_OK) s = dc_graph_read(g, m->out, out);
    if (m->noise >= 0) dc_graph_set_noise_std(g, m->noise, m->spec.noise);
    if (s != DC_OK) return dc_set_error(err, s, "completion pass: %s", dc_graph_error(g)->msg);
    return DC_OK;
}

void dc_complete_feed_back(const float *input, const float *completion, const float *mask, int c,
                           int hw, float *next) {
    for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < hw; p++) {
            const size_t k = (size_t)ch * hw + p;
            next[k] = mask[p] > 0.5f ? completion[k] : input[k];
        }
}

dc_status dc_complete_feedback_inputs(dc_model *m, float *x, const float *masks, const int *passes,
                                      float noise_std, uint64_t seed, float *scratch,
                                      dc_error *err) {
    if (!m || !x || !masks || !passes || !scratch)
        return dc_set_error(err, DC_ERR_ARG, "self-feedback: a NULL argument");
    const int C = m->spec.channels, hw = m->spec.size * m->spec.size;
    const size_t isz = (size_t)C * hw;
    int most = 0;
    for (int i = 0; i < m->batch; i++) most = passes[i] > most ? passes[i] : most;
    DC_TRY(dc_model_set_hole(m, masks, 1, err));
    for (int pass = 1; pass <= most; pass++) {
        /* the whole batch runs (batch norm in eval mode: each item's output is its own) */
        DC_TRY(dc_complete_pass(m, x, noise_std, dc_seed_mix(seed, (uint64_t)pass), scratch, err));
        for (int i = 0; i < m->batch; i++)
            if (passes[i] >= pass)
                dc_complete_feed_back(x + i * isz, scratch + i * isz, masks + (size_t)i * hw, C,
                                      hw, x + i * isz);
    }
    if (most > 0) {
        dc_status s = dc_graph_set_input(m->g, m->x, x);
        if (s != DC_OK) return dc_set_error(err, s, "self-feedback: %s", dc_graph_error(m->g)->msg);
    }
    return DC_OK;
}

dc_status dc_complete_feedback_device(dc_model *m, const float *masks, const int *passes,
                                      uint64_t seed, dc_error *err) {
    if (!m || !masks || !passes || m->x < 0 || m->out < 0)
        return dc_set_error(err, DC_ERR_ARG, "self-feedback: a NULL argument or a model without x");
    dc_graph *g = m->g;
    const dc_tensor xt = dc_graph_value(g, m->x);
    if (!xt.buf)
        return dc_set_error(err, DC_ERR_STATE,
                            "self-feedback on the device: the input x has no buffer of its own "
                            "(build the graph with dc_model_create_training and feedback > 0)");
    const int N = m->batch, C = m->spec.channels, hw = m->spec.size * m->spec.size;
    int most = 0;
    for (int i = 0; i < N; i++) most = passes[i] > most ? passes[i] : most;
    if (most == 0) return DC_OK;
    /* one plane per item: its pass count where hidden, 0 where visible; pass p replaces
     * the pixels above p - 0.5, i.e. hidden pixels of items fed back at least p times */
    const size_t bytes = sizeof(float) * (size_t)N * hw;
    float *planes = malloc(bytes);
    if (!planes) return dc_set_error(err, DC_ERR_OOM, "self-feedback: out of memory");
    for (int i = 0; i < N; i++)
        for (int q = 0; q < hw; q++)
            planes[(size_t)i * hw + q] = masks[(size_t)i * hw + q] > 0.5f ? (float)passes[i] : 0.0f;
    dc_backend *be = m->be;
    dc_status s = DC_OK;
    if (m->feedback_planes_bytes < bytes) {
        if (m->feedback_planes) be->ops->free(be, m->feedback_planes);
        m->feedback_planes = NULL, m->feedback_planes_bytes = 0;
        if ((s = be->ops->alloc(be, bytes, &m->feedback_planes)) == DC_OK)
            m->feedback_planes_bytes = bytes;
    }
    if (s == DC_OK) s = DC_BE(be, write, (dc_ptr){m->feedback_planes, 0}, planes, bytes);
    free(planes);
    if (s != DC_OK) return dc_set_error(err, s, "self-feedback: %s", be->err.msg);
    const dc_ptr x = {xt.buf, xt.off};
    const dc_tensor ot = dc_graph_value(g, m->out);
    const dc_ptr out = {ot.buf, ot.off};
    dc_graph_set_train(g, 0);
    if (m->noise >= 0) dc_graph_set_noise_std(g, m->noise, 0.0f);
    for (int p = 1; p <= most && s == DC_OK; p++) {
        /* as dc_complete_pass with noise std 0: eval mode, pass p's draws */
        dc_graph_set_seed(g, dc_seed_mix(seed, (uint64_t)p));
        if ((s = dc_graph_forward(g, m->out)) != DC_OK) {
            dc_set_error(err, s, "self-feedback: %s", dc_graph_error(g)->msg);
            break;
        }
        const dc_ptr counts = {m->feedback_planes, 0};
        if ((s = DC_BE(be, select_planes, 0, counts, (float)p - 0.5f, out, x, x, N, C, hw)) !=
            DC_OK)
            dc_set_error(err, s, "self-feedback: %s", be->err.msg);
    }
    if (m->noise >= 0) dc_graph_set_noise_std(g, m->noise, m->spec.noise);
    return s;
}

dc_status dc_complete_self_feedback(dc_model *m, const float *masks, uint64_t seed,
                                    dc_error *err) {
    if (!m) return dc_set_error(err, DC_ERR_ARG, "self-feedback: a NULL model");
    if (!(m->spec.feedback > 0)) return DC_OK; /* every kind but complete, and --feedback 0 */
    if (!masks) return dc_set_error(err, DC_ERR_ARG, "self-feedback: no masks");
    int *passes = malloc(sizeof(int) * (size_t)m->batch);
    if (!passes) return dc_set_error(err, DC_ERR_OOM, "self-feedback: out of memory");
    dc_rng rng;
    dc_rng_seed(&rng, dc_seed_mix(seed, 0xfeedULL));
    for (int i = 0; i < m->batch; i++)
        passes[i] = dc_rng_uniform(&rng) < m->spec.feedback
                        ? 1 + (int)dc_rng_below(&rng, DC_FEEDBACK_MAX_PASSES)
                        : 0;
    dc_status s = dc_complete_feedback_device(m, masks, passes, seed, err);
    free(passes);
    /* back to the training step's mode and draws */
    dc_graph_set_train(m->g, 1);
    dc_graph_set_seed(m->g, seed);
    return s;
}
