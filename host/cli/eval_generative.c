/* deconv eval for the generative models (complete, vae, glo), with honest baselines.
 *
 * Completion (complete, vae): MSE and PSNR of the hidden region on the validation split,
 * next to (a) the training-set mean of the hidden region and (b) the hidden region of the
 * training image whose visible part is nearest. Diversity: the mean per-pixel standard
 * deviation over --draws latent draws for the same input. Generation (all three): the RMS
 * distance from each of --samples new images to its nearest training image, next to the
 * same distance between training images, so replaying the training set shows. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/gen_common.h"

int dc_cli_eval_generative(dc_args *a, const char *run, dc_backend *be);

static double psnr(double mse) { return mse > 0 ? 10.0 * log10(4.0 / mse) : INFINITY; }

/* RMS distance between two images over all pixels. */
static double rms(const float *x, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return sqrt(s / (double)n);
}

static double nearest(const float *img, const dc_dataset *ds, int skip, size_t n) {
    double best = INFINITY;
    for (int j = 0; j < ds->n; j++)
        if (j != skip) {
            double d = rms(img, dc_dataset_image(ds, j), n);
            if (d < best) best = d;
        }
    return best;
}

/* Hidden pixels of a mask plane. */
static int mask_count(const float *mask, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += mask[i] > 0.5f;
    return c;
}

static int eval_completion(const char *cmd, dc_model *m, const dc_dataset *train,
                           const dc_dataset *eval, int draws, uint64_t seed) {
    const int C = m->spec.channels, S = m->spec.size, B = m->batch, HW = S * S;
    const size_t isz = (size_t)C * HW;
    float *mask = malloc(sizeof(float) * HW), *mean = calloc(isz, sizeof(float));
    float *x = malloc(sizeof(float) * B * isz), *y = malloc(sizeof(float) * B * isz);
    float *stack = malloc(sizeof(float) * (size_t)draws * B * isz);
    if (!mask || !mean || !x || !y || !stack) {
        free(mask), free(mean), free(x), free(y), free(stack);
        return dc_cli_fail(cmd, "out of memory");
    }
    const int sampled = dc_model_kind_has(m->spec.kind, DC_KIND_SAMPLED_CODE);
    dc_mask_kind mk = gen_mask_kind(m);
    if (mk == DC_MASK_NONE) mk = DC_MASK_BOTTOM; /* a vae trained on whole images: hide the bottom */
    dc_mask_make(mk, S, S, NULL, mask);
    for (int j = 0; j < train->n; j++)
        for (size_t p = 0; p < isz; p++) mean[p] += dc_dataset_image(train, j)[p] / (float)train->n;
    double se_model = 0, se_mean = 0, se_nn = 0, hidden = 0, div_hidden = 0, div_all = 0;
    int div_items = 0;
    for (int first = 0; first < eval->n; first += B) {
        const int count = eval->n - first < B ? eval->n - first : B;
        for (int i = 0; i < B; i++)
            dc_mask_apply(dc_dataset_image(eval, first + i % count), mask, C, S, S, 0.0f, 1.0f, 1,
                          x + i * isz, NULL);
        if (gen_forward_complete(cmd, m, x, 0.0f, 0, y)) goto fail;
        for (int i = 0; i < count; i++) {
            const float *t = dc_dataset_image(eval, first + i);
            /* nearest training image by the visible part */
            int best = 0;
            double bd = INFINITY;
            for (int j = 0; j < train->n; j++) {
                const float *r = dc_dataset_image(train, j);
                double d = 0;
                for (int c = 0; c < C; c++)
                    for (int q = 0; q < HW; q++)
                        if (mask[q] < 0.5f) d += ((double)t[c * HW + q] - r[c * HW + q]) * (t[c * HW + q] - r[c * HW + q]);
                if (d < bd) bd = d, best = j;
            }
            const float *nn = dc_dataset_image(train, best);
            for (int c = 0; c < C; c++)
                for (int q = 0; q < HW; q++) {
                    if (mask[q] < 0.5f) continue;
                    size_t k = (size_t)c * HW + q;
                    se_model += ((double)y[i * isz + k] - t[k]) * (y[i * isz + k] - t[k]);
                    se_mean += ((double)mean[k] - t[k]) * (mean[k] - t[k]);
                    se_nn += ((double)nn[k] - t[k]) * (nn[k] - t[k]);
                    hidden += 1;
                }
        }
        /* diversity: several codes for the same inputs */
        if (div_items < 64) {
            for (int d = 0; d < draws; d++) {
                float *out = stack + (size_t)d * B * isz;
                if (sampled) {
                    dc_graph_set_train(m->g, 1); /* sample z ~ q(z|x) */
                    dc_graph_set_seed(m->g, dc_seed_mix(seed, (uint64_t)(first * 131 + d)));
                    if (dc_graph_set_input(m->g, m->x, x) || dc_graph_forward(m->g, m->out) ||
                        dc_graph_read(m->g, m->out, out)) {
                        dc_cli_fail(cmd, "%s", dc_graph_error(m->g)->msg);
                        goto fail;
                    }
                    dc_graph_set_train(m->g, 0);
                } else if (gen_forward_complete(cmd, m, x, m->spec.noise,
                                                dc_seed_mix(seed, (uint64_t)(first * 131 + d + 1)), out)) {
                    goto fail;
                }
            }
            for (int i = 0; i < count; i++) {
                double sh = 0, sa = 0;
                for (size_t k = 0; k < isz; k++) {
                    double mu = 0, v = 0;
                    for (int d = 0; d < draws; d++) mu += stack[(size_t)d * B * isz + i * isz + k];
                    mu /= draws;
                    for (int d = 0; d < draws; d++) {
                        double e = stack[(size_t)d * B * isz + i * isz + k] - mu;
                        v += e * e;
                    }
                    double sd = sqrt(v / draws);
                    sa += sd;
                    if (mask[k % HW] > 0.5f) sh += sd;
                }
                div_all += sa / (double)isz;
                div_hidden += sh / (hidden > 0 ? (double)C * (mask_count(mask, HW)) : 1);
                div_items++;
            }
        }
    }
    printf("completion of the hidden region (mask %s) on %d images\n", dc_mask_name(mk), eval->n);
    printf("  %-36s %10s %9s\n", "method", "MSE", "PSNR dB");
    printf("  %-36s %10.5f %9.2f\n", "model (no random code)", se_model / hidden, psnr(se_model / hidden));
    printf("  %-36s %10.5f %9.2f\n", "baseline: training-set mean", se_mean / hidden, psnr(se_mean / hidden));
    printf("  %-36s %10.5f %9.2f\n", "baseline: nearest visible part", se_nn / hidden, psnr(se_nn / hidden));
    printf("diversity over %d codes per input (mean per-pixel std, [-1,1] scale):\n", draws);
    printf("  hidden region %.5f   whole image %.5f   (%s)\n", div_hidden / div_items, div_all / div_items,
           sampled ? "z ~ q(z|x)" : "code noise std = the trained --noise");
    free(mask), free(mean), free(x), free(y), free(stack);
    return 0;
fail:
    free(mask), free(mean), free(x), free(y), free(stack);
    return 1;
}

static int eval_generation(const char *cmd, dc_model *m, const dc_dataset *train, int n,
                           uint64_t seed) {
    const int C = m->spec.channels, S = m->spec.size;
    const size_t isz = (size_t)C * S * S;
    float *img = malloc(sizeof(float) * n * isz);
    if (!img) return dc_cli_fail(cmd, "out of memory");
    dc_error err = {0};
    if (dc_model_kind_has(m->spec.kind, DC_KIND_CODE_NOISE)) {
        dc_model *big = NULL;
        float *x = calloc((size_t)n * isz, sizeof(float));
        int r = !x || dc_model_create_shared(m, n, 0, &big, &err) != DC_OK ||
                gen_forward_complete(cmd, big, x, m->spec.noise > 0 ? m->spec.noise : 1.0f,
                                     dc_seed_mix(seed, 9), img);
        free(x);
        dc_model_free(big);
        if (r) {
            free(img);
            return err.msg[0] ? dc_cli_fail(cmd, "%s", err.msg) : 1;
        }
    } else {
        dc_model *dec = NULL;
        float *z = malloc(sizeof(float) * n * m->spec.latent);
        int r = !z || dc_model_create_shared(m, n, 1, &dec, &err) != DC_OK ||
                gen_sample_latents(cmd, m, n, 1.0f, seed, z) || gen_decode(cmd, dec, z, img);
        free(z);
        dc_model_free(dec);
        if (r) {
            free(img);
            return err.msg[0] ? dc_cli_fail(cmd, "%s", err.msg) : 1;
        }
    }
    double dmean = 0, dmin = INFINITY, ref = 0, spread = 0;
    for (int i = 0; i < n; i++) {
        double d = nearest(img + i * isz, train, -1, isz);
        dmean += d / n;
        if (d < dmin) dmin = d;
    }
    /* the reference over at most 200 training images (each against all the others) */
    const int nref = train->n < 200 ? train->n : 200;
    for (int j = 0; j < nref; j++) ref += nearest(dc_dataset_image(train, j), train, j, isz) / nref;
    for (size_t k = 0; k < isz; k++) {
        double mu = 0, v = 0;
        for (int i = 0; i < n; i++) mu += img[i * isz + k];
        mu /= n;
        for (int i = 0; i < n; i++) v += (img[i * isz + k] - mu) * (img[i * isz + k] - mu);
        spread += sqrt(v / n) / isz;
    }
    printf("generation: %d samples (%s)\n", n, dc_model_kind_get(m->spec.kind)->generation);
    printf("  RMS distance to the nearest training image: mean %.4f, min %.4f\n", dmean, dmin);
    printf("  reference: training image to its nearest other training image: mean %.4f%s\n", ref,
           nref < train->n ? " (first 200)" : "");
    printf("  spread between samples (mean per-pixel std): %.4f\n", spread);
    free(img);
    return 0;
}

int dc_cli_eval_generative(dc_args *a, const char *run, dc_backend *be) {
    const char *cmd = "eval";
    const char *data = dc_args_str(a, "data", NULL);
    int draws = dc_args_int(a, "draws", 16);
    int samples = dc_args_int(a, "samples", 64);
    int limit = dc_args_int(a, "limit", 500);
    uint64_t seed = (uint64_t)dc_args_long(a, "seed", 1);
    if (dc_args_check_unused(a)) return 2;
    if (draws < 2 || samples < 1) return dc_cli_fail(cmd, "--draws must be >= 2 and --samples >= 1");
    dc_meta meta = {0};
    dc_model *m = NULL;
    dc_dataset *train = NULL, *val = NULL, *other = NULL, *head = NULL;
    int rc = 1;
    if (dc_cli_open_run(cmd, run, be, 32, &m, &meta)) goto done;
    if (gen_run_split(cmd, &meta, m, &train, &val)) goto done;
    const dc_dataset *eval = val;
    if (data) {
        dc_error err = {0};
        if (dc_dataset_load_path(data, m->spec.size, m->spec.channels, &other, &err) != DC_OK) {
            dc_cli_fail(cmd, "--data %s: %s", data, err.msg);
            goto done;
        }
        eval = other;
    }
    if (limit > 0 && eval->n > limit) {
        /* the first `limit` items: the nearest-neighbour baseline scans the training set for
         * each of them */
        int32_t *idx = malloc(sizeof(int32_t) * limit);
        dc_error err = {0};
        for (int i = 0; idx && i < limit; i++) idx[i] = i;
        if (!idx || dc_dataset_subset(eval, idx, limit, &head, &err) != DC_OK) {
            free(idx);
            dc_cli_fail(cmd, "%s", err.msg[0] ? err.msg : "out of memory");
            goto done;
        }
        free(idx);
        printf("evaluating the first %d of %d images (--limit)\n", limit, eval->n);
        eval = head;
    }
    printf("run %s: %s model, %d training images\n", run, dc_model_kind_name(m->spec.kind), train->n);
    if (m->x >= 0) {
        if (eval->n == 0) {
            printf("no validation images (the run used --val 0): completion measured on the training set\n");
            eval = train;
        }
        if (eval_completion(cmd, m, train, eval, draws, seed)) goto done;
    }
    if (eval_generation(cmd, m, train, samples, seed)) goto done;
    rc = 0;
done:
    dc_dataset_free(head);
    dc_model_free(m);
    dc_dataset_free(train);
    dc_dataset_free(val);
    dc_dataset_free(other);
    dc_meta_clear(&meta);
    return rc;
}
