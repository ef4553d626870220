/* The profiling wrapper: while a profile runs, the backend's ops table is swapped for a
 * generated one (one wrapper per primitive of primitives.def) that calls the real entry,
 * waits for the device and records the time, so every primitive is covered by construction.
 * The state hangs off the backend (be->profile); the library keeps no globals. */
#include <time.h>

#include "internal.h"

/* Rows per primitive: its variants (gemm has four: NN, NT, TN, TT). */
#define PROFILE_VARIANTS 4

typedef struct profile_row {
    const char *variant;
    long calls;
    double seconds, flops;
} profile_row;

struct dc_backend_profile {
    const dc_backend_ops *real;
    dc_backend_ops ops; /* the wrappers; `be->ops` points here while profiling */
    FILE *trace;
    profile_row rows[DC_PRIM_COUNT][PROFILE_VARIANTS];
};

static double profile_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* FLOPs of the GEMMs a fused convolution replaces (multiply-add = 2). */
static double dc_win2d_conv_flops(const dc_win2d *g, int n, int oc) {
    return 2.0 * n * oc * (double)g->c * g->kh * g->kw * g->oh * g->ow;
}

static void profile_record(struct dc_backend_profile *p, int id, const char *variant,
                           double flops, double elems, double seconds) {
    profile_row *r = p->rows[id];
    int v = 0;
    while (v < PROFILE_VARIANTS - 1 && r[v].calls && r[v].variant != variant &&
           !(variant && r[v].variant && !strcmp(r[v].variant, variant)))
        v++;
    r[v].variant = variant;
    r[v].calls++;
    r[v].seconds += seconds;
    r[v].flops += flops;
    if (p->trace) {
        char label[48];
        snprintf(label, sizeof label, "%s%s%s", dc_backend_prim_name(id), variant ? " " : "",
                 variant ? variant : "");
        fprintf(p->trace, "    %-16s %12.0f %9.3f ms\n", label, flops > 0 ? flops : elems,
                seconds * 1e3);
    }
}

/* One wrapper per primitive: call the real entry, wait for the device (a no-op on
 * synchronous backends), record. */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant)                                        \
    static dc_status profile_##name params {                                                       \
        struct dc_backend_profile *p_ = be->profile;                                               \
        const double t0_ = profile_now();                                                          \
        const dc_status s_ = p_->real->name args;                                                  \
        p_->real->sync(be);                                                                        \
        profile_record(p_, DC_PRIM_ID_##name, variant, flops, (double)(elems),                     \
                       profile_now() - t0_);                                                       \
        return s_;                                                                                 \
    }
#define DC_PRIM_OPT DC_PRIM
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT

/* Freeing a profiled backend ends its profile first. */
static void profile_destroy(dc_backend *be) {
    struct dc_backend_profile *p = be->profile;
    be->ops = p->real;
    be->profile = NULL;
    free(p);
    be->ops->destroy(be);
}

dc_status dc_backend_profile_start(dc_backend *be, void *trace) {
    if (!be) return DC_ERR_ARG;
    if (be->profile) return dc_set_error(&be->err, DC_ERR_STATE, "profile: one already runs");
    struct dc_backend_profile *p = calloc(1, sizeof *p);
    if (!p) return dc_set_error(&be->err, DC_ERR_OOM, "profile: out of memory");
    p->real = be->ops;
    p->trace = trace;
    p->ops = *be->ops;
    /* optional primitives stay optional: a NULL entry keeps its NULL */
#define DC_SERVICE(ret, name, params)
#define DC_PRIM(name, params, args, flops, elems, variant)                                        \
    if (p->ops.name) p->ops.name = profile_##name;
#define DC_PRIM_OPT DC_PRIM
#include "deconv/primitives.def"
#undef DC_SERVICE
#undef DC_PRIM
#undef DC_PRIM_OPT
    p->ops.destroy = profile_destroy;
    be->profile = p;
    be->ops = &p->ops;
    return DC_OK;
}

dc_status dc_backend_profile_stop(dc_backend *be, dc_prim_profile **rows, int *n_rows) {
    if (rows) *rows = NULL;
    if (n_rows) *n_rows = 0;
    if (!be) return DC_ERR_ARG;
    struct dc_backend_profile *p = be->profile;
    if (!p) return dc_set_error(&be->err, DC_ERR_STATE, "profile: none runs");
    be->ops = p->real;
    be->profile = NULL;
    dc_status s = DC_OK;
    if (rows) {
        int n = 0;
        dc_prim_profile *out = malloc(sizeof *out * DC_PRIM_COUNT * PROFILE_VARIANTS);
        if (!out) s = dc_set_error(&be->err, DC_ERR_OOM, "profile: out of memory");
        for (int id = 0; out && id < DC_PRIM_COUNT; id++)
            for (int v = 0; v < PROFILE_VARIANTS; v++) {
                const profile_row *r = &p->rows[id][v];
                if (!r->calls) continue;
                out[n++] = (dc_prim_profile){dc_backend_prim_name(id), r->variant, r->calls,
                                             r->seconds, r->flops};
            }
        *rows = out;
        if (n_rows) *n_rows = n;
    }
    free(p);
    return s;
}
