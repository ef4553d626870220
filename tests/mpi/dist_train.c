/* Data-parallel training checks, run under mpirun by tests/mpi/run.sh.
 *
 *   dist_train match KIND OPTIM DEVICE WORK
 *                                       every rank trains KIND data-parallel; the ranks must
 *                                       hold bit-identical weights, and rank 0 trains the
 *                                       same global batches in one process: the weights
 *                                       must agree within the README's tolerance
 *   dist_train lazy-overlap WORK        the all-reduce overlapped with backward and lazily
 *                                       loaded data change no bit of a 2-rank run; each
 *                                       rank decodes only its share of the images
 *   dist_train lazy-folder WORK         an image folder loaded lazily: 2 ranks match one
 *                                       process on the whole load, each decodes its share,
 *                                       and the fingerprint from the shares is one process's
 *   dist_train kill WORK                rank 1 dies (SIGKILL) at step KILL_STEP; mpirun must
 *                                       end the job
 *   dist_train check WORK               (one process) the killed run's checkpoint loads,
 *                                       is finite and sits at an epoch the run reached
 *   dist_train resume WORK              (under mpirun) trains 2 epochs data-parallel, then
 *   dist_train resume1 WORK             (one process) resumes to 3 epochs and compares with a
 *                                       straight 3-epoch one-process run
 *
 * Oracle: the same library's one-process training, whose own correctness the rest of the
 * suite checks against naive loops and finite differences. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/data.h"
#include "deconv/deconv.h"
#include "deconv/dist.h"
#include "deconv/io.h"
#include "deconv/model.h"
#include "deconv/train.h"

/* The tolerance README.md states: every weight of the N-rank run within 1 % of the
 * distance the weights moved in the one-process run (the largest |final - initial|). A
 * gradient averaged with a wrong scale misses it by far under SGD; Adam, being blind to
 * the scale, shows the summation order's rounding, which its normalisation magnifies for
 * near-zero gradients. */
#define RELATIVE_TOLERANCE 0.01
#define KILL_STEP 7

static int fail(const char *what, const dc_error *err) {
    fprintf(stderr, "dist_train: %s: %s\n", what, err ? err->msg : "");
    return 1;
}

static float *read_weights(dc_model *m, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < dc_params_count(m->params); i++)
        total += dc_params_get(m->params, i)->numel;
    float *w = malloc(total * sizeof(float)), *at = w;
    for (int i = 0; w && i < dc_params_count(m->params); i++) {
        dc_params_read(m->params, i, at);
        at += dc_params_get(m->params, i)->numel;
    }
    *count = total;
    return w;
}

/* Largest |w - init| over the weights. */
static double moved(dc_model *m, const float *init) {
    size_t n;
    float *w = read_weights(m, &n);
    double worst = w ? 0 : INFINITY;
    for (size_t k = 0; w && k < n; k++)
        if (fabs((double)w[k] - init[k]) > worst) worst = fabs((double)w[k] - init[k]);
    free(w);
    return worst;
}

/* Largest |a - b| over the weights; the name of the parameter where it is. */
static double max_diff(dc_model *a, dc_model *b, const char **where) {
    double worst = 0;
    *where = "";
    for (int i = 0; i < dc_params_count(a->params); i++) {
        const dc_param *q = dc_params_get(a->params, i);
        float *x = malloc(q->numel * sizeof(float)), *y = malloc(q->numel * sizeof(float));
        if (!x || !y || dc_params_read(a->params, i, x) || dc_params_read(b->params, i, y)) {
            free(x), free(y);
            return INFINITY;
        }
        for (size_t k = 0; k < q->numel; k++) {
            const double d = fabs((double)x[k] - (double)y[k]);
            if (!(d <= worst)) worst = d, *where = q->name;
        }
        free(x), free(y);
    }
    return worst;
}

typedef struct preset {
    dc_model_spec spec;
    dc_train_config cfg;
} preset;

/* Small presets without random draws inside the graph (those are per rank).
 * "classifier-syncbn": the classifier with batch norm, synchronised over the ranks. */
static int make_preset(const char *kind, const char *optim, const char *work, const char *tag,
                       preset *p, dc_error *err) {
    const char *src = getenv("DECONV_SOURCE_DIR");
    dc_train_config_default(&p->cfg);
    const int syncbn = !strcmp(kind, "classifier-syncbn");
    const int classifier = syncbn || !strcmp(kind, "classifier");
    const int size = classifier ? 28 : 16;
    if (dc_model_spec_default(&p->spec, classifier ? "classifier" : kind, 1, size, err) != DC_OK)
        return 1;
    p->spec.base = 4;
    p->spec.blocks = 2;
    if (!classifier) p->spec.latent = 8;
    if (!strcmp(kind, "complete")) {
        p->spec.noise = 0; /* the code noise is drawn per rank */
        p->spec.feedback = 0;
        p->spec.mask = DC_MASK_RANDOM; /* per-slot draws */
    }
    if (classifier) {
        p->spec.batchnorm = syncbn; /* per-rank statistics differ from the whole batch's */
        p->spec.dropout = 0;
        p->spec.classes = 10;
        snprintf(p->cfg.data, sizeof p->cfg.data, "fashion-mnist:test");
        p->cfg.val = 0.9f; /* 1000 training images are plenty for a few steps */
    } else {
        snprintf(p->cfg.data, sizeof p->cfg.data, "%s/assets/guns", src ? src : ".");
        p->cfg.augment = 1; /* per-slot draws */
    }
    p->cfg.epochs = 2;
    p->cfg.batch = 8;
    if (dc_optim_kind_parse(optim, &p->cfg.optim, err) != DC_OK) return 1;
    if (p->cfg.optim == DC_OPTIM_SGD) p->cfg.lr = 0.05f; /* weights that move visibly */
    p->cfg.save_every = 1;
    snprintf(p->cfg.out, sizeof p->cfg.out, "%s/%s_%s_%s", work, kind, optim, tag);
    return 0;
}

static int stop_after(void *user) {
    int *left = user;
    return --*left <= 0;
}

/* Trains p from scratch (classifier: 6 steps, the rest: all epochs); init (NULL: not
 * wanted) gets the initial weights. */
static dc_status train(dc_backend *be, const preset *p, const dc_dataset *tr, const dc_dataset *va,
                       dc_trainer **out, float **init, dc_error *err) {
    int left = 6;
    dc_train_callbacks cb = {0};
    cb.user = &left;
    if (p->spec.kind == DC_MODEL_CLASSIFIER) cb.should_stop = stop_after;
    dc_status s = dc_trainer_create(be, &p->spec, tr, va, &p->cfg, &cb, out, err);
    if (s != DC_OK) return s;
    size_t n;
    if (init && !(*init = read_weights(dc_trainer_model(*out), &n)))
        return dc_set_error(err, DC_ERR_OOM, "initial weights");
    s = dc_trainer_run(*out, err);
    return s == DC_ERR_INTERRUPTED ? DC_OK : s;
}

/* Equal on every rank: two halves of an FNV-1a hash of the weights' bytes, exchanged as
 * floats that hold them exactly. */
static int ranks_identical(dc_dist *d, dc_model *m, dc_error *err) {
    size_t n;
    float *w = read_weights(m, &n);
    if (!w) return 0;
    uint32_t h = 2166136261u;
    const unsigned char *b = (const unsigned char *)w;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 16777619u;
    free(w);
    float mine[2] = {(float)(h >> 16), (float)(h & 0xffff)}, mean[2] = {mine[0], mine[1]};
    if (dc_dist_mean(d, mean, 2, err) != DC_OK) return 0;
    return !dc_dist_any(d, mean[0] != mine[0] || mean[1] != mine[1]);
}

static int match(const char *kind, const char *optim, const char *device, const char *work) {
    dc_error err = {0};
    dc_dist *d = NULL;
    dc_dist_options opt = {0};
    opt.sync_batchnorm = !strcmp(kind, "classifier-syncbn");
    if (dc_dist_create(&opt, &d, &err) != DC_OK) return fail("dist", &err);
    const int rank = dc_dist_rank(d);
    preset p;
    if (make_preset(kind, optim, work, "ranks", &p, &err)) return fail("preset", &err);
    p.cfg.dist = d;
    dc_dataset *tr = NULL, *va = NULL;
    dc_backend *be = NULL;
    dc_trainer *t = NULL, *one = NULL;
    float *init = NULL;
    int rc = 1;
    if (dc_train_load_data(&p.cfg, p.spec.size, p.spec.channels, &tr, &va, &err) != DC_OK) {
        fail("data", &err);
        goto out;
    }
    if (dc_backend_create_from_spec(device, 0, &be, &err) != DC_OK) {
        fail(device, &err);
        goto out;
    }
    dc_backend_set_threads(be, 1);
    if (train(be, &p, tr, va, &t, NULL, &err) != DC_OK) {
        fail("data-parallel run", &err);
        goto out;
    }
    if (!ranks_identical(d, dc_trainer_model(t), &err)) {
        fprintf(stderr, "dist_train: rank %d: the ranks' weights differ\n", rank);
        goto out;
    }
    rc = 0;
    if (rank == 0) {
        preset q;
        make_preset(kind, optim, work, "one", &q, &err);
        if (train(be, &q, tr, va, &one, &init, &err) != DC_OK) {
            rc = fail("one-process run", &err);
            goto out;
        }
        const char *where;
        const double diff = max_diff(dc_trainer_model(t), dc_trainer_model(one), &where);
        const double move = moved(dc_trainer_model(one), init);
        long step;
        dc_trainer_position(t, NULL, NULL, &step);
        printf("dist_train: %s, %s on %s, %d ranks, %ld steps: ranks bit-identical; largest "
               "difference from one process %.3g (in %s) = %.2g %% of the largest move %.3g "
               "(tolerance %.0f %%)\n",
               kind, optim, device, dc_dist_size(d), step, diff, where, 100 * diff / move, move,
               100 * RELATIVE_TOLERANCE);
        if (!(diff <= RELATIVE_TOLERANCE * move)) rc = 1;
    }
out:
    free(init);
    dc_trainer_free(t);
    dc_trainer_free(one);
    dc_backend_free(be);
    dc_dataset_free(tr);
    dc_dataset_free(va);
    if (rc) dc_dist_abort(d, rc, "match failed");
    dc_dist_free(d);
    return rc;
}

/* Largest |a - b| over the weights of two trainers' models. */
static double trainers_diff(dc_trainer *a, dc_trainer *b) {
    const char *where;
    return max_diff(dc_trainer_model(a), dc_trainer_model(b), &where);
}

/* The classifier (augmented: the fill's exchange) trained three times on 2 ranks: eager
 * data with the all-reduce after backward, eager data with it overlapped, lazily loaded
 * data overlapped. Neither the overlap nor the lazy loading may change a bit of the
 * weights; the overlapped runs must have started buckets inside backward, and each rank
 * of the lazy run must hold only its share of the images. */
static int lazy_overlap(const char *work) {
    dc_error err = {0};
    dc_dist *serial = NULL, *overlap = NULL;
    dc_dist_options so = {0}, oo = {0};
    so.bucket_bytes = oo.bucket_bytes = 4096; /* several buckets in this small model */
    so.serial_exchange = 1;
    if (dc_dist_create(&so, &serial, &err) != DC_OK || dc_dist_create(&oo, &overlap, &err))
        return fail("dist", &err);
    const int rank = dc_dist_rank(serial), ranks = dc_dist_size(serial);
    preset p[3];
    const char *tags[3] = {"serial", "overlap", "lazy"};
    dc_dataset *tr = NULL, *va = NULL, *ltr = NULL, *lva = NULL;
    dc_backend *be = NULL;
    dc_trainer *t[3] = {NULL, NULL, NULL};
    int rc = 1;
    dc_load_options lazy = {0};
    lazy.lazy = 1;
    for (int i = 0; i < 3; i++) {
        make_preset("classifier", "sgd", work, tags[i], &p[i], &err);
        p[i].cfg.augment = 1;
        p[i].cfg.dist = i == 0 ? serial : overlap;
    }
    if (dc_train_load_data(&p[0].cfg, 28, 1, &tr, &va, &err) != DC_OK ||
        dc_train_load_data_opts(&p[2].cfg, 28, 1, &lazy, &ltr, &lva, &err) != DC_OK ||
        dc_backend_create_cpu(1, &be, &err) != DC_OK) {
        fail("setup", &err);
        goto out;
    }
    if (!ltr->lazy || dc_dataset_decoded_count(ltr) != 0 || lva->lazy) {
        fprintf(stderr, "dist_train: the lazy load decoded training images or left the "
                        "validation set undecoded\n");
        goto out;
    }
    dc_dist_stats before, after;
    for (int i = 0; i < 3; i++) {
        dc_dist_get_stats(overlap, &before);
        if (train(be, &p[i], i == 2 ? ltr : tr, i == 2 ? lva : va, &t[i], NULL, &err) != DC_OK) {
            fail(tags[i], &err);
            goto out;
        }
        dc_dist_get_stats(overlap, &after);
        if (i > 0 && after.early_buckets <= before.early_buckets) {
            fprintf(stderr, "dist_train: %s: no bucket started during backward\n", tags[i]);
            goto out;
        }
    }
    dc_dist_stats st;
    dc_dist_get_stats(serial, &st);
    if (st.early_buckets != 0) {
        fprintf(stderr, "dist_train: the serial exchange started buckets during backward\n");
        goto out;
    }
    const double d_overlap = trainers_diff(t[0], t[1]), d_lazy = trainers_diff(t[1], t[2]);
    /* this rank's share of the epoch: steps x its slice of each batch */
    const int share = dc_trainer_steps_per_epoch(t[2]) * (p[2].cfg.batch / ranks);
    const int decoded = dc_dataset_decoded_count(ltr);
    printf("dist_train: rank %d: overlapped all-reduce vs after backward: largest difference "
           "%g; lazy vs whole data: %g; %ld buckets started during backward; the lazy run "
           "holds %d of %d training images decoded (share %d)\n",
           rank, d_overlap, d_lazy, after.early_buckets, decoded, ltr->n, share);
    if (d_overlap != 0 || d_lazy != 0 || decoded > share || decoded >= ltr->n) goto out;
    if (!ranks_identical(serial, dc_trainer_model(t[2]), &err)) {
        fprintf(stderr, "dist_train: rank %d: the ranks' weights differ\n", rank);
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < 3; i++)
        dc_trainer_free(t[i]);
    dc_backend_free(be);
    dc_dataset_free(tr), dc_dataset_free(va), dc_dataset_free(ltr), dc_dataset_free(lva);
    if (rc) dc_dist_abort(serial, rc, "lazy-overlap failed");
    dc_dist_free(overlap);
    dc_dist_free(serial);
    return rc;
}

/* An image folder loaded lazily on both ranks (the guns, augmented at twice the size: the
 * trainer's second, oversampled copy is lazy too): the 2-rank run matches rank 0's
 * one-process run on the whole load within the tolerance, each rank decoded only its
 * share of the epoch, and the data fingerprint and near-binary share the ranks compute
 * from their shares equal the one-process figures on the whole load. */
static int lazy_folder(const char *work) {
    dc_error err = {0};
    dc_dist *d = NULL;
    if (dc_dist_create(NULL, &d, &err) != DC_OK) return fail("dist", &err);
    const int rank = dc_dist_rank(d), ranks = dc_dist_size(d);
    preset p;
    if (make_preset("complete", "sgd", work, "folder", &p, &err)) return fail("preset", &err);
    p.cfg.dist = d;
    p.cfg.augment_oversample = 2;
    dc_dataset *tr = NULL, *va = NULL, *wtr = NULL, *wva = NULL;
    dc_backend *be = NULL;
    dc_trainer *t = NULL, *one = NULL;
    float *init = NULL;
    int rc = 1;
    dc_load_options lazy = {0};
    lazy.lazy = 1;
    char fp_ranks[32], fp_one[32];
    double share_ranks = -1, share_one = -1;
    if (dc_train_load_data_opts(&p.cfg, p.spec.size, 1, &lazy, &tr, &va, &err) != DC_OK ||
        dc_backend_create_cpu(1, &be, &err) != DC_OK) {
        fail("setup", &err);
        goto out;
    }
    if (!tr->lazy || dc_dataset_decoded_count(tr) != 0) {
        fprintf(stderr, "dist_train: the folder did not load lazily\n");
        goto out;
    }
    if (dc_train_data_fingerprint(tr, va, d, fp_ranks, sizeof fp_ranks, &err) != DC_OK ||
        dc_train_near_binary_share(tr, d, &share_ranks, &err) != DC_OK) {
        fail("fingerprint from the shares", &err);
        goto out;
    }
    if (train(be, &p, tr, va, &t, NULL, &err) != DC_OK) {
        fail("data-parallel run", &err);
        goto out;
    }
    const int share = dc_trainer_steps_per_epoch(t) * (p.cfg.batch / ranks);
    const int decoded = dc_dataset_decoded_count(tr);
    printf("dist_train: rank %d: the lazily loaded folder holds %d of %d training images "
           "decoded (share %d)\n",
           rank, decoded, tr->n, share);
    if (decoded > share || decoded >= tr->n) goto out;
    if (!ranks_identical(d, dc_trainer_model(t), &err)) {
        fprintf(stderr, "dist_train: rank %d: the ranks' weights differ\n", rank);
        goto out;
    }
    rc = 0;
    if (rank == 0) {
        rc = 1;
        preset q;
        make_preset("complete", "sgd", work, "folder_one", &q, &err);
        q.cfg.augment_oversample = 2;
        if (dc_train_load_data(&q.cfg, q.spec.size, 1, &wtr, &wva, &err) != DC_OK ||
            dc_train_data_fingerprint(wtr, wva, NULL, fp_one, sizeof fp_one, &err) != DC_OK ||
            dc_train_near_binary_share(wtr, NULL, &share_one, &err) != DC_OK ||
            train(be, &q, wtr, wva, &one, &init, &err) != DC_OK) {
            fail("one-process run", &err);
            goto out;
        }
        const char *where;
        const double diff = max_diff(dc_trainer_model(t), dc_trainer_model(one), &where);
        const double move = moved(dc_trainer_model(one), init);
        printf("dist_train: folder, 2 ranks lazily vs one process on the whole load: largest "
               "difference %.3g (in %s) = %.2g %% of the largest move %.3g (tolerance %.0f %%); "
               "fingerprint %s vs %s; near-binary share %.6f vs %.6f\n",
               diff, where, 100 * diff / move, move, 100 * RELATIVE_TOLERANCE, fp_ranks, fp_one,
               share_ranks, share_one);
        if (diff <= RELATIVE_TOLERANCE * move && !strcmp(fp_ranks, fp_one) &&
            share_ranks == share_one)
            rc = 0;
    }
out:
    free(init);
    dc_trainer_free(t);
    dc_trainer_free(one);
    dc_backend_free(be);
    dc_dataset_free(tr), dc_dataset_free(va), dc_dataset_free(wtr), dc_dataset_free(wva);
    if (rc) dc_dist_abort(d, rc, "lazy-folder failed");
    dc_dist_free(d);
    return rc;
}

/* should_stop of the kill run: rank 1 dies after KILL_STEP steps. */
typedef struct kill_state {
    int rank, steps;
} kill_state;
static int die_at_step(void *user) {
    kill_state *k = user;
    if (++k->steps == KILL_STEP && k->rank == 1) raise(SIGKILL);
    return 0;
}

static int kill_run(const char *work) {
    dc_error err = {0};
    dc_dist *d = NULL;
    if (dc_dist_create(NULL, &d, &err) != DC_OK) return fail("dist", &err);
    preset p;
    make_preset("glo", "adam", work, "kill", &p, &err);
    p.cfg.dist = d;
    p.cfg.epochs = 50;
    dc_dataset *tr = NULL, *va = NULL;
    dc_backend *be = NULL;
    dc_trainer *t = NULL;
    kill_state k = {dc_dist_rank(d), 0};
    dc_train_callbacks cb = {0};
    cb.user = &k;
    cb.should_stop = die_at_step;
    if (dc_train_load_data(&p.cfg, p.spec.size, p.spec.channels, &tr, &va, &err) == DC_OK &&
        dc_backend_create_cpu(1, &be, &err) == DC_OK &&
        dc_trainer_create(be, &p.spec, tr, va, &p.cfg, &cb, &t, &err) == DC_OK)
        dc_trainer_run(t, &err);
    /* reached only when the run was not ended: the test fails */
    fprintf(stderr, "dist_train: rank %d was not ended after rank 1 died (%s)\n", k.rank, err.msg);
    return 3;
}

static int check_killed(const char *work) {
    dc_error err = {0};
    char run[1200];
    snprintf(run, sizeof run, "%s/glo_adam_kill", work);
    dc_train_checkpoint at;
    if (dc_train_read_checkpoint(run, &at, &err) != DC_OK) return fail("killed run", &err);
    /* 23 images, batch 8: 3 steps an epoch; rank 1 died at step KILL_STEP */
    const int steps_per_epoch = 3, reached = KILL_STEP / steps_per_epoch;
    if (at.epoch < 1 || at.epoch > reached) {
        fprintf(stderr, "dist_train: checkpoint at epoch %d, expected 1..%d\n", at.epoch, reached);
        return 1;
    }
    dc_backend *be = NULL;
    dc_model *m = NULL;
    if (dc_backend_create_cpu(1, &be, &err) != DC_OK) return fail("backend", &err);
    char file[1300];
    snprintf(file, sizeof file, "%s/model.safetensors", run);
    int rc = 1;
    if (dc_model_create(be, &at.spec, 4, &m, &err) != DC_OK)
        fail("model", &err);
    else if (dc_checkpoint_load(file, m->params, NULL, NULL, &err) != DC_OK)
        fail("loading the checkpoint", &err);
    else
        rc = 0;
    size_t n = 0;
    float *w = rc == 0 ? read_weights(m, &n) : NULL;
    for (size_t i = 0; w && i < n; i++)
        if (!isfinite(w[i])) rc = 1;
    if (rc == 0)
        printf("dist_train: the killed run's checkpoint loads: epoch %d, global step %ld, %zu "
               "finite weights\n",
               at.epoch, at.step, n);
    free(w);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}

/* Two epochs on all ranks, then (resume1) one more in one process. */
static int resume_ranks(const char *work) {
    dc_error err = {0};
    dc_dist *d = NULL;
    if (dc_dist_create(NULL, &d, &err) != DC_OK) return fail("dist", &err);
    preset p;
    make_preset("complete", "adam", work, "resume", &p, &err);
    p.cfg.dist = d;
    dc_dataset *tr = NULL, *va = NULL;
    dc_backend *be = NULL;
    dc_trainer *t = NULL;
    int rc = 1;
    if (dc_train_load_data(&p.cfg, p.spec.size, p.spec.channels, &tr, &va, &err) == DC_OK &&
        dc_backend_create_cpu(1, &be, &err) == DC_OK &&
        train(be, &p, tr, va, &t, NULL, &err) == DC_OK)
        rc = 0;
    else
        fail("data-parallel part", &err);
    dc_trainer_free(t);
    dc_backend_free(be);
    dc_dataset_free(tr);
    dc_dataset_free(va);
    if (rc) dc_dist_abort(d, rc, "resume: the data-parallel part failed");
    dc_dist_free(d);
    return rc;
}

static int resume_one(const char *work) {
    dc_error err = {0};
    preset p;
    make_preset("complete", "adam", work, "resume", &p, &err);
    dc_dataset *tr = NULL, *va = NULL;
    dc_backend *be = NULL;
    dc_trainer *resumed = NULL, *straight = NULL;
    int rc = 1;
    if (dc_train_load_data(&p.cfg, p.spec.size, p.spec.channels, &tr, &va, &err) != DC_OK ||
        dc_backend_create_cpu(1, &be, &err) != DC_OK)
        return fail("setup", &err);
    dc_train_checkpoint at;
    if (dc_train_read_checkpoint(p.cfg.out, &at, &err) != DC_OK) {
        fail("reading the 2-rank run", &err);
        goto out;
    }
    if (at.epoch != 2) {
        fprintf(stderr, "dist_train: the 2-rank run stopped at epoch %d, not 2\n", at.epoch);
        goto out;
    }
    at.config.epochs = 3;
    snprintf(at.config.out, sizeof at.config.out, "%s", p.cfg.out);
    preset s;
    make_preset("complete", "adam", work, "straight", &s, &err);
    s.cfg.epochs = 3;
    if (dc_trainer_resume(be, p.cfg.out, tr, va, &at.config, NULL, &resumed, &err) != DC_OK ||
        dc_trainer_run(resumed, &err) != DC_OK) {
        fail("resuming in one process", &err);
        goto out;
    }
    float *init = NULL;
    if (train(be, &s, tr, va, &straight, &init, &err) != DC_OK) {
        fail("straight run", &err);
        goto out;
    }
    const char *where;
    const double diff = max_diff(dc_trainer_model(resumed), dc_trainer_model(straight), &where);
    const double move = moved(dc_trainer_model(straight), init);
    free(init);
    printf("dist_train: 2 ranks for 2 epochs, then 1 process for the 3rd: largest difference "
           "from 3 epochs in one process %.3g (in %s) = %.2g %% of the largest move %.3g "
           "(tolerance %.0f %%)\n",
           diff, where, 100 * diff / move, move, 100 * RELATIVE_TOLERANCE);
    rc = diff <= RELATIVE_TOLERANCE * move ? 0 : 1;
out:
    dc_trainer_free(resumed);
    dc_trainer_free(straight);
    dc_backend_free(be);
    dc_dataset_free(tr);
    dc_dataset_free(va);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "match")) return match(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && !strcmp(argv[1], "kill")) return kill_run(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "lazy-overlap")) return lazy_overlap(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "lazy-folder")) return lazy_folder(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check")) return check_killed(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "resume")) return resume_ranks(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "resume1")) return resume_one(argv[2]);
    fprintf(stderr, "usage: dist_train match KIND OPTIM DEVICE WORK | lazy-overlap WORK | "
                    "lazy-folder WORK | "
                    "kill WORK | check WORK | "
                    "resume WORK | resume1 WORK\n");
    return 2;
}
