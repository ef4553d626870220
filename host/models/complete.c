/* The completion model: the image with a region hidden -> encoder -> code -> decoder, with a
 * random code added so one input has many completions:
 *   code noise: code + noise * N(0, I);
 *   code vae:   code + z, z ~ q(z | full image) = N(mu, exp(logvar)) from a second encoder
 *               in training, with beta * KL(q || N(0, I)) per pixel in the loss (so z carries
 *               what the masked image cannot tell); z = noise * N(0, I) when generating.
 * Trained on a per-pixel weighted MSE or binary cross-entropy (hidden region 1, visible
 * region visible_weight), by default with masks drawn from the mix that includes the blank
 * canvas. */
#include "internal.h"
#include "models/kinds.h"

void dc_kind_complete_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_MIX;
    /* a third of the images see the model's own completion as input: refinement passes
     * (deconv complete --passes) then meet inputs like those of training */
    s->feedback = 0.3f;
}

void dc_kind_complete_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    m->x = dc_input(g, "x", C, S, S);
    m->target = dc_input(g, "target", C, S, S);
    m->weight = dc_input(g, "weight", C, S, S);
    int h = dc_model_build_encoder(g, s, m->x);
    m->code = dc_model_build_code(g, s, h, "enc_fc");
    if (s->code == DC_CODE_VAE) {
        int post = dc_model_build_encoder_named(g, s, m->target, "post");
        int mu = dc_model_build_code(g, s, post, "post_mu");
        dc_name(g, "post_logvar");
        int logvar = dc_dense(g, post, s->latent);
        dc_name(g, "noise");
        m->noise = dc_reparameterize_prior(g, mu, logvar, s->noise);
        m->latent = dc_add(g, m->code, m->noise);
        m->out = dc_model_build_decoder(g, s, m->latent);
        m->recon = dc_model_build_recon_loss(m);
        dc_name(g, "kl_loss");
        m->kl = dc_gaussian_kl_loss(g, mu, logvar);
        dc_name(g, "loss");
        /* as the vae: KL summed over the code, the reconstruction a per-pixel mean */
        m->loss = dc_loss_sum(g, m->recon, 1.0f, m->kl, s->beta / (float)(C * S * S));
        return;
    }
    dc_name(g, "noise");
    m->noise = dc_gaussian_noise(g, m->code, s->noise, 1);
    m->latent = m->noise;
    m->out = dc_model_build_decoder(g, s, m->latent);
    m->recon = dc_model_build_recon_loss(m);
    m->loss = m->recon;
}
