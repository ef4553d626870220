/* deconv bench: small helpers, the presets, the timed training and inference steps, and
 * the GEMM products of a step with their measured rate. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/bench.h"
#include "deconv/complete.h"

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(const double *v, int n) {
    if (n <= 0) return NAN;
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s) return NAN;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    const double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

double bench_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

double bench_loadavg1(void) {
    double l = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = NAN;
        fclose(f);
    }
    return l;
}

cJSON *bench_json_doubles(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* ------------------------------------------------------------------ presets */
/* The benchmark's fixed configurations: the presets' defaults at their usual sizes (the
 * diffusion U-Net at Fashion-MNIST's 32x32, as bench/torch_twin.py builds it). */
int bench_preset(const char *model, int batch_override, dc_model_spec *spec, int *batch,
                        dc_error *err) {
    const int cls = !strcmp(model, "classifier");
    const int size = cls ? 28 : !strcmp(model, "diffusion") ? 32 : 64;
    /* complete-default: the completion model as `deconv train --model complete` builds it
     * (U-Net skips, two unrolled passes per step): what a training run costs; the PyTorch
     * twin has no such model */
    const int as_trained = !strcmp(model, BENCH_COMPLETE_DEFAULT);
    if (dc_model_spec_default(spec, as_trained ? "complete" : model, 1, size, err) != DC_OK)
        return -1;
    if (!strcmp(model, "glo")) spec->glo_count = 1024;
    /* complete: the design bench/torch_twin.py rebuilds (no skips, one pass per step, no
     * self-feedback passes) */
    if (!strcmp(model, "complete")) spec->skips = 0, spec->unroll = 1, spec->feedback = 0.0f;
    *batch = batch_override > 0 ? batch_override : (cls ? 128 : 64);
    return dc_model_spec_check(spec, err) == DC_OK ? 0 : -1;
}

/* A fixed random batch shaped like the training data: images in [-1, 1], the preset's mask
 * and loss weights, labels and latent indices drawn uniformly. */
void bench_fill_random_batch(const dc_model *m, dc_batch *b, uint64_t seed) {
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
        b->t[slot] = dc_rng_uniform(&rng); /* diffusion: the noise level */
    }
}

/* One training step exactly as `deconv train` runs it. */
dc_status bench_train_step(dc_model *m, dc_optim *opt, const dc_batch *b, uint64_t seed,
                            char *msg, size_t cap) {
    dc_error err = {0};
    dc_status s;
    if ((s = dc_model_set_batch(m, b, &err))) {
        snprintf(msg, cap, "set batch: %s", err.msg);
        return s;
    }
    dc_graph_set_seed(m->g, seed);
    /* complete-default: train's self-feedback passes (on the device) */
    if ((s = dc_complete_self_feedback(m, b->mask, seed, &err))) {
        snprintf(msg, cap, "self-feedback: %s", err.msg);
        return s;
    }
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
dc_status bench_read_one(dc_model *m, int node, float *v) {
    dc_tensor t = dc_graph_value(m->g, node);
    dc_ptr p = {t.buf, t.off};
    return DC_BE(m->be, read, p, v, sizeof *v);
}

dc_status bench_infer_step(dc_model *m, const dc_batch *b, uint64_t seed, char *msg, size_t cap) {
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

/* dc_graph_gemm_plan's visitor: one product, merged by node name. */
typedef struct gemm_plan_ctx {
    const dc_graph *g;
    gemm_list *l;
} gemm_plan_ctx;

static void gemm_visit(void *ctx, int node, const char *role, int ta, int tb, int m, int n, int k,
                       float beta, int count) {
    const gemm_plan_ctx *c = ctx;
    dc_node_info info;
    const char *name = dc_graph_node_info(c->g, node, &info) == DC_OK ? info.name : "?";
    gemm_add(c->l, name, role, ta, tb, m, n, k, beta, count);
}

/* The GEMM calls of one training step, as the graph plans them (conv, transposed-conv and
 * dense nodes, chunked as the ops chunk). Returns their total FLOPs (multiply-add = 2). */
double bench_collect_gemms(dc_graph *g, gemm_list *l) {
    gemm_plan_ctx c = {g, l};
    dc_graph_gemm_plan(g, gemm_visit, &c);
    double f = 0;
    for (int i = 0; i < l->n; i++) f += 2.0 * l->v[i].m * (double)l->v[i].n * l->v[i].k * l->v[i].count;
    return f;
}

/* Times every distinct product with the backend's gemm primitive (median of repeated
 * calls, each waited for). Returns the step's GEMM rate: total FLOPs / total time. */
dc_status bench_measure_gemms(dc_backend *be, gemm_list *l, double min_seconds, double *rate,
                               char *msg, size_t cap) {
    size_t na = 1, nb = 1, nc = 1;
    for (int i = 0; i < l->n; i++) {
        const gemm_shape *q = &l->v[i];
        const size_t a = (size_t)q->m * q->k, b = (size_t)q->k * q->n, c = (size_t)q->m * q->n;
        na = a > na ? a : na, nb = b > nb ? b : nb, nc = c > nc ? c : nc;
    }
    dc_buffer *A = NULL, *Bf = NULL, *C = NULL;
    dc_status s = DC_OK;
    if ((s = DC_BE(be, alloc, na * 4, &A)) || (s = DC_BE(be, alloc, nb * 4, &Bf)) ||
        (s = DC_BE(be, alloc, nc * 4, &C))) {
        snprintf(msg, cap, "gemm buffers: %s", be->err.msg);
        goto done;
    }
    dc_ptr pa = {A, 0}, pb = {Bf, 0}, pc = {C, 0};
    if ((s = DC_BE(be, fill, pa, na, 0.01f)) || (s = DC_BE(be, fill, pb, nb, 0.01f)) ||
        (s = DC_BE(be, fill, pc, nc, 0.0f)) || (s = DC_BE(be, sync)))
        goto fail;
    double flops = 0, seconds = 0;
    for (int i = 0; i < l->n; i++) {
        gemm_shape *q = &l->v[i];
        const int lda = q->ta ? q->m : q->k, ldb = q->tb ? q->k : q->n, ldc = q->n;
        /* one untimed call: lazy kernel compilation (CLBlast), page faults */
        if ((s = DC_BE(be, gemm, q->ta, q->tb, q->m, q->n, q->k, 1.0f, pa, lda, pb, ldb, q->beta,
                               pc, ldc)) ||
            (s = DC_BE(be, sync)))
            goto fail;
        double t[64];
        int n = 0;
        const double t_start = bench_now_s();
        while (n < 64 && (n < 3 || bench_now_s() - t_start < min_seconds)) {
            const double t0 = bench_now_s();
            if ((s = DC_BE(be, gemm, q->ta, q->tb, q->m, q->n, q->k, 1.0f, pa, lda, pb, ldb,
                                   q->beta, pc, ldc)) ||
                (s = DC_BE(be, sync)))
                goto fail;
            t[n++] = bench_now_s() - t0;
        }
        q->seconds = bench_median(t, n);
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
    if (A) DC_BE(be, free, A);
    if (Bf) DC_BE(be, free, Bf);
    if (C) DC_BE(be, free, C);
    return s;
}
