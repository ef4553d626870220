#define _POSIX_C_SOURCE 200809L
/* deconv command-line entry point: dispatches to one file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

const char *dc_cli_prog = "deconv";

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
#define X(name, fn, help) {#name, fn, help},
#include "cli/commands.def"
#undef X
};

static void usage(FILE *f) {
    fprintf(f, "deconv %s — train CNNs on OpenCL or CPU, generate, explain, restore\n\n"
               "usage: deconv COMMAND [options]   (deconv COMMAND --help for its options)\n\n",
            DECONV_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin at barriers waste the cores whenever anything else runs
     * (measured: 40 vs 100 images/s training the default model on a 2-core machine with
     * one other busy process). libgomp reads its wait policy once, before main, so set it
     * and start again; an explicit OMP_WAIT_POLICY from the user is respected. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        /* exec failed (no /proc): carry on with the default policy */
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("deconv %s\n", DECONV_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "deconv: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
