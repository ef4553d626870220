/* The variational autoencoder: encoder -> (mu, logvar) -> z = mu + exp(logvar/2) * eps ->
 * decoder; loss = MSE (or binary cross-entropy) + beta * KL(q(z|x) || N(0, I)) / pixels. */
#include "internal.h"
#include "models/kinds.h"

void dc_kind_vae_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_NONE;
    s->noise = 0.0f;
    s->loss_full = 1;
}

void dc_kind_vae_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    m->x = dc_input(g, "x", C, S, S);
    m->target = dc_input(g, "target", C, S, S);
    m->weight = dc_input(g, "weight", C, S, S);
    int h = dc_model_build_encoder(g, s, m->x);
    dc_name(g, "enc_mu");
    m->code = dc_dense(g, h, s->latent);
    dc_name(g, "enc_logvar");
    m->logvar = dc_dense(g, h, s->latent);
    dc_name(g, "sample");
    m->latent = dc_reparameterize(g, m->code, m->logvar, 0);
    m->out = dc_model_build_decoder(g, s, m->latent);
    m->recon = dc_model_build_recon_loss(m);
    dc_name(g, "kl_loss");
    m->kl = dc_gaussian_kl_loss(g, m->code, m->logvar);
    dc_name(g, "loss");
    /* KL is summed over latent dims; MSE is a per-pixel mean: divide so that beta = 1 weighs
     * them as a Gaussian likelihood summed over pixels would. */
    m->loss = dc_loss_sum(g, m->recon, 1.0f, m->kl, s->beta / (float)(C * S * S));
}
