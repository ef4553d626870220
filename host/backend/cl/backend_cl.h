/* OpenCL backend internals shared with backend selection, the `devices` command and the
 * tests. Not installed. */
#ifndef DECONV_BACKEND_CL_H
#define DECONV_BACKEND_CL_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "deconv/deconv.h"

/* What an OpenCL backend has enqueued since it was created: the per-step budget that
 * `deconv bench --profile` prints (take the difference of two snapshots). Counted where the
 * backend enqueues, so it holds for any device. */
typedef struct dc_cl_budget {
    double kernels;    /* our own kernel launches (clEnqueueNDRangeKernel) */
    double gemm_calls; /* CLBlast GEMM calls: each is 1 device kernel (direct GEMM) or up
                          to 4 (indirect: pad/transpose copies of A, B, C around the kernel) */
    double copies;     /* device-to-device buffer copies */
    double h2d, d2h;   /* host<->device transfers (count) and their bytes */
    double h2d_bytes, d2h_bytes;
    double host_waits; /* calls where the host waits for the device (blocking transfers,
                          clFinish) */
    double read_bytes, write_bytes; /* device memory the commands read / write (each tensor
                                       once per pass: a lower bound, caches ignored) */
    double flops; /* GEMM FLOPs (multiply-add = 2); elementwise arithmetic not counted */
} dc_cl_budget;

#ifdef DECONV_HAVE_OPENCL
DC_API_BEGIN /* the CLI (bench, devices) reads these through the shared library too */
/* The --device auto policy. Returns 1 with *platform and *device set when an OpenCL GPU or
 * accelerator exists (the first one); 0 otherwise. Either way `why` gets one sentence
 * naming what was found, for the line the CLI prints. */
int dc_opencl_auto_pick(int *platform, int *device, char *why, size_t cap);

/* For an OpenCL backend (0 / "" for any other backend): */
/* 1 when the kernels were loaded from the on-disk binary cache instead of compiled. */
int dc_cl_program_from_cache(const dc_backend *be);
/* Seconds spent building or loading the program at creation. */
double dc_cl_program_seconds(const dc_backend *be);
/* The cache file of this device + source + options ("" when caching is off). */
const char *dc_cl_cache_file(const dc_backend *be);
/* The budget so far; 0 (and *out zeroed) for a backend that is not OpenCL. */
int dc_cl_budget_get(const dc_backend *be, dc_cl_budget *out);
/* The row kernels' form (cl_internal.h): on 1 one work-item per element (the GPU form),
 * 0 one per row (the CPU-device form), -1 leaves it. Returns the form before the call, or
 * -1 for a backend that is not OpenCL. */
int dc_cl_set_elem(dc_backend *be, int on);
DC_API_END
#else
static inline int dc_opencl_auto_pick(int *platform, int *device, char *why, size_t cap) {
    *platform = *device = -1;
    if (cap) snprintf(why, cap, "this deconv was built without OpenCL");
    return 0;
}
static inline int dc_cl_program_from_cache(const dc_backend *be) {
    (void)be;
    return 0;
}
static inline double dc_cl_program_seconds(const dc_backend *be) {
    (void)be;
    return 0.0;
}
static inline int dc_cl_set_elem(dc_backend *be, int on) {
    (void)be, (void)on;
    return -1;
}
static inline const char *dc_cl_cache_file(const dc_backend *be) {
    (void)be;
    return "";
}
static inline int dc_cl_budget_get(const dc_backend *be, dc_cl_budget *out) {
    (void)be;
    memset(out, 0, sizeof *out);
    return 0;
}
#endif

#endif
