/* deconv bench, split by family: bench_steps.c (the presets, the timed training and
 * inference steps, the GEMM products of a step), bench_profile.c (the per-primitive
 * profile and the OpenCL roofline budget), bench_run.c (one benchmark in a child process:
 * --single, --startup-probe) and cmd_bench.c (the parent: options, children, the table). */
#ifndef DECONV_CLI_BENCH_H
#define DECONV_CLI_BENCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"
#include "deconv/backend.h"
#include "deconv/model.h"
#include "internal.h"

#define BENCH_RESULT_TAG "deconv-bench-result "
#define BENCH_ALL_MODELS "complete,vae,glo,classifier,diffusion"
/* not in the default list: the completion model with train's defaults (bench_preset) */
#define BENCH_COMPLETE_DEFAULT "complete-default"

typedef struct bench_opts {
    char devices[256];
    char models[256];
    int warmup, repeats, steps, threads, batch, gemm, infer, profile, trace;
    double gemm_seconds; /* minimum measuring time per distinct GEMM shape */
    char json[1024];
    char startup_model[16];
    int startup; /* -1: when an OpenCL device is benchmarked; 0 never; 1 always */
} bench_opts;

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

/* Seconds on the monotonic clock. */
double bench_now_s(void);
/* The median of v[0..n) (sorts v). */
double bench_median(const double *v, int n);
/* Peak resident memory of this process, MB. */
double bench_peak_rss_mb(void);
/* The one-minute load average, or -1. */
double bench_loadavg1(void);
/* A JSON array of v[0..n). */
cJSON *bench_json_doubles(const double *v, int n);
/* A preset's spec and batch (batch_override > 0 replaces it); 0, or -1 with err set. */
int bench_preset(const char *model, int batch_override, dc_model_spec *spec, int *batch,
                 dc_error *err);
/* A fixed random batch shaped like the training data. */
void bench_fill_random_batch(const dc_model *m, dc_batch *b, uint64_t seed);
/* One training step exactly as `deconv train` runs it. */
dc_status bench_train_step(dc_model *m, dc_optim *opt, const dc_batch *b, uint64_t seed, char *msg,
                           size_t cap);
/* Waits for the queue: a blocking one-element read of a node's output. */
dc_status bench_read_one(dc_model *m, int node, float *v);
/* One inference step: eval mode, upload, forward to the output node. */
dc_status bench_infer_step(dc_model *m, const dc_batch *b, uint64_t seed, char *msg, size_t cap);
/* The GEMM calls of one training step as the graph plans them; their FLOPs. */
double bench_collect_gemms(dc_graph *g, gemm_list *l);
/* Times every distinct product with the backend's gemm primitive; *rate: GFLOP/s. */
dc_status bench_measure_gemms(dc_backend *be, gemm_list *l, double min_seconds, double *rate,
                              char *msg, size_t cap);
/* An OpenCL backend's roofline budget of one training step. */
cJSON *bench_step_budget(dc_model *m, dc_optim *opt, const dc_batch *b, int batch,
                         double measured_ms, const char *label, char *msg, size_t cap);
/* Profile `steps` training steps; a JSON object, and a table on stderr. */
cJSON *bench_profile_steps(dc_model *m, dc_optim *opt, const dc_batch *b, int steps, int trace,
                           const char *label, char *msg, size_t cap);
/* One (device, model) benchmark in this process: its result as one JSON line. */
int bench_run_single(const bench_opts *o, const char *device, const char *model);
/* Everything `deconv train` does before its first step, then the first steps. */
int bench_run_startup_probe(const bench_opts *o, const char *device, const char *model);

#endif
