/* Generative latent optimisation: one learned latent per training image (an embedding
 * indexed by the image's dataset index) -> decoder, trained on the plain MSE. New images
 * decode draws from a Gaussian fitted to the learned latents. Held-out images have no
 * latent: GLO validates by projection, fitting their latents with the decoder frozen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- projection: GLO's own validation ---- */

/* The mean of the learned latents [latent]: where every projection starts, so the fitted
 * latents depend on the images and the decoder only (no random stream). */
static dc_status learned_latent_mean(const dc_model *m, float *mean, dc_error *err) {
    const int L = m->spec.latent;
    int pi = dc_params_find(m->params, "latents.weight");
    if (pi < 0) return dc_set_error(err, DC_ERR_NOT_FOUND, "glo model without 'latents.weight'");
    dc_param *q = dc_params_get(m->params, pi);
    float *tab = malloc(sizeof(float) * q->numel);
    if (!tab) return dc_set_error(err, DC_ERR_OOM, "projection: out of memory");
    if (dc_params_read(m->params, pi, tab) != DC_OK) {
        free(tab);
        return dc_set_error(err, DC_ERR_IO, "cannot read the learned latents");
    }
    for (int d = 0; d < L; d++) {
        double s = 0;
        for (int r = 0; r < q->shape[0]; r++) s += tab[(size_t)r * L + d];
        mean[d] = (float)(s / q->shape[0]);
    }
    free(tab);
    return DC_OK;
}

#define PROJECT_BATCH 32

dc_status dc_model_project_latents(dc_model *m, const float *images, int n, int steps, float lr,
                                   float *z_out, double *loss, dc_error *err) {
    if (!m || !images || n < 1 || steps < 0 || !(lr > 0) || !loss)
        return dc_set_error(err, DC_ERR_ARG, "dc_model_project_latents: bad arguments");
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_LEARNED_LATENTS))
        return dc_set_error(err, DC_ERR_ARG, "projection: a %s model has no learned latents",
                            dc_model_kind_name(m->spec.kind));
    const int L = m->spec.latent, C = m->spec.channels, S = m->spec.size;
    const size_t img = (size_t)C * S * S;
    const int B = n < PROJECT_BATCH ? n : PROJECT_BATCH;
    /* the decoder on the model's own parameters, with a latent input that gets a gradient */
    dc_graph *g = NULL;
    dc_status st = dc_graph_create(m->params, B, &g);
    if (st != DC_OK)
        return dc_set_error(err, st, "projection: %s", dc_params_error(m->params)->msg);
    const int z_in = dc_input(g, "z", L, 1, 1);
    dc_graph_require_grad(g, z_in);
    const int out = dc_model_build_decoder(g, &m->spec, z_in);
    const int target = dc_input(g, "target", C, S, S);
    const int loss_node = dc_mse_loss(g, out, target, -1);
    float *mean = malloc(sizeof(float) * L), *z = malloc(sizeof(float) * B * L);
    float *grad = malloc(sizeof(float) * B * L), *m1 = malloc(sizeof(float) * B * L);
    float *m2 = malloc(sizeof(float) * B * L), *tg = malloc(sizeof(float) * B * img);
    float *y = malloc(sizeof(float) * B * img);
    double total = 0;
    if (!mean || !z || !grad || !m1 || !m2 || !tg || !y) {
        st = dc_set_error(err, DC_ERR_OOM, "projection: out of memory");
        goto out;
    }
    if ((st = dc_graph_finalize(g)) != DC_OK) {
        st = dc_set_error(err, st, "projection graph: %s", dc_graph_error(g)->msg);
        goto out;
    }
    if ((st = learned_latent_mean(m, mean, err)) != DC_OK) goto out;
    dc_graph_set_train(g, 0); /* frozen decoder: running batch-norm statistics, no dropout */
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    for (int first = 0; first < n; first += B) {
        const int count = n - first < B ? n - first : B;
        /* rows past count (the last chunk) are independent of the others in eval mode */
        memset(tg, 0, sizeof(float) * B * img);
        memcpy(tg, images + (size_t)first * img, sizeof(float) * count * img);
        for (int i = 0; i < B; i++) memcpy(z + (size_t)i * L, mean, sizeof(float) * L);
        memset(m1, 0, sizeof(float) * B * L);
        memset(m2, 0, sizeof(float) * B * L);
        if ((st = dc_graph_set_input(g, target, tg)) != DC_OK) break;
        for (int k = 1; k <= steps && st == DC_OK; k++) {
            if ((st = dc_graph_set_input(g, z_in, z)) || (st = dc_graph_forward(g, -1)) ||
                (st = dc_graph_backward(g, loss_node, DC_RELU_NORMAL)) ||
                (st = dc_graph_read_grad(g, z_in, grad)))
                break;
            /* the graph's loss is the mean over the batch: B x its gradient is each image's */
            const double c1 = 1.0 - pow(beta1, k), c2 = 1.0 - pow(beta2, k);
            for (int i = 0; i < B * L; i++) {
                const float gi = grad[i] * (float)B;
                m1[i] = beta1 * m1[i] + (1 - beta1) * gi;
                m2[i] = beta2 * m2[i] + (1 - beta2) * gi * gi;
                z[i] -= (float)(lr * (m1[i] / c1) / (sqrt(m2[i] / c2) + eps));
            }
        }
        if (st == DC_OK && (st = dc_graph_set_input(g, z_in, z)) == DC_OK &&
            (st = dc_graph_forward(g, out)) == DC_OK)
            st = dc_graph_read(g, out, y);
        if (st != DC_OK) {
            st = dc_set_error(err, st, "projection: %s", dc_graph_error(g)->msg);
            break;
        }
        for (int i = 0; i < count; i++) {
            double e = 0;
            for (size_t p = 0; p < img; p++) {
                const double d = (double)y[i * img + p] - tg[i * img + p];
                e += d * d;
            }
            total += e / (double)img;
        }
        if (z_out) memcpy(z_out + (size_t)first * L, z, sizeof(float) * count * L);
    }
    if (st == DC_OK) *loss = total / n;
out:
    free(mean), free(z), free(grad), free(m1), free(m2), free(tg), free(y);
    dc_graph_free(g);
    return st;
}

dc_status dc_kind_glo_validate(dc_model *m, const dc_dataset *val, double *loss, dc_error *err) {
    return dc_model_project_latents(m, val->images, val->n, DC_PROJECT_STEPS, DC_PROJECT_LR, NULL,
                                    loss, err);
}
