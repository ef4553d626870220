/* deconv bench: training and inference throughput of the model presets on one or more
 * backends, with the numbers needed to judge them: the FLOPs of a step, the achieved
 * GFLOP/s, the backend's own GEMM rate on the exact products the step runs, peak host and
 * device memory, and the OpenCL start-up time (cold and warm program cache).
 *
 * Each (device, model) pair runs in a child process (this binary, `bench --single`), so
 * the peak resident memory (getrusage) is that model's alone and one model's allocator
 * state or thread pools cannot colour the next. The start-up probe is a child as well:
 * its clock starts before the child is spawned, so it includes exec and dynamic loading.
 *
 * What a timed step is (the same calls `deconv train` makes): upload a fixed random batch,
 * set the step's seed, forward, zero the parameter gradients, backward, Adam step. The
 * timed region ends with a blocking read of the loss, so asynchronous backends are
 * measured to completion. Inference: eval mode, upload, forward to the output node. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_cl.h"
#include "cli/cli.h"
#include "deconv/backend.h"
#include "deconv/model.h"

extern char **environ;

/* host/ops/conv.c splits a conv's batch into chunks whose im2col workspace fits this many
 * floats; the GEMM shapes measured here follow the same split. Keep the two in step. */
#define BENCH_CONV_WORK_BUDGET ((size_t)8 << 20)
#define BENCH_RESULT_TAG "deconv-bench-result "
#define BENCH_ALL_MODELS "complete,vae,glo,classifier"

typedef struct bench_opts {
    char devices[256];
    char models[256];
    int warmup, repeats, steps, threads, batch, gemm, infer, profile, trace;
    double gemm_seconds; /* minimum measuring time per distinct GEMM shape */
    char json[1024];
    char startup_model[16];
    int startup; /* -1: when an OpenCL device is benchmarked; 0 never; 1 always */
} bench_opts;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n) {
    if (n <= 0) return NAN;
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s) return NAN;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    const double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static double loadavg1(void) {
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = NAN;
        fclose(f);
    }
    return l;
}

static cJSON *json_doubles(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* ------------------------------------------------------------------ presets */
/* The benchmark's fixed configurations: the presets' defaults at their usual sizes. */
static int bench_preset(const char *model, int batch_override, dc_model_spec *spec, int *batch,
                        dc_error *err) {
    const int cls = !strcmp(model, "classifier");
    if (dc_model_spec_default(spec, model, 1, cls ? 28 : 64, err) != DC_OK) return -1;
    if (!strcmp(model, "glo")) spec->glo_count = 1024;
    *batch = batch_override > 0 ? batch_override : (cls ? 128 : 64);
    return dc_model_spec_check(spec, err) == DC_OK ? 0 : -1;
}

/* A fixed random batch shaped like the training data: images in [-1, 1], the preset's mask
 * and loss weights, labels and latent indices drawn uniformly. */
static void fill_random_batch(const dc_model *m, dc_batch *b, uint64_t seed) {
    const dc_model_spec *s = &m->spec;
    const int hw = s->size * s->size;
    dc_rng rng;
    dc_rng_seed(&rng, seed);
    for (int slot = 0; slot < b->n; slot++) {
        float *tgt = b->target + (size_t)slot * b->image_numel;
        for (size_t i = 0; i < b->image_numel; i++) tgt[i] = 2.0f * dc_rng_uniform(&rng) - 1.0f;
        float *mask = b->mask + (size_t)slot * hw;
        dc_mask_make(s->mask, s->size, s->size, &rng, mask);
        dc_mask_apply(tgt, mask, s->channels, s->size, s->size, 0.0f, s->visible_weight,
                      s->loss_full, b->x + (size_t)slot * b->image_numel,
                      b->weight + (size_t)slot * b->image_numel);
        b->labels[slot] = (int32_t)dc_rng_below(&rng, (uint32_t)(s->classes > 1 ? s->classes : 2));
        b->index[slot] = (int32_t)dc_rng_below(&rng, (uint32_t)(s->glo_count > 0 ? s->glo_count : 1));
    }
}

/* One training step exactly as `deconv train` runs it. */
static dc_status train_step(dc_model *m, dc_optim *opt, const dc_batch *b, uint64_t seed,
                            char *msg, size_t cap) {
    dc_error err = {0};
    dc_status s;
    if ((s = dc_model_set_batch(m, b, &err))) {
        snprintf(msg, cap, "set batch: %s", err.msg);
        return s;
    }
    dc_graph_set_seed(m->g, seed);
    if ((s = dc_graph_forward(m->g, -1)) || (s = dc_params_zero_grad(m->params)) ||
        (s = dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL))) {
        snprintf(msg, cap, "step: %s", dc_graph_error(m->g)->msg);
        return s;
    }
    if ((s = dc_optim_step(opt))) {
        snprintf(msg, cap, "optimizer: %s", dc_optim_error(opt)->msg);
        return s;
    }
    return DC_OK;
}

/* Waits for the queue: a blocking one-element read of a node's output. */
static dc_status read_one(dc_model *m, int node, float *v) {
    dc_tensor t = dc_graph_value(m->g, node);
    dc_ptr p = {t.buf, t.off};
    return m->be->ops->read(m->be, p, v, sizeof *v);
}

static dc_status infer_step(dc_model *m, const dc_batch *b, uint64_t seed, char *msg, size_t cap) {
    dc_error err = {0};
    dc_status s;
    if ((s = dc_model_set_batch(m, b, &err))) {
        snprintf(msg, cap, "set batch: %s", err.msg);
        return s;
    }
    dc_graph_set_seed(m->g, seed);
    if ((s = dc_graph_forward(m->g, m->out))) snprintf(msg, cap, "forward: %s", dc_graph_error(m->g)->msg);
    return s;
}

/* ------------------------------------------------------------ GEMM products */
typedef struct gemm_shape {
    char node[48];
    const char *role; /* "fwd", "dW", "dX" */
    int ta, tb, m, n, k;
    float beta;
    int count; /* calls per training step */
    double seconds, gflops; /* median seconds per call, rate */
} gemm_shape;

typedef struct gemm_list {
    gemm_shape *v;
    int n, cap;
} gemm_list;

static void gemm_add(gemm_list *l, const char *node, const char *role, int ta, int tb, int m, int n,
                     int k, float beta, int count) {
    if (count <= 0 || m <= 0 || n <= 0 || k <= 0) return;
    for (int i = 0; i < l->n; i++) {
        gemm_shape *q = &l->v[i];
        if (!strcmp(q->node, node) && q->role == role && q->ta == ta && q->tb == tb && q->m == m &&
            q->n == n && q->k == k && q->beta == beta) {
            q->count += count;
            return;
        }
    }
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        gemm_shape *v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v) return;
        l->v = v, l->cap = cap;
    }
    gemm_shape *q = &l->v[l->n++];
    memset(q, 0, sizeof *q);
    snprintf(q->node, sizeof q->node, "%s", node);
    q->role = role;
    q->ta = ta, q->tb = tb, q->m = m, q->n = n, q->k = k, q->beta = beta, q->count = count;
}

/* Adds the products of one chunk of `cnt` images, as host/ops/conv.c and dense.c call them. */
static void conv_chunk_products(gemm_list *l, const char *name, int transposed, int a, int b,
                                int kk_rows, int cols_n, int want_dx, int times) {
    if (!transposed) {
        /* conv: a = OC, kk_rows = K = C*k*k */
        gemm_add(l, name, "fwd", 0, 0, a, cols_n, kk_rows, 0.0f, times);
        gemm_add(l, name, "dW", 0, 1, a, kk_rows, cols_n, 1.0f, times);
        if (want_dx) gemm_add(l, name, "dX", 1, 0, kk_rows, cols_n, a, 0.0f, times);
    } else {
        /* transposed conv: b = C (input channels), kk_rows = R = OC*k*k */
        gemm_add(l, name, "fwd", 1, 0, kk_rows, cols_n, b, 0.0f, times);
        gemm_add(l, name, "dW", 0, 1, b, kk_rows, cols_n, 1.0f, times);
        if (want_dx) gemm_add(l, name, "dX", 0, 0, b, cols_n, kk_rows, 0.0f, times);
    }
}

/* The GEMM calls of one training step, from the graph's conv, transposed-conv and dense
 * nodes. Returns their total FLOPs (multiply-add = 2). */
static double collect_gemms(dc_graph *g, gemm_list *l) {
    const int B = dc_graph_batch(g);
    for (int i = 0; i < dc_graph_node_count(g); i++) {
        dc_node_info info;
        if (dc_graph_node_info(g, i, &info) != DC_OK || info.n_inputs < 1) continue;
        const int conv = !strcmp(info.op_name, "conv2d"), convt = !strcmp(info.op_name, "conv_transpose2d");
        const int dense = !strcmp(info.op_name, "dense");
        if (!conv && !convt && !dense) continue;
        int in[DC_MAX_DIMS] = {0};
        const int in_ndim = dc_graph_node_shape(g, info.inputs[0], in);
        const int want_dx = dc_graph_grad(g, info.inputs[0]).buf != NULL;
        if (dense) {
            size_t fin = 1;
            for (int d = 1; d < in_ndim; d++) fin *= (size_t)in[d];
            const int out = info.shape[1];
            gemm_add(l, info.name, "fwd", 0, 1, B, out, (int)fin, 0.0f, 1);
            gemm_add(l, info.name, "dW", 1, 0, out, (int)fin, B, 1.0f, 1);
            if (want_dx) gemm_add(l, info.name, "dX", 0, 0, B, (int)fin, out, 1.0f, 1);
            continue;
        }
        if (in_ndim != 4) continue;
        const int k = info.k;
        int a, b, rows, pix;
        size_t per_image;
        if (conv) {
            a = info.shape[1];                  /* OC */
            b = in[1];                          /* C */
            rows = in[1] * k * k;               /* K */
            pix = info.shape[2] * info.shape[3]; /* output pixels */
            per_image = ((size_t)rows + (size_t)a) * (size_t)pix;
        } else {
            a = info.shape[1];                  /* OC */
            b = in[1];                          /* C */
            rows = a * k * k;                   /* R */
            pix = in[2] * in[3];                /* input (small) pixels */
            per_image = ((size_t)rows + (size_t)b) * (size_t)pix;
        }
        size_t nb = per_image ? BENCH_CONV_WORK_BUDGET / per_image : (size_t)B;
        if (nb < 1) nb = 1;
        if (nb > (size_t)B) nb = (size_t)B;
        const int full = B / (int)nb, rest = B % (int)nb;
        conv_chunk_products(l, info.name, convt, a, b, rows, (int)nb * pix, want_dx, full);
        if (rest) conv_chunk_products(l, info.name, convt, a, b, rows, rest * pix, want_dx, 1);
    }
    double f = 0;
    for (int i = 0; i < l->n; i++) f += 2.0 * l->v[i].m * (double)l->v[i].n * l->v[i].k * l->v[i].count;
    return f;
}

/* Times every distinct product with the backend's gemm primitive (median of repeated
 * calls, each waited for). Returns the step's GEMM rate: total FLOPs / total time. */
static dc_status measure_gemms(dc_backend *be, gemm_list *l, double min_seconds, double *rate,
                               char *msg, size_t cap) {
    size_t na = 1, nb = 1, nc = 1;
    for (int i = 0; i < l->n; i++) {
        const gemm_shape *q = &l->v[i];
        const size_t a = (size_t)q->m * q->k, b = (size_t)q->k * q->n, c = (size_t)q->m * q->n;
        na = a > na ? a : na, nb = b > nb ? b : nb, nc = c > nc ? c : nc;
    }
    dc_buffer *A = NULL, *Bf = NULL, *C = NULL;
    dc_status s = DC_OK;
    if ((s = be->ops->alloc(be, na * 4, &A)) || (s = be->ops->alloc(be, nb * 4, &Bf)) ||
        (s = be->ops->alloc(be, nc * 4, &C))) {
        snprintf(msg, cap, "gemm buffers: %s", be->err.msg);
        goto done;
    }
    dc_ptr pa = {A, 0}, pb = {Bf, 0}, pc = {C, 0};
    if ((s = be->ops->fill(be, pa, na, 0.01f)) || (s = be->ops->fill(be, pb, nb, 0.01f)) ||
        (s = be->ops->fill(be, pc, nc, 0.0f)) || (s = be->ops->sync(be)))
        goto fail;
    double flops = 0, seconds = 0;
    for (int i = 0; i < l->n; i++) {
        gemm_shape *q = &l->v[i];
        const int lda = q->ta ? q->m : q->k, ldb = q->tb ? q->k : q->n, ldc = q->n;
        /* one untimed call: lazy kernel compilation (CLBlast), page faults */
        if ((s = be->ops->gemm(be, q->ta, q->tb, q->m, q->n, q->k, 1.0f, pa, lda, pb, ldb, q->beta,
                               pc, ldc)) ||
            (s = be->ops->sync(be)))
            goto fail;
        double t[64];
        int n = 0;
        const double t_start = now_s();
        while (n < 64 && (n < 3 || now_s() - t_start < min_seconds)) {
            const double t0 = now_s();
            if ((s = be->ops->gemm(be, q->ta, q->tb, q->m, q->n, q->k, 1.0f, pa, lda, pb, ldb,
                                   q->beta, pc, ldc)) ||
                (s = be->ops->sync(be)))
                goto fail;
            t[n++] = now_s() - t0;
        }
        q->seconds = median(t, n);
        const double f = 2.0 * q->m * (double)q->n * q->k;
        q->gflops = f / q->seconds / 1e9;
        flops += f * q->count;
        seconds += q->seconds * q->count;
    }
    *rate = seconds > 0 ? flops / seconds / 1e9 : NAN;
    goto done;
fail:
    snprintf(msg, cap, "gemm: %s", be->err.msg);
done:
    if (A) be->ops->free(be, A);
    if (Bf) be->ops->free(be, Bf);
    if (C) be->ops->free(be, C);
    return s;
}


/* ------------------------------------------------- per-primitive profile
 * `--profile`: after the timed runs, the backend's vtable is swapped for one whose entries
 * time each call (waiting for the device after each call on asynchronous backends), so a
 * few more training steps give the time per primitive. This state is the bench tool's own
 * (one model per process); the library itself keeps none. */
enum {
    PR_GEMM_NN, PR_GEMM_NT, PR_GEMM_TN, PR_GEMM_TT, PR_IM2COL, PR_COL2IM, PR_CM_TO_NCHW,
    PR_NCHW_TO_CM, PR_BIAS_ADD, PR_BIAS_GRAD, PR_MAXPOOL_FWD, PR_MAXPOOL_BWD, PR_ACT_FWD,
    PR_ACT_BWD, PR_BN_STATS, PR_BN_APPLY, PR_BN_BWD, PR_FILL, PR_COPY, PR_WRITE, PR_READ,
    PR_AXPY, PR_SCALE, PR_BINARY, PR_MSE, PR_SOFTMAX_XENT, PR_GAUSS_KL, PR_ADAM, PR_SGD,
    PR_RANDN, PR_REPARAM_FWD, PR_REPARAM_BWD, PR_GATHER, PR_SCATTER, PR_GAP_FWD, PR_GAP_BWD,
    PR_REDUCE, PR_DROPOUT, PR_CONV_FWD, PR_CONV_BWD, PR_CONVT_FWD, PR_CONVT_BWD, PR_COUNT
};
static const char *const pr_names[PR_COUNT] = {
    "gemm NN", "gemm NT", "gemm TN", "gemm TT", "im2col", "col2im", "cm_to_nchw", "nchw_to_cm",
    "bias_add", "bias_grad", "maxpool_fwd", "maxpool_bwd", "act_fwd", "act_bwd", "bn_stats",
    "bn_apply", "bn_bwd", "fill", "copy", "write", "read", "axpy", "scale", "binary", "mse",
    "softmax_xent", "gauss_kl", "adam_update", "sgd_update", "randn", "reparam_fwd",
    "reparam_bwd", "gather_rows", "scatter_add_rows", "gap_fwd", "gap_bwd", "reduce_sum",
    "dropout_mask", "conv2d_fwd", "conv2d_bwd", "conv_t2d_fwd", "conv_t2d_bwd"};

static struct {
    const dc_backend_ops *orig;
    dc_backend_ops ops;
    int sync, trace; /* trace: print every call (name, size, ms) to stderr */
    double t[PR_COUNT], flops[PR_COUNT];
    long calls[PR_COUNT];
} g_prof;

#define PR_CALL_N(id, size, name, ...)                                                  \
    do {                                                                                \
        const double t0_ = now_s();                                                     \
        dc_status s_ = g_prof.orig->name(be, __VA_ARGS__);                              \
        if (g_prof.sync) g_prof.orig->sync(be);                                         \
        const double dt_ = now_s() - t0_;                                               \
        g_prof.t[id] += dt_;                                                            \
        g_prof.calls[id]++;                                                             \
        if (g_prof.trace)                                                               \
            fprintf(stderr, "    %-14s %12.0f %9.3f ms\n", pr_names[id], (double)(size), dt_ * 1e3); \
        return s_;                                                                      \
    } while (0)
#define PR_CALL(id, name, ...) PR_CALL_N(id, 0, name, __VA_ARGS__)

static dc_status pr_gemm(dc_backend *be, int ta, int tb, int m, int n, int k, float alpha, dc_ptr a,
                         int lda, dc_ptr b, int ldb, float beta, dc_ptr c, int ldc) {
    const int id = PR_GEMM_NN + 2 * (ta != 0) + (tb != 0);
    g_prof.flops[id] += 2.0 * m * (double)n * k;
    PR_CALL_N(id, 2.0 * m * (double)n * k, gemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static dc_status pr_im2col(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr x, dc_ptr c) {
    PR_CALL_N(PR_IM2COL, (double)g->c * g->kh * g->kw * nb * g->oh * g->ow, im2col, g, n0, nb, x, c);
}
static dc_status pr_col2im(dc_backend *be, const dc_win2d *g, int n0, int nb, dc_ptr c, dc_ptr x) {
    PR_CALL_N(PR_COL2IM, (double)g->c * g->kh * g->kw * nb * g->oh * g->ow, col2im, g, n0, nb, c, x);
}
static dc_status pr_cm_to_nchw(dc_backend *be, dc_ptr src, dc_ptr bias, dc_ptr dst, int n0, int nb,
                               int c, int hw, float beta) {
    PR_CALL(PR_CM_TO_NCHW, cm_to_nchw, src, bias, dst, n0, nb, c, hw, beta);
}
static dc_status pr_nchw_to_cm(dc_backend *be, dc_ptr src, dc_ptr dst, int n0, int nb, int c, int hw) {
    PR_CALL(PR_NCHW_TO_CM, nchw_to_cm, src, dst, n0, nb, c, hw);
}
static dc_status pr_bias_add(dc_backend *be, dc_ptr y, dc_ptr b, int n, int c, int hw) {
    PR_CALL(PR_BIAS_ADD, bias_add, y, b, n, c, hw);
}
static dc_status pr_bias_grad(dc_backend *be, dc_ptr db, dc_ptr dy, int n, int c, int hw) {
    PR_CALL_N(PR_BIAS_GRAD, (double)n * c * hw, bias_grad, db, dy, n, c, hw);
}
static dc_status pr_maxpool_fwd(dc_backend *be, const dc_win2d *g, dc_ptr x, dc_ptr y, dc_ptr sw) {
    PR_CALL_N(PR_MAXPOOL_FWD, (double)g->n * g->c * g->h * g->w, maxpool_fwd, g, x, y, sw);
}
static dc_status pr_maxpool_bwd(dc_backend *be, const dc_win2d *g, dc_ptr dy, dc_ptr sw, dc_ptr dx) {
    PR_CALL(PR_MAXPOOL_BWD, maxpool_bwd, g, dy, sw, dx);
}
static dc_status pr_act_fwd(dc_backend *be, int kind, float alpha, dc_ptr x, dc_ptr y, size_t n) {
    PR_CALL_N(PR_ACT_FWD, n, act_fwd, kind, alpha, x, y, n);
}
static dc_status pr_act_bwd(dc_backend *be, int kind, int mode, float alpha, dc_ptr x, dc_ptr y,
                            dc_ptr dy, dc_ptr dx, size_t n) {
    PR_CALL_N(PR_ACT_BWD, n, act_bwd, kind, mode, alpha, x, y, dy, dx, n);
}
static dc_status pr_bn_stats(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, int n, int c, int hw) {
    PR_CALL(PR_BN_STATS, bn_stats, x, mean, var, n, c, hw);
}
static dc_status pr_bn_apply(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                             dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps) {
    PR_CALL(PR_BN_APPLY, bn_apply, x, mean, var, gamma, beta, y, n, c, hw, eps);
}
static dc_status pr_bn_bwd(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma, dc_ptr dy,
                           dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n, int c, int hw, float eps) {
    PR_CALL(PR_BN_BWD, bn_bwd, x, mean, var, gamma, dy, dx, dgamma, dbeta, n, c, hw, eps);
}
static dc_status pr_fill(dc_backend *be, dc_ptr dst, size_t n, float v) { PR_CALL_N(PR_FILL, n, fill, dst, n, v); }
static dc_status pr_copy(dc_backend *be, dc_ptr dst, dc_ptr src, size_t n) { PR_CALL(PR_COPY, copy, dst, src, n); }
static dc_status pr_write(dc_backend *be, dc_ptr dst, const void *src, size_t bytes) {
    PR_CALL(PR_WRITE, write, dst, src, bytes);
}
static dc_status pr_read(dc_backend *be, dc_ptr src, void *dst, size_t bytes) {
    PR_CALL(PR_READ, read, src, dst, bytes);
}
static dc_status pr_axpy(dc_backend *be, dc_ptr y, dc_ptr x, size_t n, float a) { PR_CALL(PR_AXPY, axpy, y, x, n, a); }
static dc_status pr_scale(dc_backend *be, dc_ptr d, size_t n, float a) { PR_CALL(PR_SCALE, scale, d, n, a); }
static dc_status pr_binary(dc_backend *be, int op, dc_ptr y, dc_ptr a, dc_ptr b, size_t n) {
    PR_CALL(PR_BINARY, binary, op, y, a, b, n);
}
static dc_status pr_mse(dc_backend *be, dc_ptr p, dc_ptr t, dc_ptr w, size_t n, dc_ptr l, dc_ptr d,
                        float scale) {
    PR_CALL(PR_MSE, mse, p, t, w, n, l, d, scale);
}
static dc_status pr_softmax_xent(dc_backend *be, dc_ptr lg, dc_ptr lab, int rows, int k, dc_ptr pr,
                                 dc_ptr l, dc_ptr d, float scale) {
    PR_CALL(PR_SOFTMAX_XENT, softmax_xent, lg, lab, rows, k, pr, l, d, scale);
}
static dc_status pr_gauss_kl(dc_backend *be, dc_ptr mu, dc_ptr lv, int rows, int dim, dc_ptr l,
                             dc_ptr dmu, dc_ptr dlv, float scale) {
    PR_CALL(PR_GAUSS_KL, gauss_kl, mu, lv, rows, dim, l, dmu, dlv, scale);
}
static dc_status pr_adam(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr m, dc_ptr v, size_t n,
                         dc_ptr gs, float lr, float b1, float b2, float eps, float wd, int dec,
                         float bc1, float bc2) {
    PR_CALL_N(PR_ADAM, n, adam_update, p, g, m, v, n, gs, lr, b1, b2, eps, wd, dec, bc1, bc2);
}
static dc_status pr_sgd(dc_backend *be, dc_ptr p, dc_ptr g, dc_ptr v, size_t n, dc_ptr gs, float lr,
                        float mom, float wd, int nest) {
    PR_CALL(PR_SGD, sgd_update, p, g, v, n, gs, lr, mom, wd, nest);
}
static dc_status pr_randn(dc_backend *be, dc_ptr d, size_t n, uint64_t seed, float mean, float std) {
    PR_CALL(PR_RANDN, randn, d, n, seed, mean, std);
}
static dc_status pr_reparam_fwd(dc_backend *be, dc_ptr mu, dc_ptr lv, dc_ptr eps, dc_ptr z, size_t n) {
    PR_CALL(PR_REPARAM_FWD, reparam_fwd, mu, lv, eps, z, n);
}
static dc_status pr_reparam_bwd(dc_backend *be, dc_ptr lv, dc_ptr eps, dc_ptr dz, dc_ptr dmu,
                                dc_ptr dlv, size_t n) {
    PR_CALL(PR_REPARAM_BWD, reparam_bwd, lv, eps, dz, dmu, dlv, n);
}
static dc_status pr_gather(dc_backend *be, dc_ptr t, dc_ptr idx, dc_ptr y, int rows, int dim) {
    PR_CALL(PR_GATHER, gather_rows, t, idx, y, rows, dim);
}
static dc_status pr_scatter(dc_backend *be, dc_ptr dt, dc_ptr idx, dc_ptr dy, int rows, int dim,
                            int table_rows) {
    PR_CALL(PR_SCATTER, scatter_add_rows, dt, idx, dy, rows, dim, table_rows);
}
static dc_status pr_gap_fwd(dc_backend *be, dc_ptr x, dc_ptr y, int nc, int hw) { PR_CALL(PR_GAP_FWD, gap_fwd, x, y, nc, hw); }
static dc_status pr_gap_bwd(dc_backend *be, dc_ptr dy, dc_ptr dx, int nc, int hw) { PR_CALL(PR_GAP_BWD, gap_bwd, dy, dx, nc, hw); }
static dc_status pr_reduce(dc_backend *be, dc_ptr out, dc_ptr x, size_t n, int sq) {
    PR_CALL(PR_REDUCE, reduce_sum, out, x, n, sq);
}
static dc_status pr_dropout(dc_backend *be, dc_ptr mask, size_t n, uint64_t seed, float p) {
    PR_CALL(PR_DROPOUT, dropout_mask, mask, n, seed, p);
}

/* fused convolutions (backends that provide them): FLOPs as the GEMMs they replace */
static double conv_flops(const dc_win2d *g, int n, int oc) {
    return 2.0 * n * oc * (double)g->c * g->kh * g->kw * g->oh * g->ow;
}
static dc_status pr_conv_fwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w, dc_ptr b,
                             dc_ptr y, const dc_fused_act *a) {
    const double f = conv_flops(g, g->n, oc);
    g_prof.flops[PR_CONV_FWD] += f;
    PR_CALL_N(PR_CONV_FWD, f, conv2d_fwd, g, oc, x, w, b, y, a);
}
static dc_status pr_conv_bwd(dc_backend *be, const dc_win2d *g, int oc, dc_ptr x, dc_ptr w, dc_ptr y,
                             dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db, const dc_fused_act *a) {
    const double f = conv_flops(g, g->n, oc) * (dx.buf ? 2 : 1);
    g_prof.flops[PR_CONV_BWD] += f;
    PR_CALL_N(PR_CONV_BWD, f, conv2d_bwd, g, oc, x, w, y, dy, dx, dw, db, a);
}
static dc_status pr_convt_fwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x, dc_ptr w,
                              dc_ptr b, dc_ptr y, const dc_fused_act *a) {
    const double f = conv_flops(g, n, cin);
    g_prof.flops[PR_CONVT_FWD] += f;
    PR_CALL_N(PR_CONVT_FWD, f, conv_t2d_fwd, g, n, cin, x, w, b, y, a);
}
static dc_status pr_convt_bwd(dc_backend *be, const dc_win2d *g, int n, int cin, dc_ptr x, dc_ptr w,
                              dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dw, dc_ptr db,
                              const dc_fused_act *a) {
    const double f = conv_flops(g, n, cin) * (dx.buf ? 2 : 1);
    g_prof.flops[PR_CONVT_BWD] += f;
    PR_CALL_N(PR_CONVT_BWD, f, conv_t2d_bwd, g, n, cin, x, w, y, dy, dx, dw, db, a);
}

static dc_status pr_bn_apply_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                                 dc_ptr beta, dc_ptr y, int n, int c, int hw, float eps,
                                 const dc_fused_act *a) {
    PR_CALL(PR_BN_APPLY, bn_apply_act, x, mean, var, gamma, beta, y, n, c, hw, eps, a);
}
static dc_status pr_bn_bwd_act(dc_backend *be, dc_ptr x, dc_ptr mean, dc_ptr var, dc_ptr gamma,
                               dc_ptr y, dc_ptr dy, dc_ptr dx, dc_ptr dgamma, dc_ptr dbeta, int n,
                               int c, int hw, float eps, const dc_fused_act *a) {
    PR_CALL(PR_BN_BWD, bn_bwd_act, x, mean, var, gamma, y, dy, dx, dgamma, dbeta, n, c, hw, eps, a);
}

static void profile_install(dc_backend *be) {
    memset(&g_prof, 0, sizeof g_prof);
    g_prof.orig = be->ops;
    g_prof.ops = *be->ops;
    g_prof.sync = strcmp(be->ops->name, "cpu") != 0;
    dc_backend_ops *o = &g_prof.ops;
    o->gemm = pr_gemm, o->im2col = pr_im2col, o->col2im = pr_col2im, o->cm_to_nchw = pr_cm_to_nchw;
    o->nchw_to_cm = pr_nchw_to_cm, o->bias_add = pr_bias_add, o->bias_grad = pr_bias_grad;
    o->maxpool_fwd = pr_maxpool_fwd, o->maxpool_bwd = pr_maxpool_bwd, o->act_fwd = pr_act_fwd;
    o->act_bwd = pr_act_bwd, o->bn_stats = pr_bn_stats, o->bn_apply = pr_bn_apply, o->bn_bwd = pr_bn_bwd;
    o->fill = pr_fill, o->copy = pr_copy, o->write = pr_write, o->read = pr_read, o->axpy = pr_axpy;
    o->scale = pr_scale, o->binary = pr_binary, o->mse = pr_mse, o->softmax_xent = pr_softmax_xent;
    o->gauss_kl = pr_gauss_kl, o->adam_update = pr_adam, o->sgd_update = pr_sgd, o->randn = pr_randn;
    o->reparam_fwd = pr_reparam_fwd, o->reparam_bwd = pr_reparam_bwd, o->gather_rows = pr_gather;
    o->scatter_add_rows = pr_scatter, o->gap_fwd = pr_gap_fwd, o->gap_bwd = pr_gap_bwd;
    o->reduce_sum = pr_reduce, o->dropout_mask = pr_dropout;
    if (o->conv2d_fwd) o->conv2d_fwd = pr_conv_fwd, o->conv2d_bwd = pr_conv_bwd;
    if (o->conv_t2d_fwd) o->conv_t2d_fwd = pr_convt_fwd, o->conv_t2d_bwd = pr_convt_bwd;
    if (o->bn_apply_act) o->bn_apply_act = pr_bn_apply_act, o->bn_bwd_act = pr_bn_bwd_act;
    be->ops = &g_prof.ops;
}

static void profile_remove(dc_backend *be) {
    if (g_prof.orig) be->ops = g_prof.orig;
    g_prof.orig = NULL;
}

/* Profile `steps` training steps; returns a JSON object and prints a table to stderr. */
static cJSON *profile_steps(dc_model *m, dc_optim *opt, const dc_batch *b, int steps, int trace,
                            const char *label, char *msg, size_t cap) {
    dc_backend *be = m->be;
    float loss;
    if (trace) {
        /* one traced step first (its times are not counted) */
        profile_install(be);
        g_prof.trace = 1;
        fprintf(stderr, "trace of one training step of %s (primitive, size: FLOPs or elements, time):\n", label);
        dc_status s = train_step(m, opt, b, dc_seed_mix(13, 1), msg, cap);
        profile_remove(be);
        if (s) return NULL;
    }
    profile_install(be);
    const double t0 = now_s();
    for (int i = 0; i < steps; i++)
        if (train_step(m, opt, b, dc_seed_mix(11, (uint64_t)i), msg, cap)) {
            profile_remove(be);
            return NULL;
        }
    read_one(m, m->loss, &loss);
    const double total = now_s() - t0;
    profile_remove(be);
    double in_prims = 0;
    int order[PR_COUNT];
    for (int i = 0; i < PR_COUNT; i++) order[i] = i, in_prims += g_prof.t[i];
    for (int i = 1; i < PR_COUNT; i++) /* insertion sort by time, descending */
        for (int j = i; j > 0 && g_prof.t[order[j]] > g_prof.t[order[j - 1]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "steps", steps);
    cJSON_AddNumberToObject(r, "step_ms", total / steps * 1e3);
    cJSON_AddNumberToObject(r, "outside_primitives_ms", (total - in_prims) / steps * 1e3);
    cJSON *list = cJSON_AddArrayToObject(r, "primitives");
    fprintf(stderr, "profile of %s: %.1f ms per training step (%d steps), per primitive:\n", label,
            total / steps * 1e3, steps);
    for (int i = 0; i < PR_COUNT; i++) {
        const int k = order[i];
        if (!g_prof.calls[k]) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", pr_names[k]);
        cJSON_AddNumberToObject(e, "ms_per_step", g_prof.t[k] / steps * 1e3);
        cJSON_AddNumberToObject(e, "share", g_prof.t[k] / total);
        cJSON_AddNumberToObject(e, "calls_per_step", (double)g_prof.calls[k] / steps);
        if (g_prof.flops[k] > 0) cJSON_AddNumberToObject(e, "gflops", g_prof.flops[k] / g_prof.t[k] / 1e9);
        cJSON_AddItemToArray(list, e);
        fprintf(stderr, "  %-16s %8.2f ms %5.1f%%  %6.1f calls", pr_names[k], g_prof.t[k] / steps * 1e3,
                100 * g_prof.t[k] / total, (double)g_prof.calls[k] / steps);
        if (g_prof.flops[k] > 0) fprintf(stderr, "  %6.1f GFLOP/s", g_prof.flops[k] / g_prof.t[k] / 1e9);
        fputc('\n', stderr);
    }
    fprintf(stderr, "  %-16s %8.2f ms %5.1f%%\n", "(outside)", (total - in_prims) / steps * 1e3,
            100 * (total - in_prims) / total);
    return r;
}

/* ------------------------------------------------------------ one benchmark */
/* A preset's spec and batch, and the backend named by `device`; 0 or the exit status. */
static int bench_open(const bench_opts *o, const char *device, const char *model,
                      dc_model_spec *spec, int *batch, dc_backend **be) {
    dc_error err = {0};
    *be = NULL;
    if (bench_preset(model, o->batch, spec, batch, &err)) return dc_cli_fail("bench", "%s", err.msg);
    if (dc_backend_create_from_spec(device, 0, be, &err) != DC_OK)
        return dc_cli_fail("bench", "--device %s: %s", device, err.msg);
    return 0;
}

static int run_single(const bench_opts *o, const char *device, const char *model) {
    const double load_start = loadavg1();
    dc_error err = {0};
    dc_model_spec spec;
    int batch;
    dc_backend *be;
    if (bench_open(o, device, model, &spec, &batch, &be)) return 1;
    if (o->threads > 0) dc_backend_set_threads(be, o->threads);
    const int is_cpu = !strcmp(dc_backend_name(be), "cpu");
    int rc = 1;
    char msg[1200] = "";
    dc_model *m = NULL;
    dc_optim *opt = NULL;
    dc_batch b = {0};
    gemm_list gl = {0};
    double *tt = calloc((size_t)o->repeats, sizeof(double)), *ti = calloc((size_t)o->repeats, sizeof(double));
    cJSON *r = NULL;
    if (!tt || !ti) {
        dc_cli_fail("bench", "out of memory");
        goto done;
    }
    if (dc_model_create_training(be, &spec, batch, &m, &err) != DC_OK) {
        dc_cli_fail("bench", "%s: %s", model, err.msg);
        goto done;
    }
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    dc_optim_config oc;
    dc_optim_config_default(&oc, DC_OPTIM_ADAM);
    if (dc_params_init(m->params, &rng) != DC_OK || dc_optim_create(m->params, &oc, &opt) != DC_OK) {
        dc_cli_fail("bench", "%s: %s", model, dc_params_error(m->params)->msg);
        goto done;
    }
    if (dc_batch_alloc(m, &b, &err) != DC_OK) {
        dc_cli_fail("bench", "%s", err.msg);
        goto done;
    }
    fill_random_batch(m, &b, 1234);
    dc_graph *g = m->g;
    float loss = NAN;
    uint64_t step = 0;
    /* ---- training ---- */
    dc_graph_set_train(g, 1);
    for (int i = 0; i < o->warmup; i++)
        if (train_step(m, opt, &b, dc_seed_mix(7, ++step), msg, sizeof msg)) goto step_fail;
    if (read_one(m, m->loss, &loss) != DC_OK) goto read_fail;
    for (int r_ = 0; r_ < o->repeats; r_++) {
        const double t0 = now_s();
        for (int i = 0; i < o->steps; i++)
            if (train_step(m, opt, &b, dc_seed_mix(7, ++step), msg, sizeof msg)) goto step_fail;
        if (read_one(m, m->loss, &loss) != DC_OK) goto read_fail;
        tt[r_] = (double)o->steps * batch / (now_s() - t0);
    }
    if (!isfinite(loss)) {
        dc_cli_fail("bench", "%s on %s: the loss became %g", model, device, (double)loss);
        goto done;
    }
    /* ---- inference ---- */
    dc_graph_set_train(g, 0);
    float probe;
    for (int i = 0; i < (o->infer ? o->warmup : 0); i++)
        if (infer_step(m, &b, dc_seed_mix(9, ++step), msg, sizeof msg)) goto step_fail;
    if (read_one(m, m->out, &probe) != DC_OK) goto read_fail;
    for (int r_ = 0; r_ < (o->infer ? o->repeats : 0); r_++) {
        const double t0 = now_s();
        for (int i = 0; i < o->steps; i++)
            if (infer_step(m, &b, dc_seed_mix(9, ++step), msg, sizeof msg)) goto step_fail;
        /* a one-element blocking read: waits for the queue on asynchronous backends */
        if (read_one(m, m->out, &probe) != DC_OK) goto read_fail;
        ti[r_] = (double)o->steps * batch / (now_s() - t0);
    }
    /* memory before the GEMM measurement allocates its own buffers */
    const double rss = peak_rss_mb();
    const double dev_peak = be->bytes_peak / 1e6;
    /* ---- FLOPs and the GEMM rate on the step's own products ---- */
    const double fwd = dc_graph_forward_flops(g), step_flops = 3.0 * fwd;
    const double gemm_flops = collect_gemms(g, &gl);
    double sgemm = NAN;
    if (o->gemm && measure_gemms(be, &gl, o->gemm_seconds, &sgemm, msg, sizeof msg) != DC_OK) {
        dc_cli_fail("bench", "%s on %s: %s", model, device, msg);
        goto done;
    }
    cJSON *prof = NULL;
    if (o->profile) {
        dc_graph_set_train(g, 1);
        char label[600];
        snprintf(label, sizeof label, "%s on %s", model, device);
        if (!(prof = profile_steps(m, opt, &b, o->profile, o->trace, label, msg, sizeof msg))) goto step_fail;
    }
    const double train_ips = median(tt, o->repeats), infer_ips = o->infer ? median(ti, o->repeats) : NAN;
    const double step_s = batch / train_ips, step_gflops = step_flops / step_s / 1e9;
    size_t nparams = 0;
    for (int i = 0; i < dc_params_count(m->params); i++) {
        const dc_param *q = dc_params_get(m->params, i);
        if (q->trainable) nparams += q->numel;
    }

    r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "device", device);
    cJSON_AddStringToObject(r, "backend", dc_backend_name(be));
    cJSON_AddStringToObject(r, "device_name", dc_backend_device(be));
    cJSON_AddNumberToObject(r, "threads", is_cpu ? (o->threads > 0 ? o->threads : omp_get_max_threads()) : 0);
    cJSON_AddStringToObject(r, "model", model);
    cJSON_AddNumberToObject(r, "batch", batch);
    cJSON_AddNumberToObject(r, "size", spec.size);
    cJSON_AddNumberToObject(r, "params", (double)nparams);
    cJSON_AddNumberToObject(r, "warmup", o->warmup);
    cJSON_AddNumberToObject(r, "repeats", o->repeats);
    cJSON_AddNumberToObject(r, "steps", o->steps);
    cJSON_AddNumberToObject(r, "train_ips", train_ips);
    cJSON_AddItemToObject(r, "train_ips_runs", json_doubles(tt, o->repeats));
    cJSON_AddNumberToObject(r, "infer_ips", infer_ips);
    cJSON_AddItemToObject(r, "infer_ips_runs", json_doubles(ti, o->repeats));
    cJSON_AddNumberToObject(r, "step_ms", step_s * 1e3);
    cJSON_AddNumberToObject(r, "forward_flops", fwd);
    cJSON_AddNumberToObject(r, "step_flops", step_flops);
    cJSON_AddStringToObject(r, "step_flops_rule", "3 x dc_graph_forward_flops");
    cJSON_AddNumberToObject(r, "step_gemm_flops", gemm_flops);
    cJSON_AddNumberToObject(r, "step_gflops", step_gflops);
    cJSON_AddNumberToObject(r, "sgemm_gflops", sgemm);
    cJSON_AddNumberToObject(r, "ratio_to_sgemm", step_gflops / sgemm);
    cJSON_AddNumberToObject(r, "peak_rss_mb", rss);
    cJSON_AddNumberToObject(r, "device_peak_mb", dev_peak);
    cJSON_AddNumberToObject(r, "loss", loss);
    cJSON *load = cJSON_AddArrayToObject(r, "loadavg_1min");
    cJSON_AddItemToArray(load, cJSON_CreateNumber(load_start));
    cJSON_AddItemToArray(load, cJSON_CreateNumber(loadavg1()));
    if (prof) cJSON_AddItemToObject(r, "profile", prof);
    cJSON *shapes = cJSON_AddArrayToObject(r, "gemm_products");
    for (int i = 0; i < gl.n; i++) {
        const gemm_shape *q = &gl.v[i];
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "node", q->node);
        cJSON_AddStringToObject(s, "role", q->role);
        cJSON_AddNumberToObject(s, "trans_a", q->ta);
        cJSON_AddNumberToObject(s, "trans_b", q->tb);
        cJSON_AddNumberToObject(s, "M", q->m);
        cJSON_AddNumberToObject(s, "N", q->n);
        cJSON_AddNumberToObject(s, "K", q->k);
        cJSON_AddNumberToObject(s, "beta", q->beta);
        cJSON_AddNumberToObject(s, "calls_per_step", q->count);
        cJSON_AddNumberToObject(s, "ms", q->seconds * 1e3);
        cJSON_AddNumberToObject(s, "gflops", q->gflops);
        cJSON_AddItemToArray(shapes, s);
    }
    char *text = cJSON_PrintUnformatted(r);
    if (text) {
        printf("%s%s\n", BENCH_RESULT_TAG, text);
        fflush(stdout);
        free(text);
        rc = 0;
    }
    goto done;
step_fail:
    dc_cli_fail("bench", "%s on %s: %s", model, device, msg);
    goto done;
read_fail:
    dc_cli_fail("bench", "%s on %s: read: %s", model, device, be->err.msg);
done:
    cJSON_Delete(r);
    free(gl.v);
    free(tt);
    free(ti);
    dc_batch_free(&b);
    dc_optim_free(opt);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}

/* The start-up probe: everything `deconv train` does before its first step, then the first
 * step itself, on one device. Prints the CLOCK_MONOTONIC times (comparable across
 * processes on Linux) at which it was ready and at which the first step had finished. */
static int run_startup_probe(const bench_opts *o, const char *device, const char *model) {
    const double t_enter = now_s();
    dc_error err = {0};
    dc_model_spec spec;
    int batch;
    dc_backend *be;
    if (bench_open(o, device, model, &spec, &batch, &be)) return 1;
    const double t_backend = now_s();
    dc_model *m = NULL;
    dc_optim *opt = NULL;
    dc_batch b = {0};
    char msg[1200] = "";
    int rc = 1;
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    dc_optim_config oc;
    dc_optim_config_default(&oc, DC_OPTIM_ADAM);
    if (dc_model_create_training(be, &spec, batch, &m, &err) != DC_OK || dc_params_init(m->params, &rng) != DC_OK ||
        dc_optim_create(m->params, &oc, &opt) != DC_OK || dc_batch_alloc(m, &b, &err) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", err.msg[0] ? err.msg : be->err.msg);
        goto done;
    }
    fill_random_batch(m, &b, 1234);
    dc_graph_set_train(m->g, 1);
    float loss;
    const double t_ready = now_s();
    if (train_step(m, opt, &b, 1, msg, sizeof msg) || read_one(m, m->loss, &loss) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", msg);
        goto done;
    }
    const double t_step1 = now_s();
    if (train_step(m, opt, &b, 2, msg, sizeof msg) || read_one(m, m->loss, &loss) != DC_OK) {
        dc_cli_fail("bench", "start-up probe: %s", msg);
        goto done;
    }
    const double t_step2 = now_s();
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "t_enter", t_enter);
    cJSON_AddNumberToObject(r, "t_backend", t_backend);
    cJSON_AddNumberToObject(r, "t_ready", t_ready);
    cJSON_AddNumberToObject(r, "t_step1", t_step1);
    cJSON_AddNumberToObject(r, "t_step2", t_step2);
#ifdef DECONV_HAVE_OPENCL
    cJSON_AddNumberToObject(r, "program_s", dc_cl_program_seconds(be));
    cJSON_AddBoolToObject(r, "program_from_cache", dc_cl_program_from_cache(be));
    cJSON_AddStringToObject(r, "cache_file", dc_cl_cache_file(be));
#endif
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    if (text) {
        printf("%s%s\n", BENCH_RESULT_TAG, text);
        fflush(stdout);
        free(text);
        rc = 0;
    }
done:
    dc_batch_free(&b);
    dc_optim_free(opt);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}

/* --------------------------------------------------------------- the parent */
/* Runs this binary with `args` (NULL-terminated, after "bench"), environment `env` (NULL:
 * ours), and returns the parsed result object it printed, or NULL. *t_spawn gets the
 * monotonic time just before the spawn. */
static cJSON *spawn_child(char *const *args, char **env, double *t_spawn) {
    char *argv[48];
    int n = 0;
    argv[n++] = (char *)"deconv";
    argv[n++] = (char *)"bench";
    for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int fd[2];
    if (pipe(fd) != 0) return NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    const double t0 = now_s();
    int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env ? env : environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (t_spawn) *t_spawn = t0;
    if (e != 0) {
        close(fd[0]);
        fprintf(stderr, "deconv bench: cannot start a child: %s\n", strerror(e));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t got;
    while (out && (got = read(fd[0], out + len, cap - 1 - len)) > 0) {
        len += (size_t)got;
        if (len + 1 >= cap) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger, cap *= 2;
        }
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    cJSON *r = NULL;
    if (out) {
        out[len] = 0;
        char *tag = strstr(out, BENCH_RESULT_TAG);
        if (tag && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            r = cJSON_Parse(tag + strlen(BENCH_RESULT_TAG));
        free(out);
    }
    return r;
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Our environment with XDG_CACHE_HOME=dir and without DECONV_CACHE_DIR (which would win). */
static char **env_with_cache(const char *dir, char *slot, size_t cap) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "XDG_CACHE_HOME=", 15) && strncmp(environ[i], "DECONV_CACHE_DIR=", 17))
            env[j++] = environ[i];
    snprintf(slot, cap, "XDG_CACHE_HOME=%s", dir);
    env[j++] = slot;
    env[j] = NULL;
    return env;
}

static void remove_tree(const char *dir) {
    /* the probe's cache: XDG/deconv/<hash>.clbin, nothing deeper */
    char sub[1200], cmd[2600];
    snprintf(sub, sizeof sub, "%s/deconv", dir);
    struct stat st;
    if (stat(sub, &st) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "deconv bench: could not remove %s\n", dir);
        return;
    }
    rmdir(dir);
}

/* Cold start (empty cache folder), then warm start (the same folder). */
static cJSON *startup_bench(const bench_opts *o, const char *device) {
    char tmpl[] = "/tmp/deconv-bench-cache-XXXXXX";
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "deconv bench: mkdtemp: %s\n", strerror(errno));
        return NULL;
    }
    char slot[1100];
    char **env = env_with_cache(tmpl, slot, sizeof slot);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "device", device);
    cJSON_AddStringToObject(res, "model", o->startup_model);
    cJSON_AddStringToObject(res, "measured_from", "before the child process is spawned");
    const char *names[2] = {"first_start", "second_start"};
    for (int run = 0; run < 2 && env; run++) {
        char *args[] = {(char *)"--startup-probe", (char *)"--device", (char *)device,
                        (char *)"--model", (char *)o->startup_model, NULL};
        double t0 = 0;
        cJSON *r = spawn_child(args, env, &t0);
        if (!r) {
            fprintf(stderr, "deconv bench: the start-up probe on %s failed\n", device);
            break;
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "to_main_s", jnum(r, "t_enter") - t0);
        cJSON_AddNumberToObject(s, "to_backend_s", jnum(r, "t_backend") - t0);
        cJSON_AddNumberToObject(s, "to_ready_s", jnum(r, "t_ready") - t0);
        cJSON_AddNumberToObject(s, "to_first_step_done_s", jnum(r, "t_step1") - t0);
        cJSON_AddNumberToObject(s, "first_step_s", jnum(r, "t_step1") - jnum(r, "t_ready"));
        cJSON_AddNumberToObject(s, "second_step_s", jnum(r, "t_step2") - jnum(r, "t_step1"));
        cJSON_AddNumberToObject(s, "program_s", jnum(r, "program_s"));
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(r, "program_from_cache");
        cJSON_AddBoolToObject(s, "program_from_cache", cJSON_IsTrue(fc));
        cJSON_AddItemToObject(res, names[run], s);
        cJSON_Delete(r);
    }
    free(env);
    remove_tree(tmpl);
    return res;
}

static void machine_info(cJSON *root) {
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    if (f) fclose(f);
    cJSON_AddStringToObject(root, "cpu", model);
    cJSON_AddNumberToObject(root, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
}

static void print_table(const cJSON *results, const cJSON *startups) {
    printf("\n%-8s %-10s %5s %11s %11s %9s %8s %8s %6s %8s %8s\n", "device", "model", "batch",
           "train img/s", "infer img/s", "step GFLOP", "GFLOP/s", "SGEMM/s", "ratio", "RSS MB",
           "dev MB");
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
        const cJSON *mod = cJSON_GetObjectItemCaseSensitive(r, "model");
        const cJSON *errv = cJSON_GetObjectItemCaseSensitive(r, "error");
        if (cJSON_IsString(errv)) {
            printf("%-8s %-10s  failed: %s\n", dev->valuestring, mod->valuestring, errv->valuestring);
            continue;
        }
        printf("%-8s %-10s %5.0f %11.1f %11.1f %9.2f %8.1f %8.1f %6.2f %8.0f %8.0f\n",
               dev->valuestring, mod->valuestring, jnum(r, "batch"), jnum(r, "train_ips"),
               jnum(r, "infer_ips"), jnum(r, "step_flops") / 1e9, jnum(r, "step_gflops"),
               jnum(r, "sgemm_gflops"), jnum(r, "ratio_to_sgemm"), jnum(r, "peak_rss_mb"),
               jnum(r, "device_peak_mb"));
    }
    printf("step GFLOP = 3 x forward FLOPs of the graph; GFLOP/s = step GFLOP / median step time;\n"
           "SGEMM/s = the backend's gemm on the step's own conv/dense products (same chunking);\n"
           "ratio = GFLOP/s / SGEMM/s; RSS = peak resident memory of the process (getrusage);\n"
           "dev MB = peak bytes allocated through the backend.\n");
    cJSON_ArrayForEach(r, startups) {
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
        if (!cJSON_GetObjectItemCaseSensitive(r, "first_start")) {
            printf("\nstart-up on %s: the probe failed\n", dev->valuestring);
            continue;
        }
        printf("\nstart-up on %s (%s model, from spawn):\n", dev->valuestring,
               cJSON_GetObjectItemCaseSensitive(r, "model")->valuestring);
        const char *names[2] = {"first_start", "second_start"};
        for (int i = 0; i < 2; i++) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, names[i]);
            if (!s) continue;
            printf("  %-13s ready %.3f s (program %.3f s, %s), first step done %.3f s "
                   "(first step %.3f s, next step %.3f s)\n",
                   i ? "second start" : "first start", jnum(s, "to_ready_s"), jnum(s, "program_s"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "program_from_cache"))
                       ? "from cache"
                       : "compiled",
                   jnum(s, "to_first_step_done_s"), jnum(s, "first_step_s"), jnum(s, "second_step_s"));
        }
    }
}

static void usage(void) {
    printf("usage: deconv bench [options]\n"
           "Training and inference images/s of the model presets (complete, vae, glo at 64x64\n"
           "batch 64, glo with 1024 latents; classifier 28x28 batch 128), median of repeated\n"
           "timed runs after warm-up, with FLOPs, achieved GFLOP/s, the backend's GEMM rate on\n"
           "the step's own products, peak memory, and the OpenCL start-up time.\n\n"
           "  --device LIST     cpu, opencl, opencl:P:D, comma-separated (cpu)\n"
           "  --models LIST     %s (all)\n"
           "  --warmup N        untimed steps first (3)\n"
           "  --repeats N       timed runs; the median is reported (5)\n"
           "  --steps N         steps per timed run (5)\n"
           "  --threads N       CPU backend threads (all cores)\n"
           "  --batch N         override the presets' batch sizes\n"
           "  --gemm-seconds S  measuring time per distinct GEMM shape (0.2)\n"
           "  --no-gemm         skip the GEMM measurement\n"
           "  --profile N       also time every backend primitive over N more training steps\n"
           "  --trace           with --profile: print every primitive call of one step first\n"
           "  --no-infer        skip the inference timing (e.g. to profile training alone)\n"
           "  --startup         measure the start-up time on every device (default: OpenCL ones)\n"
           "  --no-startup      never measure it\n"
           "  --startup-model M model of the start-up probe (complete)\n"
           "  --json FILE       write every figure as JSON\n"
           "  --single          run one --device and one --models in this process and print its\n"
           "                    result as one JSON line (what the parent spawns; handy under perf)\n",
           BENCH_ALL_MODELS);
}

int dc_cmd_bench(int argc, char **argv) {
    static const char *const flags[] = {"help", "no-gemm", "no-infer", "startup", "no-startup",
                                        "single", "startup-probe", "trace", NULL};
    dc_args a;
    if (dc_args_parse(&a, "bench", argc, argv, flags)) return 2;
    if (dc_args_flag(&a, "help")) {
        usage();
        return 0;
    }
    bench_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.devices, sizeof o.devices, "%s", dc_args_str(&a, "device", "cpu"));
    snprintf(o.models, sizeof o.models, "%s", dc_args_str(&a, "models", dc_args_str(&a, "model", BENCH_ALL_MODELS)));
    o.warmup = dc_args_int(&a, "warmup", 3);
    o.repeats = dc_args_int(&a, "repeats", 5);
    o.steps = dc_args_int(&a, "steps", 5);
    o.threads = dc_args_int(&a, "threads", 0);
    o.batch = dc_args_int(&a, "batch", 0);
    o.gemm_seconds = dc_args_float(&a, "gemm-seconds", 0.2f);
    o.gemm = !dc_args_flag(&a, "no-gemm");
    o.infer = !dc_args_flag(&a, "no-infer");
    o.profile = dc_args_int(&a, "profile", 0);
    o.trace = dc_args_flag(&a, "trace");
    o.startup = dc_args_flag(&a, "no-startup") ? 0 : dc_args_flag(&a, "startup") ? 1 : -1;
    snprintf(o.startup_model, sizeof o.startup_model, "%s", dc_args_str(&a, "startup-model", "complete"));
    snprintf(o.json, sizeof o.json, "%s", dc_args_str(&a, "json", ""));
    const int single = dc_args_flag(&a, "single"), probe = dc_args_flag(&a, "startup-probe");
    if (dc_args_check_unused(&a)) return 2;
    if (o.warmup < 0 || o.repeats < 1 || o.steps < 1 || o.repeats > 1000 || o.batch < 0 ||
        !(o.gemm_seconds >= 0)) {
        fprintf(stderr, "deconv bench: --warmup >= 0, --repeats in [1, 1000], --steps >= 1, "
                        "--batch >= 0, --gemm-seconds >= 0\n");
        return 2;
    }
    if (single || probe) {
        if (strchr(o.devices, ',') || strchr(o.models, ','))
            return dc_cli_fail("bench", "--single and --startup-probe take one --device and one --models");
        return probe ? run_startup_probe(&o, o.devices, o.models) : run_single(&o, o.devices, o.models);
    }

    /* ---- the parent: one child per (device, model) ---- */
    {
        char mods[256];
        snprintf(mods, sizeof mods, "%s", o.models);
        for (char *save = NULL, *mod = strtok_r(mods, ",", &save); mod; mod = strtok_r(NULL, ",", &save)) {
            dc_model_spec spec;
            int batch;
            dc_error err = {0};
            if (bench_preset(mod, o.batch, &spec, &batch, &err)) {
                fprintf(stderr, "deconv bench: --models: %s\n", err.msg);
                return 2;
            }
        }
    }
    char threads[16], warmup[16], repeats[16], steps[16], batch[16], gsec[32];
    snprintf(threads, sizeof threads, "%d", o.threads);
    snprintf(warmup, sizeof warmup, "%d", o.warmup);
    snprintf(repeats, sizeof repeats, "%d", o.repeats);
    snprintf(steps, sizeof steps, "%d", o.steps);
    snprintf(batch, sizeof batch, "%d", o.batch);
    snprintf(gsec, sizeof gsec, "%g", o.gemm_seconds);
    cJSON *root = cJSON_CreateObject();
    machine_info(root);
    cJSON_AddNumberToObject(root, "loadavg_start", loadavg1());
    {
        time_t t = time(NULL);
        char date[64];
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", localtime(&t));
        cJSON_AddStringToObject(root, "date", date);
    }
    cJSON_AddStringToObject(root, "version", DECONV_VERSION);
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    cJSON *startups = cJSON_AddArrayToObject(root, "startup");
    int failures = 0;
    char devs[256];
    snprintf(devs, sizeof devs, "%s", o.devices);
    for (char *dsave = NULL, *dev = strtok_r(devs, ",", &dsave); dev; dev = strtok_r(NULL, ",", &dsave)) {
        char mods[256];
        snprintf(mods, sizeof mods, "%s", o.models);
        for (char *msave = NULL, *mod = strtok_r(mods, ",", &msave); mod; mod = strtok_r(NULL, ",", &msave)) {
            fprintf(stderr, "deconv bench: %s on %s ...\n", mod, dev);
            char *args[24];
            int n = 0;
            args[n++] = (char *)"--single";
            args[n++] = (char *)"--device", args[n++] = dev;
            args[n++] = (char *)"--models", args[n++] = mod;
            args[n++] = (char *)"--threads", args[n++] = threads;
            args[n++] = (char *)"--warmup", args[n++] = warmup;
            args[n++] = (char *)"--repeats", args[n++] = repeats;
            args[n++] = (char *)"--steps", args[n++] = steps;
            args[n++] = (char *)"--batch", args[n++] = batch;
            args[n++] = (char *)"--gemm-seconds", args[n++] = gsec;
            if (!o.gemm) args[n++] = (char *)"--no-gemm";
            if (!o.infer) args[n++] = (char *)"--no-infer";
            char prof_steps[16];
            snprintf(prof_steps, sizeof prof_steps, "%d", o.profile);
            if (o.profile > 0) args[n++] = (char *)"--profile", args[n++] = prof_steps;
            if (o.trace) args[n++] = (char *)"--trace";
            args[n] = NULL;
            cJSON *r = spawn_child(args, NULL, NULL);
            if (!r) {
                failures++;
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "device", dev);
                cJSON_AddStringToObject(r, "model", mod);
                cJSON_AddStringToObject(r, "error", "the benchmark child failed (see above)");
            } else {
                fprintf(stderr, "deconv bench: %s on %s: train %.1f img/s, inference %.1f img/s\n",
                        mod, dev, jnum(r, "train_ips"), jnum(r, "infer_ips"));
            }
            cJSON_AddItemToArray(results, r);
        }
        const int is_cl = !strncmp(dev, "opencl", 6);
        if (o.startup == 1 || (o.startup == -1 && is_cl)) {
            fprintf(stderr, "deconv bench: start-up time on %s ...\n", dev);
            cJSON *s = startup_bench(&o, dev);
            if (s) cJSON_AddItemToArray(startups, s);
        }
    }
    cJSON_AddNumberToObject(root, "loadavg_end", loadavg1());
    print_table(results, startups);
    printf("load average (1 min): %.2f at the start, %.2f at the end\n", jnum(root, "loadavg_start"),
           jnum(root, "loadavg_end"));
    int rc = failures ? 1 : 0;
    if (o.json[0]) {
        char *text = cJSON_Print(root);
        FILE *f = text ? fopen(o.json, "w") : NULL;
        if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) {
            dc_cli_fail("bench", "cannot write --json %s: %s", o.json, strerror(errno));
            rc = 1;
        }
        if (f && fclose(f) != 0) rc = 1;
        free(text);
    }
    cJSON_Delete(root);
    return rc;
}
