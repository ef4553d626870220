/* The completion model: the image with a region hidden -> encoder -> code + Gaussian noise
 * (a random code, so one input has many completions) -> decoder, trained on a per-pixel
 * weighted MSE (hidden region 1, visible region visible_weight). */
#include "internal.h"
#include "models/kinds.h"

void dc_kind_complete_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    m->x = dc_input(g, "x", C, S, S);
    m->target = dc_input(g, "target", C, S, S);
    m->weight = dc_input(g, "weight", C, S, S);
    int h = dc_model_build_encoder(g, s, m->x);
    dc_name(g, "enc_fc");
    m->code = dc_dense(g, h, s->latent);
    dc_name(g, "noise");
    m->noise = dc_gaussian_noise(g, m->code, s->noise, 1);
    m->latent = m->noise;
    m->out = dc_model_build_decoder(g, s, m->latent);
    dc_name(g, "recon_loss");
    m->recon = dc_mse_loss(g, m->out, m->target, m->weight);
    m->loss = m->recon;
}
