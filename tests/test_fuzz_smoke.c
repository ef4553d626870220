/* Short fuzzing runs (ci/fuzz: libFuzzer + ASan + UBSan) as part of the suite: the
 * checkpoint reader for 20 s, the image decoder path and the IDX reader for 10 s each;
 * fails on any crash, sanitizer report or leak the fuzzer finds.
 * Longer runs: ci/fuzz SECONDS [TARGET...]. Needs clang with libFuzzer (skipped without it, a
 * failure under CI=true). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

/* Runs ci/fuzz for one target; fails on what the fuzzer finds. */
static void fuzz_target(const char *target, int seconds) {
    if (tu_system("command -v clang >/dev/null") != 0)
        TU_SKIP_OR_FAIL("clang not found (apt-get install clang libclang-rt-14-dev libomp-dev)");
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) fail_msg("getcwd failed");
    /* builds into the test's working folder (the CMake build folder under CTest) */
    int rc = tu_system("DECONV_FUZZ_DIR='%s/fuzz' bash '%s/ci/fuzz' %d %s > '%s/fuzz_%s.log' 2>&1",
                       cwd, tu_source_dir(), seconds, target, cwd, target);
    if (rc == 2) TU_SKIP_OR_FAIL("ci/fuzz found no compiler: see %s/fuzz_%s.log", cwd, target);
    if (rc == 3) {
        tu_system("tail -n 30 '%s/fuzz_%s.log'", cwd, target);
        fail_msg("ci/fuzz could not build the %s fuzz target: see %s/fuzz_%s.log", target, cwd,
                 target);
    }
    if (rc != 0) {
        tu_system("tail -n 60 '%s/fuzz_%s.log'", cwd, target);
        fail_msg("the fuzzer found a problem in the %s reader (exit %d): log %s/fuzz_%s.log, "
                 "input %s/fuzz/%s-crash-*",
                 target, rc, cwd, target, cwd, target);
    }
    tu_system("grep -E 'Done [0-9]+ runs' '%s/fuzz_%s.log'", cwd, target);
}

static void test_fuzz_checkpoint_reader(void **state) {
    (void)state;
    fuzz_target("checkpoint", 20);
}

static void test_fuzz_image_decoder(void **state) {
    (void)state;
    fuzz_target("image", 10);
}

static void test_fuzz_idx_reader(void **state) {
    (void)state;
    fuzz_target("idx", 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_checkpoint_reader),
        cmocka_unit_test(test_fuzz_image_decoder),
        cmocka_unit_test(test_fuzz_idx_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
