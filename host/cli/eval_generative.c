/* deconv eval for the generative models (complete, vae, glo), every figure next to its
 * floor or baseline, with a verdict line each (host/cli/eval_report.h has the rules).
 *
 * Completion (complete, vae): MSE and PSNR of the hidden region on the validation split,
 * next to (a) the training-set mean of the hidden region and (b) the hidden region of the
 * training image whose visible part is nearest; how much --draws random codes change the
 * completion, next to how much the training images differ there.
 * Generation (all three): --samples new images made as `deconv generate` makes them, then
 * realism (mid-grey share, edges), memorisation, novelty and diversity next to the same
 * figures of the training images; for Fashion-MNIST runs also the Frechet distance,
 * precision/recall and class histogram in the pinned classifier's features, next to the
 * floor of real training images. --json writes all of it. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval_report.h"
#include "cli/gen_common.h"

/* the code's effect on a completion: at least this share of the training images' spread
 * in the hidden region */
#define EV_CODE_SPREAD_SHARE 0.1
/* the small-data block compares at most this many samples with at most this many training
 * images (all pairs: Fashion-MNIST's 54,000 would take minutes) */
#define EV_SMALL_MAX_SAMPLES 1000
#define EV_SMALL_MAX_TRAIN 2000
/* chunk size for generating and classifying */
#define EV_CHUNK 250

int dc_cli_eval_generative(dc_args *a, const char *run, dc_backend *be);

static double psnr(double mse) { return mse > 0 ? 10.0 * log10(4.0 / mse) : INFINITY; }

/* Hidden pixels of a mask plane. */
static int mask_count(const float *mask, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += mask[i] > 0.5f;
    return c;
}

/* Refinement: `deconv complete --passes k` feeds each completion back as the next input
 * (hidden pixels from the model, visible ones from the image); eval reports k = 1 and this. */
#define EVAL_REFINE_PASSES 3
/* diffusion inpainting in the evaluation: RePaint resampling per step (complete's default) */

/* flow: the sampler settings of the inpaintings (eval's --steps, --sampler, --resample) */
static int eval_completion(ev_report *r, const char *cmd, dc_model *m, const dc_dataset *train,
                           const dc_dataset *eval, int draws, uint64_t seed,
                           const dc_flow_config *flow_cfg, int resample) {
    const int C = m->spec.channels, S = m->spec.size, B = m->batch, HW = S * S;
    const size_t isz = (size_t)C * HW;
    float *mask = malloc(sizeof(float) * HW), *mean = calloc(isz, sizeof(float));
    float *x = malloc(sizeof(float) * B * isz), *y = malloc(sizeof(float) * B * isz);
    float *stack = malloc(sizeof(float) * (size_t)draws * B * isz);
    const int sampled = dc_model_kind_has(m->spec.kind, DC_KIND_SAMPLED_CODE);
    /* diffusion: RePaint-style inpainting (dc_flow_inpaint), the seeds as its codes */
    const int flow = dc_model_kind_has(m->spec.kind, DC_KIND_FLOW);
    /* refinement passes only where the input is the masked image itself (not a vae's q(z|x)
     * nor a flow's noisy state) */
    const int refine = !sampled && !flow;
    float *clean = flow ? malloc(sizeof(float) * B * isz) : NULL;
    float *masks = flow ? malloc(sizeof(float) * B * HW) : NULL;
    dc_flow_config fcfg = *flow_cfg;
    fcfg.seed = seed;
    float *xr = refine ? malloc(sizeof(float) * B * isz) : NULL;
    float *yr = refine ? malloc(sizeof(float) * B * isz) : NULL;
    if (!mask || !mean || !x || !y || !stack || (refine && (!xr || !yr)) ||
        (flow && (!clean || !masks))) {
        free(mask), free(mean), free(x), free(y), free(stack), free(xr), free(yr), free(clean),
            free(masks);
        return dc_cli_fail(cmd, "out of memory");
    }
    dc_mask_kind mk = gen_mask_kind(m);
    if (mk == DC_MASK_NONE) mk = DC_MASK_BOTTOM; /* a vae trained on whole images: hide the bottom */
    dc_mask_make(mk, S, S, NULL, mask);
    for (int j = 0; j < train->n; j++)
        for (size_t p = 0; p < isz; p++) mean[p] += dc_dataset_image(train, j)[p] / (float)train->n;
    double se_model = 0, se_refined = 0, se_mean = 0, se_nn = 0, hidden = 0, div_hidden = 0,
           div_all = 0;
    /* the average of the draws' completions (diffusion): an estimate of the posterior mean,
     * the completion that minimises the expected squared error, which PSNR rewards; each
     * single inpainting is a sharp sample instead (perception-distortion trade-off) */
    double se_avg = 0, se_avg_model = 0, hidden_avg = 0, grey_model = 0, grey_truth = 0,
           grey_refined = 0;
    int avg_items = 0;
    int div_items = 0;
    for (int first = 0; first < eval->n; first += B) {
        const int count = eval->n - first < B ? eval->n - first : B;
        for (int i = 0; i < B; i++)
            dc_mask_apply(dc_dataset_image(eval, first + i % count), mask, C, S, S, 0.0f, 1.0f, 1,
                          x + i * isz, NULL);
        if (flow) {
            dc_error ferr = {0};
            for (int i = 0; i < count; i++) {
                memcpy(clean + i * isz, dc_dataset_image(eval, first + i), sizeof(float) * isz);
                memcpy(masks + (size_t)i * HW, mask, sizeof(float) * HW);
            }
            fcfg.seed = seed;
            if (dc_flow_inpaint(m, count, &fcfg, clean, masks, resample, y, &ferr) !=
                DC_OK) {
                dc_cli_fail(cmd, "%s", ferr.msg);
                goto fail;
            }
        } else if (gen_forward_complete(cmd, m, x, mask, 0.0f, 0, y)) {
            goto fail;
        }
        if (refine) {
            memcpy(yr, y, sizeof(float) * B * isz);
            for (int p = 1; p < EVAL_REFINE_PASSES; p++) {
                for (int i = 0; i < B; i++) {
                    const float *t = dc_dataset_image(eval, first + i % count);
                    for (int c = 0; c < C; c++)
                        for (int q = 0; q < HW; q++) {
                            const size_t k = (size_t)c * HW + q;
                            xr[i * isz + k] = mask[q] > 0.5f ? yr[i * isz + k] : t[k];
                        }
                }
                if (gen_forward_complete(cmd, m, xr, mask, 0.0f, 0, yr)) goto fail;
            }
        }
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
                    grey_model += fabsf(y[i * isz + k]) < 0.5f; /* as the realism figure */
                    grey_truth += fabsf(t[k]) < 0.5f;
                    if (refine) {
                        se_refined += ((double)yr[i * isz + k] - t[k]) * (yr[i * isz + k] - t[k]);
                        grey_refined += fabsf(yr[i * isz + k]) < 0.5f;
                    }
                    se_mean += ((double)mean[k] - t[k]) * (mean[k] - t[k]);
                    se_nn += ((double)nn[k] - t[k]) * (nn[k] - t[k]);
                    hidden += 1;
                }
        }
        /* diversity: several codes for the same inputs */
        if (div_items < 64) {
            for (int d = 0; d < draws; d++) {
                float *out = stack + (size_t)d * B * isz;
                if (flow) {
                    dc_error ferr = {0};
                    fcfg.seed = dc_seed_mix(seed, (uint64_t)(first * 131 + d + 1));
                    if (dc_flow_inpaint(m, count, &fcfg, clean, masks, resample, out,
                                        &ferr) != DC_OK) {
                        dc_cli_fail(cmd, "%s", ferr.msg);
                        goto fail;
                    }
                } else if (sampled) {
                    dc_graph_set_train(m->g, 1); /* sample z ~ q(z|x) */
                    dc_graph_set_seed(m->g, dc_seed_mix(seed, (uint64_t)(first * 131 + d)));
                    if (dc_graph_set_input(m->g, m->x, x) || dc_graph_forward(m->g, m->out) ||
                        dc_graph_read(m->g, m->out, out)) {
                        dc_cli_fail(cmd, "%s", dc_graph_error(m->g)->msg);
                        goto fail;
                    }
                    dc_graph_set_train(m->g, 0);
                } else if (gen_forward_complete(cmd, m, x, mask, m->spec.noise,
                                                dc_seed_mix(seed, (uint64_t)(first * 131 + d + 1)), out)) {
                    goto fail;
                }
            }
            for (int i = 0; i < count; i++) {
                double sh = 0, sa = 0;
                const float *truth = dc_dataset_image(eval, first + i);
                for (size_t k = 0; k < isz; k++) {
                    double mu = 0, v = 0;
                    for (int d = 0; d < draws; d++) mu += stack[(size_t)d * B * isz + i * isz + k];
                    mu /= draws;
                    if (flow && mask[k % HW] > 0.5f) {
                        se_avg += (mu - truth[k]) * (mu - truth[k]);
                        se_avg_model += ((double)y[i * isz + k] - truth[k]) * (y[i * isz + k] - truth[k]);
                        hidden_avg += 1;
                    }
                    for (int d = 0; d < draws; d++) {
                        double e = stack[(size_t)d * B * isz + i * isz + k] - mu;
                        v += e * e;
                    }
                    double sd = sqrt(v / draws);
                    sa += sd;
                    if (mask[k % HW] > 0.5f) sh += sd;
                }
                div_all += sa / (double)isz;
                avg_items += flow;
                div_hidden += sh / (hidden > 0 ? (double)C * (mask_count(mask, HW)) : 1);
                div_items++;
            }
        }
    }
    /* the floor of the code's effect: how much the training images differ in the hidden region */
    double train_hidden_spread = 0;
    for (int c = 0; c < C; c++)
        for (int q = 0; q < HW; q++) {
            if (mask[q] < 0.5f) continue;
            double mu = 0, v = 0;
            for (int j = 0; j < train->n; j++) mu += dc_dataset_image(train, j)[(size_t)c * HW + q];
            mu /= train->n;
            for (int j = 0; j < train->n; j++) {
                const double e = dc_dataset_image(train, j)[(size_t)c * HW + q] - mu;
                v += e * e;
            }
            train_hidden_spread += sqrt(v / train->n) / ((double)C * mask_count(mask, HW));
        }
    const double mse_model = se_model / hidden, mse_mean = se_mean / hidden, mse_nn = se_nn / hidden;
    const double dh = div_hidden / div_items, da = div_all / div_items;
    FILE *t = r->text;
    fprintf(t, "completion of the hidden region (mask %s) on %d images\n", dc_mask_name(mk), eval->n);
    fprintf(t, "  %-36s %10s %9s\n", "method", "MSE", "PSNR dB");
    char model_label[80];
    if (flow)
        snprintf(model_label, sizeof model_label, "model (inpainting, %d %s steps x %d)",
                 flow_cfg->steps, dc_sampler_name(flow_cfg->sampler), resample);
    else
        snprintf(model_label, sizeof model_label, "model (no random code)");
    fprintf(t, "  %-36s %10.5f %9.2f\n", model_label, mse_model, psnr(mse_model));
    const double mse_refined = se_refined / hidden;
    if (refine)
        fprintf(t, "  model, %d passes (--passes)%*s %10.5f %9.2f\n", EVAL_REFINE_PASSES, 10, "",
                mse_refined, psnr(mse_refined));
    const double mse_avg = hidden_avg > 0 ? se_avg / hidden_avg : NAN;
    if (flow && hidden_avg > 0) {
        char label[64];
        snprintf(label, sizeof label, "model, mean of %d inpaintings", draws);
        fprintf(t, "  %-36s %10.5f %9.2f%s\n", label, mse_avg, psnr(mse_avg),
                avg_items < eval->n ? " (first images only)" : "");
        if (avg_items < eval->n)
            fprintf(t, "    (on those %d images one inpainting: %.2f dB)\n", avg_items,
                    psnr(se_avg_model / hidden_avg));
    }
    fprintf(t, "  %-36s %10.5f %9.2f\n", "baseline: training-set mean", mse_mean, psnr(mse_mean));
    fprintf(t, "  %-36s %10.5f %9.2f\n", "baseline: nearest visible part", mse_nn, psnr(mse_nn));
    fprintf(t, "diversity over %d codes per input (mean per-pixel std, [-1,1] scale):\n", draws);
    fprintf(t, "  hidden region %.5f   whole image %.5f   (%s); training images differ by %.5f there\n",
            dh, da,
            flow      ? "inpaintings from different seeds"
            : sampled ? "z ~ q(z|x)"
                      : "code noise std = the trained --noise",
            train_hidden_spread);
    cJSON *o = cJSON_AddObjectToObject(r->root, "completion");
    if (o) {
        cJSON_AddStringToObject(o, "mask", dc_mask_name(mk));
        cJSON_AddNumberToObject(o, "n", eval->n);
        ev_json_number(o, "model_mse", mse_model);
        ev_json_number(o, "model_psnr", psnr(mse_model));
        if (refine) {
            cJSON_AddNumberToObject(o, "refine_passes", EVAL_REFINE_PASSES);
            ev_json_number(o, "refined_mse", mse_refined);
            ev_json_number(o, "refined_psnr", psnr(mse_refined));
            ev_json_number(o, "hidden_midgrey", grey_model / hidden);
            ev_json_number(o, "hidden_midgrey_refined", grey_refined / hidden);
            ev_json_number(o, "hidden_midgrey_truth", grey_truth / hidden);
        }
        if (flow) {
            cJSON_AddNumberToObject(o, "steps", flow_cfg->steps);
            cJSON_AddStringToObject(o, "sampler", dc_sampler_name(flow_cfg->sampler));
            cJSON_AddNumberToObject(o, "resample", resample);
        }
        if (flow && hidden_avg > 0) {
            cJSON_AddNumberToObject(o, "average_of", draws);
            cJSON_AddNumberToObject(o, "average_items", avg_items);
            ev_json_number(o, "average_mse", mse_avg);
            ev_json_number(o, "average_psnr", psnr(mse_avg));
        }
        ev_json_number(o, "mean_baseline_mse", mse_mean);
        ev_json_number(o, "mean_baseline_psnr", psnr(mse_mean));
        ev_json_number(o, "nearest_baseline_mse", mse_nn);
        ev_json_number(o, "nearest_baseline_psnr", psnr(mse_nn));
        cJSON_AddNumberToObject(o, "draws", draws);
        ev_json_number(o, "code_spread_hidden", dh);
        ev_json_number(o, "code_spread_all", da);
        ev_json_number(o, "train_spread_hidden", train_hidden_spread);
    }
    /* what the passes do to the look of the completion: the share of undecided (mid-grey)
     * pixels in the hole, the realism figure's measure, next to the originals' */
    if (refine)
        fprintf(t, "  hidden region mid-grey pixels: %.1f%% after one pass, %.1f%% after %d, %.1f%% in "
                "the originals\n",
                100 * grey_model / hidden, 100 * grey_refined / hidden, EVAL_REFINE_PASSES,
                100 * grey_truth / hidden);
    const double best_base = mse_mean < mse_nn ? mse_mean : mse_nn;
    if (flow && hidden_avg > 0) {
        /* a sample is judged on sharpness, the average of samples on PSNR */
        const double gm = grey_model / hidden, gt = grey_truth / hidden;
        fprintf(t, "  hidden region mid-grey pixels: %.1f%% in one inpainting, %.1f%% in the originals\n",
                100 * gm, 100 * gt);
        if (o) {
            ev_json_number(o, "hidden_midgrey", gm);
            ev_json_number(o, "hidden_midgrey_truth", gt);
        }
        const int sharp = gm <= 2 * gt + 0.05;
        ev_verdict(r, "completion", mse_avg < best_base && sharp,
                   "the mean of %d inpaintings gives %.2f dB in the hidden region (one inpainting "
                   "%.2f dB) vs %.2f dB for the training-set mean and %.2f dB for the nearest visible "
                   "part; single inpaintings %s (%.0f%% mid-grey in the hole vs %.0f%% in the originals)",
                   draws, psnr(mse_avg), psnr(mse_model), psnr(mse_mean), psnr(mse_nn),
                   sharp ? "stay sharp" : "are blurred", 100 * gm, 100 * gt);
    } else {
        ev_verdict(r, "completion", mse_model < best_base,
                   "%.2f dB in the hidden region vs %.2f dB for the training-set mean and %.2f dB for "
                   "the nearest visible part",
                   psnr(mse_model), psnr(mse_mean), psnr(mse_nn));
    }
    if (refine)
        ev_verdict(r, "refinement", mse_refined <= mse_model,
                   "%d passes give %.2f dB in the hidden region vs %.2f dB for one pass%s",
                   EVAL_REFINE_PASSES, psnr(mse_refined), psnr(mse_model),
                   mse_refined <= mse_model ? "" : " (feeding the output back hurts)");
    const int code_ok = dh >= EV_CODE_SPREAD_SHARE * train_hidden_spread;
    ev_verdict(r, "code matters", code_ok,
               "%d codes for one input change the hidden region by %.4f per pixel vs %.4f between "
               "training images%s",
               draws, dh, train_hidden_spread, code_ok ? "" : " (the code is ignored)");
    free(mask), free(mean), free(x), free(y), free(stack), free(xr), free(yr), free(clean), free(masks);
    return 0;
fail:
    free(mask), free(mean), free(x), free(y), free(stack), free(xr), free(yr), free(clean), free(masks);
    return 1;
}

/* n new images as `deconv generate` makes them (temperature 1, its default code std), in
 * chunks so that 10,000 samples need no 10,000-image graph. The first chunk draws exactly
 * what `deconv generate -n N --seed S` draws for N <= EV_CHUNK. */
static int make_samples(const char *cmd, dc_model *m, int n, uint64_t seed, int steps,
                        dc_sampler sampler, float guidance, float *img) {
    const size_t isz = (size_t)m->spec.channels * m->spec.size * m->spec.size;
    const int B = n < EV_CHUNK ? n : EV_CHUNK;
    dc_error err = {0};
    dc_model *g = NULL;
    float *buf = malloc(sizeof(float) * (size_t)B * isz), *x = NULL, *z = NULL;
    int rc = 1;
    const int code_noise = dc_model_kind_has(m->spec.kind, DC_KIND_CODE_NOISE);
    if (!buf) goto oom;
    if (dc_model_kind_has(m->spec.kind, DC_KIND_FLOW)) {
        /* diffusion: as `deconv generate --steps --sampler` makes them, from the seed's noises;
         * a class-conditioned model with guidance > 0 draws the classes in turn (sample i gets
         * class i mod K, as `generate --class K --guidance W --seed` with a seed per class),
         * as conditional models are evaluated; guidance 0 samples unconditionally */
        const int K = m->spec.cond_classes;
        if (K <= 0 || guidance == 0.0f) {
            if (dc_flow_sample(m, n, steps, sampler, seed, NULL, img, NULL, 0, &err) != DC_OK) {
                dc_cli_fail(cmd, "%s", err.msg);
                goto done;
            }
            rc = 0;
            goto done;
        }
        float *cls = malloc(sizeof(float) * (size_t)((n + K - 1) / K) * isz);
        if (!cls) goto oom;
        for (int k = 0; k < K && k < n; k++) {
            const int nk = (n - k + K - 1) / K; /* samples k, k + K, k + 2K, ... */
            if (dc_flow_sample_guided(m, nk, steps, sampler, dc_seed_mix(seed, (uint64_t)k), NULL,
                                      cls, NULL, 0, k, guidance, &err) != DC_OK) {
                dc_cli_fail(cmd, "%s", err.msg);
                free(cls);
                goto done;
            }
            for (int j = 0; j < nk; j++)
                memcpy(img + (size_t)(k + j * K) * isz, cls + (size_t)j * isz, sizeof(float) * isz);
        }
        free(cls);
        rc = 0;
        goto done;
    }
    if (dc_model_create_shared(m, B, code_noise ? 0 : 1, &g, &err) != DC_OK) {
        dc_cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (code_noise) {
        /* blank canvas: every pixel hidden (0 = the fill the model saw for hidden pixels) */
        x = calloc((size_t)B * isz, sizeof(float));
        if (!x) goto oom;
        const float std = m->spec.noise > 0 ? m->spec.noise : 1.0f;
        for (int i0 = 0, k = 0; i0 < n; i0 += B, k++) {
            const uint64_t s = k == 0 ? dc_seed_mix(seed, 1) : dc_seed_mix(dc_seed_mix(seed, 1), (uint64_t)k);
            if (gen_forward_complete(cmd, g, x, NULL, std, s, buf)) goto done;
            const int cnt = n - i0 < B ? n - i0 : B;
            memcpy(img + (size_t)i0 * isz, buf, sizeof(float) * isz * (size_t)cnt);
        }
    } else {
        const int L = m->spec.latent;
        z = calloc((size_t)(n + B) * L, sizeof(float)); /* room to pad the last chunk */
        if (!z) goto oom;
        if (gen_sample_latents(cmd, m, n, 1.0f, seed, z)) goto done;
        for (int i0 = 0; i0 < n; i0 += B) {
            if (gen_decode(cmd, g, z + (size_t)i0 * L, buf)) goto done;
            const int cnt = n - i0 < B ? n - i0 : B;
            memcpy(img + (size_t)i0 * isz, buf, sizeof(float) * isz * (size_t)cnt);
        }
    }
    rc = 0;
    goto done;
oom:
    dc_cli_fail(cmd, "out of memory");
done:
    free(buf), free(x), free(z);
    dc_model_free(g);
    return rc;
}

/* The samples as a NumPy .npy file: float32 [n, C, S, S] in [-1, 1] (format version 1.0,
 * little-endian, C order), for a look at them or other metrics. 0, or 1 after saying why. */
static int save_samples_npy(const char *cmd, const char *path, const float *img, int n, int C,
                            int S) {
    char header[128];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d, %d), }", n,
                       C, S, S);
    /* magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64 and
     * ended by a newline */
    const int total = (10 + len + 1 + 63) / 64 * 64;
    while (10 + len < total - 1) header[len++] = ' ';
    header[len++] = '\n';
    FILE *fp = fopen(path, "wb");
    if (!fp) return dc_cli_fail(cmd, "--save-samples %s: %s", path, strerror(errno));
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 255),
                                   (unsigned char)(len >> 8)};
    const size_t count = (size_t)n * C * S * S;
    int ok = fwrite(pre, 1, sizeof pre, fp) == sizeof pre &&
             fwrite(header, 1, (size_t)len, fp) == (size_t)len &&
             fwrite(img, sizeof(float), count, fp) == count; /* x86-64 and AArch64 hosts: little-endian */
    ok = (fclose(fp) == 0) && ok;
    if (!ok) return dc_cli_fail(cmd, "--save-samples %s: write failed: %s", path, strerror(errno));
    return 0;
}

/* The training data a run names in its metadata ("fashion-mnist", a folder, ...). */
static int run_data(const dc_meta *meta, char *out, size_t cap) {
    cJSON *tj = cJSON_Parse(dc_meta_get(meta, "train"));
    const cJSON *d = tj ? cJSON_GetObjectItem(tj, "data") : NULL;
    int ok = cJSON_IsString(d);
    snprintf(out, cap, "%s", ok ? d->valuestring : "?");
    cJSON_Delete(tj);
    return ok;
}

int dc_cli_eval_generative(dc_args *a, const char *run, dc_backend *be) {
    const char *cmd = "eval";
    const char *data = dc_args_str(a, "data", NULL);
    const int draws = dc_args_int(a, "draws", 16);
    int samples = dc_args_int(a, "samples", -1);
    const int limit = dc_args_int(a, "limit", 500);
    const uint64_t seed = (uint64_t)dc_args_long(a, "seed", 1);
    const char *json = dc_args_str(a, "json", NULL);
    const char *save = dc_args_str(a, "save-samples", NULL);
    const char *classifier =
        dc_args_str(a, "classifier", DECONV_ASSETS_DIR "/fm32_classifier.safetensors");
    const int use_cache = !dc_args_flag(a, "no-cache");
    const int steps = dc_args_int(a, "steps", DC_FLOW_STEPS);
    const char *sampler_name = dc_args_str(a, "sampler", "euler");
    const float guidance = dc_args_float(a, "guidance", 1.0f);
    /* 0: the model's own default (dc_flow_default_resample), once it is open */
    int resample = dc_args_int(a, "resample", 0);
    dc_sampler sampler;
    if (dc_args_check_unused(a)) return 2;
    if (dc_args_str(a, "resample", NULL) && (resample < 1 || resample > 1000))
        return dc_cli_usage(cmd, "--resample %d: use 1 to 1000", resample);
    if (!(guidance >= 0.0f && guidance <= 20.0f))
        return dc_cli_usage(cmd, "--guidance %g: use a value in [0, 20]", (double)guidance);
    if (dc_sampler_parse(sampler_name, &sampler, NULL) != DC_OK)
        return dc_cli_usage(cmd, "--sampler %s: use euler, heun or sde", sampler_name);
    if (steps < 1) return dc_cli_usage(cmd, "--steps %d: use at least 1", steps);
    if (draws < 2 || samples == 0 || samples < -1) return dc_cli_usage(cmd, "--draws must be >= 2 and --samples >= 1");
    ev_report r;
    if (ev_report_init(&r, json && strcmp(json, "-") == 0 ? stderr : stdout))
        return dc_cli_fail(cmd, "out of memory");
    dc_meta meta = {0};
    dc_model *m = NULL;
    dc_dataset *train = NULL, *val = NULL, *other = NULL, *head = NULL;
    float *img = NULL;
    int rc = 1;
    char train_data[1024];
    if (dc_cli_open_run(cmd, run, be, 32, &m, &meta)) goto done;
    if (gen_run_split(cmd, &meta, m, &train, &val)) goto done;
    run_data(&meta, train_data, sizeof train_data);
    const int fashion = strncmp(train_data, "fashion-mnist", 13) == 0;
    if (samples < 0) samples = fashion ? 10000 : 64;
    const dc_dataset *eval = val;
    if (data) {
        dc_error err = {0};
        if (dc_dataset_load_path(data, m->spec.size, m->spec.channels, &other, &err) != DC_OK) {
            dc_cli_fail(cmd, "--data %s: %s", data, err.msg);
            goto done;
        }
        eval = other;
    }
    cJSON_AddStringToObject(r.root, "run", run);
    cJSON_AddStringToObject(r.root, "kind", dc_model_kind_name(m->spec.kind));
    cJSON_AddStringToObject(r.root, "data", train_data);
    cJSON_AddNumberToObject(r.root, "n_train", train->n);
    cJSON_AddNumberToObject(r.root, "seed", (double)seed);
    if (m->x >= 0 && limit > 0 && eval->n > limit) {
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
        fprintf(r.text, "evaluating the first %d of %d images (--limit)\n", limit, eval->n);
        eval = head;
    }
    fprintf(r.text, "run %s: %s model, %d training images of %s\n", run,
            dc_model_kind_name(m->spec.kind), train->n, train_data);
    /* completion figures: the models that complete a masked image in one pass, and a flow
     * model by inpainting (about 100 network evaluations per completion: small data only,
     * with --draws seeds for the diversity figure and the average completion) */
    const int flow = dc_model_kind_has(m->spec.kind, DC_KIND_FLOW);
    if (m->x >= 0 && (!flow || !fashion)) {
        if (eval->n == 0) {
            fprintf(r.text, "no validation images (the run used --val 0): completion measured on the "
                            "training set\n");
            eval = train;
        }
        dc_flow_config inpaint_cfg;
        dc_flow_config_default(&inpaint_cfg);
        inpaint_cfg.steps = steps;
        inpaint_cfg.sampler = sampler;
        if (resample == 0) resample = flow ? dc_flow_default_resample(m) : 1;
        if (eval_completion(&r, cmd, m, train, eval, draws, seed, &inpaint_cfg, resample))
            goto done;
    }
    const int C = m->spec.channels, S = m->spec.size;
    const size_t isz = (size_t)C * S * S;
    img = malloc(sizeof(float) * (size_t)samples * isz);
    if (!img) {
        dc_cli_fail(cmd, "out of memory for %d samples", samples);
        goto done;
    }
    if (make_samples(cmd, m, samples, seed, steps, sampler, guidance, img)) goto done;
    if (save && save_samples_npy(cmd, save, img, samples, m->spec.channels, m->spec.size)) goto done;
    if (dc_model_kind_has(m->spec.kind, DC_KIND_FLOW)) {
        fprintf(r.text, "sampler: %d %s steps\n", steps, dc_sampler_name(sampler));
        cJSON_AddNumberToObject(r.root, "steps", steps);
        cJSON_AddStringToObject(r.root, "sampler", dc_sampler_name(sampler));
        if (m->spec.cond_classes > 0) {
            if (guidance > 0.0f)
                fprintf(r.text, "classes: each of the %d classes in turn, guidance %g%s\n",
                        m->spec.cond_classes, (double)guidance,
                        guidance == 1.0f ? " (the conditional model)" : "");
            else
                fprintf(r.text, "classes: none (--guidance 0: the unconditional model)\n");
            cJSON_AddNumberToObject(r.root, "guidance", guidance);
        }
    }
    const char *how = dc_model_kind_get(m->spec.kind)->generation;
    fprintf(r.text, "generation: %d samples (%s), seed %llu\n", samples, how, (unsigned long long)seed);
    cJSON_AddStringToObject(r.root, "generation", how);
    cJSON_AddNumberToObject(r.root, "n_samples", samples);
    const int ns = samples < EV_SMALL_MAX_SAMPLES ? samples : EV_SMALL_MAX_SAMPLES;
    const int nt = train->n < EV_SMALL_MAX_TRAIN ? train->n : EV_SMALL_MAX_TRAIN;
    if (ns < samples || nt < train->n)
        fprintf(r.text, "the figures below use the first %d samples and the first %d training images\n",
                ns, nt);
    if (nt < 3) {
        dc_cli_fail(cmd, "the nearest-image figures need at least 3 training images (the run has %d)",
                    train->n);
        goto done;
    }
    dc_error err = {0};
    if (ev_small_data(&r, img, ns, dc_dataset_image(train, 0), nt, C, S, S, &err)) {
        dc_cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (fashion) {
        if (ev_fashion_mnist(&r, cmd, be, classifier, img, samples, C, S, use_cache)) goto done;
    } else {
        const char *why = "not computed: the pinned classifier knows Fashion-MNIST only";
        fprintf(r.text, "Frechet distance / precision / recall: %s (this run's data: %s)\n", why, train_data);
        cJSON *o = cJSON_AddObjectToObject(r.root, "fashion_mnist");
        if (o) cJSON_AddStringToObject(o, "skipped", why);
    }
    ev_report_finish(&r);
    if (json && ev_report_write_json(&r, json)) {
        dc_cli_fail(cmd, "--json %s: cannot write it (%s)", json, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(img);
    ev_report_free(&r);
    dc_dataset_free(head);
    dc_model_free(m);
    dc_dataset_free(train);
    dc_dataset_free(val);
    dc_dataset_free(other);
    dc_meta_clear(&meta);
    return rc;
}
