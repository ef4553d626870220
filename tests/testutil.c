#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void tu_fill_uniform(float *x, size_t n, dc_rng *rng, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * dc_rng_uniform(rng);
}

double tu_max_rel_err(const float *a, const float *ref, size_t n) {
    double scale = 1e-3, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (isnan(a[i]) || isnan(ref[i])) return INFINITY;
        if (d > worst) worst = d;
    }
    return worst / scale;
}

double tu_max_abs_err(const float *a, const float *ref, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(ref[i])) return INFINITY;
        double d = fabs((double)a[i] - (double)ref[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

const char *tu_source_dir(void) {
    const char *s = getenv("DECONV_SOURCE_DIR");
    return s ? s : ".";
}

const char *tu_cli_path(void) {
    const char *s = getenv("DECONV_BIN");
    return s ? s : "./deconv";
}

const char *tu_python(void) {
    if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return NULL;
}

int tu_in_ci(void) {
    const char *s = getenv("CI");
    return s && !strcmp(s, "true");
}

char *tu_tmpdir(const char *tag) {
    char tmpl[256];
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/deconv-%s-XXXXXX", base ? base : "/tmp", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

int tu_system(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc == -1) return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

long tu_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = atol(line + 6);
    fclose(f);
    return kib;
}
