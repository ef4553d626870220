/* Class conditioning of the diffusion kind with classifier-free guidance: the label dropout
 * rate of the training batches (counted over many batches), the class taken from the data
 * (or not), guidance w = 1 giving the conditional velocity and w = 0 the unconditional one
 * exactly (and w = 3 the extrapolation), checkpoints carrying the class embedding, and the
 * refusal of a class by a model trained without classes (library and `deconv generate`). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deconv/data.h"
#include "deconv/image.h"
#include "deconv/io.h"
#include "deconv/model.h"
#include "graph_internal.h"
#include "internal.h"
#include "testutil.h"

#define SIDE 16
#define PIX (SIDE * SIDE)
#define CLASSES 3

/* n labelled images: class i % CLASSES, a dark square whose place depends on the class */
static dc_dataset *labelled_data(int n) {
    dc_dataset *ds;
    dc_error err = {0};
    assert_int_equal(dc_dataset_create(n, 1, SIDE, SIDE, 1, &ds, &err), DC_OK);
    ds->n_classes = CLASSES;
    for (int i = 0; i < n; i++) {
        float *im = dc_dataset_image(ds, i);
        const int k = i % CLASSES;
        ds->labels[i] = k;
        for (int p = 0; p < PIX; p++)
            im[p] = 1.0f;
        for (int y = 2 + 4 * k; y < 6 + 4 * k; y++)
            for (int x = 2 + (i % 5); x < 8 + (i % 5); x++)
                im[y * SIDE + x] = -1.0f;
    }
    return ds;
}

static void class_spec(dc_model_spec *spec, int classes) {
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(spec, "diffusion", 1, SIDE, &err), DC_OK);
    spec->base = 4, spec->blocks = 2;
    spec->cond_classes = classes;
    assert_int_equal(dc_model_spec_check(spec, &err), DC_OK);
}

static dc_backend *cpu(void) {
    dc_backend *be = NULL;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    return be;
}

static dc_model *make_model(dc_backend *be, const dc_model_spec *spec, int batch, uint64_t seed) {
    dc_model *m = NULL;
    dc_error err = {0};
    if (dc_model_create(be, spec, batch, &m, &err) != DC_OK) fail_msg("model: %s", err.msg);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    /* biases, norms and the zero-initialised output conv start constant and the class rows
     * small: make them random so each class (and the null class) moves the velocity */
    for (int i = 0; i < dc_params_count(m->params); i++) {
        dc_param *q = dc_params_get(m->params, i);
        float *v = malloc(q->numel * sizeof(float));
        assert_int_equal(dc_params_read(m->params, i, v), DC_OK);
        float largest = 0.0f;
        for (size_t j = 0; j < q->numel; j++)
            largest = fmaxf(largest, fabsf(v[j]));
        if (q->ndim == 1 || largest == 0.0f || strstr(q->name, "class_embed")) {
            tu_fill_uniform(v, q->numel, &rng, -0.5f, 0.5f);
            assert_int_equal(dc_params_write(m->params, i, v), DC_OK);
        }
        free(v);
    }
    return m;
}

/* ------------------------------------------------------------ training side */
/* Over 300 batches of 16 (4800 labels) the null class replaces a label with the spec's
 * probability: within 4 binomial standard deviations; the other labels are the data's; the
 * images, times and noises are those of the same model without classes. */
static void test_label_dropout_rate(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be = cpu();
    dc_dataset *ds = labelled_data(12);
    const float rates[3] = {0.2f, 0.5f, 0.0f};
    dc_model_spec plain_spec;
    class_spec(&plain_spec, 0);
    dc_model *plain = make_model(be, &plain_spec, 16, 1);
    assert_true(plain->labels < 0); /* no class input */
    for (int r = 0; r < 3; r++) {
        dc_model_spec spec;
        class_spec(&spec, CLASSES);
        spec.label_dropout = rates[r];
        dc_model *m = make_model(be, &spec, 16, 1);
        assert_true(m->labels >= 0);
        dc_batch b, pb;
        assert_int_equal(dc_batch_alloc(m, &b, &err), DC_OK);
        assert_int_equal(dc_batch_alloc(plain, &pb, &err), DC_OK);
        int32_t idx[16];
        long dropped = 0, total = 0;
        for (int step = 0; step < 300; step++) {
            for (int i = 0; i < 16; i++)
                idx[i] = (step * 7 + i * 5) % ds->n;
            const uint64_t seed = 1000 + (uint64_t)step;
            assert_int_equal(dc_model_fill_batch(m, ds, idx, 16, NULL, seed, &b, &err), DC_OK);
            for (int i = 0; i < 16; i++) {
                if (b.labels[i] == CLASSES)
                    dropped++;
                else
                    assert_int_equal(b.labels[i], ds->labels[idx[i]]);
                total++;
            }
            if (step < 5) { /* the label draws do not disturb the flow-matching draws */
                assert_int_equal(dc_model_fill_batch(plain, ds, idx, 16, NULL, seed, &pb, &err),
                                 DC_OK);
                assert_memory_equal(b.x, pb.x, sizeof(float) * 16 * PIX);
                assert_memory_equal(b.t, pb.t, sizeof(float) * 16);
            }
            assert_int_equal(dc_model_set_batch(m, &b, &err), DC_OK);
        }
        const double share = (double)dropped / (double)total, p = rates[r];
        const double sd = sqrt(p * (1 - p) / (double)total);
        print_message("[ dropout  ] rate %.2f: %ld of %ld labels dropped (%.4f, 4 sd = %.4f)\n", p,
                      dropped, total, share, 4 * sd);
        if (p == 0.0)
            assert_int_equal(dropped, 0);
        else
            assert_true(fabs(share - p) <= 4 * sd);
        dc_batch_free(&b);
        dc_batch_free(&pb);
        dc_model_free(m);
    }
    /* a conditioned model refuses images without labels */
    dc_dataset *unlabelled;
    assert_int_equal(dc_dataset_create(4, 1, SIDE, SIDE, 0, &unlabelled, &err), DC_OK);
    dc_model_spec spec;
    class_spec(&spec, CLASSES);
    dc_model *m = make_model(be, &spec, 16, 1);
    dc_batch b;
    assert_int_equal(dc_batch_alloc(m, &b, &err), DC_OK);
    const int32_t some[2] = {0, 1};
    assert_int_equal(dc_model_fill_batch(m, unlabelled, some, 2, NULL, 1, &b, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "conditioned on 3 classes"));
    dc_batch_free(&b);
    dc_model_free(m);
    dc_dataset_free(unlabelled);
    dc_model_free(plain);
    dc_dataset_free(ds);
    dc_backend_free(be);
}

/* Conditioning follows the data: classes in the data and cond_classes -1 (the default)
 * give a conditioned model, none give an unconditional one, 0 (--unconditional) stays 0,
 * and a model with fewer classes than the data is refused. Only diffusion has classes. */
static void test_classes_from_data(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = labelled_data(6), *plain;
    assert_int_equal(dc_dataset_create(4, 1, SIDE, SIDE, 0, &plain, &err), DC_OK);
    dc_model_spec s;
    assert_int_equal(dc_model_spec_default(&s, "diffusion", 1, SIDE, &err), DC_OK);
    assert_int_equal(s.cond_classes, -1);
    char note[256];
    assert_int_equal(dc_model_spec_fit_data(&s, ds, 0, note, sizeof note, &err), DC_OK);
    assert_int_equal(s.cond_classes, CLASSES);
    assert_non_null(strstr(note, "conditioned on the data's 3 classes"));
    assert_int_equal(dc_model_spec_default(&s, "diffusion", 1, SIDE, &err), DC_OK);
    assert_int_equal(dc_model_spec_fit_data(&s, plain, 0, note, sizeof note, &err), DC_OK);
    assert_int_equal(s.cond_classes, 0);
    assert_non_null(strstr(note, "the data has no classes"));
    s.cond_classes = 0;
    assert_int_equal(dc_model_spec_fit_data(&s, ds, 0, note, sizeof note, &err), DC_OK);
    assert_int_equal(s.cond_classes, 0);
    s.cond_classes = 2;
    assert_int_equal(dc_model_spec_fit_data(&s, ds, 0, note, sizeof note, &err), DC_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "conditioned on 2 classes, the data has 3"));
    s.cond_classes = 3;
    assert_int_equal(dc_model_spec_fit_data(&s, plain, DC_FIT_RESUMING, note, sizeof note, &err),
                     DC_ERR_SHAPE);
    s.label_dropout = 1.0f;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "--label-dropout 1"));
    assert_int_equal(dc_model_spec_default(&s, "vae", 1, SIDE, &err), DC_OK);
    assert_int_equal(s.cond_classes, 0);
    s.cond_classes = 3;
    assert_int_equal(dc_model_spec_check(&s, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "option of the diffusion model"));
    dc_dataset_free(ds);
    dc_dataset_free(plain);
}

/* --------------------------------------------------------------- guidance */
/* The model's velocity at t for every image of class `label` (eval mode). */
static void velocity(dc_model *m, const float *x, float t, int label, float *v) {
    float ts[2] = {t, t}, aug[2 * DC_AUGMENT_PARAMS] = {0}; /* no augmentation */
    int32_t cls[2] = {label, label};
    dc_graph_set_train(m->g, 0);
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    assert_int_equal(dc_graph_set_input(m->g, m->aug, aug), DC_OK);
    assert_int_equal(dc_graph_set_input(m->g, m->time, ts), DC_OK);
    if (m->labels >= 0) assert_int_equal(dc_graph_set_input_int(m->g, m->labels, cls), DC_OK);
    if (m->cond >= 0) { /* the mask-conditioned input: nothing known, as new images */
        float cond[2 * 2 * PIX];
        for (int i = 0; i < 2; i++) dc_flow_cond_fill(NULL, NULL, 1, SIDE, cond + i * 2 * PIX);
        assert_int_equal(dc_graph_set_input(m->g, m->cond, cond), DC_OK);
    }
    assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->out, v), DC_OK);
}

static float clamp1(float v) {
    return v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
}

/* One Euler step from t = 1 ends at x = noise - v(noise, 1): the sample shows the velocity
 * the sampler used. w = 1 must be the class's own velocity and w = 0 the null class's,
 * bit for bit; w = 3 is v_null + 3 (v_class - v_null). */
static void test_guidance_weights(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be = cpu();
    dc_model_spec spec;
    class_spec(&spec, CLASSES);
    dc_model *m = make_model(be, &spec, 2, 5);
    const int n = 2;
    float noise[2 * PIX], v_class[2 * PIX], v_null[2 * PIX], got[2 * PIX], want[2 * PIX];
    dc_flow_noise(m, n, 77, noise);
    velocity(m, noise, 1.0f, 1, v_class);
    velocity(m, noise, 1.0f, CLASSES, v_null);
    assert_true(tu_max_abs_err(v_class, v_null, 2 * PIX) > 1e-3); /* the class matters */

    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 1, 1.0f, &err),
        DC_OK);
    for (int i = 0; i < 2 * PIX; i++)
        want[i] = clamp1(noise[i] - v_class[i]);
    assert_memory_equal(got, want, sizeof got);

    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 1, 0.0f, &err),
        DC_OK);
    for (int i = 0; i < 2 * PIX; i++)
        want[i] = clamp1(noise[i] - v_null[i]);
    assert_memory_equal(got, want, sizeof got);
    /* no class: the null class, whatever the weight */
    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, -1, 5.0f, &err),
        DC_OK);
    assert_memory_equal(got, want, sizeof got);
    assert_int_equal(dc_flow_sample(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, &err),
                     DC_OK);
    assert_memory_equal(got, want, sizeof got);

    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 1, 3.0f, &err),
        DC_OK);
    for (int i = 0; i < 2 * PIX; i++) {
        const double v = (double)v_null[i] + 3.0 * ((double)v_class[i] - v_null[i]);
        want[i] = clamp1((float)(noise[i] - v));
    }
    assert_true(tu_max_abs_err(got, want, 2 * PIX) < 1e-5);

    /* several steps with Heun: w = 1 still equals sampling the class alone, which differs
     * from another class */
    float a[2 * PIX], b[2 * PIX];
    assert_int_equal(
        dc_flow_sample_guided(m, n, 3, DC_SAMPLER_HEUN, 9, NULL, a, NULL, 0, 2, 1.0f, &err), DC_OK);
    assert_int_equal(
        dc_flow_sample_guided(m, n, 3, DC_SAMPLER_HEUN, 9, NULL, b, NULL, 0, 0, 1.0f, &err), DC_OK);
    assert_true(tu_max_abs_err(a, b, 2 * PIX) > 1e-4);

    /* classes outside the model and a non-finite weight are refused */
    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 3, 1.0f, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "classes 0 to 2"));
    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 1, NAN, &err),
        DC_ERR_ARG);
    dc_model_free(m);

    /* a model without classes refuses any class */
    class_spec(&spec, 0);
    m = make_model(be, &spec, 2, 5);
    assert_int_equal(
        dc_flow_sample_guided(m, n, 1, DC_SAMPLER_EULER, 0, noise, got, NULL, 0, 0, 1.0f, &err),
        DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "trained without classes"));
    dc_model_free(m);
    dc_backend_free(be);
}

/* ----------------------------------------------------------- CPU vs OpenCL */
static float *param_grad(dc_model *m, int i) {
    dc_backend *be = dc_params_backend(m->params);
    dc_param *q = dc_params_get(m->params, i);
    float *g = malloc(q->numel * sizeof(float));
    assert_int_equal(be->ops->read(be, dc_tensor_ptr(q->grad), g, q->numel * sizeof(float)), DC_OK);
    return g;
}

/* The conditioned model on both backends from the same weights: the loss and every
 * parameter gradient (the class embedding's included) of a batch with dropped labels
 * agree within 1e-3 of the largest value (+ 1e-6), a guided 3-step Heun sample within
 * 1e-3 absolute. */
static void test_cpu_vs_opencl(void **state) {
    (void)state;
    if (!dc_opencl_available()) TU_SKIP_OR_FAIL("no OpenCL platform");
    dc_error err = {0};
    dc_backend *be[2];
    be[0] = cpu();
    if (dc_backend_create_opencl(-1, -1, &be[1], &err) != DC_OK) {
        dc_backend_free(be[0]);
        TU_SKIP_OR_FAIL("no OpenCL device: %s", err.msg);
    }
    dc_dataset *ds = labelled_data(9);
    dc_model_spec spec;
    class_spec(&spec, CLASSES);
    spec.label_dropout = 0.4f;
    dc_model *m[2];
    float loss[2], *sample[2];
    const int32_t idx[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int dropped = 0;
    for (int k = 0; k < 2; k++) {
        m[k] = make_model(be[k], &spec, 8, 21);
        dc_batch b;
        assert_int_equal(dc_batch_alloc(m[k], &b, &err), DC_OK);
        assert_int_equal(dc_model_fill_batch(m[k], ds, idx, 8, NULL, 4, &b, &err), DC_OK);
        for (int i = 0; k == 0 && i < 8; i++)
            dropped += b.labels[i] == CLASSES;
        assert_int_equal(dc_model_set_batch(m[k], &b, &err), DC_OK);
        dc_batch_free(&b);
        assert_int_equal(dc_params_zero_grad(m[k]->params), DC_OK);
        assert_int_equal(dc_graph_forward(m[k]->g, m[k]->loss), DC_OK);
        assert_int_equal(dc_graph_read(m[k]->g, m[k]->loss, &loss[k]), DC_OK);
        assert_int_equal(dc_graph_backward(m[k]->g, m[k]->loss, DC_RELU_NORMAL), DC_OK);
        sample[k] = malloc(sizeof(float) * 3 * PIX);
        assert_int_equal(dc_flow_sample_guided(m[k], 3, 3, DC_SAMPLER_HEUN, 5, NULL, sample[k],
                                               NULL, 0, 2, 2.5f, &err),
                         DC_OK);
    }
    assert_true(dropped > 0 && dropped < 8); /* both the null class and real ones */
    print_message("[ opencl   ] loss cpu %.6f opencl %.6f\n", loss[0], loss[1]);
    assert_true(fabsf(loss[1] - loss[0]) <= 1e-3f * fabsf(loss[0]));
    for (int i = 0; i < dc_params_count(m[0]->params); i++) {
        float *a = param_grad(m[0], i), *b = param_grad(m[1], i);
        const dc_param *q = dc_params_get(m[0]->params, i);
        double largest = 0, worst = 0;
        for (size_t j = 0; j < q->numel; j++) {
            largest = fmax(largest, fabs(a[j]));
            worst = fmax(worst, fabs((double)a[j] - b[j]));
        }
        /* + 1e-6: the conv biases before a group norm have a zero gradient, where both
         * backends hold rounding noise of 1e-9 */
        if (!(worst <= 1e-3 * largest + 1e-6))
            fail_msg("gradient of %s: max abs difference %g (largest %g)", q->name, worst, largest);
        free(a), free(b);
    }
    const double serr = tu_max_abs_err(sample[1], sample[0], 3 * PIX);
    print_message("[ opencl   ] guided sample max abs err %.3g\n", serr);
    assert_true(serr <= 1e-3);
    for (int k = 0; k < 2; k++)
        free(sample[k]), dc_model_free(m[k]), dc_backend_free(be[k]);
    dc_dataset_free(ds);
}

/* ------------------------------------------------------------- checkpoints */
/* The class embedding (classes + the null row) is saved and read back with the spec that
 * says how many classes there are; the velocity of a class is the same after the round
 * trip, and a model without classes cannot load the checkpoint. */
static void test_checkpoint_roundtrip(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be = cpu();
    dc_model_spec spec;
    class_spec(&spec, CLASSES);
    spec.label_dropout = 0.25f;
    dc_model *m = make_model(be, &spec, 2, 11);
    char *dir = tu_tmpdir("classcond_ckpt");
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    dc_meta meta = {0};
    char *js = dc_model_spec_to_json(&m->spec);
    assert_int_equal(dc_meta_set(&meta, "model", js), DC_OK);
    free(js);
    assert_int_equal(dc_checkpoint_save(path, m->params, NULL, &meta, &err), DC_OK);
    dc_meta_clear(&meta);

    assert_int_equal(dc_checkpoint_read_meta(path, &meta, &err), DC_OK);
    dc_model_spec back;
    assert_int_equal(dc_model_spec_from_json(dc_meta_get(&meta, "model"), &back, &err), DC_OK);
    dc_meta_clear(&meta);
    assert_int_equal(back.cond_classes, CLASSES);
    assert_true(back.label_dropout == 0.25f);
    dc_model *r = NULL;
    assert_int_equal(dc_model_create(be, &back, 2, &r, &err), DC_OK);
    assert_int_equal(dc_checkpoint_load(path, r->params, NULL, NULL, &err), DC_OK);
    int found = 0;
    for (int i = 0; i < dc_params_count(m->params); i++) {
        const dc_param *q = dc_params_get(m->params, i);
        if (strcmp(q->name, "class_embed.weight")) continue;
        found = 1;
        assert_int_equal(q->shape[0], CLASSES + 1);
        const dc_param *q2 = dc_params_get(r->params, i);
        assert_string_equal(q2->name, q->name);
        float *a = malloc(q->numel * sizeof(float)), *b = malloc(q->numel * sizeof(float));
        assert_int_equal(dc_params_read(m->params, i, a), DC_OK);
        assert_int_equal(dc_params_read(r->params, i, b), DC_OK);
        assert_memory_equal(a, b, q->numel * sizeof(float));
        free(a), free(b);
    }
    assert_true(found);
    float x[2 * PIX], va[2 * PIX], vb[2 * PIX];
    dc_flow_noise(m, 2, 3, x);
    for (int c = 0; c <= CLASSES; c++) {
        velocity(m, x, 0.5f, c, va);
        velocity(r, x, 0.5f, c, vb);
        assert_memory_equal(va, vb, sizeof va);
    }
    /* the unconditional spec has no class_embed.weight to put it in */
    dc_model *u = NULL;
    class_spec(&spec, 0);
    assert_int_equal(dc_model_create(be, &spec, 2, &u, &err), DC_OK);
    assert_int_not_equal(dc_checkpoint_load(path, u->params, NULL, NULL, &err), DC_OK);
    assert_non_null(strstr(err.msg, "class_embed.weight"));
    /* checkpoints written before conditioning existed read as unconditional */
    assert_int_equal(dc_model_spec_from_json("{\"kind\":\"diffusion\",\"base\":4,\"blocks\":2,"
                                             "\"size\":16}",
                                             &back, &err),
                     DC_OK);
    assert_int_equal(back.cond_classes, 0);
    dc_model_free(u);
    dc_model_free(r);
    dc_model_free(m);
    tu_system("rm -rf '%s'", dir);
    free(dir);
    dc_backend_free(be);
}

/* ---------------------------------------------------------------- the CLI */
static void write_images(const char *folder, const dc_dataset *ds, int first, int step) {
    dc_error err = {0};
    mkdir(folder, 0755);
    for (int i = first; i < ds->n; i += step) {
        char p[1400];
        snprintf(p, sizeof p, "%s/img%02d.png", folder, i);
        assert_int_equal(
            dc_image_write_png(p, dc_dataset_image(ds, i), 1, SIDE, SIDE, DC_RANGE_PM1, &err),
            DC_OK);
    }
}

/* deconv train on class sub-folders conditions the model (generate --class K --guidance W
 * works, a class it does not have is refused); --unconditional and a flat folder do not,
 * and generate --class is refused there with a message that says why. */
static void test_cli_class_options(void **state) {
    (void)state;
    char *dir = tu_tmpdir("classcond_cli");
    char classes[1200], flat[1200];
    snprintf(classes, sizeof classes, "%s/classes", dir);
    snprintf(flat, sizeof flat, "%s/flat", dir);
    mkdir(classes, 0755);
    dc_dataset *ds = labelled_data(12);
    for (int k = 0; k < 2; k++) {
        char sub[1300];
        snprintf(sub, sizeof sub, "%s/class%d", classes, k);
        write_images(sub, ds, k, CLASSES);
    }
    write_images(flat, ds, 0, 1);
    dc_dataset_free(ds);
    const char *bin = tu_cli_path();
    const char *common = "--model diffusion --size 16 --base 4 --blocks 2 --batch 4 --epochs 1 "
                         "--device cpu --threads 1";
    assert_int_equal(tu_system("%s train %s --data %s --label-dropout 0.3 --out %s/cond "
                               ">%s/cond.log 2>&1",
                               bin, common, classes, dir, dir),
                     0);
    assert_int_equal(tu_system("grep -q 'conditioned on the data.s 2 classes' %s/cond.log", dir),
                     0);
    assert_int_equal(tu_system("%s train %s --data %s --unconditional --out %s/uncond "
                               ">%s/uncond.log 2>&1",
                               bin, common, classes, dir, dir),
                     0);
    assert_int_equal(tu_system("%s train %s --data %s --out %s/flatrun >%s/flat.log 2>&1", bin,
                               common, flat, dir, dir),
                     0);
    assert_int_equal(
        tu_system("grep -q 'unconditional (the data has no classes)' %s/flat.log", dir), 0);

    assert_int_equal(tu_system("%s generate %s/cond -n 2 --steps 2 --class 1 --guidance 2 "
                               "-o %s/c1.png --device cpu >%s/gen.log 2>&1",
                               bin, dir, dir, dir),
                     0);
    assert_int_equal(tu_system("test -s %s/c1.png && grep -q 'class 1, classifier-free guidance 2' "
                               "%s/gen.log && grep -q '(4 network evaluations)' %s/gen.log",
                               dir, dir, dir),
                     0);
    assert_int_not_equal(tu_system("%s generate %s/cond -n 2 --steps 2 --class 2 --device cpu "
                                   ">%s/bad.log 2>&1",
                                   bin, dir, dir),
                         0);
    assert_int_equal(tu_system("grep -q 'classes 0 to 1' %s/bad.log", dir), 0);
    assert_int_not_equal(tu_system("%s generate %s/cond -n 2 --guidance 2 --device cpu "
                                   ">%s/bad.log 2>&1",
                                   bin, dir, dir),
                         0);
    assert_int_equal(tu_system("grep -q -- '--guidance needs --class' %s/bad.log", dir), 0);
    for (int r = 0; r < 2; r++) {
        const char *run = r ? "flatrun" : "uncond";
        assert_int_not_equal(tu_system("%s generate %s/%s -n 2 --steps 2 --class 0 --device cpu "
                                       ">%s/bad.log 2>&1",
                                       bin, dir, run, dir),
                             0);
        assert_int_equal(tu_system("grep -q 'trained without classes' %s/bad.log", dir), 0);
    }
    /* eval samples a conditioned model class by class (sample i: class i mod K, seed
     * dc_seed_mix(seed, K's index)) with the guidance asked: the saved samples equal the
     * library's dc_flow_sample_guided on the run's checkpoint, class by class */
    assert_int_equal(tu_system("%s eval %s/cond --samples 5 --steps 2 --guidance 2 --draws 2 "
                               "--device cpu --save-samples %s/s.npy --json %s/e.json "
                               ">%s/eval.log 2>&1 && grep -q 'each of the 2 classes in turn, "
                               "guidance 2' %s/eval.log",
                               bin, dir, dir, dir, dir, dir),
                     0);
    {
        char path[1400];
        snprintf(path, sizeof path, "%s/cond/model.safetensors", dir);
        dc_error err = {0};
        dc_meta meta = {0};
        dc_model_spec spec;
        assert_int_equal(dc_checkpoint_read_meta(path, &meta, &err), DC_OK);
        assert_int_equal(dc_model_spec_from_json(dc_meta_get(&meta, "model"), &spec, &err), DC_OK);
        dc_meta_clear(&meta);
        assert_int_equal(spec.cond_classes, 2);
        dc_backend *be = cpu();
        dc_model *m = NULL;
        assert_int_equal(dc_model_create(be, &spec, 32, &m, &err), DC_OK);
        assert_int_equal(dc_checkpoint_load(path, m->params, NULL, NULL, &err), DC_OK);
        float want[5 * PIX], got[5 * PIX], cls[3 * PIX];
        for (int k = 0; k < 2; k++) {
            const int nk = k ? 2 : 3;
            assert_int_equal(dc_flow_sample_guided(m, nk, 2, DC_SAMPLER_EULER, dc_seed_mix(1, k),
                                                   NULL, cls, NULL, 0, k, 2.0f, &err),
                             DC_OK);
            for (int j = 0; j < nk; j++) memcpy(want + (k + 2 * j) * PIX, cls + j * PIX, sizeof(float) * PIX);
        }
        snprintf(path, sizeof path, "%s/s.npy", dir);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        unsigned char pre[10];
        assert_int_equal(fread(pre, 1, 10, fp), 10);
        assert_memory_equal(pre, "\x93NUMPY\x01\x00", 8);
        const int hlen = pre[8] | pre[9] << 8;
        assert_int_equal((10 + hlen) % 64, 0);
        char header[256] = {0};
        assert_true(hlen < (int)sizeof header);
        assert_int_equal(fread(header, 1, (size_t)hlen, fp), (size_t)hlen);
        assert_non_null(strstr(header, "'descr': '<f4'"));
        assert_non_null(strstr(header, "'shape': (5, 1, 16, 16)"));
        assert_int_equal(fread(got, sizeof(float), 5 * PIX, fp), 5 * PIX);
        assert_int_equal(fgetc(fp), EOF);
        fclose(fp);
        for (int i = 0; i < 5 * PIX; i++) assert_float_equal(got[i], want[i], 1e-6);
        dc_model_free(m);
        dc_backend_free(be);
    }
    assert_int_equal(tu_system("%s eval %s/cond --samples 4 --steps 2 --guidance 0 --draws 2 "
                               "--device cpu >%s/eval0.log 2>&1 && grep -q 'classes: none' "
                               "%s/eval0.log",
                               bin, dir, dir, dir),
                     0);
    /* the run is mask-conditioned (default --cond-mask): eval's inpaintings default to no
     * resampling, and --resample sets it; the JSON says which */
    assert_int_equal(tu_system("%s eval %s/cond --samples 4 --steps 2 --draws 2 --device cpu "
                               "--json %s/e1.json >%s/e1.log 2>&1 && grep -Eq "
                               "'\"resample\":[[:space:]]*1[,}]' %s/e1.json && grep -q "
                               "'2 euler steps x 1)' %s/e1.log",
                               bin, dir, dir, dir, dir, dir),
                     0);
    assert_int_equal(tu_system("%s eval %s/cond --samples 4 --steps 2 --draws 2 --resample 2 "
                               "--device cpu --json %s/e2.json >%s/e2.log 2>&1 && grep -Eq "
                               "'\"resample\":[[:space:]]*2[,}]' %s/e2.json",
                               bin, dir, dir, dir, dir),
                     0);
    /* the inpaintings of eval's completion figure take --resample (1 to 1000) */
    assert_int_equal(tu_system("%s eval %s/cond --samples 4 --steps 2 --resample 0 --device cpu "
                               ">%s/bad.log 2>&1",
                               bin, dir, dir),
                     2);
    assert_int_equal(tu_system("grep -q -- '--resample 0' %s/bad.log", dir), 0);
    /* the denoiser of the conditioned run exports with its class input */
    assert_int_equal(
        tu_system("%s export %s/cond --format onnx -o %s/cond.onnx >%s/export.log 2>&1 "
                  "&& %s export %s/cond --format npz -o %s/cond.npz >>%s/export.log "
                  "2>&1 && test -s %s/cond.onnx && test -s %s/cond.npz && grep -c "
                  "class_embed.weight %s/cond.onnx >/dev/null",
                  bin, dir, dir, dir, bin, dir, dir, dir, dir, dir, dir),
        0);
    /* --label-dropout belongs to the diffusion model */
    assert_int_not_equal(tu_system("%s train --model vae --data %s --label-dropout 0.1 --epochs 1 "
                                   "--out %s/vae >%s/bad.log 2>&1",
                                   bin, flat, dir, dir),
                         0);
    assert_int_equal(tu_system("grep -q 'options of the diffusion model' %s/bad.log", dir), 0);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_dropout_rate),   cmocka_unit_test(test_classes_from_data),
        cmocka_unit_test(test_guidance_weights),     cmocka_unit_test(test_cpu_vs_opencl),
        cmocka_unit_test(test_checkpoint_roundtrip), cmocka_unit_test(test_cli_class_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
