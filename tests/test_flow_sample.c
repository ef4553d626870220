/* Sampling flow models (host/models/flow_sample.c): the samplers against a velocity field
 * known in closed form (Gaussian data: the ODE's exact end, Euler's and Heun's orders, the
 * SDE's end distribution), the Euler and Heun steps against a naive transcription of their
 * formulas (bit for bit), the per-sample random streams, inpainting and SDEdit on a small
 * U-Net, CPU vs OpenCL of the stochastic samplers, and the CLI's complete, dream and
 * interpolate on a diffusion run. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deconv/image.h"
#include "deconv/model.h"
#include "internal.h"
#include "testutil.h"

#include "tu_stb_image.h"

/* ------------------------------------------------------- a field known in closed form */
/* Data: coordinate p ~ N(mu[p], sigma[p]^2), independent. With x_t = (1 - t) x0 + t e,
 * x_t ~ N((1 - t) mu, s^2), s^2 = (1 - t)^2 sigma^2 + t^2, and the ideal velocity
 * E[e - x0 | x_t] = (t - (1 - t) sigma^2) (x - (1 - t) mu) / s^2 - mu. The ODE's flow map
 * is affine and keeps the marginals, so from x(1) it ends exactly at mu + sigma x(1). */
enum { GAUSS_DIMS = 2 };
typedef struct gaussian_data {
    double mu[GAUSS_DIMS], sigma[GAUSS_DIMS];
    int calls;
} gaussian_data;

static dc_status velocity_gaussian(void *user, const float *x, float t, int n, float *v,
                                   dc_error *err) {
    gaussian_data *g = user;
    (void)err;
    g->calls++;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < GAUSS_DIMS; p++) {
            const double mu = g->mu[p], s2 = g->sigma[p] * g->sigma[p];
            const double var = (1 - t) * (1 - t) * s2 + (double)t * t;
            const double xi = x[i * GAUSS_DIMS + p];
            v[i * GAUSS_DIMS + p] = (float)((t - (1 - t) * s2) * (xi - (1 - t) * mu) / var - mu);
        }
    return DC_OK;
}

static const gaussian_data gauss = {{0.3, -0.4}, {0.5, 0.25}, 0};

static void normals(float *x, size_t n, uint64_t seed) {
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = dc_rng_normal(&rng);
}

/* The old sampler loop, written out from its formulas: Euler x -= dt v(x, t); Heun
 * x -= dt/2 (v(x, t) + v(x - dt v, t_next)), its last step Euler's. */
static void naive_integrate(int n, int steps, int heun, float *x) {
    gaussian_data g = gauss;
    const size_t total = (size_t)n * GAUSS_DIMS;
    float *v1 = malloc(sizeof(float) * total), *v2 = malloc(sizeof(float) * total);
    float *pred = malloc(sizeof(float) * total);
    for (int step = 0; step < steps; step++) {
        const float t = (float)(steps - step) / (float)steps;
        const float t_next = (float)(steps - step - 1) / (float)steps, dt = t - t_next;
        velocity_gaussian(&g, x, t, n, v1, NULL);
        if (!heun || step + 1 == steps) {
            for (size_t i = 0; i < total; i++)
                x[i] -= dt * v1[i];
            continue;
        }
        for (size_t i = 0; i < total; i++)
            pred[i] = x[i] - dt * v1[i];
        velocity_gaussian(&g, pred, t_next, n, v2, NULL);
        for (size_t i = 0; i < total; i++)
            x[i] -= 0.5f * dt * (v1[i] + v2[i]);
    }
    free(v1), free(v2), free(pred);
}

/* The ODE samplers land on mu + sigma x(1); halving the step halves Euler's error and
 * quarters Heun's; both equal the naive loop bit for bit (the config API changed nothing). */
static void test_ode_orders_on_gaussian(void **state) {
    (void)state;
    enum { N = 64 };
    float start[N * GAUSS_DIMS], x[N * GAUSS_DIMS], naive[N * GAUSS_DIMS];
    normals(start, N * GAUSS_DIMS, 3);
    dc_error err = {0};
    double prev[2] = {0, 0};
    for (int steps = 8; steps <= 64; steps *= 2)
        for (int heun = 0; heun < 2; heun++) {
            gaussian_data g = gauss;
            memcpy(x, start, sizeof x);
            assert_int_equal(dc_flow_integrate(velocity_gaussian, &g, N, GAUSS_DIMS, steps,
                                               heun ? DC_SAMPLER_HEUN : DC_SAMPLER_EULER, x, &err),
                             DC_OK);
            assert_int_equal(
                g.calls, dc_sampler_evaluations(heun ? DC_SAMPLER_HEUN : DC_SAMPLER_EULER, steps));
            memcpy(naive, start, sizeof naive);
            naive_integrate(N, steps, heun, naive);
            assert_memory_equal(x, naive, sizeof x);
            double worst = 0;
            for (int i = 0; i < N; i++)
                for (int p = 0; p < GAUSS_DIMS; p++) {
                    const double exact = gauss.mu[p] + gauss.sigma[p] * start[i * GAUSS_DIMS + p];
                    const double e = fabs(x[i * GAUSS_DIMS + p] - exact);
                    worst = e > worst ? e : worst;
                }
            print_message("%s, %2d steps: max error %.3g\n", heun ? "heun " : "euler", steps,
                          worst);
            if (prev[heun] > 0) {
                const double ratio = prev[heun] / worst;
                /* order 1: ratio 2; order 2: ratio 4 (within a third of the exponent) */
                if (heun ? ratio < 3.2 || ratio > 5.0 : ratio < 1.7 || ratio > 2.4)
                    fail_msg("%s at %d steps: error ratio %g for a halved step",
                             heun ? "heun" : "euler", steps, ratio);
            }
            prev[heun] = worst;
        }
    assert_true(prev[1] < 1e-3 && prev[1] < 0.1 * prev[0]);
}

/* Mean and standard deviation of coordinate p over n states. */
static void moments(const float *x, int n, int p, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        const double v = x[i * GAUSS_DIMS + p];
        s += v, s2 += v * v;
    }
    *mean = s / n;
    *std = sqrt(s2 / n - *mean * *mean);
}

/* The SDE sampler ends at the data's distribution: over 20000 samples, per coordinate the
 * mean within 0.015 of mu (about 6 standard errors at sigma 0.5) and the std within 3 % of
 * sigma (about 8 standard errors), at 200 steps. Its ends are not the ODE's map of the
 * start (the injected noise matters): correlation with mu + sigma x(1) below 0.9. */
static void test_sde_ends_at_the_data_distribution(void **state) {
    (void)state;
    enum { N = 20000 };
    float *start = malloc(sizeof(float) * N * GAUSS_DIMS),
          *x = malloc(sizeof(float) * N * GAUSS_DIMS);
    normals(start, N * GAUSS_DIMS, 11);
    memcpy(x, start, sizeof(float) * N * GAUSS_DIMS);
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 200, cfg.sampler = DC_SAMPLER_SDE, cfg.seed = 5;
    gaussian_data g = gauss;
    dc_error err = {0};
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, x, &err), DC_OK);
    assert_int_equal(g.calls, 200);
    for (int p = 0; p < GAUSS_DIMS; p++) {
        double mean, std;
        moments(x, N, p, &mean, &std);
        print_message("coordinate %d: mean %.4f (mu %.2f), std %.4f (sigma %.2f)\n", p, mean,
                      gauss.mu[p], std, gauss.sigma[p]);
        if (fabs(mean - gauss.mu[p]) > 0.015 || fabs(std / gauss.sigma[p] - 1) > 0.03)
            fail_msg("SDE coordinate %d: mean %g (want %g), std %g (want %g)", p, mean, gauss.mu[p],
                     std, gauss.sigma[p]);
        double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < N; i++) {
            const double a = x[i * GAUSS_DIMS + p], b = start[i * GAUSS_DIMS + p];
            sa += a, sb += b, sab += a * b, saa += a * a, sbb += b * b;
        }
        const double corr = (sab / N - sa / N * sb / N) /
                            sqrt((saa / N - sa / N * sa / N) * (sbb / N - sb / N * sb / N));
        print_message("coordinate %d: correlation with the ODE's end %.3f\n", p, corr);
        assert_true(corr < 0.9);
    }
    /* the same with a coarse 20-step SDE stays near (a looser 10 %: Euler-Maruyama's bias
     * is first order in the step) */
    memcpy(x, start, sizeof(float) * N * GAUSS_DIMS);
    cfg.steps = 20;
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, x, &err), DC_OK);
    for (int p = 0; p < GAUSS_DIMS; p++) {
        double mean, std;
        moments(x, N, p, &mean, &std);
        print_message("20 steps, coordinate %d: mean %.4f, std %.4f\n", p, mean, std);
        assert_true(fabs(mean - gauss.mu[p]) < 0.03 && fabs(std / gauss.sigma[p] - 1) < 0.1);
    }
    free(start), free(x);
}

/* The ideal velocity when the data is one image x0: (x_t - x0) / t. */
static dc_status velocity_to_point(void *user, const float *x, float t, int n, float *v,
                                   dc_error *err) {
    const float *x0 = user;
    (void)err;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < GAUSS_DIMS; p++)
            v[i * GAUSS_DIMS + p] = (x[i * GAUSS_DIMS + p] - x0[p]) / t;
    return DC_OK;
}

/* Data: two images, a and b = -a, equally likely. The ideal velocity is (x - E[x0 | x_t]) / t
 * with the posterior weight of a: 1 / (1 + exp((|x - (1-t) a|^2 - |x - (1-t) b|^2) / 2t^2)). */
enum { PAIR_PIX = 8 };
static const float pair_a[PAIR_PIX] = {1, 1, -1, 1, -1, -1, 1, -1};

static dc_status velocity_pair(void *user, const float *x, float t, int n, float *v,
                               dc_error *err) {
    (void)user, (void)err;
    for (int i = 0; i < n; i++) {
        double da = 0, db = 0;
        for (int p = 0; p < PAIR_PIX; p++) {
            const double xa = x[i * PAIR_PIX + p] - (1 - t) * pair_a[p];
            const double xb = x[i * PAIR_PIX + p] + (1 - t) * pair_a[p];
            da += xa * xa, db += xb * xb;
        }
        const double e = (da - db) / (2.0 * t * t);
        const double wa = e > 0 ? exp(-e) / (1 + exp(-e)) : 1 / (1 + exp(e));
        for (int p = 0; p < PAIR_PIX; p++) {
            const double x0 = (2 * wa - 1) * pair_a[p];
            v[i * PAIR_PIX + p] = (float)((x[i * PAIR_PIX + p] - x0) / t);
        }
    }
    return DC_OK;
}

/* Inpainting picks the image the known pixels belong to: with the left half known from a
 * (even states) or b (odd), at least 95 % of 400 completions land within 0.05 of that
 * image's hidden half, for every sampler, and 99 % with 3 resamples (the re-noising lets
 * the hole follow the known half), while plain sampling from the same noises splits between
 * a and b (each 30 % to 70 %). */
static void test_inpaint_completes_the_right_image(void **state) {
    (void)state;
    enum { N = 400 };
    float *known = malloc(sizeof(float) * N * PAIR_PIX),
          *masks = malloc(sizeof(float) * N * PAIR_PIX);
    float *start = malloc(sizeof(float) * N * PAIR_PIX), *x = malloc(sizeof(float) * N * PAIR_PIX);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < PAIR_PIX; p++) {
            known[i * PAIR_PIX + p] = i % 2 ? -pair_a[p] : pair_a[p];
            masks[i * PAIR_PIX + p] = p >= PAIR_PIX / 2;
        }
    normals(start, N * PAIR_PIX, 31);
    dc_error err = {0};
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 16;
    memcpy(x, start, sizeof(float) * N * PAIR_PIX);
    assert_int_equal(
        dc_flow_integrate_config(velocity_pair, NULL, N, PAIR_PIX, &cfg, 1.0f, x, &err), DC_OK);
    int as = 0;
    for (int i = 0; i < N; i++)
        as += tu_max_abs_err(x + i * PAIR_PIX, pair_a, PAIR_PIX) < 0.05;
    print_message("plain sampling: %d of %d samples are a\n", as, N);
    assert_true(as > 0.3 * N && as < 0.7 * N);
    for (int sampler = DC_SAMPLER_EULER; sampler <= DC_SAMPLER_SDE; sampler++)
        for (int resample = 1; resample <= 3; resample += 2) {
            cfg.sampler = (dc_sampler)sampler;
            memcpy(x, start, sizeof(float) * N * PAIR_PIX);
            assert_int_equal(dc_flow_integrate_inpaint(velocity_pair, NULL, N, PAIR_PIX, PAIR_PIX,
                                                       &cfg, known, masks, resample, x, &err),
                             DC_OK);
            int right = 0;
            for (int i = 0; i < N; i++) {
                right += tu_max_abs_err(x + i * PAIR_PIX, known + i * PAIR_PIX, PAIR_PIX) < 0.05;
                for (int p = 0; p < PAIR_PIX / 2; p++)
                    assert_true(x[i * PAIR_PIX + p] == known[i * PAIR_PIX + p]);
            }
            print_message("inpainting, %s, resample %d: %d of %d complete their image\n",
                          dc_sampler_name(cfg.sampler), resample, right, N);
            if (right < (resample > 1 ? 0.99 : 0.95) * N)
                fail_msg("%s, resample %d: %d of %d completions match the known half",
                         dc_sampler_name(cfg.sampler), resample, right, N);
        }
    free(known), free(masks), free(start), free(x);
}

/* Seeds and streams: the SDE repeats per seed and differs between seeds; sample i does not
 * depend on how many run with it; churn 0 is Euler bit for bit; the last step (Euler's)
 * lands a point-mass field exactly on its point; bad settings are refused by name. */
static void test_sde_streams_and_limits(void **state) {
    (void)state;
    enum { N = 6, P = N * GAUSS_DIMS };
    float start[P], a[P], b[P], c[P];
    normals(start, P, 21);
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 10, cfg.sampler = DC_SAMPLER_SDE, cfg.seed = 9;
    gaussian_data g = gauss;
    dc_error err = {0};
    memcpy(a, start, sizeof a);
    memcpy(b, start, sizeof b);
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, a, &err), DC_OK);
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, b, &err), DC_OK);
    assert_memory_equal(a, b, sizeof a);
    /* the first two samples alone */
    memcpy(c, start, sizeof c);
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, 2, GAUSS_DIMS, &cfg, 1.0f, c, &err), DC_OK);
    assert_memory_equal(a, c, sizeof(float) * 2 * GAUSS_DIMS);
    /* another seed: every sample moves */
    cfg.seed = 10;
    memcpy(b, start, sizeof b);
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, b, &err), DC_OK);
    for (int i = 0; i < N; i++)
        assert_true(tu_max_abs_err(a + i * GAUSS_DIMS, b + i * GAUSS_DIMS, GAUSS_DIMS) > 1e-3);
    /* churn 0: the Euler ODE */
    cfg.churn = 0.0f;
    memcpy(b, start, sizeof b);
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, b, &err), DC_OK);
    memcpy(c, start, sizeof c);
    assert_int_equal(
        dc_flow_integrate(velocity_gaussian, &g, N, GAUSS_DIMS, 10, DC_SAMPLER_EULER, c, &err),
        DC_OK);
    assert_memory_equal(b, c, sizeof b);
    /* one point: whatever the noise on the way, the last step x - t v(x, t) is the point */
    const float point[GAUSS_DIMS] = {0.25f, -0.75f};
    cfg.churn = 2.0f, cfg.steps = 7;
    memcpy(b, start, sizeof b);
    assert_int_equal(dc_flow_integrate_config(velocity_to_point, (void *)point, N, GAUSS_DIMS, &cfg,
                                              1.0f, b, &err),
                     DC_OK);
    for (int i = 0; i < N; i++)
        assert_true(tu_max_abs_err(b + i * GAUSS_DIMS, point, GAUSS_DIMS) < 1e-5);
    /* a later start time: fewer, smaller steps from t = 0.5 */
    cfg.sampler = DC_SAMPLER_EULER;
    memcpy(b, start, sizeof b);
    g.calls = 0;
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 0.5f, b, &err), DC_OK);
    assert_int_equal(g.calls, 7);
    /* refused, by name */
    cfg.churn = -1.0f;
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, b, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "churn -1"));
    cfg.churn = 1.0f;
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 0.0f, b, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "start time 0"));
    cfg.guidance = 2.0f;
    assert_int_equal(
        dc_flow_integrate_config(velocity_gaussian, &g, N, GAUSS_DIMS, &cfg, 1.0f, b, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "guidance 2 needs a class"));
    dc_sampler s;
    assert_int_equal(dc_sampler_parse("sde", &s, &err), DC_OK);
    assert_int_equal(s, DC_SAMPLER_SDE);
    assert_string_equal(dc_sampler_name(DC_SAMPLER_SDE), "sde");
    assert_int_equal(dc_sampler_parse("ddpm", &s, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "sde"));
}

/* ------------------------------------------------------------------ a small U-Net */
enum { SIDE = 16, PIX = SIDE * SIDE };

static dc_model *tiny_model(dc_backend *be, int batch) {
    dc_error err = {0};
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "diffusion", 1, SIDE, &err), DC_OK);
    spec.base = 4, spec.blocks = 2;
    dc_model *m;
    if (dc_model_create(be, &spec, batch, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    dc_rng rng;
    dc_rng_seed(&rng, 8);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    return m;
}

/* A square on white, as the data of the CLI run. */
static void square_image(float *im, int y0, int x0) {
    for (int p = 0; p < PIX; p++)
        im[p] = 1.0f;
    for (int y = y0; y < y0 + 6; y++)
        for (int x = x0; x < x0 + 6; x++)
            im[y * SIDE + x] = -1.0f;
}

/* Inpainting keeps the known pixels exactly, fills the hole within [-1, 1], gives every
 * sample its own completion (the same image twice: two different holes), repeats per seed
 * and depends on the resampling. */
static void test_inpaint_keeps_known_pixels(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m = tiny_model(be, 2);
    enum { N = 3 };
    float images[N * PIX], masks[N * PIX], a[N * PIX], b[N * PIX];
    square_image(images, 2, 3);
    square_image(images + PIX, 2, 3);
    square_image(images + 2 * PIX, 8, 9);
    dc_mask_make(DC_MASK_BOX, SIDE, SIDE, NULL, masks);
    dc_mask_make(DC_MASK_BOX, SIDE, SIDE, NULL, masks + PIX);
    dc_mask_make(DC_MASK_LEFT, SIDE, SIDE, NULL, masks + 2 * PIX);
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 5, cfg.seed = 4;
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 2, a, &err), DC_OK);
    int hidden = 0;
    for (int i = 0; i < N * PIX; i++) {
        if (masks[i] > 0.5f) {
            hidden++;
            assert_true(a[i] >= -1.0f && a[i] <= 1.0f);
        } else if (a[i] != images[i]) {
            fail_msg("known pixel %d changed: %g -> %g", i, images[i], a[i]);
        }
    }
    assert_true(hidden == PIX / 4 + PIX / 4 + PIX / 2);
    double hole_diff = 0;
    for (int q = 0; q < PIX; q++)
        if (masks[q] > 0.5f) hole_diff += fabs(a[q] - a[PIX + q]);
    assert_true(hole_diff / (PIX / 4) > 0.05);
    /* the same call again: the same completions; the sampler's result for sample 0 alone */
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 2, b, &err), DC_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(dc_flow_inpaint(m, 1, &cfg, images, masks, 2, b, &err), DC_OK);
    assert_memory_equal(a, b, sizeof(float) * PIX);
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 1, b, &err), DC_OK);
    assert_true(tu_max_abs_err(a, b, N * PIX) > 1e-3);
    /* the stochastic sampler inpaints too and keeps the known pixels */
    cfg.sampler = DC_SAMPLER_SDE;
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 2, b, &err), DC_OK);
    for (int i = 0; i < N * PIX; i++)
        assert_true(masks[i] > 0.5f || b[i] == images[i]);
    /* refused: no resampling at all, a class for an unconditional model, other kinds */
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 0, b, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "resample 0"));
    cfg.class_label = 3;
    assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 2, b, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "unconditional"));
    dc_model_free(m);
    dc_backend_free(be);
}

/* SDEdit: strength 1 is plain sampling from the same seed (bit for bit); a strength near 0
 * returns the canvas; in between the result moves away from the canvas as the strength
 * grows. */
static void test_edit_strength(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m = tiny_model(be, 3);
    enum { N = 3 };
    float canvas[N * PIX], a[N * PIX], b[N * PIX];
    square_image(canvas, 4, 4);
    for (int p = 0; p < PIX; p++)
        canvas[PIX + p] = 1.0f, canvas[2 * PIX + p] = -1.0f;
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 6, cfg.sampler = DC_SAMPLER_HEUN, cfg.seed = 12;
    assert_int_equal(dc_flow_edit(m, N, &cfg, canvas, 1.0f, a, &err), DC_OK);
    assert_int_equal(dc_flow_generate(m, N, &cfg, NULL, b, NULL, 0, &err), DC_OK);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(dc_flow_edit(m, N, &cfg, canvas, 1e-3f, a, &err), DC_OK);
    const double near = tu_max_abs_err(a, canvas, N * PIX);
    print_message("strength 0.001: max distance to the canvas %.4f\n", near);
    assert_true(near < 0.02);
    double prev = 0;
    for (int k = 1; k <= 3; k++) {
        const float s = 0.3f * (float)k;
        assert_int_equal(dc_flow_edit(m, N, &cfg, canvas, s, a, &err), DC_OK);
        double dist = 0;
        for (int i = 0; i < N * PIX; i++)
            dist += fabs(a[i] - canvas[i]);
        dist /= N * PIX;
        print_message("strength %.1f: mean distance to the canvas %.4f\n", (double)s, dist);
        assert_true(dist > prev);
        prev = dist;
    }
    assert_int_equal(dc_flow_edit(m, N, &cfg, canvas, 0.0f, a, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "strength 0"));
    dc_model_free(m);
    dc_backend_free(be);
}

/* ----------------------------------------------------------------- CPU vs OpenCL */
/* The same small U-Net on both backends: a short SDE sample, an inpainting and an SDEdit
 * agree to 1e-3 (max abs difference; the draws are host-side, so only the network's float
 * rounding differs). */
static void test_cpu_vs_opencl(void **state) {
    (void)state;
    if (!dc_opencl_available()) TU_SKIP_OR_FAIL("no OpenCL platform");
    dc_error err = {0};
    dc_backend *be[2];
    assert_int_equal(dc_backend_create_cpu(1, &be[0], &err), DC_OK);
    if (dc_backend_create_opencl(-1, -1, &be[1], &err) != DC_OK) {
        dc_backend_free(be[0]);
        TU_SKIP_OR_FAIL("no OpenCL device: %s", err.msg);
    }
    dc_model *m[2] = {tiny_model(be[0], 2), tiny_model(be[1], 2)};
    /* the OpenCL model takes the CPU model's parameters, whatever each init drew */
    for (int i = 0; i < dc_params_count(m[0]->params); i++) {
        const dc_param *p = dc_params_get(m[0]->params, i);
        float *host = malloc(sizeof(float) * p->numel);
        assert_int_equal(dc_params_read(m[0]->params, i, host), DC_OK);
        assert_int_equal(dc_params_write(m[1]->params, i, host), DC_OK);
        free(host);
    }
    enum { N = 3 };
    float images[N * PIX], masks[N * PIX], out[3][2][N * PIX];
    for (int i = 0; i < N; i++) {
        square_image(images + i * PIX, 2 + 3 * i, 5);
        dc_mask_make(DC_MASK_BOTTOM, SIDE, SIDE, NULL, masks + i * PIX);
    }
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 4, cfg.seed = 17;
    for (int k = 0; k < 2; k++) {
        dc_flow_config sde = cfg;
        sde.sampler = DC_SAMPLER_SDE;
        if (dc_flow_generate(m[k], N, &sde, NULL, out[0][k], NULL, 0, &err) != DC_OK ||
            dc_flow_inpaint(m[k], N, &cfg, images, masks, 2, out[1][k], &err) != DC_OK ||
            dc_flow_edit(m[k], N, &cfg, images, 0.6f, out[2][k], &err) != DC_OK)
            fail_msg("%s: %s", dc_backend_name(be[k]), err.msg);
    }
    const char *what[3] = {"4-step SDE sample", "inpainting (4 steps x 2)", "SDEdit at 0.6"};
    for (int j = 0; j < 3; j++) {
        const double e = tu_max_abs_err(out[j][1], out[j][0], N * PIX);
        print_message("%s: max abs difference CPU vs OpenCL %.3g\n", what[j], e);
        if (e > 1e-3) fail_msg("%s: CPU vs OpenCL max abs difference %g", what[j], e);
    }
    for (int k = 0; k < 2; k++) {
        dc_model_free(m[k]);
        dc_backend_free(be[k]);
    }
}

/* ---------------------------------------------------------------------- the CLI */
typedef struct png {
    int w, h;
    unsigned char *px; /* gray */
} png;

static png read_png(const char *dir, const char *name) {
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    png p = {0, 0, NULL};
    int c;
    p.px = stbi_load(path, &p.w, &p.h, &c, 1);
    if (!p.px) fail_msg("cannot read %s", path);
    return p;
}

/* Pixel (y, x) of grid cell (row, col): the cells are SIDE wide with a separator between. */
static int cell_px(const png *p, int row, int col, int y, int x) {
    const int sep = DC_GRID_SEPARATOR;
    return p->px[(size_t)(sep + row * (SIDE + sep) + y) * p->w + sep + col * (SIDE + sep) + x];
}

static int grid_side(int cells) {
    return cells * (SIDE + DC_GRID_SEPARATOR) + DC_GRID_SEPARATOR;
}

/* Largest difference between two cells. */
static int cell_diff(const png *a, int ra, int ca, const png *b, int rb, int cb) {
    int worst = 0;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++) {
            const int d = abs(cell_px(a, ra, ca, y, x) - cell_px(b, rb, cb, y, x));
            worst = d > worst ? d : worst;
        }
    return worst;
}

/* A diffusion run trained two epochs on squares, then: complete (known pixels kept,
 * variants that differ), dream (layout, strength ~0 returns the canvas, seeds differ) and
 * interpolate (layout, ends are the seeds' samples, sde refused). */
static void test_cli_complete_dream_interpolate(void **state) {
    (void)state;
    char *dir = tu_tmpdir("flow_cli");
    dc_error err = {0};
    char data[1200];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0755);
    for (int i = 0; i < 10; i++) {
        float im[PIX];
        square_image(im, i, 9 - i);
        char p[1300];
        snprintf(p, sizeof p, "%s/s%02d.png", data, i);
        assert_int_equal(dc_image_write_png(p, im, 1, SIDE, SIDE, DC_RANGE_PM1, &err), DC_OK);
    }
    const char *bin = tu_cli_path();
    assert_int_equal(tu_system("%s train --model diffusion --data %s --size 16 --base 4 --blocks 2 "
                               "--batch 4 --epochs 2 --out %s/run --device cpu --threads 1 --quiet "
                               ">%s/train.log 2>&1",
                               bin, data, dir, dir),
                     0);
    /* complete: 2 images x 3 variants, box hole; rows: images; columns: input, 3, original */
    assert_int_equal(tu_system("%s complete %s/run %s/s01.png %s/s06.png --mask box --variants 3 "
                               "--resample 2 --steps 4 -o %s/completed.png --device cpu "
                               ">%s/complete.log 2>&1",
                               bin, dir, data, data, dir, dir),
                     0);
    assert_int_equal(tu_system("grep -q '3 variants, mask box' %s/complete.log", dir), 0);
    /* the run is mask-conditioned (the default --cond-mask 0.5): it inpaints without
     * resampling unless told */
    assert_int_equal(tu_system("%s complete %s/run %s/s01.png --variants 1 --steps 2 -o "
                               "%s/c1.png --device cpu >%s/c1.log 2>&1 && grep -q '2 euler steps "
                               "x 1 resamples' %s/c1.log",
                               bin, dir, data, dir, dir, dir),
                     0);
    png c = read_png(dir, "completed.png");
    assert_int_equal(c.w, grid_side(5));
    assert_int_equal(c.h, grid_side(2));
    float mask[PIX];
    dc_mask_make(DC_MASK_BOX, SIDE, SIDE, NULL, mask);
    for (int r = 0; r < 2; r++) {
        int hole_diff = 0;
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                const int orig = cell_px(&c, r, 4, y, x);
                if (mask[y * SIDE + x] > 0.5f) {
                    /* the input shows the hole mid-grey; the variants differ there */
                    assert_true(abs(cell_px(&c, r, 0, y, x) - 128) <= 1);
                    hole_diff += abs(cell_px(&c, r, 1, y, x) - cell_px(&c, r, 2, y, x)) +
                                 abs(cell_px(&c, r, 2, y, x) - cell_px(&c, r, 3, y, x));
                    continue;
                }
                assert_int_equal(cell_px(&c, r, 0, y, x), orig);
                for (int v = 1; v <= 3; v++)
                    if (cell_px(&c, r, v, y, x) != orig)
                        fail_msg("row %d, variant %d: known pixel (%d, %d) is %d, not %d", r, v, y,
                                 x, cell_px(&c, r, v, y, x), orig);
            }
        assert_true(hole_diff > 0);
    }
    stbi_image_free(c.px);
    /* dream with one image: rows grey, white, black, noise, the image; columns: the canvas
     * and 3 seeds. At strength 0.001 every dream is its canvas. */
    assert_int_equal(tu_system("%s dream %s/run %s/s03.png --count 3 --strength 0.001 --steps 8 "
                               "--out %s --device cpu >%s/dream.log 2>&1",
                               bin, dir, data, dir, dir),
                     0);
    png d = read_png(dir, "dream_canvas.png");
    assert_int_equal(d.w, grid_side(4));
    assert_int_equal(d.h, grid_side(5));
    for (int r = 0; r < 5; r++)
        for (int col = 1; col <= 3; col++)
            if (cell_diff(&d, r, col, &d, r, 0) > 4)
                fail_msg("strength 0.001, row %d, seed column %d: %d grey levels from the canvas",
                         r, col, cell_diff(&d, r, col, &d, r, 0));
    assert_true(cell_px(&d, 1, 0, 5, 5) == 255 && cell_px(&d, 2, 0, 5, 5) == 0);
    stbi_image_free(d.px);
    /* at full strength the seeds' columns differ */
    assert_int_equal(tu_system("%s dream %s/run --count 2 --strength 1 --steps 4 --sampler sde "
                               "--out %s --device cpu >%s/dream.log 2>&1",
                               bin, dir, dir, dir),
                     0);
    /* --out DIR is created when missing (with its parents) */
    assert_int_equal(tu_system("%s dream %s/run --count 1 --strength 0.5 --steps 2 --out "
                               "%s/new/dreams --device cpu >%s/dream2.log 2>&1 && test -s "
                               "%s/new/dreams/dream_canvas.png",
                               bin, dir, dir, dir, dir),
                     0);
    d = read_png(dir, "dream_canvas.png");
    assert_int_equal(d.w, grid_side(3));
    assert_int_equal(d.h, grid_side(4));
    for (int r = 0; r < 4; r++)
        assert_true(cell_diff(&d, r, 1, &d, r, 2) > 10);
    stbi_image_free(d.px);
    /* interpolate: 5 frames from seed 3's noise to seed 4's; the ends are those seeds'
     * first samples (deconv generate -n 1) */
    assert_int_equal(tu_system("%s interpolate %s/run --from 3 --to 4 --frames 5 --steps 4 "
                               "-o %s/interp.png --device cpu >%s/interp.log 2>&1 && "
                               "%s generate %s/run -n 1 --seed 3 --steps 4 -o %s/g3.png "
                               "--device cpu >/dev/null 2>&1 && "
                               "%s generate %s/run -n 1 --seed 4 --steps 4 -o %s/g4.png "
                               "--device cpu >/dev/null 2>&1",
                               bin, dir, dir, dir, bin, dir, dir, bin, dir, dir),
                     0);
    png s = read_png(dir, "interp.png"), g3 = read_png(dir, "g3.png"), g4 = read_png(dir, "g4.png");
    assert_int_equal(s.w, grid_side(5));
    assert_int_equal(s.h, grid_side(1));
    /* one grey level of float rounding between a batch of 5 and a batch of 1 */
    assert_true(cell_diff(&s, 0, 0, &g3, 0, 0) <= 1);
    assert_true(cell_diff(&s, 0, 4, &g4, 0, 0) <= 1);
    assert_true(cell_diff(&s, 0, 0, &s, 0, 4) > 10);
    stbi_image_free(s.px), stbi_image_free(g3.px), stbi_image_free(g4.px);
    assert_int_not_equal(tu_system("%s interpolate %s/run --sampler sde --device cpu >%s/bad.log "
                                   "2>&1",
                                   bin, dir, dir),
                         0);
    assert_int_equal(tu_system("grep -q 'deterministic ODE' %s/bad.log", dir), 0);
    assert_int_not_equal(
        tu_system("%s generate %s/run --class 2 --device cpu >%s/bad.log 2>&1", bin, dir, dir), 0);
    assert_int_equal(tu_system("grep -q 'unconditional' %s/bad.log", dir), 0);
    /* the SDE sampler through generate */
    assert_int_equal(tu_system("%s generate %s/run -n 2 --steps 3 --sampler sde --churn 0.5 -o "
                               "%s/sde.png --device cpu >%s/sde.log 2>&1 && grep -q '3 sde steps' "
                               "%s/sde.log",
                               bin, dir, dir, dir, dir),
                     0);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ode_orders_on_gaussian),
        cmocka_unit_test(test_sde_ends_at_the_data_distribution),
        cmocka_unit_test(test_sde_streams_and_limits),
        cmocka_unit_test(test_inpaint_completes_the_right_image),
        cmocka_unit_test(test_inpaint_keeps_known_pixels),
        cmocka_unit_test(test_edit_strength),
        cmocka_unit_test(test_cpu_vs_opencl),
        cmocka_unit_test(test_cli_complete_dream_interpolate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
