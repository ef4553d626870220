/* Training: a small conv network on a fixed synthetic task must cut its loss by 10x in a
 * few hundred steps, and the same seed must give bit-identical weights twice. Optimizer
 * updates are checked against the textbook formulas evaluated here in double precision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/complete.h"
#include "deconv/image.h"
#include "deconv/model.h"
#include "deconv/train.h"
#include "internal.h"
#include "testutil.h"

/* Synthetic task: reconstruct 8x8 images of a bright square at a random place (an
 * autoencoder through a 4x4 bottleneck), a fixed set of 32 images. */
static void make_task(float *x, int n) {
    dc_rng r;
    dc_rng_seed(&r, 77);
    for (int i = 0; i < n; i++) {
        float *im = x + i * 64;
        for (int p = 0; p < 64; p++) im[p] = -1.0f;
        int y0 = (int)dc_rng_below(&r, 5), x0 = (int)dc_rng_below(&r, 5);
        for (int y = y0; y < y0 + 4; y++)
            for (int xx = x0; xx < x0 + 4; xx++) im[y * 8 + xx] = 1.0f;
    }
}

static double train_once(uint64_t seed, int steps, float **weights_out, size_t *n_out, double *first) {
    dc_backend *be;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_params *p;
    dc_graph *g;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    assert_int_equal(dc_graph_create(p, 32, &g), DC_OK);
    int x = dc_input(g, "x", 1, 8, 8);
    int h = dc_conv2d(g, x, 8, 3, 1, 1);
    h = dc_relu(g, h);
    int pool = dc_maxpool2d(g, h, 2, 2, 0);
    h = dc_conv2d(g, pool, 8, 3, 1, 1);
    h = dc_leaky_relu(g, h, 0.1f);
    h = dc_flatten(g, h);
    h = dc_dense(g, h, 16);
    h = dc_tanh(g, h);
    h = dc_dense(g, h, 128);
    h = dc_relu(g, h);
    h = dc_reshape(g, h, 8, 4, 4);
    h = dc_conv_transpose2d(g, h, 1, 4, 2, 1, 0);
    int out = dc_tanh(g, h);
    int loss = dc_mse_loss(g, out, x, -1);
    assert_int_equal(dc_graph_finalize(g), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    dc_optim_config oc;
    dc_optim_config_default(&oc, DC_OPTIM_ADAM);
    oc.lr = 3e-3f;
    oc.clip_norm = 5.0f;
    oc.schedule = DC_SCHED_COSINE;
    oc.total_steps = steps;
    dc_optim *o;
    assert_int_equal(dc_optim_create(p, &oc, &o), DC_OK);
    float data[32 * 64];
    make_task(data, 32);
    assert_int_equal(dc_graph_set_input(g, x, data), DC_OK);
    float l = 0;
    for (int s = 0; s < steps; s++) {
        assert_int_equal(dc_graph_forward(g, -1), DC_OK);
        if (s == 0) {
            dc_graph_read(g, loss, &l);
            *first = l;
        }
        assert_int_equal(dc_params_zero_grad(p), DC_OK);
        assert_int_equal(dc_graph_backward(g, loss, DC_RELU_NORMAL), DC_OK);
        assert_int_equal(dc_optim_step(o), DC_OK);
    }
    dc_graph_forward(g, -1);
    dc_graph_read(g, loss, &l);
    size_t n = dc_params_total(p);
    float *w = malloc(n * sizeof(float));
    be->ops->read(be, dc_params_values_ptr(p), w, n * sizeof(float));
    *weights_out = w;
    *n_out = n;
    dc_optim_free(o);
    dc_graph_free(g);
    dc_params_free(p);
    dc_backend_free(be);
    return l;
}

static void test_loss_falls_and_is_reproducible(void **state) {
    (void)state;
    float *w1, *w2;
    size_t n1, n2;
    double f1, f2;
    double l1 = train_once(42, 300, &w1, &n1, &f1);
    double l2 = train_once(42, 300, &w2, &n2, &f2);
    print_message("  loss %.5f -> %.5f after 300 steps (%.1fx)\n", f1, l1, f1 / l1);
    assert_true(l1 * 10.0 <= f1);
    assert_int_equal(n1, n2);
    assert_memory_equal(w1, w2, n1 * sizeof(float)); /* bit-identical */
    assert_true(l1 == l2);
    float *w3;
    size_t n3;
    double f3;
    train_once(43, 5, &w3, &n3, &f3);
    assert_true(memcmp(w1, w3, n1 * sizeof(float)) != 0); /* another seed, other weights */
    free(w1);
    free(w2);
    free(w3);
}

/* One parameter tensor, known gradients: every optimizer against its formula. */
static void check_optimizer(dc_optim_kind kind, int nesterov, float wd, float clip) {
    dc_backend *be;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_params *p;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    int shape[2] = {3, 5}, bshape[1] = {5}, wi, bi;
    assert_int_equal(dc_params_declare(p, "w", 2, shape, DC_INIT_HE, 5, 3, 1, &wi), DC_OK);
    assert_int_equal(dc_params_declare(p, "b", 1, bshape, DC_INIT_ZERO, 0, 0, 1, &bi), DC_OK);
    dc_params_get(p, bi)->decay = 0;
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    dc_optim_config c;
    dc_optim_config_default(&c, kind);
    c.lr = 0.05f;
    c.nesterov = nesterov;
    c.weight_decay = wd;
    c.clip_norm = clip;
    dc_optim *o;
    assert_int_equal(dc_optim_create(p, &c, &o), DC_OK);
    double W[20], M[20] = {0}, V[20] = {0};
    float host[20], grad[20];
    dc_params_read(p, wi, host);
    for (int i = 0; i < 15; i++) W[i] = host[i];
    for (int i = 15; i < 20; i++) W[i] = 0;
    for (int t = 1; t <= 4; t++) {
        tu_fill_uniform(grad, 20, &rng, -2, 2);
        dc_param *qw = dc_params_get(p, wi), *qb = dc_params_get(p, bi);
        be->ops->write(be, dc_tensor_ptr(qw->grad), grad, 15 * 4);
        be->ops->write(be, dc_tensor_ptr(qb->grad), grad + 15, 5 * 4);
        assert_int_equal(dc_optim_step(o), DC_OK);
        double norm = 0, sc = 1;
        for (int i = 0; i < 20; i++) norm += (double)grad[i] * grad[i];
        norm = sqrt(norm);
        if (clip > 0 && norm > clip) sc = clip / norm;
        for (int i = 0; i < 20; i++) {
            double g = sc * grad[i], d = i < 15 ? wd : 0;
            if (kind == DC_OPTIM_SGD) {
                g += d * W[i];
                M[i] = 0.9 * M[i] + g;
                W[i] -= 0.05 * (nesterov ? g + 0.9 * M[i] : M[i]);
            } else {
                if (kind == DC_OPTIM_ADAMW) W[i] -= 0.05 * d * W[i];
                else g += d * W[i];
                M[i] = 0.9 * M[i] + 0.1 * g;
                V[i] = 0.999 * V[i] + 0.001 * g * g;
                W[i] -= 0.05 * (M[i] / (1 - pow(0.9, t))) / (sqrt(V[i] / (1 - pow(0.999, t))) + 1e-8);
            }
        }
        float got[20];
        dc_params_read(p, wi, got);
        dc_params_read(p, bi, got + 15);
        for (int i = 0; i < 20; i++)
            if (fabs(got[i] - W[i]) > 1e-5 * fmax(1, fabs(W[i])))
                fail_msg("optimizer %d nesterov %d wd %g clip %g step %d: w[%d] = %g, formula %g", kind,
                         nesterov, (double)wd, (double)clip, t, i, (double)got[i], W[i]);
    }
    dc_optim_free(o);
    dc_params_free(p);
    dc_backend_free(be);
}

static void test_optimizers(void **state) {
    (void)state;
    check_optimizer(DC_OPTIM_SGD, 0, 0.0f, 0.0f);
    check_optimizer(DC_OPTIM_SGD, 1, 0.01f, 0.0f);
    check_optimizer(DC_OPTIM_SGD, 0, 0.0f, 1.0f);
    check_optimizer(DC_OPTIM_ADAM, 0, 0.0f, 0.0f);
    check_optimizer(DC_OPTIM_ADAM, 0, 0.1f, 2.0f);
    check_optimizer(DC_OPTIM_ADAMW, 0, 0.1f, 0.0f);
}

/* EMA weights: after each step, ema = d ema + (1 - d) w with d = min(decay, (1 + t) /
 * (10 + t)) at step t = 0, 1, ..., starting from the weights at creation; swapping twice
 * restores the weights. Oracle: the same recurrence in doubles on the weights read back. */
static void test_ema_weights(void **state) {
    (void)state;
    dc_backend *be;
    dc_error err = {0};
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_params *p;
    assert_int_equal(dc_params_create(be, &p), DC_OK);
    int shape[2] = {4, 6}, wi;
    assert_int_equal(dc_params_declare(p, "w", 2, shape, DC_INIT_HE, 6, 4, 1, &wi), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, 8);
    assert_int_equal(dc_params_init(p, &rng), DC_OK);
    assert_false(dc_params_has_ema(p));
    dc_optim_config c;
    dc_optim_config_default(&c, DC_OPTIM_ADAM);
    c.lr = 0.1f;
    c.ema_decay = 0.9f;
    dc_optim *o;
    assert_int_equal(dc_optim_create(p, &c, &o), DC_OK);
    assert_true(dc_params_has_ema(p));
    float w[24], grad[24], got[24];
    double E[24];
    dc_params_read(p, wi, w);
    for (int i = 0; i < 24; i++) E[i] = w[i];
    for (int t = 0; t < 30; t++) {
        tu_fill_uniform(grad, 24, &rng, -1, 1);
        be->ops->write(be, dc_tensor_ptr(dc_params_get(p, wi)->grad), grad, sizeof grad);
        assert_int_equal(dc_optim_step(o), DC_OK);
        dc_params_read(p, wi, w);
        const double warm = (1.0 + t) / (10.0 + t), d = warm < 0.9 ? warm : 0.9;
        for (int i = 0; i < 24; i++) E[i] = d * E[i] + (1 - d) * w[i];
    }
    assert_int_equal(dc_params_swap_ema(p), DC_OK);
    dc_params_read(p, wi, got);
    for (int i = 0; i < 24; i++)
        if (fabs(got[i] - E[i]) > 1e-5 * fmax(1, fabs(E[i])))
            fail_msg("ema[%d] = %g, recurrence %g", i, (double)got[i], E[i]);
    assert_int_equal(dc_params_swap_ema(p), DC_OK);
    dc_params_read(p, wi, got);
    assert_memory_equal(got, w, sizeof w);
    /* a decay outside [0, 1) is refused */
    dc_optim *bad = NULL;
    c.ema_decay = 1.0f;
    assert_int_equal(dc_optim_create(p, &c, &bad), DC_ERR_ARG);
    assert_null(bad);
    dc_optim_free(o);
    dc_params_free(p);
    dc_backend_free(be);
}

static void test_schedules(void **state) {
    (void)state;
    dc_optim_config c;
    dc_optim_config_default(&c, DC_OPTIM_SGD);
    c.lr = 1.0f;
    assert_float_equal(dc_optim_lr_at(&c, 12345), 1.0f, 0);
    c.schedule = DC_SCHED_STEP;
    c.step_size = 10;
    c.gamma = 0.5f;
    assert_float_equal(dc_optim_lr_at(&c, 9), 1.0f, 1e-7);
    assert_float_equal(dc_optim_lr_at(&c, 10), 0.5f, 1e-7);
    assert_float_equal(dc_optim_lr_at(&c, 35), 0.125f, 1e-7);
    c.schedule = DC_SCHED_COSINE;
    c.total_steps = 100;
    c.min_lr = 0.1f;
    assert_float_equal(dc_optim_lr_at(&c, 0), 1.0f, 1e-6);
    assert_float_equal(dc_optim_lr_at(&c, 50), 0.55f, 1e-6);
    assert_float_equal(dc_optim_lr_at(&c, 100), 0.1f, 1e-6);
    c.warmup = 10;
    assert_float_equal(dc_optim_lr_at(&c, 4), 0.5f, 1e-6);
}

/* The PRNG is documented as xoshiro256** seeded by splitmix64: check its first outputs for
 * seed 0 against values computed by hand from the published algorithm (reproduced in
 * this test independently of host/core.c). */
static uint64_t ref_sm(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static void test_prng(void **state) {
    (void)state;
    uint64_t x = 0, s[4];
    for (int i = 0; i < 4; i++) s[i] = ref_sm(&x);
    dc_rng r;
    dc_rng_seed(&r, 0);
    for (int k = 0; k < 8; k++) {
        uint64_t t1 = s[1] * 5, res = ((t1 << 7) | (t1 >> 57)) * 9, t = s[1] << 17;
        s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
        s[3] = (s[3] << 45) | (s[3] >> 19);
        assert_true(dc_rng_next(&r) == res);
    }
    /* uniform and normal moments */
    dc_rng_seed(&r, 9);
    double m = 0, v = 0;
    for (int i = 0; i < 100000; i++) {
        double z = dc_rng_normal(&r);
        m += z, v += z * z;
    }
    m /= 100000, v = v / 100000 - m * m;
    assert_true(fabs(m) < 0.02 && fabs(v - 1) < 0.03);
}

/* ---- the training loop of the library (deconv/train.h) ---- */

/* 14 labelled 16x16 images: a bright square whose side (class 0) or corner (class 1)
 * depends on the label, placed by a fixed rng. */
static dc_dataset *trainer_data(void) {
    dc_dataset *ds;
    dc_error err = {0};
    assert_int_equal(dc_dataset_create(14, 1, 16, 16, 1, &ds, &err), DC_OK);
    ds->n_classes = 2;
    snprintf(ds->source, sizeof ds->source, "synthetic squares");
    dc_rng r;
    dc_rng_seed(&r, 5);
    for (int i = 0; i < ds->n; i++) {
        float *im = dc_dataset_image(ds, i);
        ds->labels[i] = i % 2;
        const int side = ds->labels[i] ? 4 : 7, y0 = (int)dc_rng_below(&r, 16 - side),
                  x0 = (int)dc_rng_below(&r, 16 - side);
        for (int p = 0; p < 256; p++) im[p] = -1.0f;
        for (int y = y0; y < y0 + side; y++)
            for (int x = x0; x < x0 + side; x++) im[y * 16 + x] = 1.0f;
    }
    return ds;
}

typedef struct counts {
    int progress, epochs, checkpoints, stop_after;
    int validates, classifies; /* whether val loss / accuracy must be numbers */
    long last_step;
} counts;
static void count_progress(void *u, const dc_train_progress *p) {
    counts *c = u;
    c->progress++;
    c->last_step = p->global_step;
}
static void count_epoch(void *u, dc_trainer *t, const dc_train_epoch *e) {
    counts *c = u;
    (void)t;
    c->epochs++;
    assert_true(isfinite(e->train_loss));
    assert_int_equal(!!isfinite(e->val_loss), c->validates);
    assert_int_equal(!!isfinite(e->val_accuracy), c->classifies);
}
static void count_checkpoint(void *u, const char *path, int epoch, int step_in_epoch) {
    counts *c = u;
    (void)path, (void)epoch, (void)step_in_epoch;
    c->checkpoints++;
}
static int stop_when_told(void *u) {
    counts *c = u;
    return c->stop_after > 0 && --c->stop_after == 0;
}

static float *trainer_weights(dc_trainer *t, size_t *n) {
    dc_model *m = dc_trainer_model(t);
    *n = dc_params_total(m->params);
    float *w = malloc(*n * sizeof(float));
    m->be->ops->read(m->be, dc_params_values_ptr(m->params), w, *n * sizeof(float));
    return w;
}

/* Straight run vs. runs stopped after `stop` steps and resumed (every stop in 1..total
 * that `stride` picks, so mid-epoch stops and stops right after an epoch's last step). */
static void check_resume(const char *kind, dc_optim_kind optim, dc_schedule sched, int stride) {
    dc_error err = {0};
    dc_dataset *all = trainer_data(), *train, *val;
    assert_int_equal(dc_dataset_split(all, 0.2f, 9, &train, &val, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, kind, 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 6, spec.classes = 2, spec.dropout = 0.25f;
    if (!strcmp(kind, "complete")) spec.mask = DC_MASK_RANDOM;
    dc_train_config cfg;
    dc_train_config_default(&cfg);
    cfg.epochs = 3, cfg.batch = 4, cfg.optim = optim, cfg.schedule = sched, cfg.clip = 1.0f;
    cfg.augment = strcmp(kind, "glo") != 0, cfg.seed = 0x123456789abcdefull, cfg.log_every = 2;
    char *dir = tu_tmpdir("trainer");
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);

    snprintf(cfg.out, sizeof cfg.out, "%s/straight", dir);
    /* every kind validates (glo by projecting the held-out images) */
    const int validates = 1, classifies = !strcmp(kind, "classifier");
    counts c0 = {.validates = validates, .classifies = classifies};
    dc_train_callbacks cb = {&c0, count_progress, count_epoch, count_checkpoint, NULL, stop_when_told};
    dc_trainer *t;
    assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err), DC_OK);
    const int spe = dc_trainer_steps_per_epoch(t), total = spe * cfg.epochs;
    assert_int_equal(spe, (train->n + 3) / 4);
    if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
    /* progress every 2 steps and at each epoch's end; one checkpoint, at the end */
    assert_int_equal(c0.progress, cfg.epochs * ((spe + 1) / 2));
    assert_int_equal(c0.epochs, cfg.epochs);
    assert_int_equal(c0.checkpoints, 1);
    assert_int_equal(c0.last_step, total);
    size_t n;
    float *want = trainer_weights(t, &n);
    dc_trainer_free(t);

    for (int stop = 1; stop < total; stop += stride) {
        snprintf(cfg.out, sizeof cfg.out, "%s/stop%d", dir, stop);
        counts c = {.stop_after = stop, .validates = validates, .classifies = classifies};
        cb.user = &c;
        assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err), DC_OK);
        assert_int_equal(dc_trainer_run(t, &err), DC_ERR_INTERRUPTED);
        int epoch, step_in_epoch;
        long step;
        dc_trainer_position(t, &epoch, &step_in_epoch, &step);
        assert_int_equal(step, stop);
        assert_int_equal(epoch, stop / spe);
        assert_int_equal(step_in_epoch, stop % spe);
        dc_trainer_free(t);
        /* the stored position and options */
        dc_train_checkpoint at;
        assert_int_equal(dc_train_read_checkpoint(cfg.out, &at, &err), DC_OK);
        assert_int_equal(at.step, stop);
        assert_int_equal(at.epoch, stop / spe);
        assert_int_equal(at.step_in_epoch, stop % spe);
        assert_true(at.config.seed == cfg.seed);
        assert_int_equal(at.config.optim, optim);
        assert_int_equal(at.config.schedule, sched);
        assert_true(at.config.clip == cfg.clip && at.config.lr == cfg.lr);
        assert_string_equal(dc_model_kind_name(at.spec.kind), kind);

        counts c2 = {.validates = validates, .classifies = classifies};
        cb.user = &c2;
        if (dc_trainer_resume(be, cfg.out, train, val, NULL, &cb, &t, &err) != DC_OK)
            fail_msg("%s", err.msg);
        if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
        size_t n2;
        float *got = trainer_weights(t, &n2);
        assert_int_equal(n, n2);
        assert_memory_equal(want, got, n * sizeof(float)); /* bit-identical */
        assert_int_equal(c2.last_step, total);
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

static void test_trainer_resume_is_bit_identical(void **state) {
    (void)state;
    check_resume("complete", DC_OPTIM_ADAM, DC_SCHED_COSINE, 1);
    check_resume("classifier", DC_OPTIM_SGD, DC_SCHED_STEP, 2);
    check_resume("glo", DC_OPTIM_ADAMW, DC_SCHED_CONSTANT, 4);
}

/* --val-every: validation, loss.csv and the epoch_end's `validated` every N epochs and at
 * checkpoints, sample epochs and the end. Training itself does not depend on it (the same
 * weights to the bit as validating every epoch), the validated epochs' losses are those of
 * the every-epoch run, loss.csv holds every epoch (NaN where not validated), and a stop
 * between validations still leaves loss.csv complete for the resume. */
typedef struct cadence {
    int validated[16];
    double val[16];
} cadence;
static void note_cadence(void *u, dc_trainer *t, const dc_train_epoch *e) {
    cadence *c = u;
    (void)t;
    assert_true(e->epoch >= 1 && e->epoch <= 15);
    c->validated[e->epoch] = e->validated;
    c->val[e->epoch] = e->val_loss;
    assert_int_equal(!!isfinite(e->val_loss), !!e->validated);
}
static int csv_rows(const char *run, int *nan_rows) {
    char path[1200];
    snprintf(path, sizeof path, "%s/loss.csv", run);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    int rows = 0;
    *nan_rows = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "epoch,", 6)) {
            rows++;
            /* the fourth field: val_loss */
            const char *p = line;
            for (int k = 0; k < 3 && p; k++)
                if ((p = strchr(p, ','))) p++;
            if (p && !strncmp(p, "nan", 3)) (*nan_rows)++;
        }
    fclose(f);
    return rows;
}
static void test_val_every(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *all = trainer_data(), *train, *val;
    assert_int_equal(dc_dataset_split(all, 0.2f, 9, &train, &val, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 6, spec.mask = DC_MASK_RANDOM;
    dc_train_config cfg;
    dc_train_config_default(&cfg);
    cfg.epochs = 7, cfg.batch = 4, cfg.save_every = 5, cfg.sample_every = 100, cfg.augment = 1;
    char *dir = tu_tmpdir("val_every");
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);

    cadence every = {0}, third = {0};
    dc_train_callbacks cb = {&every, NULL, note_cadence, NULL, NULL, NULL};
    dc_trainer *t;
    snprintf(cfg.out, sizeof cfg.out, "%s/every", dir);
    assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err), DC_OK);
    if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
    size_t n;
    float *want = trainer_weights(t, &n);
    dc_trainer_free(t);

    cfg.val_every = 3;
    cb.user = &third;
    snprintf(cfg.out, sizeof cfg.out, "%s/third", dir);
    assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err), DC_OK);
    if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
    size_t n2;
    float *got = trainer_weights(t, &n2);
    dc_trainer_free(t);
    assert_int_equal(n, n2);
    assert_memory_equal(want, got, n * sizeof(float));
    free(got);
    /* 3 and 6 by the cadence, 5 the checkpoint, 7 the last */
    static const int due[8] = {0, 0, 0, 1, 0, 1, 1, 1};
    for (int e = 1; e <= 7; e++) {
        assert_int_equal(every.validated[e], 1);
        assert_int_equal(third.validated[e], due[e]);
        if (due[e]) assert_true(third.val[e] == every.val[e]);
    }
    int nan_rows;
    assert_int_equal(csv_rows(cfg.out, &nan_rows), 7);
    assert_int_equal(nan_rows, 3);
    dc_train_checkpoint at;
    assert_int_equal(dc_train_read_checkpoint(cfg.out, &at, &err), DC_OK);
    assert_int_equal(at.config.val_every, 3);

    /* stopped in epoch 5: epoch 4 was not validated, yet loss.csv has its row */
    snprintf(cfg.out, sizeof cfg.out, "%s/stopped", dir);
    cadence after = {0};
    counts stop = {0};
    const int spe = (train->n + cfg.batch - 1) / cfg.batch;
    stop.stop_after = 4 * spe + 1;
    dc_train_callbacks cbs = {&stop, NULL, NULL, NULL, NULL, stop_when_told};
    assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cbs, &t, &err), DC_OK);
    assert_int_equal(dc_trainer_run(t, &err), DC_ERR_INTERRUPTED);
    dc_trainer_free(t);
    assert_int_equal(csv_rows(cfg.out, &nan_rows), 4);
    assert_int_equal(nan_rows, 3); /* 1, 2 and 4 */
    cb.user = &after;
    if (dc_trainer_resume(be, cfg.out, train, val, NULL, &cb, &t, &err) != DC_OK)
        fail_msg("%s", err.msg);
    if (dc_trainer_run(t, &err) != DC_OK) fail_msg("%s", err.msg);
    got = trainer_weights(t, &n2);
    dc_trainer_free(t);
    assert_memory_equal(want, got, n * sizeof(float));
    free(got);
    assert_int_equal(csv_rows(cfg.out, &nan_rows), 7);
    assert_int_equal(nan_rows, 3);
    for (int e = 5; e <= 7; e++) {
        assert_int_equal(after.validated[e], due[e]);
        if (due[e]) assert_true(after.val[e] == every.val[e]);
    }

    /* 0 is refused */
    cfg.val_every = 0;
    snprintf(cfg.out, sizeof cfg.out, "%s/zero", dir);
    assert_int_equal(dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "val_every 0"));

    free(want);
    dc_backend_free(be);
    dc_dataset_free(all);
    dc_dataset_free(train);
    dc_dataset_free(val);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* The mix mask draws each kind at its stated rate (full 25 %, random 25 %, each fixed
 * region 10 %), and the full mask hides every pixel. */
static void test_mask_mix(void **state) {
    (void)state;
    const int S = 16, draws = 8000;
    float mask[256], ref[256];
    int counts[DC_MASK_MIX + 1] = {0};
    dc_rng rng, r2;
    dc_rng_seed(&rng, 77);
    for (int d = 0; d < draws; d++) {
        dc_mask_make(DC_MASK_MIX, S, S, &rng, mask);
        int hidden = 0;
        for (int p = 0; p < S * S; p++) hidden += mask[p] > 0.5f;
        int kind = DC_MASK_RANDOM; /* unless it equals a fixed region */
        for (int k = DC_MASK_BOTTOM; k <= DC_MASK_FULL; k++) {
            if (k == DC_MASK_RANDOM) continue;
            dc_rng_seed(&r2, 1);
            dc_mask_make((dc_mask_kind)k, S, S, &r2, ref);
            if (!memcmp(mask, ref, sizeof mask)) kind = k;
        }
        if (kind == DC_MASK_FULL) assert_int_equal(hidden, S * S);
        counts[kind]++;
    }
    const double want[DC_MASK_MIX + 1] = {[DC_MASK_FULL] = 0.25, [DC_MASK_RANDOM] = 0.25,
                                          [DC_MASK_BOTTOM] = 0.1, [DC_MASK_TOP] = 0.1,
                                          [DC_MASK_LEFT] = 0.1,   [DC_MASK_RIGHT] = 0.1,
                                          [DC_MASK_BOX] = 0.1};
    for (int k = DC_MASK_BOTTOM; k <= DC_MASK_FULL; k++) {
        const double share = counts[k] / (double)draws;
        /* 4 binomial standard deviations */
        const double sd = sqrt(want[k] * (1 - want[k]) / draws);
        if (fabs(share - want[k]) > 4 * sd + 0.01) /* + a random box that happens to match */
            fail_msg("mask %s: share %.3f, want %.2f", dc_mask_name((dc_mask_kind)k), share, want[k]);
    }
    /* without a random stream (eval, complete) the drawn kinds take a fixed region */
    dc_mask_make(DC_MASK_MIX, S, S, NULL, mask);
    dc_mask_make(DC_MASK_BOTTOM, S, S, NULL, ref);
    assert_memory_equal(mask, ref, sizeof mask);
    dc_mask_make(DC_MASK_RANDOM, S, S, NULL, mask);
    dc_mask_make(DC_MASK_BOX, S, S, NULL, ref);
    assert_memory_equal(mask, ref, sizeof mask);
    dc_model_spec spec;
    dc_error err = {0};
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 64, &err), DC_OK);
    assert_int_equal(spec.mask, DC_MASK_MIX); /* the blank canvas is in the training data */
}

static size_t model_param_count(dc_model *m) {
    size_t total = 0;
    for (int i = 0; i < dc_params_count(m->params); i++) total += dc_params_get(m->params, i)->numel;
    return total;
}

/* The completion model's options train (loss finite, weights move) and behave:
 * conv bottleneck: far fewer parameters than the dense one, the same code size;
 * code vae: the blank canvas's completions differ between seeds at the prior's std and
 * coincide at std 0; bce and self-feedback run in the same steps. */
static void test_complete_options(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *all = trainer_data(), *train, *val;
    assert_int_equal(dc_dataset_split(all, 0.2f, 9, &train, &val, &err), DC_OK);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    char *dir = tu_tmpdir("complete_opts");
    size_t dense_params = 0;
    for (int variant = 0; variant < 3; variant++) {
        dc_model_spec spec;
        assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
        spec.base = 4, spec.blocks = 2, spec.latent = 32;
        spec.loss = DC_LOSS_BCE;
        spec.feedback = 0.5f;
        if (variant >= 1) spec.bottleneck = DC_BOTTLENECK_CONV;
        if (variant == 2) spec.code = DC_CODE_VAE;
        dc_train_config cfg;
        dc_train_config_default(&cfg);
        cfg.epochs = 4, cfg.batch = 4, cfg.seed = 3;
        snprintf(cfg.out, sizeof cfg.out, "%s/v%d", dir, variant);
        dc_train_callbacks cb = {0};
        dc_trainer *t;
        if (dc_trainer_create(be, &spec, train, val, &cfg, &cb, &t, &err) != DC_OK)
            fail_msg("variant %d: %s", variant, err.msg);
        dc_model *m = dc_trainer_model(t);
        const size_t params = model_param_count(m);
        if (variant == 0) dense_params = params;
        if (variant == 1) {
            /* dense: 4x4x8 -> 32 -> 4x4x8 holds 2 x 4096 + biases; conv: two 3x3 8->8 and a
             * 1x1, and a 3x3 2->8 back */
            assert_true(dc_params_find(m->params, "dec_conv.weight") >= 0);
            assert_true(dc_params_find(m->params, "dec_fc.weight") < 0);
            assert_true(params + 7000 < dense_params);
        }
        size_t n0;
        float *before = trainer_weights(t, &n0);
        if (dc_trainer_run(t, &err) != DC_OK) fail_msg("variant %d: %s", variant, err.msg);
        double vloss, acc;
        assert_int_equal(dc_trainer_validate(t, &vloss, &acc, &err), DC_OK);
        assert_true(isfinite(vloss));
        size_t n1;
        float *after = trainer_weights(t, &n1);
        assert_int_equal(n0, n1);
        assert_true(memcmp(before, after, n0 * sizeof(float)) != 0);
        free(before), free(after);
        if (variant == 2) {
            /* generation: blank canvas, eval mode, two seeds */
            const size_t isz = 256, B = (size_t)m->batch;
            float *x = calloc(B * isz, sizeof(float)), *y1 = malloc(B * isz * 4),
                  *y2 = malloc(B * isz * 4), *y0 = malloc(B * isz * 4);
            dc_graph_set_train(m->g, 0);
            assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
            /* every pixel hidden, as generate sets it (the hole still holds training's masks) */
            assert_int_equal(dc_model_set_hole(m, NULL, 0, &err), DC_OK);
            /* the target (the posterior's input) plays no part when generating */
            for (size_t i = 0; i < B * isz; i++) x[i] = (float)(i % 7) / 7.0f;
            assert_int_equal(dc_graph_set_input(m->g, m->target, x), DC_OK);
            float *out[3] = {y1, y2, y0};
            const float stds[3] = {1.0f, 1.0f, 0.0f};
            for (int k = 0; k < 3; k++) {
                assert_int_equal(dc_graph_set_noise_std(m->g, m->noise, stds[k]), DC_OK);
                dc_graph_set_seed(m->g, 100 + (uint64_t)(k == 1));
                assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
                assert_int_equal(dc_graph_read(m->g, m->out, out[k]), DC_OK);
            }
            double diff = 0;
            for (size_t i = 0; i < B * isz; i++) diff += fabs(y1[i] - y2[i]);
            assert_true(diff > 0);
            /* std 0: the prior's mean, the same code for every image of the batch */
            assert_memory_equal(y0, y0 + isz, isz * sizeof(float));
            free(x), free(y1), free(y2), free(y0);
        }
        dc_trainer_free(t);
    }
    dc_backend_free(be);
    dc_dataset_free(all);
    dc_dataset_free(train);
    dc_dataset_free(val);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* The stored options go through JSON exactly, and the format the checkpoints of earlier
 * versions hold (written by hand, same keys) still reads. */
static void test_train_config_json(void **state) {
    (void)state;
    dc_error err = {0};
    dc_train_config a, b;
    dc_train_config_default(&a);
    snprintf(a.data, sizeof a.data, "odd \"name\"\\ with\ttab");
    a.epochs = 7, a.batch = 3, a.lr = 3.3e-4f, a.optim = DC_OPTIM_ADAMW;
    a.schedule = DC_SCHED_STEP, a.weight_decay = 0.05f, a.clip = 2.5f, a.val = 0.15f;
    a.augment = 1, a.seed = 18446744073709551557ull, a.save_every = 4, a.sample_every = 5;
    a.val_every = 6;
    char *json = dc_train_config_to_json(&a);
    assert_non_null(json);
    dc_train_config_default(&b);
    assert_int_equal(dc_train_config_from_json(json, &b, &err), DC_OK);
    free(json);
    assert_string_equal(a.data, b.data);
    assert_int_equal(b.epochs, 7);
    assert_int_equal(b.batch, 3);
    assert_true(b.lr == a.lr && b.weight_decay == a.weight_decay && b.clip == a.clip &&
                b.val == a.val);
    assert_int_equal(b.optim, DC_OPTIM_ADAMW);
    assert_int_equal(b.schedule, DC_SCHED_STEP);
    assert_int_equal(b.augment, 1);
    assert_int_equal(b.save_every, 4);
    assert_int_equal(b.sample_every, 5);
    assert_int_equal(b.val_every, 6);
    /* JSON numbers are doubles; the exact seed comes from the checkpoint's "seed" key */
    const char *old = "{\"data\":\"assets/guns\",\"epochs\":400,\"batch\":16,\"lr\":0.00100000005,"
                      "\"optim\":\"sgd\",\"schedule\":\"cosine\",\"weight_decay\":0,\"clip\":0,"
                      "\"val\":0.100000001,\"augment\":1,\"seed\":1,\"save_every\":50,"
                      "\"sample_every\":50}";
    dc_train_config_default(&b);
    assert_int_equal(dc_train_config_from_json(old, &b, &err), DC_OK);
    assert_string_equal(b.data, "assets/guns");
    assert_true(b.epochs == 400 && b.batch == 16 && b.lr == 1e-3f && b.val == 0.1f);
    assert_true(b.optim == DC_OPTIM_SGD && b.schedule == DC_SCHED_COSINE && b.seed == 1);
    assert_true(b.save_every == 50 && b.sample_every == 50 && b.augment == 1);
    /* runs made before augment_oversample augmented at the model's size */
    assert_int_equal(b.augment_oversample, 1);
    /* runs made before val_every validated every epoch */
    assert_int_equal(b.val_every, 1);
    /* before the split had its own seed, runs split by the seed */
    assert_true(b.split_seed == 1);
    dc_train_config_default(&b);
    b.split_seed = 99;
    const char *old_seed7 = "{\"data\":\"x\",\"val\":0.2,\"seed\":7}";
    assert_int_equal(dc_train_config_from_json(old_seed7, &b, &err), DC_OK);
    assert_true(b.seed == 7 && b.split_seed == 7);
    /* what this version writes for the same options: the old keys, the EMA decay (runs
     * before it had none) and the split seed */
    dc_train_config_from_json(old, &b, &err);
    json = dc_train_config_to_json(&b);
    const char *now = "{\"data\":\"assets/guns\",\"epochs\":400,\"batch\":16,\"lr\":0.00100000005,"
                      "\"optim\":\"sgd\",\"schedule\":\"cosine\",\"weight_decay\":0,\"clip\":0,"
                      "\"ema\":0,\"val\":0.100000001,\"augment\":1,\"augment_oversample\":1,"
                      "\"seed\":1,\"split_seed\":1,"
                      "\"save_every\":50,\"sample_every\":50,\"val_every\":1}";
    assert_string_equal(json, now);
    free(json);
    /* the split seed goes through JSON */
    dc_train_config_default(&a);
    a.seed = 5, a.split_seed = 12345, a.ema = 0.999f, a.augment_oversample = 2;
    json = dc_train_config_to_json(&a);
    dc_train_config_default(&b);
    assert_int_equal(dc_train_config_from_json(json, &b, &err), DC_OK);
    free(json);
    assert_true(b.seed == 5 && b.split_seed == 12345 && b.ema == 0.999f);
    assert_int_equal(b.augment_oversample, 2);
    assert_int_equal(dc_train_config_from_json("{\"optim\":\"rmsprop\"}", &b, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "rmsprop"));
    assert_int_equal(dc_train_config_from_json("{\"epochs\":", &b, &err), DC_ERR_FORMAT);
}

/* The held-out images of a run depend on the split seed only: --seed changes the
 * initialisation and the order, never which images are held out. */
static void test_split_has_its_own_seed(void **state) {
    (void)state;
    char *dir = tu_tmpdir("split");
    dc_error err = {0};
    for (int i = 0; i < 20; i++) {
        float img[64];
        for (int p = 0; p < 64; p++) img[p] = p == i ? 1.0f : -1.0f;
        char path[1200];
        snprintf(path, sizeof path, "%s/i%02d.png", dir, i);
        assert_int_equal(dc_image_write_png(path, img, 1, 8, 8, DC_RANGE_PM1, &err), DC_OK);
    }
    char held_out[3][64];
    const uint64_t seeds[3] = {1, 3, 3}, split_seeds[3] = {DC_TRAIN_SPLIT_SEED, DC_TRAIN_SPLIT_SEED, 8};
    for (int k = 0; k < 3; k++) {
        dc_train_config c;
        dc_train_config_default(&c);
        snprintf(c.data, sizeof c.data, "%s", dir);
        c.val = 0.25f, c.seed = seeds[k], c.split_seed = split_seeds[k];
        dc_dataset *train, *val;
        if (dc_train_load_data(&c, 8, 1, &train, &val, &err) != DC_OK) fail_msg("%s", err.msg);
        assert_int_equal(val->n, 5);
        held_out[k][0] = 0;
        for (int i = 0; i < val->n; i++) strcat(held_out[k], val->names[i]), strcat(held_out[k], " ");
        dc_dataset_free(train);
        dc_dataset_free(val);
    }
    assert_string_equal(held_out[0], held_out[1]);      /* another --seed: the same split */
    assert_string_not_equal(held_out[1], held_out[2]);  /* another split seed: another split */
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* augment_oversample: the trainer loads the run's data again at k x the size and augments
 * there. A batch filled with that copy as dc_augment_config.fine draws the same transforms
 * as at the size, with other pixels; the trainer's weights after an epoch differ from those
 * of oversample 1 (the setting reaches the batches) and repeat exactly; a training set that
 * is not the data's split is refused by name. */
static void test_trainer_augments_at_oversampled_size(void **state) {
    (void)state;
    char *dir = tu_tmpdir("oversample"), *out = tu_tmpdir("oversample_run");
    dc_error err = {0};
    for (int i = 0; i < 12; i++) {
        float img[16 * 16];
        for (int p = 0; p < 256; p++) img[p] = ((p / 16 + i) % 7 < 3 && (p % 16) > i % 5) ? -1.0f : 1.0f;
        char path[1200];
        snprintf(path, sizeof path, "%s/g%02d.png", dir, i);
        assert_int_equal(dc_image_write_png(path, img, 1, 16, 16, DC_RANGE_PM1, &err), DC_OK);
    }
    dc_train_config c;
    dc_train_config_default(&c);
    snprintf(c.data, sizeof c.data, "%s", dir);
    snprintf(c.out, sizeof c.out, "%s", out);
    c.val = 0.25f, c.batch = 4, c.epochs = 1, c.augment = 1, c.augment_oversample = 2;
    dc_dataset *train, *val, *fine, *fval;
    if (dc_train_load_data(&c, 8, 1, &train, &val, &err) != DC_OK ||
        dc_train_load_data(&c, 16, 1, &fine, &fval, &err) != DC_OK)
        fail_msg("%s", err.msg);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 8, &err), DC_OK);
    spec.base = 4, spec.blocks = 1, spec.latent = 4;
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_trainer *t;
    if (dc_trainer_create(be, &spec, train, val, &c, NULL, &t, &err) != DC_OK) fail_msg("%s", err.msg);
    /* the trainer's first batch, rebuilt by hand: items perm[0..4) of epoch 1 augmented at
     * 16x16 with the trainer's config */
    dc_model *m = dc_trainer_model(t);
    dc_batch mine;
    assert_int_equal(dc_batch_alloc(m, &mine, &err), DC_OK);
    int32_t idx[4] = {0, 1, 2, 3};
    dc_augment_config aug;
    dc_augment_config_identity(&aug);
    aug.hflip_prob = 0.5f, aug.max_translate = 0.5f, aug.scale_min = 0.9f, aug.scale_max = 1.1f;
    aug.max_rotate_deg = 8.0f, aug.fine = fine;
    assert_int_equal(dc_model_fill_batch(m, train, idx, 4, &aug, 7, &mine, &err), DC_OK);
    dc_batch coarse;
    assert_int_equal(dc_batch_alloc(m, &coarse, &err), DC_OK);
    aug.fine = NULL;
    assert_int_equal(dc_model_fill_batch(m, train, idx, 4, &aug, 7, &coarse, &err), DC_OK);
    /* the same transforms, other pixels */
    assert_memory_equal(mine.aug, coarse.aug, sizeof(float) * 4 * DC_AUGMENT_PARAMS);
    assert_memory_not_equal(mine.target, coarse.target, sizeof(float) * mine.image_numel * 4);
    dc_batch_free(&mine), dc_batch_free(&coarse);
    dc_trainer_free(t);
    float *w[3];
    const int ks[3] = {2, 1, 2};
    size_t nw = 0;
    for (int r = 0; r < 3; r++) {
        tu_system("rm -rf '%s'", out);
        c.augment_oversample = ks[r];
        if (dc_trainer_create(be, &spec, train, val, &c, NULL, &t, &err) != DC_OK ||
            dc_trainer_run(t, &err) != DC_OK)
            fail_msg("oversample %d: %s", ks[r], err.msg);
        dc_params *ps = dc_trainer_model(t)->params;
        const int pi = 0; /* the first convolution's kernel */
        nw = dc_tensor_numel(&dc_params_get(ps, pi)->value);
        w[r] = malloc(sizeof(float) * nw);
        assert_int_equal(dc_params_read(ps, pi, w[r]), DC_OK);
        dc_trainer_free(t);
    }
    assert_memory_not_equal(w[0], w[1], sizeof(float) * nw);
    assert_memory_equal(w[0], w[2], sizeof(float) * nw);
    free(w[0]), free(w[1]), free(w[2]);
    c.augment_oversample = 2;
    /* a training set that is not the config's data split */
    dc_dataset *other;
    assert_int_equal(dc_dataset_create(5, 1, 8, 8, 0, &other, &err), DC_OK);
    tu_system("rm -rf '%s'", out);
    assert_int_equal(dc_trainer_create(be, &spec, other, val, &c, NULL, &t, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "for augmentation"));
    assert_null(t);
    dc_dataset_free(other), dc_dataset_free(train), dc_dataset_free(val);
    dc_dataset_free(fine), dc_dataset_free(fval);
    dc_backend_free(be);
    tu_system("rm -rf '%s' '%s'", dir, out);
    free(dir), free(out);
}

/* glo's new samples must not retrace its training: the trainer initialises the latents
 * from the run's seed, and sampling with that same seed (generate's default) drew the
 * same normals, so sample i decoded next to training image i. */
static void test_glo_sampling_independent_of_training(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *all;
    const int N = 40, L = 6;
    assert_int_equal(dc_dataset_create(N, 1, 16, 16, 0, &all, &err), DC_OK);
    for (int i = 0; i < N * 256; i++) all->images[i] = (i % 7) / 3.0f - 1.0f;
    dc_dataset *val;
    assert_int_equal(dc_dataset_create(0, 1, 16, 16, 0, &val, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "glo", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = L;
    dc_train_config cfg;
    dc_train_config_default(&cfg);
    cfg.batch = 8, cfg.seed = 1;
    char *dir = tu_tmpdir("glo_sampling");
    snprintf(cfg.out, sizeof cfg.out, "%s", dir);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_trainer *t;
    assert_int_equal(dc_trainer_create(be, &spec, all, val, &cfg, NULL, &t, &err), DC_OK);
    dc_model *m = dc_trainer_model(t);
    int pi = dc_params_find(m->params, "latents.weight");
    assert_true(pi >= 0);
    float *tab = malloc(sizeof(float) * N * L), *z = malloc(sizeof(float) * N * L);
    assert_int_equal(dc_params_read(m->params, pi, tab), DC_OK);
    assert_int_equal(dc_model_sample_latents(m, N, 1.0f, cfg.seed, z, &err), DC_OK);
    /* how many samples have "their" training latent (same index) as the nearest one;
     * independent draws make that a 1-in-N event per sample */
    int own = 0;
    for (int i = 0; i < N; i++) {
        int best = -1;
        double best_d = INFINITY;
        for (int r = 0; r < N; r++) {
            double d = 0;
            for (int k = 0; k < L; k++) d += (z[i * L + k] - tab[r * L + k]) * (z[i * L + k] - tab[r * L + k]);
            if (d < best_d) best_d = d, best = r;
        }
        own += best == i;
    }
    assert_true(own <= 4);
    free(tab);
    free(z);
    dc_trainer_free(t);
    dc_backend_free(be);
    dc_dataset_free(all);
    dc_dataset_free(val);
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

/* GLO's projection fits a latent to an image the decoder can make: decode a known latent,
 * project the image from the mean latent, and the error must fall to a small part of the
 * error at the start (steps 0), with the fitted latent decoding that image. */
static void test_glo_projection_fits_latents(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "glo", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 4, spec.glo_count = 5;
    dc_model *m, *dec;
    assert_int_equal(dc_model_create(be, &spec, 3, &m, &err), DC_OK);
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    assert_int_equal(dc_params_init(m->params, &rng), DC_OK);
    assert_int_equal(dc_model_create_shared(m, 3, 1, &dec, &err), DC_OK);
    /* latents away from the (near-zero) mean of the learned ones */
    float z_true[12] = {1.5f, -1.0f, 0.5f, 2.0f, -2.0f, 0.8f, -0.6f, 1.2f, 0.3f, -1.5f, 1.8f, -0.9f};
    float images[3 * 256];
    dc_graph_set_train(dec->g, 0);
    assert_int_equal(dc_graph_set_input(dec->g, dec->z_in, z_true), DC_OK);
    assert_int_equal(dc_graph_forward(dec->g, -1), DC_OK);
    assert_int_equal(dc_graph_read(dec->g, dec->out, images), DC_OK);
    double start, fitted;
    float z[12];
    assert_int_equal(dc_model_project_latents(m, images, 3, 0, 0.05f, NULL, &start, &err), DC_OK);
    if (dc_model_project_latents(m, images, 3, 300, 0.05f, z, &fitted, &err) != DC_OK)
        fail_msg("%s", err.msg);
    assert_true(start > 1e-4);
    assert_true(fitted < 0.05 * start);
    /* the reported loss is the error of the returned latents, computed here independently */
    float again[3 * 256];
    assert_int_equal(dc_graph_set_input(dec->g, dec->z_in, z), DC_OK);
    assert_int_equal(dc_graph_forward(dec->g, -1), DC_OK);
    assert_int_equal(dc_graph_read(dec->g, dec->out, again), DC_OK);
    double e = 0;
    for (int i = 0; i < 3 * 256; i++) e += ((double)again[i] - images[i]) * ((double)again[i] - images[i]);
    assert_float_equal(e / (3 * 256), fitted, 1e-6);
    /* not for kinds without learned latents */
    dc_model_spec vs;
    dc_model *vae;
    assert_int_equal(dc_model_spec_default(&vs, "vae", 1, 16, &err), DC_OK);
    vs.base = 4, vs.blocks = 2, vs.latent = 4;
    assert_int_equal(dc_model_create(be, &vs, 1, &vae, &err), DC_OK);
    assert_int_equal(dc_model_project_latents(vae, images, 1, 5, 0.05f, NULL, &fitted, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "vae"));
    dc_model_free(vae);
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
}

/* Every weight plus uniform noise in [-amp, amp] (a fresh model's last layer starts at zero,
 * so its completions would all be the zero fill). */
static void perturb_params(dc_params *p, dc_rng *rng, float amp) {
    for (int i = 0; i < dc_params_count(p); i++) {
        const size_t n = dc_params_get(p, i)->numel;
        float *w = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
        assert_true(w && d);
        assert_int_equal(dc_params_read(p, i, w), DC_OK);
        tu_fill_uniform(d, n, rng, -amp, amp);
        for (size_t k = 0; k < n; k++) w[k] += d[k];
        assert_int_equal(dc_params_write(p, i, w), DC_OK);
        free(w), free(d);
    }
}

/* Self-feedback builds each training input as `deconv complete --passes` feeds its next
 * pass: checked against a naive reimplementation that runs every item alone through the
 * graph (eval mode, code noise std 0) and keeps the visible pixels by explicit loops. Items
 * are fed back 0 to 3 times, under four different masks. With the hole input, each item's
 * pass also reads its own mask there (and the mask changes the output). */
static void feedback_inputs_match_passes(int hole_input) {
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 16;
    spec.hole_input = hole_input;
    enum { B = 4, HW = 256 };
    dc_model *m;
    if (dc_model_create(be, &spec, B, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    static float image[B * HW], masks[B * HW], x[B * HW], got[B * HW], scratch[B * HW];
    static float cur[HW], batch_in[B * HW], batch_out[B * HW], holes[B * HW];
    dc_rng rng;
    dc_rng_seed(&rng, 11);
    /* weights whose completions are far from the zero fill (a fresh model's last layer
     * starts at zero): the initial ones plus uniform noise */
    perturb_params(m->params, &rng, 0.1f);
    tu_fill_uniform(image, B * HW, &rng, -1.0f, 1.0f);
    const dc_mask_kind kinds[B] = {DC_MASK_BOTTOM, DC_MASK_RANDOM, DC_MASK_FULL, DC_MASK_BOX};
    for (int i = 0; i < B; i++) {
        dc_mask_make(kinds[i], 16, 16, &rng, masks + i * HW);
        dc_mask_apply(image + i * HW, masks + i * HW, 1, 16, 16, 0.0f, 1.0f, 1, x + i * HW, NULL);
    }
    memcpy(got, x, sizeof x);
    const int passes[B] = {2, 0, 3, 1};
    assert_int_equal(dc_complete_feedback_inputs(m, got, masks, passes, 0.0f, 5, scratch, &err), DC_OK);
    /* the spec's code noise is back after the passes at std 0: two seeds give different
     * completions of the masked images */
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    dc_graph_set_seed(m->g, 1);
    assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->out, batch_in), DC_OK);
    dc_graph_set_seed(m->g, 2);
    assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->out, batch_out), DC_OK);
    assert_true(tu_max_abs_err(batch_in, batch_out, B * HW) > 1e-3);
    if (hole_input) {
        /* the hole is read: the same x under other masks completes differently */
        assert_true(m->hole >= 0);
        dc_graph_set_seed(m->g, 1);
        assert_int_equal(dc_model_set_hole(m, NULL, 0, &err), DC_OK);
        assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
        assert_int_equal(dc_graph_read(m->g, m->out, batch_out), DC_OK);
        /* same seed and x: the forward is deterministic, so any difference is the hole's
         * (small here: the perturbed last layer keeps the outputs near 0.07) */
        assert_true(tu_max_abs_err(batch_in, batch_out, B * HW) > 1e-5);
    } else {
        assert_int_equal(m->hole, -1);
    }
    for (int i = 0; i < B; i++) {
        memcpy(cur, x + i * HW, sizeof cur);
        for (int p = 0; p < passes[i]; p++) {
            for (int j = 0; j < B; j++) memcpy(batch_in + j * HW, cur, sizeof cur);
            if (hole_input) {
                for (int j = 0; j < B; j++) memcpy(holes + j * HW, masks + i * HW, sizeof cur);
                assert_int_equal(dc_graph_set_input(m->g, m->hole, holes), DC_OK);
            }
            dc_graph_set_train(m->g, 0);
            assert_int_equal(dc_graph_set_noise_std(m->g, m->noise, 0.0f), DC_OK);
            assert_int_equal(dc_graph_set_input(m->g, m->x, batch_in), DC_OK);
            assert_int_equal(dc_graph_forward(m->g, m->out), DC_OK);
            assert_int_equal(dc_graph_read(m->g, m->out, batch_out), DC_OK);
            for (int q = 0; q < HW; q++)
                cur[q] = masks[i * HW + q] > 0.5f ? batch_out[q] : image[i * HW + q];
        }
        if (passes[i] == 0) assert_memory_equal(got + i * HW, x + i * HW, sizeof cur);
        const double e = tu_max_abs_err(got + i * HW, cur, HW);
        if (e > 1e-5) fail_msg("item %d (%d passes): max error %g", i, passes[i], e);
        /* the visible pixels are the image's in every pass */
        for (int q = 0; q < HW; q++)
            if (masks[i * HW + q] < 0.5f) assert_true(got[i * HW + q] == image[i * HW + q]);
    }
    /* a fed-back input differs from the masked one where hidden */
    assert_true(tu_max_abs_err(got, x, (size_t)B * HW) > 0.01);
    dc_model_free(m);
    dc_backend_free(be);
}
/* The unrolled training graph (spec.unroll = 3) computes exactly what three inference passes
 * compute (`deconv complete --passes 3`: dc_complete_pass on a separate single-pass graph,
 * the completion fed back by dc_complete_feed_back), with the parameters of one pass, and
 * its loss is the mean of the three passes' weighted MSEs, each recomputed here by loops.
 * Code noise std 0, so training mode and inference draw nothing. */
static void unrolled_case(int hole_input) {
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 16, spec.noise = 0.0f, spec.unroll = 3;
    spec.hole_input = hole_input; /* without it, the mask still feeds the passes back */
    enum { B = 4, HW = 256, K = 3 };
    dc_model *mt, *mi, *one;
    if (dc_model_create_training(be, &spec, B, &mt, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_int_equal(dc_model_create_shared(mt, B, 0, &mi, &err), DC_OK);
    spec.unroll = 1;
    assert_int_equal(dc_model_create(be, &spec, B, &one, &err), DC_OK);
    /* the unrolled passes add nodes, no parameters */
    assert_int_equal(dc_params_count(mt->params), dc_params_count(one->params));
    assert_true(dc_graph_node_count(mt->g) > 2 * dc_graph_node_count(mi->g));
    assert_int_equal(dc_graph_find(mi->g, "pass2/out"), -1); /* inference graphs: one pass */
    assert_true(mt->hole >= 0);
    assert_int_equal(mi->hole >= 0, hole_input);
    dc_rng rng;
    dc_rng_seed(&rng, 21);
    perturb_params(mt->params, &rng, 0.2f);
    static float image[B * HW], masks[B * HW], x[B * HW], wt[B * HW], cur[B * HW], ref[B * HW],
        got[B * HW];
    tu_fill_uniform(image, B * HW, &rng, -1.0f, 1.0f);
    const dc_mask_kind kinds[B] = {DC_MASK_BOTTOM, DC_MASK_RANDOM, DC_MASK_FULL, DC_MASK_BOX};
    for (int i = 0; i < B; i++) {
        dc_mask_make(kinds[i], 16, 16, &rng, masks + i * HW);
        dc_mask_apply(image + i * HW, masks + i * HW, 1, 16, 16, 0.0f, 0.1f, 0, x + i * HW,
                      wt + i * HW);
    }
    assert_int_equal(dc_graph_set_input(mt->g, mt->x, x), DC_OK);
    assert_int_equal(dc_graph_set_input(mt->g, mt->target, image), DC_OK);
    assert_int_equal(dc_graph_set_input(mt->g, mt->weight, wt), DC_OK);
    assert_int_equal(dc_model_set_hole(mt, masks, 1, &err), DC_OK);
    dc_graph_set_train(mt->g, 1);
    assert_int_equal(dc_graph_forward(mt->g, -1), DC_OK);
    assert_int_equal(dc_model_set_hole(mi, masks, 1, &err), DC_OK);
    memcpy(cur, x, sizeof cur);
    double mean = 0;
    for (int p = 1; p <= K; p++) {
        char out_name[32], loss_name[32];
        snprintf(out_name, sizeof out_name, p == 1 ? "out" : "pass%d/out", p);
        snprintf(loss_name, sizeof loss_name, p == 1 ? "recon_loss" : "pass%d/recon_loss", p);
        const int out = dc_graph_find(mt->g, out_name), loss = dc_graph_find(mt->g, loss_name);
        assert_true(out >= 0 && loss >= 0);
        assert_int_equal(dc_complete_pass(mi, cur, 0.0f, 9, ref, &err), DC_OK);
        assert_int_equal(dc_graph_read(mt->g, out, got), DC_OK);
        const double e = tu_max_abs_err(got, ref, (size_t)B * HW);
        if (e > 1e-5) fail_msg("pass %d: unrolled output differs from inference by %g", p, e);
        double mse = 0;
        for (int i = 0; i < B * HW; i++) mse += (double)wt[i] * (ref[i] - image[i]) * (ref[i] - image[i]);
        mse /= B * HW;
        float l;
        assert_int_equal(dc_graph_read(mt->g, loss, &l), DC_OK);
        if (fabs(l - mse) > 1e-5 * fmax(1.0, mse)) fail_msg("pass %d: loss %g, by loops %g", p, (double)l, mse);
        mean += mse / K;
        for (int i = 0; i < B; i++)
            dc_complete_feed_back(cur + i * HW, ref + i * HW, masks + i * HW, 1, HW, cur + i * HW);
        if (p == 1) /* the passes see different inputs, so they compute different outputs */
            assert_true(tu_max_abs_err(cur, x, (size_t)B * HW) > 1e-3);
    }
    float total;
    assert_int_equal(dc_graph_read(mt->g, mt->loss, &total), DC_OK);
    if (fabs(total - mean) > 1e-5 * fmax(1.0, mean)) fail_msg("loss %g, mean of the passes %g", (double)total, mean);
    dc_model_free(one);
    dc_model_free(mi);
    dc_model_free(mt);
    dc_backend_free(be);
}

/* Training's self-feedback on the device (dc_complete_feedback_device: nothing read back)
 * builds exactly the inputs of the host path (dc_complete_feedback_inputs, itself checked
 * against per-item loops above), bit for bit, on the training graph: with unrolled passes
 * and without. The training graph of a model with feedback keeps x's buffer; one without
 * feedback folds x into the first concatenation, and the device path refuses it. */
static void feedback_device_case(int unroll) {
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 16, spec.unroll = unroll;
    spec.skips = unroll > 1;
    assert_true(spec.feedback > 0 && spec.hole_input);
    enum { B = 4, HW = 256 };
    dc_model *m;
    if (dc_model_create_training(be, &spec, B, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_non_null(dc_graph_value(m->g, m->x).buf);
    static float image[B * HW], masks[B * HW], x[B * HW], host[B * HW], dev[B * HW],
        scratch[B * HW];
    dc_rng rng;
    dc_rng_seed(&rng, 17);
    perturb_params(m->params, &rng, 0.1f);
    tu_fill_uniform(image, B * HW, &rng, -1.0f, 1.0f);
    const dc_mask_kind kinds[B] = {DC_MASK_BOX, DC_MASK_BOTTOM, DC_MASK_RANDOM, DC_MASK_FULL};
    for (int i = 0; i < B; i++) {
        dc_mask_make(kinds[i], 16, 16, &rng, masks + i * HW);
        dc_mask_apply(image + i * HW, masks + i * HW, 1, 16, 16, 0.0f, 1.0f, 1, x + i * HW, NULL);
    }
    const int passes[B] = {3, 1, 0, 2};
    memcpy(host, x, sizeof x);
    assert_int_equal(dc_complete_feedback_inputs(m, host, masks, passes, 0.0f, 9, scratch, &err), DC_OK);
    assert_true(tu_max_abs_err(host, x, B * HW) > 1e-3); /* the passes changed something */
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    assert_int_equal(dc_model_set_hole(m, masks, 1, &err), DC_OK);
    assert_int_equal(dc_complete_feedback_device(m, masks, passes, 9, &err), DC_OK);
    assert_int_equal(dc_graph_read(m->g, m->x, dev), DC_OK);
    for (int k = 0; k < B * HW; k++)
        if (memcmp(&dev[k], &host[k], sizeof(float)))
            fail_msg("unroll %d: element %d: device %g, host %g", unroll, k, (double)dev[k],
                     (double)host[k]);
    dc_model_free(m);
    /* no feedback: x folded (no buffer of its own), and the device path says why it cannot */
    spec.feedback = 0.0f, spec.unroll = 1, spec.skips = 0;
    if (dc_model_create_training(be, &spec, B, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_null(dc_graph_value(m->g, m->x).buf);
    assert_int_equal(dc_complete_self_feedback(m, masks, 9, &err), DC_OK); /* p = 0: nothing */
    assert_int_equal(dc_complete_feedback_device(m, masks, passes, 9, &err), DC_ERR_STATE);
    assert_non_null(strstr(err.msg, "no buffer of its own"));
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_feedback_on_device(void **state) {
    (void)state;
    feedback_device_case(1);
    feedback_device_case(2);
}

static void test_unrolled_passes(void **state) {
    (void)state;
    unrolled_case(1);
    unrolled_case(0);
}

/* U-Net skips: the decoder-only graph (dreams, interpolation, the training samples) reads
 * its skips from the encoder of the blank canvas, so decoding the blank canvas's code gives
 * exactly the full graph's completion of the blank canvas; for an image with visible pixels
 * the skips carry them past the code (decoding its code alone gives another image). */
static void test_skips_decoder_only(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4, spec.blocks = 2, spec.latent = 16, spec.noise = 0.0f, spec.skips = 1;
    enum { B = 3, HW = 256 };
    dc_model *m, *dec;
    if (dc_model_create(be, &spec, B, &m, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_true(dc_graph_find(m->g, "dec1_skip") >= 0);
    dc_rng rng;
    dc_rng_seed(&rng, 31);
    perturb_params(m->params, &rng, 0.2f);
    assert_int_equal(dc_model_create_shared(m, B, 1, &dec, &err), DC_OK);
    static float x[B * HW], full[B * HW], z[B * 16], got[B * HW], masks[B * HW];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) { /* the blank canvas */
            memset(x, 0, sizeof x);
            assert_int_equal(dc_model_set_hole(m, NULL, 0, &err), DC_OK);
        } else { /* the top half visible */
            tu_fill_uniform(x, B * HW, &rng, -1.0f, 1.0f);
            for (int i = 0; i < B; i++) dc_mask_make(DC_MASK_BOTTOM, 16, 16, NULL, masks + i * HW);
            for (int i = 0; i < B * HW; i++)
                if (masks[i] > 0.5f) x[i] = 0.0f;
            assert_int_equal(dc_model_set_hole(m, masks, 1, &err), DC_OK);
        }
        assert_int_equal(dc_complete_pass(m, x, 0.0f, 3, full, &err), DC_OK);
        assert_int_equal(dc_graph_read(m->g, m->latent, z), DC_OK);
        assert_int_equal(dc_graph_set_input(dec->g, dec->z_in, z), DC_OK);
        dc_graph_set_train(dec->g, 0);
        assert_int_equal(dc_graph_forward(dec->g, dec->out), DC_OK);
        assert_int_equal(dc_graph_read(dec->g, dec->out, got), DC_OK);
        const double e = tu_max_abs_err(got, full, (size_t)B * HW);
        if (pass == 0 && e > 1e-5) fail_msg("blank canvas: decoder-only graph differs by %g", e);
        if (pass == 1 && e < 1e-3) fail_msg("visible pixels: the skips changed nothing (%g)", e);
    }
    dc_model_free(dec);
    dc_model_free(m);
    dc_backend_free(be);
}

static void test_feedback_inputs_match_passes(void **state) { (void)state, feedback_inputs_match_passes(0); }
static void test_feedback_inputs_hole(void **state) { (void)state, feedback_inputs_match_passes(1); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_falls_and_is_reproducible),
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_ema_weights),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_prng),
        cmocka_unit_test(test_trainer_resume_is_bit_identical),
        cmocka_unit_test(test_train_config_json),
        cmocka_unit_test(test_val_every),
        cmocka_unit_test(test_split_has_its_own_seed),
        cmocka_unit_test(test_trainer_augments_at_oversampled_size),
        cmocka_unit_test(test_glo_sampling_independent_of_training),
        cmocka_unit_test(test_glo_projection_fits_latents),
        cmocka_unit_test(test_mask_mix),
        cmocka_unit_test(test_complete_options),
        cmocka_unit_test(test_feedback_inputs_match_passes),
        cmocka_unit_test(test_feedback_inputs_hole),
        cmocka_unit_test(test_unrolled_passes),
        cmocka_unit_test(test_feedback_on_device),
        cmocka_unit_test(test_skips_decoder_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
