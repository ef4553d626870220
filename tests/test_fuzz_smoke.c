/* A short fuzzing run of the checkpoint reader (ci/fuzz: libFuzzer + ASan + UBSan) as part
 * of the suite: fails on any crash, sanitizer report or leak the fuzzer finds in 20 s.
 * Longer runs: ci/fuzz SECONDS. Needs clang with libFuzzer (skipped without it, a
 * failure under CI=true). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

static void test_fuzz_checkpoint_reader(void **state) {
    (void)state;
    if (tu_system("command -v clang >/dev/null") != 0)
        TU_SKIP_OR_FAIL("clang not found (apt-get install clang libclang-rt-14-dev libomp-dev)");
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) fail_msg("getcwd failed");
    /* builds into the test's working folder (the CMake build folder under CTest) */
    int rc = tu_system("DECONV_FUZZ_DIR='%s/fuzz' bash '%s/ci/fuzz' 20 > '%s/fuzz.log' 2>&1", cwd,
                       tu_source_dir(), cwd);
    if (rc == 2) TU_SKIP_OR_FAIL("ci/fuzz found no compiler: see %s/fuzz.log", cwd);
    if (rc == 3) {
        tu_system("tail -n 30 '%s/fuzz.log'", cwd);
        fail_msg("ci/fuzz could not build the fuzz target: see %s/fuzz.log", cwd);
    }
    if (rc != 0) {
        tu_system("tail -n 60 '%s/fuzz.log'", cwd);
        fail_msg("the fuzzer found a problem (exit %d): log %s/fuzz.log, input %s/fuzz/crash-*", rc, cwd, cwd);
    }
    tu_system("grep -E 'Done [0-9]+ runs' '%s/fuzz.log'", cwd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_checkpoint_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
