/* deconv bench --profile: the time per backend primitive, and an OpenCL step's roofline
 * budget (launches, device traffic, FLOPs) priced on a reference GPU. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cl/backend_cl.h"
#include "cli/bench.h"

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
cJSON *bench_step_budget(dc_model *m, dc_optim *opt, const dc_batch *b, int batch,
                          double measured_ms, const char *label, char *msg, size_t cap) {
    dc_cl_budget b0, b1;
    if (!dc_cl_budget_get(m->be, &b0)) return NULL;
    if (bench_train_step(m, opt, b, dc_seed_mix(17, 1), msg, cap)) return NULL;
    dc_cl_budget_get(m->be, &b1);
    const double kernels = b1.kernels - b0.kernels, gemms = b1.gemm_calls - b0.gemm_calls,
                 copies = b1.copies - b0.copies, launches = kernels + gemms + copies;
    const double rd = b1.read_bytes - b0.read_bytes, wr = b1.write_bytes - b0.write_bytes;
    const double flops = b1.flops - b0.flops;
    const double t_flop = flops / ROOFLINE_FLOPS, t_mem = (rd + wr) / ROOFLINE_BYTES_PER_S;
    const double t_launch = launches * ROOFLINE_LAUNCH_S;
    const double t_est = (t_flop > t_mem ? t_flop : t_mem) + t_launch;
    const int elem = dc_cl_set_elem(m->be, -1) == 1;
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
            "  measured here (%s): %.1f ms per step (median of the timed runs)\n"
            "  row kernels (im2col, col2im, pooling, layout copies): %s\n",
            label, launches, kernels, gemms, copies, b1.h2d - b0.h2d,
            (b1.h2d_bytes - b0.h2d_bytes) / 1e6, b1.d2h - b0.d2h, (b1.d2h_bytes - b0.d2h_bytes) / 1e6,
            b1.host_waits - b0.host_waits, rd / 1e9, wr / 1e9, flops / 1e9, ROOFLINE_GPU,
            ROOFLINE_FLOPS / 1e12, ROOFLINE_BYTES_PER_S / 1e12, ROOFLINE_LAUNCH_S * 1e6,
            t_flop * 1e3, t_mem * 1e3, t_launch * 1e3, t_est * 1e3, batch / t_est,
            dc_backend_device(m->be), measured_ms,
            elem ? "one work-item per element (the GPU form; DECONV_CL_ELEM=0 for the other)"
                 : "one work-item per row (the CPU-device form; DECONV_CL_ELEM=1 for the other)");
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "launches", launches);
    cJSON_AddStringToObject(r, "row_kernels", elem ? "element" : "row");
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
cJSON *bench_profile_steps(dc_model *m, dc_optim *opt, const dc_batch *b, int steps, int trace,
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
        dc_status s = bench_train_step(m, opt, b, dc_seed_mix(13, 1), msg, cap);
        dc_backend_profile_stop(be, NULL, NULL);
        if (s) return NULL;
    }
    if (dc_backend_profile_start(be, NULL)) {
        snprintf(msg, cap, "profile: %s", be->err.msg);
        return NULL;
    }
    const double t0 = bench_now_s();
    for (int i = 0; i < steps; i++)
        if (bench_train_step(m, opt, b, dc_seed_mix(11, (uint64_t)i), msg, cap)) {
            dc_backend_profile_stop(be, NULL, NULL);
            return NULL;
        }
    bench_read_one(m, m->loss, &loss);
    const double total = bench_now_s() - t0;
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
