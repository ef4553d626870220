/* Backend creation from a spec, and what every backend shares: the generic accessors and
 * the tables generated from primitives.def. */
#include <ctype.h>

#include "cl/backend_cl.h"
#include "internal.h"

void dc_backend_free(dc_backend *be) {
    if (be) be->ops->destroy(be);
}
const char *dc_backend_name(const dc_backend *be) { return be ? be->ops->name : "none"; }
const char *dc_backend_device(const dc_backend *be) { return be ? be->device_name : "none"; }
const dc_error *dc_backend_error(const dc_backend *be) { return be ? &be->err : NULL; }
int dc_backend_auto_pick(int *platform, int *device, char *why, size_t cap) {
    return dc_opencl_auto_pick(platform, device, why, cap);
}


#ifndef DECONV_HAVE_OPENCL
/* Built with -DDECONV_OPENCL=OFF: the OpenCL backend is not compiled in. */
dc_status dc_backend_create_opencl(int platform, int device, dc_backend **out, dc_error *err) {
    (void)platform;
    (void)device;
    if (out) *out = NULL;
    return dc_set_error(err, DC_ERR_UNSUPPORTED, "this deconv was built without OpenCL");
}
dc_status dc_opencl_list_devices(void *file, dc_error *err) {
    (void)file;
    return dc_set_error(err, DC_ERR_UNSUPPORTED, "this deconv was built without OpenCL");
}
int dc_opencl_available(void) { return 0; }
#endif

dc_status dc_backend_create_from_spec(const char *spec, int verbose, dc_backend **out,
                                      dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "backend: out is NULL");
    *out = NULL;
    if (!spec || !*spec) spec = "auto";
    dc_status s;
    if (!strcmp(spec, "cpu")) {
        s = dc_backend_create_cpu(0, out, err);
    } else if (!strcmp(spec, "opencl")) {
        s = dc_backend_create_opencl(-1, -1, out, err);
    } else if (!strncmp(spec, "opencl:", 7)) {
        int p = -1, d = -1;
        char tail;
        if (sscanf(spec + 7, "%d:%d%c", &p, &d, &tail) != 2 || p < 0 || d < 0)
            return dc_set_error(err, DC_ERR_ARG,
                                "device '%s': expected opencl:PLATFORM:DEVICE, e.g. opencl:0:0",
                                spec);
        s = dc_backend_create_opencl(p, d, out, err);
    } else if (!strcmp(spec, "auto")) {
        /* The first OpenCL GPU or accelerator. OpenCL CPU devices (PoCL) are skipped: on the
         * same cores the native CPU backend (OpenBLAS + OpenMP) is much faster. */
        int p = -1, d = -1;
        char why[512];
        dc_error cl_err = {0};
        if (dc_opencl_auto_pick(&p, &d, why, sizeof why)) {
            s = dc_backend_create_opencl(p, d, out, &cl_err);
            if (s == DC_OK) {
                if (verbose)
                    fprintf(stderr, "deconv: --device auto: using opencl:%d:%d, the %s\n", p, d,
                            why);
                return DC_OK;
            }
            snprintf(why, sizeof why, "opencl:%d:%d failed: %.400s", p, d, cl_err.msg);
        }
        s = dc_backend_create_cpu(0, out, err);
        if (s == DC_OK && verbose)
            fprintf(stderr, "deconv: --device auto: using the cpu backend (%s) because %s\n",
                    (*out)->device_name, why);
        return s;
    } else {
        return dc_set_error(err, DC_ERR_ARG,
                            "unknown device '%s' (use cpu, opencl, opencl:P:D or auto)", spec);
    }
    if (s == DC_OK && verbose)
        fprintf(stderr, "deconv: using %s backend: %s\n", (*out)->ops->name, (*out)->device_name);
    return s;
}

dc_status dc_backend_set_threads(dc_backend *be, int threads) {
    if (!be || threads < 1) return DC_ERR_ARG;
    /* only backends that compute on host threads have the entry */
    return be->ops->set_threads ? DC_BE(be, set_threads, threads) : DC_OK;
}

static const char *const prim_names[DC_PRIM_COUNT] = {
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant) #name,
#define DC_PRIM_OPT DC_PRIM
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
};

const char *dc_backend_prim_name(int id) {
    return id >= 0 && id < DC_PRIM_COUNT ? prim_names[id] : NULL;
}

const char *dc_backend_ops_missing(const dc_backend_ops *ops) {
    if (!ops) return "ops";
    if (!ops->name) return "name";
#define DC_SERVICE(ret, name, params)                                                              \
    if (!ops->name && strcmp(#name, "set_threads")) return #name;
#define DC_PRIM(name, params, args, flops, elems, variant)                                        \
    if (!ops->name) return #name;
#define DC_PRIM_OPT(name, params, args, flops, elems, variant)
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
    return NULL;
}

void dc_backend_program_info(const dc_backend *be, dc_program_info *out) {
    out->from_cache = dc_cl_program_from_cache(be);
    out->seconds = dc_cl_program_seconds(be);
    out->cache_file = dc_cl_cache_file(be);
}
