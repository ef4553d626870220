/* OpenCL backend internals shared with backend selection, the `devices` command and the
 * tests. Not installed. */
#ifndef DECONV_BACKEND_CL_H
#define DECONV_BACKEND_CL_H

#include <stddef.h>
#include <stdio.h>

#include "deconv/deconv.h"

#ifdef DECONV_HAVE_OPENCL
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
static inline const char *dc_cl_cache_file(const dc_backend *be) {
    (void)be;
    return "";
}
#endif

#endif
