/* Generative latent optimisation: one learned latent per training image (an embedding
 * indexed by the image's dataset index) -> decoder, trained on the plain MSE. New images
 * decode draws from a Gaussian fitted to the learned latents. */
#include <math.h>

#include "internal.h"
#include "models/kinds.h"

void dc_kind_glo_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_NONE;
    s->noise = 0.0f;
    s->loss_full = 1;
    s->latent = 32;
}

dc_status dc_kind_glo_check(const dc_model_spec *s, dc_error *err) {
    if (s->glo_count < 1)
        return dc_set_error(err, DC_ERR_ARG, "glo: the number of training images must be >= 1");
    return DC_OK;
}

void dc_kind_glo_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size;
    m->index = dc_input_int(g, "index");
    m->target = dc_input(g, "target", C, S, S);
    dc_name(g, "latents");
    m->latent = dc_embedding(g, m->index, s->glo_count, s->latent, 0.1f);
    m->code = m->latent;
    m->out = dc_model_build_decoder(g, s, m->latent);
    dc_name(g, "recon_loss");
    m->recon = dc_mse_loss(g, m->out, m->target, -1);
    m->loss = m->recon;
}

/* Cholesky of a symmetric positive definite matrix (in place, lower). */
static int cholesky(double *a, int n) {
    for (int j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (int k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        if (d <= 0) return -1;
        d = sqrt(d);
        a[j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (int k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
        for (int k = j + 1; k < n; k++) a[j * n + k] = 0;
    }
    return 0;
}

/* z = mean + L e for each draw e, with L L^T the covariance of the learned latents. */
dc_status dc_kind_glo_shape_latents(const dc_model *m, int n, float *z, dc_error *err) {
    const int L = m->spec.latent;
    int pi = dc_params_find(m->params, "latents.weight");
    if (pi < 0) return dc_set_error(err, DC_ERR_NOT_FOUND, "glo model without 'latents.weight'");
    dc_param *q = dc_params_get(m->params, pi);
    const int R = q->shape[0];
    float *tab = malloc(sizeof(float) * q->numel);
    double *mean = calloc((size_t)L, sizeof(double)), *cov = calloc((size_t)L * L, sizeof(double));
    double *e = malloc(sizeof(double) * L);
    dc_status st = DC_OK;
    if (!tab || !mean || !cov || !e || dc_params_read(m->params, pi, tab) != DC_OK) {
        st = dc_set_error(err, DC_ERR_IO, "cannot read the learned latents");
        goto out;
    }
    for (int r = 0; r < R; r++)
        for (int d = 0; d < L; d++) mean[d] += tab[r * L + d] / (double)R;
    for (int r = 0; r < R; r++)
        for (int a = 0; a < L; a++)
            for (int b = 0; b <= a; b++)
                cov[a * L + b] += (tab[r * L + a] - mean[a]) * (tab[r * L + b] - mean[b]) / (R > 1 ? R - 1 : 1);
    /* fewer images than dimensions make the covariance singular: a ridge keeps it usable */
    double tr = 0;
    for (int d = 0; d < L; d++) tr += cov[d * L + d];
    for (int d = 0; d < L; d++) cov[d * L + d] += 1e-3 * (tr / L) + 1e-8;
    for (int a = 0; a < L; a++)
        for (int b = a + 1; b < L; b++) cov[a * L + b] = cov[b * L + a];
    if (cholesky(cov, L) != 0) {
        st = dc_set_error(err, DC_ERR_NUMERIC, "the learned latents' covariance is not positive definite");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        float *zi = z + (size_t)i * L;
        for (int d = 0; d < L; d++) e[d] = zi[d];
        for (int a = 0; a < L; a++) {
            double s = mean[a];
            for (int b = 0; b <= a; b++) s += cov[a * L + b] * e[b];
            zi[a] = (float)s;
        }
    }
out:
    free(tab), free(mean), free(cov), free(e);
    return st;
}
