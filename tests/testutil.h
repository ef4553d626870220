/* Shared test helpers (cmocka). */
#ifndef DECONV_TESTUTIL_H
#define DECONV_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the above first. */
#include <cmocka.h>

#include "deconv/deconv.h"

/* Fill with uniform values in [lo, hi) from a seeded rng. */
void tu_fill_uniform(float *x, size_t n, dc_rng *rng, float lo, float hi);
/* max_i |a-b| / max(1e-3, max_i |b|)  — relative to the reference's scale. */
double tu_max_rel_err(const float *a, const float *ref, size_t n);
double tu_max_abs_err(const float *a, const float *ref, size_t n);
/* Source tree root (DECONV_SOURCE_DIR set by CTest), and the CLI binary path. */
const char *tu_source_dir(void);
const char *tu_cli_path(void);
/* Path of Debian's python3 (with numpy/torch/skimage), or NULL. */
const char *tu_python(void);
/* 1 when running under CI=true (a skip must then fail). */
int tu_in_ci(void);
/* Skip the current test with a visible reason, or fail it under CI=true. */
#define TU_SKIP_OR_FAIL(...)                                              \
    do {                                                                  \
        if (tu_in_ci()) fail_msg("required under CI=true: " __VA_ARGS__); \
        print_message("[  SKIP    ] " __VA_ARGS__);                       \
        print_message("\n");                                              \
        skip();                                                           \
    } while (0)
/* Resident set size of this process in KiB (VmRSS), or -1. */
long tu_rss_kib(void);
/* Make a fresh temporary directory (mkdtemp); returns a static-lifetime copy. */
char *tu_tmpdir(const char *tag);
/* Run a shell command, return its exit status (or -1). */
int tu_system(const char *fmt, ...);

#endif
