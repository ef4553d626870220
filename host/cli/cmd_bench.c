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

#include "backend/cl/backend_cl.h"
#include "cli/cli.h"
#include "deconv/backend.h"
#include "deconv/model.h"
#include "internal.h"

extern char **environ;

#define BENCH_RESULT_TAG "deconv-bench-result "
#define BENCH_ALL_MODELS "complete,vae,glo,classifier,diffusion"

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
/* The benchmark's fixed configurations: the presets' defaults at their usual sizes (the
 * diffusion U-Net at Fashion-MNIST's 32x32, as bench/torch_twin.py builds it). */
static int bench_preset(const char *model, int batch_override, dc_model_spec *spec, int *batch,
                        dc_error *err) {
    const int cls = !strcmp(model, "classifier");
    const int size = cls ? 28 : !strcmp(model, "diffusion") ? 32 : 64;
    if (dc_model_spec_default(spec, model, 1, size, err) != DC_OK) return -1;
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
        b->t[slot] = dc_rng_uniform(&rng); /* diffusion: the noise level */
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
    return DC_BE(m->be, read, p, v, sizeof *v);
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
static double collect_gemms(dc_graph *g, gemm_list *l) {
    gemm_plan_ctx c = {g, l};
    dc_graph_gemm_plan(g, gemm_visit, &c);
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
        const double t_start = now_s();
        while (n < 64 && (n < 3 || now_s() - t_start < min_seconds)) {
            const double t0 = now_s();
            if ((s = DC_BE(be, gemm, q->ta, q->tb, q->m, q->n, q->k, 1.0f, pa, lda, pb, ldb,
                                   q->beta, pc, ldc)) ||
                (s = DC_BE(be, sync)))
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
    if (A) DC_BE(be, free, A);
    if (Bf) DC_BE(be, free, Bf);
    if (C) DC_BE(be, free, C);
    return s;
}


/* ------------------------------------------------- per-primitive profile
 * `--profile`: after the timed runs, the library's profiling wrapper
 * (dc_backend_profile_start) times every primitive call (waiting for the device after each),
 * so a few more training steps give the time per primitive. */

static int cmp_profile_time(const void *a, const void *b) {
    const double x = ((const dc_prim_profile *)a)->seconds, y = ((const dc_prim_profile *)b)->seconds;
    return x > y ? -1 : x < y;
}

/* The GPU the OpenCL budget is priced on: NVIDIA H200 SXM as published in NVIDIA's H200
 * datasheet (nvidia.com/en-us/data-center/h200): FP32 (non-tensor) 67 TFLOP/s, HBM3e
 * 4.8 TB/s. The launch cost is an assumption (a few microseconds per kernel in an in-order
 * queue the host never waits on), not a published figure. */
#define ROOFLINE_GPU "NVIDIA H200 SXM"
#define ROOFLINE_FLOPS 67e12
#define ROOFLINE_BYTES_PER_S 4.8e12
#define ROOFLINE_LAUNCH_S 5e-6

/* An OpenCL backend's budget of one training step (launches, device traffic, FLOPs,
 * transfers), counted where the backend enqueues, and its roofline time on ROOFLINE_GPU
 * next to the measured step time; prints to stderr and returns JSON (NULL: not OpenCL). */
static cJSON *step_budget(dc_model *m, dc_optim *opt, const dc_batch *b, int batch,
                          double measured_ms, const char *label, char *msg, size_t cap) {
    dc_cl_budget b0, b1;
    if (!dc_cl_budget_get(m->be, &b0)) return NULL;
    if (train_step(m, opt, b, dc_seed_mix(17, 1), msg, cap)) return NULL;
    dc_cl_budget_get(m->be, &b1);
    const double kernels = b1.kernels - b0.kernels, gemms = b1.gemm_calls - b0.gemm_calls,
                 copies = b1.copies - b0.copies, launches = kernels + gemms + copies;
    const double rd = b1.read_bytes - b0.read_bytes, wr = b1.write_bytes - b0.write_bytes;
    const double flops = b1.flops - b0.flops;
    const double t_flop = flops / ROOFLINE_FLOPS, t_mem = (rd + wr) / ROOFLINE_BYTES_PER_S;
    const double t_launch = launches * ROOFLINE_LAUNCH_S;
    const double t_est = (t_flop > t_mem ? t_flop : t_mem) + t_launch;
    fprintf(stderr,
            "budget of %s, one training step (counted where the backend enqueues):\n"
            "  launches %.0f = %.0f kernels + %.0f CLBlast GEMM calls + %.0f buffer copies\n"
            "  host<->device transfers: %.0f writes (%.2f MB), %.0f reads (%.2f MB); the host "
            "waits %.0f times\n"
            "  device memory: %.3f GB read, %.3f GB written; GEMM work %.2f GFLOP\n"
            "  roofline on %s (FP32 %.0f TFLOP/s, %.1f TB/s, NVIDIA's datasheet; %.0f us per "
            "launch assumed):\n"
            "    compute %.3f ms, memory %.3f ms, launches %.3f ms -> %.3f ms per step (%.0f "
            "img/s)\n"
            "  measured here (%s): %.1f ms per step (median of the timed runs)\n",
            label, launches, kernels, gemms, copies, b1.h2d - b0.h2d,
            (b1.h2d_bytes - b0.h2d_bytes) / 1e6, b1.d2h - b0.d2h, (b1.d2h_bytes - b0.d2h_bytes) / 1e6,
            b1.host_waits - b0.host_waits, rd / 1e9, wr / 1e9, flops / 1e9, ROOFLINE_GPU,
            ROOFLINE_FLOPS / 1e12, ROOFLINE_BYTES_PER_S / 1e12, ROOFLINE_LAUNCH_S * 1e6,
            t_flop * 1e3, t_mem * 1e3, t_launch * 1e3, t_est * 1e3, batch / t_est,
            dc_backend_device(m->be), measured_ms);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "launches", launches);
    cJSON_AddNumberToObject(r, "kernels", kernels);
    cJSON_AddNumberToObject(r, "clblast_gemm_calls", gemms);
    cJSON_AddNumberToObject(r, "copies", copies);
    cJSON_AddNumberToObject(r, "h2d_transfers", b1.h2d - b0.h2d);
    cJSON_AddNumberToObject(r, "h2d_bytes", b1.h2d_bytes - b0.h2d_bytes);
    cJSON_AddNumberToObject(r, "d2h_transfers", b1.d2h - b0.d2h);
    cJSON_AddNumberToObject(r, "d2h_bytes", b1.d2h_bytes - b0.d2h_bytes);
    cJSON_AddNumberToObject(r, "host_waits", b1.host_waits - b0.host_waits);
    cJSON_AddNumberToObject(r, "device_read_bytes", rd);
    cJSON_AddNumberToObject(r, "device_write_bytes", wr);
    cJSON_AddNumberToObject(r, "gemm_flops", flops);
    cJSON *roof = cJSON_AddObjectToObject(r, "roofline");
    cJSON_AddStringToObject(roof, "gpu", ROOFLINE_GPU);
    cJSON_AddNumberToObject(roof, "peak_flops", ROOFLINE_FLOPS);
    cJSON_AddNumberToObject(roof, "bytes_per_s", ROOFLINE_BYTES_PER_S);
    cJSON_AddNumberToObject(roof, "launch_s_assumed", ROOFLINE_LAUNCH_S);
    cJSON_AddNumberToObject(roof, "compute_ms", t_flop * 1e3);
    cJSON_AddNumberToObject(roof, "memory_ms", t_mem * 1e3);
    cJSON_AddNumberToObject(roof, "launch_ms", t_launch * 1e3);
    cJSON_AddNumberToObject(roof, "step_ms", t_est * 1e3);
    cJSON_AddNumberToObject(r, "measured_step_ms", measured_ms);
    return r;
}

/* Profile `steps` training steps; returns a JSON object and prints a table to stderr. */
static cJSON *profile_steps(dc_model *m, dc_optim *opt, const dc_batch *b, int steps, int trace,
                            const char *label, char *msg, size_t cap) {
    dc_backend *be = m->be;
    float loss;
    if (trace) {
        /* one traced step first (its times are not counted) */
        fprintf(stderr, "trace of one training step of %s (primitive, size: FLOPs or elements, time):\n", label);
        if (dc_backend_profile_start(be, stderr)) {
            snprintf(msg, cap, "profile: %s", be->err.msg);
            return NULL;
        }
        dc_status s = train_step(m, opt, b, dc_seed_mix(13, 1), msg, cap);
        dc_backend_profile_stop(be, NULL, NULL);
        if (s) return NULL;
    }
    if (dc_backend_profile_start(be, NULL)) {
        snprintf(msg, cap, "profile: %s", be->err.msg);
        return NULL;
    }
    const double t0 = now_s();
    for (int i = 0; i < steps; i++)
        if (train_step(m, opt, b, dc_seed_mix(11, (uint64_t)i), msg, cap)) {
            dc_backend_profile_stop(be, NULL, NULL);
            return NULL;
        }
    read_one(m, m->loss, &loss);
    const double total = now_s() - t0;
    dc_prim_profile *rows = NULL;
    int n_rows = 0;
    if (dc_backend_profile_stop(be, &rows, &n_rows)) {
        snprintf(msg, cap, "profile: %s", be->err.msg);
        return NULL;
    }
    double in_prims = 0;
    for (int i = 0; i < n_rows; i++) in_prims += rows[i].seconds;
    qsort(rows, (size_t)n_rows, sizeof *rows, cmp_profile_time);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "steps", steps);
    cJSON_AddNumberToObject(r, "step_ms", total / steps * 1e3);
    cJSON_AddNumberToObject(r, "outside_primitives_ms", (total - in_prims) / steps * 1e3);
    cJSON *list = cJSON_AddArrayToObject(r, "primitives");
    fprintf(stderr, "profile of %s: %.1f ms per training step (%d steps), per primitive:\n", label,
            total / steps * 1e3, steps);
    for (int i = 0; i < n_rows; i++) {
        const dc_prim_profile *q = &rows[i];
        char name[48];
        snprintf(name, sizeof name, "%s%s%s", q->name, q->variant ? " " : "", q->variant ? q->variant : "");
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        cJSON_AddNumberToObject(e, "ms_per_step", q->seconds / steps * 1e3);
        cJSON_AddNumberToObject(e, "share", q->seconds / total);
        cJSON_AddNumberToObject(e, "calls_per_step", (double)q->calls / steps);
        if (q->flops > 0) cJSON_AddNumberToObject(e, "gflops", q->flops / q->seconds / 1e9);
        cJSON_AddItemToArray(list, e);
        fprintf(stderr, "  %-16s %8.2f ms %5.1f%%  %6.1f calls", name, q->seconds / steps * 1e3,
                100 * q->seconds / total, (double)q->calls / steps);
        if (q->flops > 0) fprintf(stderr, "  %6.1f GFLOP/s", q->flops / q->seconds / 1e9);
        fputc('\n', stderr);
    }
    fprintf(stderr, "  %-16s %8.2f ms %5.1f%%\n", "(outside)", (total - in_prims) / steps * 1e3,
            100 * (total - in_prims) / total);
    free(rows);
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
        msg[0] = 0;
        cJSON *budget = step_budget(m, opt, &b, batch, batch / median(tt, o->repeats) * 1e3, label,
                                    msg, sizeof msg);
        if (!budget && msg[0]) goto step_fail;
        if (budget) cJSON_AddItemToObject(prof, "budget", budget);
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
    dc_program_info prog;
    dc_backend_program_info(be, &prog);
    cJSON_AddNumberToObject(r, "program_s", prog.seconds);
    cJSON_AddBoolToObject(r, "program_from_cache", prog.from_cache);
    cJSON_AddStringToObject(r, "cache_file", prog.cache_file);
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

static const dc_option bench_options[] = {
    {"device", 0, DC_OPT_TEXT, "LIST", "cpu, opencl, opencl:P:D, comma-separated", "cpu", NULL},
    {"models", 0, DC_OPT_TEXT, "LIST", BENCH_ALL_MODELS, "all", "model"},
    {"warmup", 0, DC_OPT_INT, "N", "untimed steps first", "3", NULL},
    {"repeats", 0, DC_OPT_INT, "N", "timed runs; the median is reported", "5", NULL},
    {"steps", 0, DC_OPT_INT, "N", "steps per timed run", "5", NULL},
    {"threads", 0, DC_OPT_INT, "N", "CPU backend threads (0: all cores)", "all cores", NULL},
    {"batch", 0, DC_OPT_INT, "N", "override the presets' batch sizes", NULL, NULL},
    {"gemm-seconds", 0, DC_OPT_NUM, "S", "measuring time per distinct GEMM shape", "0.2", NULL},
    {"no-gemm", 0, DC_OPT_FLAG, NULL, "skip the GEMM measurement", NULL, NULL},
    {"profile", 0, DC_OPT_INT, "N", "also time every backend primitive over N more training steps",
     NULL, NULL},
    {"trace", 0, DC_OPT_FLAG, NULL, "with --profile: print every primitive call of one step first",
     NULL, NULL},
    {"no-infer", 0, DC_OPT_FLAG, NULL, "skip the inference timing (e.g. to profile training alone)",
     NULL, NULL},
    {"startup", 0, DC_OPT_FLAG, NULL,
     "measure the start-up time on every device (default: OpenCL ones)", NULL, NULL},
    {"no-startup", 0, DC_OPT_FLAG, NULL, "never measure it", NULL, NULL},
    {"startup-model", 0, DC_OPT_TEXT, "M", "model of the start-up probe", "complete", NULL},
    {"json", 0, DC_OPT_TEXT, "FILE", "write every figure as JSON", NULL, NULL},
    {"single", 0, DC_OPT_FLAG, NULL,
     "run one --device and one --models in this process and print its\nresult as one JSON line "
     "(what the parent spawns; handy under perf)",
     NULL, NULL},
    {"startup-probe", 0, DC_OPT_FLAG, NULL, "the start-up child (spawned by the parent)", NULL,
     NULL},
    DC_OPT_END,
};

static const dc_command bench_command = {
    .name = "bench",
    .synopsis = "[options]",
    .about = "Training and inference images/s of the model presets (complete, vae, glo at 64x64\n"
             "batch 64, glo with 1024 latents; classifier 28x28 batch 128; diffusion 32x32\n"
             "batch 64), median of repeated timed runs after warm-up, with FLOPs, achieved\n"
             "GFLOP/s, the backend's GEMM rate on the step's own products, peak memory, and the\n"
             "OpenCL start-up time.\n",
    .options = bench_options,
    .max_positional = 0,
    .positional_what = "options only",
    .computes = 1,
};

int dc_cmd_bench(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &bench_command, argc, argv)) return a.status;
    bench_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.devices, sizeof o.devices, "%s", dc_args_str(&a, "device", "cpu"));
    snprintf(o.models, sizeof o.models, "%s", dc_args_str(&a, "models", BENCH_ALL_MODELS));
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
    {
        char devs[256];
        snprintf(devs, sizeof devs, "%s", o.devices);
        for (char *save = NULL, *dev = strtok_r(devs, ",", &save); dev;
             dev = strtok_r(NULL, ",", &save))
            if (dc_cli_check_device("bench", dev)) return 2;
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
            if (!a.quiet) fprintf(stderr, "deconv bench: %s on %s ...\n", mod, dev);
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
