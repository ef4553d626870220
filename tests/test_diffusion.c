/* The diffusion kind (flow matching): the samplers against velocity fields whose solution
 * is known in closed form, the training batch against the flow-matching definitions, CPU vs
 * OpenCL losses of a few training steps and of a short sample, a resumed run bit-identical
 * to a straight one, reproducible samples per seed, and the CLI train + generate. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deconv/image.h"
#include "deconv/model.h"
#include "deconv/train.h"
#include "internal.h"
#include "testutil.h"

/* ---------------------------------------------------------------- samplers */
/* The ideal velocity when the data is one image x0: E[noise - x0 | x_t] = (x_t - x0) / t. */
typedef struct one_image {
    const float *x0;
    size_t numel;
    int calls;
} one_image;

static dc_status velocity_to_image(void *user, const float *x, float t, int n, float *v,
                                   dc_error *err) {
    one_image *o = user;
    (void)err;
    o->calls++;
    assert_true(t > 0.0f && t <= 1.0f);
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < o->numel; p++)
            v[i * o->numel + p] = (x[i * o->numel + p] - o->x0[p]) / t;
    return DC_OK;
}

/* dx/dt = x: from x(1) the exact x(0) = x(1) / e. */
static dc_status velocity_identity(void *user, const float *x, float t, int n, float *v,
                                   dc_error *err) {
    (void)user, (void)t, (void)err;
    for (int i = 0; i < n; i++)
        v[i] = x[i];
    return DC_OK;
}

static void test_samplers_integrate_known_fields(void **state) {
    (void)state;
    dc_error err = {0};
    enum { N = 3, P = 50 };
    float x0[P], noise[N * P], x[N * P];
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    tu_fill_uniform(x0, P, &rng, -1, 1);
    for (int i = 0; i < N * P; i++)
        noise[i] = dc_rng_normal(&rng);
    /* every path of the single-image field is a straight line to x0: both samplers land
     * on x0 from any noise, whatever the number of steps */
    for (int sampler = DC_SAMPLER_EULER; sampler <= DC_SAMPLER_HEUN; sampler++)
        for (int steps = 1; steps <= 17; steps += 8) {
            one_image o = {x0, P, 0};
            memcpy(x, noise, sizeof x);
            assert_int_equal(
                dc_flow_integrate(velocity_to_image, &o, N, P, steps, (dc_sampler)sampler, x, &err),
                DC_OK);
            assert_int_equal(o.calls, sampler == DC_SAMPLER_HEUN ? 2 * steps - 1 : steps);
            for (int i = 0; i < N; i++)
                if (tu_max_abs_err(x + i * P, x0, P) > 1e-5)
                    fail_msg("%s, %d steps: sample %d is %g from the image",
                             dc_sampler_name((dc_sampler)sampler), steps, i,
                             tu_max_abs_err(x + i * P, x0, P));
        }
    /* dx/dt = x backwards over [0, 1]: Euler multiplies by (1 - h) per step, Heun by
     * (1 - h + h^2/2) (its last step is Euler's); both converge to 1/e, Heun at order 2 */
    double prev_euler = 0, prev_heun = 0;
    for (int steps = 4; steps <= 32; steps *= 2) {
        const double h = 1.0 / steps;
        float xe = 1.0f, xh = 1.0f;
        assert_int_equal(
            dc_flow_integrate(velocity_identity, NULL, 1, 1, steps, DC_SAMPLER_EULER, &xe, &err),
            DC_OK);
        assert_int_equal(
            dc_flow_integrate(velocity_identity, NULL, 1, 1, steps, DC_SAMPLER_HEUN, &xh, &err),
            DC_OK);
        const double want_e = pow(1 - h, steps),
                     want_h = pow(1 - h + h * h / 2, steps - 1) * (1 - h);
        assert_true(fabs(xe - want_e) < 1e-6 && fabs(xh - want_h) < 1e-6);
        const double err_e = fabs(xe - exp(-1.0)), err_h = fabs(xh - exp(-1.0));
        assert_true(err_h < err_e);
        if (prev_euler > 0) {
            /* halving the step halves Euler's error and (past the last Euler step's h^2
             * term) cuts Heun's by about 4 */
            assert_true(err_e < 0.6 * prev_euler);
            assert_true(err_h < 0.35 * prev_heun);
        }
        prev_euler = err_e, prev_heun = err_h;
    }
    /* bad arguments are refused with a message */
    assert_int_equal(dc_flow_integrate(velocity_identity, NULL, 1, 1, 0, DC_SAMPLER_EULER, x, &err),
                     DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "steps 0"));
    dc_sampler s;
    assert_int_equal(dc_sampler_parse("ddim", &s, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "euler or heun"));
    assert_int_equal(dc_sampler_parse("heun", &s, &err), DC_OK);
    assert_int_equal(s, DC_SAMPLER_HEUN);
}

/* ------------------------------------------------------------------ models */
static dc_dataset *tiny_data(int n) {
    dc_dataset *ds;
    dc_error err = {0};
    assert_int_equal(dc_dataset_create(n, 1, 16, 16, 0, &ds, &err), DC_OK);
    dc_rng r;
    dc_rng_seed(&r, 31);
    for (int i = 0; i < n; i++) {
        float *im = dc_dataset_image(ds, i);
        const int y0 = (int)dc_rng_below(&r, 10), x0 = (int)dc_rng_below(&r, 10);
        for (int p = 0; p < 256; p++)
            im[p] = 1.0f;
        for (int y = y0; y < y0 + 6; y++)
            for (int x = x0; x < x0 + 6; x++)
                im[y * 16 + x] = -1.0f;
    }
    return ds;
}

static void tiny_spec(dc_model_spec *spec) {
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(spec, "diffusion", 1, 16, &err), DC_OK);
    spec->base = 4, spec->blocks = 2;
}

/* The batch: x = (1 - t) x0 + t noise and target = noise - x0, so x - t * target = x0 for
 * the image of each slot; t in [0, 1) and the draws a function of the seed. */
static void test_batch_is_flow_matching(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = tiny_data(5);
    dc_model_spec spec;
    tiny_spec(&spec);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m;
    assert_int_equal(dc_model_create(be, &spec, 4, &m, &err), DC_OK);
    assert_true(m->time >= 0 && m->x >= 0 && m->target >= 0);
    dc_batch a, b;
    assert_int_equal(dc_batch_alloc(m, &a, &err), DC_OK);
    assert_int_equal(dc_batch_alloc(m, &b, &err), DC_OK);
    const int32_t idx[3] = {4, 0, 2};
    assert_int_equal(dc_model_fill_batch(m, ds, idx, 3, NULL, 99, &a, &err), DC_OK);
    double var = 0;
    for (int slot = 0; slot < 4; slot++) {
        const float t = a.t[slot], *x0 = dc_dataset_image(ds, idx[slot % 3]);
        assert_true(t >= 0.0f && t < 1.0f);
        for (int p = 0; p < 256; p++) {
            const float x = a.x[slot * 256 + p], v = a.target[slot * 256 + p];
            assert_true(fabsf(x - t * v - x0[p]) < 1e-5f);
            assert_true(a.weight[slot * 256 + p] == 1.0f);
            var += (double)(v + x0[p]) * (v + x0[p]); /* the noise, squared */
        }
    }
    assert_true(fabs(var / (4 * 256) - 1.0) < 0.15); /* unit-variance noise */
    assert_true(a.t[0] != a.t[1]);
    assert_int_equal(dc_model_fill_batch(m, ds, idx, 3, NULL, 99, &b, &err), DC_OK);
    assert_memory_equal(a.x, b.x, sizeof(float) * 4 * 256);
    assert_memory_equal(a.t, b.t, sizeof(float) * 4);
    assert_int_equal(dc_model_fill_batch(m, ds, idx, 3, NULL, 100, &b, &err), DC_OK);
    assert_true(memcmp(a.t, b.t, sizeof(float) * 4) != 0);
    /* sizes the U-Net cannot halve are refused by name */
    spec.size = 18, spec.blocks = 3;
    assert_int_equal(dc_model_spec_check(&spec, &err), DC_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "--size 18"));
    dc_batch_free(&a);
    dc_batch_free(&b);
    dc_model_free(m);
    dc_backend_free(be);
    dc_dataset_free(ds);
}

/* The mask-conditioned denoiser (cond_mask, default 0.5): the batch's cond input holds each
 * clean image where its mask is 0, zeros where it is 1, then the mask plane; the share of
 * images with a partial mask is cond_mask (the rest fully hidden: nothing known, as new
 * images are drawn); the spec round-trips through JSON and runs made before the option
 * load without the input. Then the sampler's plumbing against a hand-made oracle: with the
 * stem's weights on the noised image zeroed, the velocity depends on (cond, t) only, so one
 * Euler step from t = 1 gives noise - v(cond, 1) in the hole, v computed by a forward pass
 * fed dc_flow_cond_fill of the known pixels (inpainting) or of nothing known (new images). */
static void test_mask_conditioned_denoiser(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = tiny_data(5);
    dc_model_spec spec;
    tiny_spec(&spec);
    assert_true(spec.cond_mask == 0.5f);
    spec.cond_mask = 0.7f;
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m;
    enum { B = 4, P = 256 };
    assert_int_equal(dc_model_create(be, &spec, B, &m, &err), DC_OK);
    assert_true(m->cond >= 0);
    dc_batch b;
    assert_int_equal(dc_batch_alloc(m, &b, &err), DC_OK);
    const int32_t idx[3] = {4, 0, 2};
    int partial = 0, total = 0;
    for (int round = 0; round < 200; round++) {
        assert_int_equal(dc_model_fill_batch(m, ds, idx, 3, NULL, 1000 + round, &b, &err), DC_OK);
        for (int slot = 0; slot < B; slot++, total++) {
            const float *x0 = dc_dataset_image(ds, idx[slot % 3]);
            const float *cond = b.cond + (size_t)slot * 2 * P, *mask = b.mask + slot * P;
            int hidden = 0;
            for (int p = 0; p < P; p++) {
                assert_true(mask[p] == 0.0f || mask[p] == 1.0f);
                assert_true(cond[P + p] == mask[p]);
                assert_true(cond[p] == (mask[p] > 0.5f ? 0.0f : x0[p]));
                hidden += mask[p] > 0.5f;
                /* the flow-matching pair is unchanged by the cond input */
                assert_true(fabsf(b.x[slot * P + p] - b.t[slot] * b.target[slot * P + p] - x0[p]) <
                            1e-5f);
            }
            assert_true(hidden > 0);
            if (hidden < P) partial++;
        }
    }
    /* 800 draws of probability 0.7: within 4 standard errors (0.016) */
    if (fabs((double)partial / total - 0.7) > 4 * sqrt(0.7 * 0.3 / total))
        fail_msg("%d of %d images had a part known (want 70 %%)", partial, total);
    dc_batch_free(&b);
    /* JSON: kept; absent (an older run) reads as 0 and builds no cond input */
    char *json = dc_model_spec_to_json(&spec);
    dc_model_spec back;
    assert_int_equal(dc_model_spec_from_json(json, &back, &err), DC_OK);
    assert_true(back.cond_mask == 0.7f);
    free(json);
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"diffusion\",\"base\":4,\"blocks\":2,"
                                             "\"size\":16,\"channels\":1}",
                                             &back, &err),
                     DC_OK);
    assert_true(back.cond_mask == 0.0f);
    dc_model *old;
    assert_int_equal(dc_model_create(be, &back, 2, &old, &err), DC_OK);
    assert_true(old->cond < 0);
    dc_model_free(old);
    back.cond_mask = 1.5f;
    assert_int_equal(dc_model_spec_check(&back, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "--cond-mask"));
    dc_model_spec vs;
    assert_int_equal(dc_model_spec_default(&vs, "vae", 1, 16, &err), DC_OK);
    assert_true(vs.cond_mask == 0.0f);
    vs.cond_mask = 0.5f;
    assert_int_equal(dc_model_spec_check(&vs, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "diffusion"));

    /* the sampler feeds the cond input: the stem's noised-image weights zeroed */
    dc_rng rng;
    dc_rng_seed(&rng, 12);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    const int stem = dc_params_find(m->params, "stem.weight");
    assert_true(stem >= 0);
    dc_param *sp = dc_params_get(m->params, stem);
    assert_int_equal(sp->value.shape[1], 3); /* x, known pixels, mask */
    const size_t sn = (size_t)sp->value.shape[0] * 3 * sp->value.shape[2] * sp->value.shape[3];
    const size_t kk = (size_t)sp->value.shape[2] * sp->value.shape[3];
    float *sw = malloc(sizeof(float) * sn);
    assert_int_equal(dc_params_read(m->params, stem, sw), DC_OK);
    for (int o = 0; o < sp->value.shape[0]; o++)
        memset(sw + (size_t)o * 3 * kk, 0, sizeof(float) * kk);
    assert_int_equal(dc_params_write(m->params, stem, sw), DC_OK);
    free(sw);
    enum { N = 3 };
    float images[N * P], masks[N * P], out[N * P], noise[N * P], cond[B * 2 * P];
    float x[B * P] = {0}, t1[B] = {1, 1, 1, 1}, v[B * P], zeros[B * DC_AUGMENT_PARAMS] = {0};
    for (int i = 0; i < N; i++) {
        memcpy(images + i * P, dc_dataset_image(ds, i), sizeof(float) * P);
        dc_mask_make(i == 0 ? DC_MASK_BOTTOM : i == 1 ? DC_MASK_LEFT : DC_MASK_BOX, 16, 16, NULL,
                     masks + i * P);
    }
    dc_flow_config cfg;
    dc_flow_config_default(&cfg);
    cfg.steps = 1, cfg.seed = 3;
    for (int inpaint = 0; inpaint < 2; inpaint++) {
        if (inpaint)
            assert_int_equal(dc_flow_inpaint(m, N, &cfg, images, masks, 1, out, &err), DC_OK);
        else
            assert_int_equal(dc_flow_generate(m, N, &cfg, NULL, out, NULL, 0, &err), DC_OK);
        dc_flow_noise(m, N, cfg.seed, noise);
        for (int s = 0; s < B; s++)
            dc_flow_cond_fill(inpaint && s < N ? images + s * P : NULL,
                              inpaint && s < N ? masks + s * P : NULL, 1, 16, cond + s * 2 * P);
        dc_graph_set_train(m->g, 0);
        assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->time, t1), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->aug, zeros), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->cond, cond), DC_OK);
        assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(m->g, m->out, v), DC_OK);
        dc_graph_set_train(m->g, 1);
        double worst = 0;
        int checked = 0;
        for (int i = 0; i < N * P; i++) {
            if (inpaint && masks[i] <= 0.5f) {
                assert_true(out[i] == images[i]); /* known pixels kept exactly */
                continue;
            }
            float want = noise[i] - v[i];
            want = want < -1.0f ? -1.0f : want > 1.0f ? 1.0f : want;
            worst = fmax(worst, fabs(out[i] - want));
            checked++;
        }
        print_message("%s: %d pixels, max |sampler - oracle| %.2g\n",
                      inpaint ? "inpainting" : "generation", checked, worst);
        assert_true(checked > 0);
        if (worst > 1e-5) fail_msg("%s differs from noise - v(cond, 1) by %g",
                                   inpaint ? "inpainting" : "generation", worst);
    }
    /* and the cond input is read: the known pixels change the velocity */
    float v2[B * P];
    for (int s = 0; s < B; s++) dc_flow_cond_fill(NULL, NULL, 1, 16, cond + s * 2 * P);
    assert_int_equal(dc_graph_set_input(m->g, m->cond, cond), DC_OK);
    assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->out, v2), DC_OK);
    assert_true(tu_max_abs_err(v, v2, N * P) > 1e-3);
    assert_int_equal(dc_flow_default_resample(m), 1);
    dc_model_free(m);
    dc_backend_free(be);
    dc_dataset_free(ds);
}

/* --time-dist logit-normal: over 250 batches of 4 (1000 times), logit(t) has mean 0 and
 * variance 1 within 4 standard errors, and the batch is still flow matching at that t; the
 * spec round-trips through JSON and other kinds refuse the option. */
static void test_logit_normal_times(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = tiny_data(5);
    dc_model_spec spec;
    tiny_spec(&spec);
    spec.time_dist = 1;
    assert_int_equal(dc_model_spec_check(&spec, &err), DC_OK);
    char *js = dc_model_spec_to_json(&spec);
    dc_model_spec back;
    assert_int_equal(dc_model_spec_from_json(js, &back, &err), DC_OK);
    free(js);
    assert_int_equal(back.time_dist, 1);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m;
    assert_int_equal(dc_model_create(be, &spec, 4, &m, &err), DC_OK);
    dc_batch a;
    assert_int_equal(dc_batch_alloc(m, &a, &err), DC_OK);
    const int32_t idx[4] = {4, 0, 2, 1};
    double sum = 0, sq = 0;
    const int n = 1000;
    for (int k = 0; k < n / 4; k++) {
        assert_int_equal(dc_model_fill_batch(m, ds, idx, 4, NULL, 1000 + (uint64_t)k, &a, &err), DC_OK);
        for (int slot = 0; slot < 4; slot++) {
            const double t = a.t[slot], l = log(t / (1.0 - t));
            assert_true(t > 0.0 && t < 1.0);
            sum += l, sq += l * l;
            const float *x0 = dc_dataset_image(ds, idx[slot]);
            for (int p = 0; p < 256; p += 17)
                assert_true(fabsf(a.x[slot * 256 + p] - a.t[slot] * a.target[slot * 256 + p] - x0[p]) < 1e-5f);
        }
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    assert_true(fabs(mean) < 4.0 / sqrt(n));
    assert_true(fabs(var - 1.0) < 4.0 * sqrt(2.0 / n));
    /* uniform times (the default) are not logit-normal: their logits have variance pi^2 / 3 */
    spec.time_dist = 0;
    dc_model *u;
    assert_int_equal(dc_model_create(be, &spec, 4, &u, &err), DC_OK);
    sum = sq = 0;
    for (int k = 0; k < n / 4; k++) {
        assert_int_equal(dc_model_fill_batch(u, ds, idx, 4, NULL, 1000 + (uint64_t)k, &a, &err), DC_OK);
        for (int slot = 0; slot < 4; slot++) {
            const double t = a.t[slot], l = log(t / (1.0 - t));
            sum += l, sq += l * l;
        }
    }
    assert_true(sq / n - (sum / n) * (sum / n) > 2.5);
    dc_model_spec vae;
    assert_int_equal(dc_model_spec_default(&vae, "vae", 1, 16, &err), DC_OK);
    vae.time_dist = 1;
    assert_int_not_equal(dc_model_spec_check(&vae, &err), DC_OK);
    assert_non_null(strstr(err.msg, "--time-dist"));
    dc_batch_free(&a);
    dc_model_free(u);
    dc_model_free(m);
    dc_backend_free(be);
    dc_dataset_free(ds);
}

/* --attention: the self-attention block after the middle ResBlock. Its parameters, counted
 * by hand from the layer shapes at the lowest level (C channels): group norm 2C, the qkv
 * 1x1 conv 3C x C + 3C, the proj 1x1 conv C x C + C; the default network is the one runs
 * have always had (1,534,977 parameters at the guns defaults); the spec round-trips through
 * JSON, a description without the key (runs made before it) reads as 0, and other kinds
 * refuse it. */
static size_t trainable(dc_params *p) {
    size_t n = 0;
    for (int i = 0; i < dc_params_count(p); i++)
        if (dc_params_get(p, i)->trainable) n += dc_params_get(p, i)->numel;
    return n;
}

static void test_attention_block(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    tiny_spec(&spec);
    assert_int_equal(spec.attention, 0);
    dc_model *plain, *m;
    assert_int_equal(dc_model_create(be, &spec, 2, &plain, &err), DC_OK);
    spec.attention = 1;
    assert_int_equal(dc_model_create(be, &spec, 2, &m, &err), DC_OK);
    const size_t C = (size_t)spec.base << (spec.blocks - 1);
    const size_t block = 2 * C + (3 * C * C + 3 * C) + (C * C + C);
    print_message("attention block: %zu parameters at %zu channels\n", block, C);
    assert_int_equal(trainable(m->params), trainable(plain->params) + block);
    static const struct {
        const char *name;
        int ndim, mul[2]; /* shape: mul[0]*C, mul[1]*C (1 x 1 kernels) */
    } shapes[] = {{"mid_attn_norm.weight", 1, {1, 0}}, {"mid_attn_norm.bias", 1, {1, 0}},
                  {"mid_attn_qkv.weight", 4, {3, 1}},  {"mid_attn_qkv.bias", 1, {3, 0}},
                  {"mid_attn_proj.weight", 4, {1, 1}}, {"mid_attn_proj.bias", 1, {1, 0}}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int i = dc_params_find(m->params, shapes[k].name);
        if (i < 0) fail_msg("no parameter %s", shapes[k].name);
        const dc_param *q = dc_params_get(m->params, i);
        assert_int_equal(q->ndim, shapes[k].ndim);
        assert_int_equal(q->shape[0], shapes[k].mul[0] * (int)C);
        if (q->ndim == 4) {
            assert_int_equal(q->shape[1], shapes[k].mul[1] * (int)C);
            assert_int_equal(q->shape[2] * q->shape[3], 1);
        }
        assert_true(dc_params_find(plain->params, shapes[k].name) < 0);
    }
    /* one attention node, at the lowest resolution, right after the middle ResBlock */
    int found = 0;
    for (int i = 0; i < dc_graph_node_count(m->g); i++)
        if (!strcmp(dc_graph_node_op(m->g, i), "attention")) {
            int shape[4];
            assert_int_equal(dc_graph_node_shape(m->g, i, shape), 4);
            assert_int_equal(shape[1], (int)C);
            assert_int_equal(shape[2], spec.size >> (spec.blocks - 1));
            assert_string_equal(dc_graph_node_name(m->g, i), "mid_attn");
            found++;
        }
    assert_int_equal(found, 1);
    dc_model_free(plain);
    dc_model_free(m);
    /* the default guns network, with and without the block */
    dc_model_spec guns;
    assert_int_equal(dc_model_spec_default(&guns, "diffusion", 1, 32, &err), DC_OK);
    assert_int_equal(guns.attention, 0);
    assert_int_equal(dc_model_create(be, &guns, 1, &plain, &err), DC_OK);
    assert_int_equal(trainable(plain->params), 1534977);
    guns.attention = 1;
    assert_int_equal(dc_model_create(be, &guns, 1, &m, &err), DC_OK);
    const size_t G = (size_t)guns.base << (guns.blocks - 1);
    assert_int_equal(trainable(m->params), 1534977 + 4 * G * G + 6 * G);
    dc_model_free(plain);
    dc_model_free(m);
    /* JSON: kept; absent reads as 0; other kinds and values other than 0/1 refused */
    char *json = dc_model_spec_to_json(&spec);
    assert_non_null(strstr(json, "\"attention\":1"));
    dc_model_spec back;
    assert_int_equal(dc_model_spec_from_json(json, &back, &err), DC_OK);
    free(json);
    assert_int_equal(back.attention, 1);
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"diffusion\",\"base\":4,\"blocks\":2,"
                                             "\"size\":16,\"channels\":1}",
                                             &back, &err),
                     DC_OK);
    assert_int_equal(back.attention, 0);
    back.attention = 2;
    assert_int_equal(dc_model_spec_check(&back, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "attention 2"));
    dc_model_spec vs;
    assert_int_equal(dc_model_spec_default(&vs, "vae", 1, 16, &err), DC_OK);
    json = dc_model_spec_to_json(&vs);
    assert_null(strstr(json, "attention")); /* other kinds' descriptions stay as they were */
    free(json);
    vs.attention = 1;
    assert_int_equal(dc_model_spec_check(&vs, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "--attention"));
    assert_non_null(strstr(err.msg, "diffusion"));
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"vae\",\"attention\":1}", &back, &err),
                     DC_ERR_ARG);
    dc_backend_free(be);
}

/* A tiny model with the attention block fits one fixed batch: 12 Adam steps lower the loss
 * by a quarter on each backend, from the same weights, and the two backends' losses agree
 * within 1e-3 relative at every step. */
static void test_attention_trains(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = tiny_data(4);
    dc_model_spec spec;
    tiny_spec(&spec);
    spec.attention = 1;
    enum { STEPS = 12 };
    double loss[2][STEPS];
    int ran = 0;
    for (int w = 0; w < 2; w++) {
        dc_backend *be = NULL;
        if (w == 0)
            assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
        else if (!dc_opencl_available() || dc_backend_create_opencl(-1, -1, &be, &err) != DC_OK)
            break;
        dc_model *m;
        assert_int_equal(dc_model_create(be, &spec, 4, &m, &err), DC_OK);
        dc_rng rng;
        dc_rng_seed(&rng, 21);
        assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
        dc_batch b;
        assert_int_equal(dc_batch_alloc(m, &b, &err), DC_OK);
        const int32_t idx[4] = {0, 1, 2, 3};
        assert_int_equal(dc_model_fill_batch(m, ds, idx, 4, NULL, 77, &b, &err), DC_OK);
        dc_optim_config oc;
        dc_optim_config_default(&oc, DC_OPTIM_ADAM);
        oc.lr = 3e-3f;
        dc_optim *o;
        assert_int_equal(dc_optim_create(m->params, &oc, &o), DC_OK);
        for (int step = 0; step < STEPS; step++) {
            float l;
            assert_int_equal(dc_model_set_batch(m, &b, &err), DC_OK);
            assert_int_equal(dc_params_zero_grad(m->params), DC_OK);
            if (dc_graph_forward(m->g, -1) != DC_OK ||
                dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL) != DC_OK)
                fail_msg("%s step %d: %s", dc_backend_name(be), step, dc_graph_error(m->g)->msg);
            assert_int_equal(dc_graph_read(m->g, m->loss, &l), DC_OK);
            assert_int_equal(dc_optim_step(o), DC_OK);
            loss[w][step] = l;
        }
        print_message("%s: loss %.4f -> %.4f in %d steps\n", dc_backend_name(be), loss[w][0],
                      loss[w][STEPS - 1], STEPS);
        if (!(loss[w][STEPS - 1] < 0.75 * loss[w][0]))
            fail_msg("%s: loss %g -> %g", dc_backend_name(be), loss[w][0], loss[w][STEPS - 1]);
        dc_optim_free(o);
        dc_batch_free(&b);
        dc_model_free(m);
        dc_backend_free(be);
        ran++;
    }
    dc_dataset_free(ds);
    if (ran < 2) TU_SKIP_OR_FAIL("no OpenCL device: %s", err.msg);
    for (int step = 0; step < STEPS; step++) {
        const double rel = fabs(loss[1][step] - loss[0][step]) / fabs(loss[0][step]);
        if (rel > 1e-3)
            fail_msg("step %d: loss cpu %g, opencl %g", step, loss[0][step], loss[1][step]);
    }
}

static float *model_weights(dc_model *m, size_t *n) {
    *n = dc_params_total(m->params);
    float *w = malloc(*n * sizeof(float));
    m->be->ops->read(m->be, dc_params_values_ptr(m->params), w, *n * sizeof(float));
    return w;
}

typedef struct losses {
    double train[8];
    int epochs, stop_after;
} losses;
static void on_epoch(void *u, dc_trainer *t, const dc_train_epoch *e) {
    losses *l = u;
    (void)t;
    assert_true(isfinite(e->train_loss) && isfinite(e->val_loss));
    if (l->epochs < 8) l->train[l->epochs] = e->train_loss;
    l->epochs++;
}
static int stop_when_told(void *u) {
    losses *l = u;
    return l->stop_after > 0 && --l->stop_after == 0;
}

static dc_trainer *tiny_trainer(dc_backend *be, const dc_dataset *train, const dc_dataset *val,
                                const char *out, losses *l, dc_train_callbacks *cb) {
    dc_error err = {0};
    dc_model_spec spec;
    tiny_spec(&spec);
    dc_train_config cfg;
    dc_train_config_default(&cfg);
    cfg.epochs = 3, cfg.batch = 4, cfg.augment = 1, cfg.seed = 0xfeedbeefull, cfg.clip = 1.0f;
    cfg.schedule = DC_SCHED_COSINE;
    snprintf(cfg.out, sizeof cfg.out, "%s", out);
    *cb = (dc_train_callbacks){l, NULL, on_epoch, NULL, NULL, stop_when_told};
    dc_trainer *t;
    if (dc_trainer_create(be, &spec, train, val, &cfg, cb, &t, &err) != DC_OK)
        fail_msg("%s", err.msg);
    return t;
}

/* A run stopped mid-epoch and resumed ends bit-identical to a straight run: the batch's
 * times and noises come from the step's seed. */
static void test_resume_is_bit_identical(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *all = tiny_data(14), *train, *val;
    assert_int_equal(dc_dataset_split(all, 0.2f, 3, &train, &val, &err), DC_OK);
    char *dir = tu_tmpdir("diffusion");
    char out[1200];
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    losses l0 = {0};
    dc_train_callbacks cb;
    snprintf(out, sizeof out, "%s/straight", dir);
    dc_trainer *t = tiny_trainer(be, train, val, out, &l0, &cb);
    if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
    size_t n;
    float *want = model_weights(dc_trainer_model(t), &n);
    dc_trainer_free(t);
    const int spe = (train->n + 3) / 4;
    for (int stop = 1; stop < 3 * spe; stop += spe + 1) {
        losses l1 = {.stop_after = stop};
        snprintf(out, sizeof out, "%s/stop%d", dir, stop);
        t = tiny_trainer(be, train, val, out, &l1, &cb);
        assert_int_equal(dc_trainer_run(t, &err), DC_ERR_INTERRUPTED);
        dc_trainer_free(t);
        losses l2 = {0};
        cb.user = &l2;
        if (dc_trainer_resume(be, out, train, val, NULL, &cb, &t, &err) != DC_OK)
            fail_msg("%s", err.msg);
        if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
        size_t n2;
        float *got = model_weights(dc_trainer_model(t), &n2);
        assert_int_equal(n, n2);
        assert_memory_equal(want, got, n * sizeof(float));
        free(got);
        dc_trainer_free(t);
    }
    free(want);
    dc_backend_free(be);
    dc_dataset_free(all);
    dc_dataset_free(train);
    dc_dataset_free(val);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* Samples repeat per seed, differ between seeds, do not depend on the model's batch (the
 * chunking) and start from dc_flow_noise; the trajectory starts at the noise and ends at the
 * (unclamped) result. */
static void test_sampling_is_reproducible(void **state) {
    (void)state;
    dc_error err = {0};
    dc_model_spec spec;
    tiny_spec(&spec);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m, *m5;
    assert_int_equal(dc_model_create(be, &spec, 2, &m, &err), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, 8);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    assert_int_equal(dc_model_create_shared(m, 5, 0, &m5, &err), DC_OK);
    enum { N = 5, P = 256, SNAPS = 3 };
    float a[N * P], b[N * P], c[N * P], noise[N * P], traj[SNAPS * N * P];
    assert_int_equal(dc_flow_sample(m, N, 4, DC_SAMPLER_HEUN, 7, NULL, a, traj, SNAPS, &err),
                     DC_OK);
    assert_int_equal(dc_flow_sample(m, N, 4, DC_SAMPLER_HEUN, 7, NULL, b, NULL, 0, &err), DC_OK);
    assert_memory_equal(a, b, sizeof a);
    /* whatever augmentation the last training batch set, samples ask for none; the
     * augmentation input is read (a nonzero value changes the velocity) */
    assert_true(m->aug >= 0);
    float ones[2 * DC_AUGMENT_PARAMS];
    for (int i = 0; i < 2 * DC_AUGMENT_PARAMS; i++) ones[i] = 1.0f;
    assert_int_equal(dc_graph_set_input(m->g, m->aug, ones), DC_OK);
    assert_int_equal(dc_flow_sample(m, N, 4, DC_SAMPLER_HEUN, 7, NULL, b, NULL, 0, &err), DC_OK);
    assert_memory_equal(a, b, sizeof a);
    {
        float x[2 * P], t2[2] = {0.5f, 0.5f}, v0[2 * P], v1[2 * P], zeros[2 * DC_AUGMENT_PARAMS] = {0};
        for (int i = 0; i < 2 * P; i++) x[i] = a[i];
        assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->time, t2), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->aug, zeros), DC_OK);
        assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(m->g, m->out, v0), DC_OK);
        assert_int_equal(dc_graph_set_input(m->g, m->aug, ones), DC_OK);
        assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(m->g, m->out, v1), DC_OK);
        assert_true(tu_max_abs_err(v0, v1, 2 * P) > 1e-4);
    }
    dc_flow_noise(m, N, 7, noise);
    assert_memory_equal(traj, noise, sizeof noise);
    for (int i = 0; i < N * P; i++) {
        const float last = traj[(SNAPS - 1) * N * P + i];
        assert_true(a[i] == (last < -1.0f ? -1.0f : last > 1.0f ? 1.0f : last));
    }
    assert_int_equal(dc_flow_sample(m5, N, 4, DC_SAMPLER_HEUN, 7, noise, c, NULL, 0, &err), DC_OK);
    if (tu_max_abs_err(c, a, N * P) > 1e-4)
        fail_msg("batch 5 vs 2: %g", tu_max_abs_err(c, a, N * P));
    assert_int_equal(dc_flow_sample(m, N, 4, DC_SAMPLER_HEUN, 8, NULL, c, NULL, 0, &err), DC_OK);
    assert_true(tu_max_abs_err(c, a, N * P) > 0.1);
    /* the first sample of a smaller set is the same image */
    assert_int_equal(dc_flow_sample(m, 1, 4, DC_SAMPLER_HEUN, 7, NULL, c, NULL, 0, &err), DC_OK);
    assert_true(tu_max_abs_err(c, a, P) < 1e-4);
    /* other kinds cannot sample this way */
    dc_model_spec vs;
    assert_int_equal(dc_model_spec_default(&vs, "vae", 1, 16, &err), DC_OK);
    vs.base = 4, vs.blocks = 2, vs.latent = 4;
    dc_model *vae;
    assert_int_equal(dc_model_create(be, &vs, 2, &vae, &err), DC_OK);
    assert_int_equal(dc_flow_sample(vae, 1, 4, DC_SAMPLER_EULER, 1, NULL, c, NULL, 0, &err),
                     DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "vae"));
    dc_model_free(vae);
    dc_model_free(m5);
    dc_model_free(m);
    dc_backend_free(be);
}

/* The same training steps and the same short sample on the CPU and OpenCL backends. */
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
    dc_dataset *all = tiny_data(10), *train, *val;
    assert_int_equal(dc_dataset_split(all, 0.2f, 3, &train, &val, &err), DC_OK);
    char *dir = tu_tmpdir("diffusion_cl");
    losses l[2];
    memset(l, 0, sizeof l);
    float *w[2], *sample[2];
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        char out[1200];
        snprintf(out, sizeof out, "%s/run%d", dir, k);
        dc_train_callbacks cb;
        dc_trainer *t = tiny_trainer(be[k], train, val, out, &l[k], &cb);
        if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s: %s", dc_backend_name(be[k]), err.msg);
        dc_model *m = dc_trainer_model(t);
        w[k] = model_weights(m, &n[k]);
        sample[k] = malloc(sizeof(float) * 3 * 256);
        assert_int_equal(
            dc_flow_sample(m, 3, 3, DC_SAMPLER_HEUN, 5, NULL, sample[k], NULL, 0, &err), DC_OK);
        dc_trainer_free(t);
    }
    assert_int_equal(l[0].epochs, 3);
    assert_int_equal(l[1].epochs, 3);
    for (int e = 0; e < 3; e++) {
        const double rel = fabs(l[1].train[e] - l[0].train[e]) / fabs(l[0].train[e]);
        print_message("epoch %d: loss cpu %.6f opencl %.6f\n", e + 1, l[0].train[e], l[1].train[e]);
        if (rel > 1e-3)
            fail_msg("epoch %d: loss cpu %g, opencl %g", e + 1, l[0].train[e], l[1].train[e]);
    }
    assert_int_equal(n[0], n[1]);
    const double werr = tu_max_rel_err(w[1], w[0], n[0]);
    const double serr = tu_max_abs_err(sample[1], sample[0], 3 * 256);
    print_message("weights max rel err %.3g, sample max abs err %.3g\n", werr, serr);
    if (werr > 1e-3) fail_msg("weights after 3 epochs: max rel err %g", werr);
    if (serr > 1e-3) fail_msg("3-step Heun sample: max abs err %g", serr);
    for (int k = 0; k < 2; k++)
        free(w[k]), free(sample[k]), dc_backend_free(be[k]);
    dc_dataset_free(all);
    dc_dataset_free(train);
    dc_dataset_free(val);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* deconv train --model diffusion for 2 epochs, then deconv generate with both samplers. */
static void test_cli_train_and_generate(void **state) {
    (void)state;
    char *dir = tu_tmpdir("diffusion_cli");
    dc_error err = {0};
    char data[1200];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0755);
    dc_dataset *ds = tiny_data(10);
    for (int i = 0; i < ds->n; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s/g%02d.png", data, i);
        assert_int_equal(
            dc_image_write_png(p, dc_dataset_image(ds, i), 1, 16, 16, DC_RANGE_PM1, &err), DC_OK);
    }
    dc_dataset_free(ds);
    const char *bin = tu_cli_path();
    assert_int_equal(tu_system("%s train --model diffusion --data %s --size 16 --base 4 --blocks 2 "
                               "--batch 4 --epochs 2 --out %s/run --device cpu --threads 1 --quiet "
                               ">%s/train.log 2>&1",
                               bin, data, dir, dir),
                     0);
    assert_int_equal(tu_system("test -s %s/run/model.safetensors && test -s "
                               "%s/run/samples/epoch_0002.png",
                               dir, dir),
                     0);
    /* --attention: the run keeps its network on a resume; other kinds refuse the option */
    assert_int_equal(
        tu_system("%s train --resume %s/run --attention >%s/resume.log 2>&1", bin, dir, dir), 2);
    assert_int_equal(
        tu_system("grep -q -- '--attention cannot change on --resume' %s/resume.log", dir), 0);
    assert_int_equal(tu_system("%s info --model vae --attention >%s/vae.log 2>&1", bin, dir), 2);
    assert_int_equal(
        tu_system("grep -q -- '--attention is an option of the diffusion model' %s/vae.log", dir),
        0);
    assert_int_equal(
        tu_system("%s info --model diffusion --size 16 --base 4 --blocks 2 --attention "
                  "--batch 1 | grep -q ' attention  *mid_attn '",
                  bin),
        0);
    assert_int_equal(tu_system("%s generate %s/run -n 3 --steps 4 --sampler heun --trajectory "
                               "%s/traj.png -o %s/gen.png --dir %s/gen --device cpu >%s/gen.log "
                               "2>&1",
                               bin, dir, dir, dir, dir, dir),
                     0);
    assert_int_equal(tu_system("test -s %s/gen.png && test -s %s/traj.png && test -s "
                               "%s/gen/sample_0002.png && grep -q '4 heun steps (7 network "
                               "evaluations)' %s/gen.log",
                               dir, dir, dir, dir),
                     0);
    /* the same seed draws the same images */
    assert_int_equal(tu_system("%s generate %s/run -n 3 --steps 4 --sampler heun -o %s/gen2.png "
                               "--device cpu >/dev/null 2>&1 && cmp -s %s/gen.png %s/gen2.png",
                               bin, dir, dir, dir, dir),
                     0);
    assert_int_not_equal(
        tu_system("%s generate %s/run --sampler rk4 --device cpu >%s/bad.log 2>&1", bin, dir, dir),
        0);
    assert_int_equal(tu_system("grep -q 'euler or heun' %s/bad.log", dir), 0);
    /* deconv eval judges the samples (the ODE from noise) and, on small data, the completion
     * of the held-out images by inpainting against the baselines */
    assert_int_equal(tu_system("%s eval %s/run --samples 4 --device cpu --json %s/eval.json "
                               ">%s/eval.txt 2>&1",
                               bin, dir, dir, dir),
                     0);
    assert_int_equal(tu_system("grep -q 'ODE from Gaussian noise' %s/eval.txt && "
                               "grep -q 'realism (mid-grey): ' %s/eval.txt && "
                               "grep -q 'completion of the hidden region' %s/eval.txt && "
                               "grep -q 'model (inpainting' %s/eval.txt && "
                               "grep -q '\"small_data\"' %s/eval.json && "
                               "grep -q '\"completion\"' %s/eval.json",
                               dir, dir, dir, dir, dir, dir),
                     0);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samplers_integrate_known_fields),
        cmocka_unit_test(test_batch_is_flow_matching),
        cmocka_unit_test(test_logit_normal_times),
        cmocka_unit_test(test_mask_conditioned_denoiser),
        cmocka_unit_test(test_attention_block),
        cmocka_unit_test(test_attention_trains),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_sampling_is_reproducible),
        cmocka_unit_test(test_cpu_vs_opencl),
        cmocka_unit_test(test_cli_train_and_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
