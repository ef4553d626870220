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
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
    fprintf(f, "deconv %s — train CNNs on OpenCL or CPU, generate, explain, restore\n\n"
               "usage: deconv COMMAND [options]   (deconv COMMAND --help for its options)\n"
               "       deconv help COMMAND        (the same)\n\n",
            DECONV_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nEvery command takes --help (-h). Commands that compute take --device, --threads N\n"
               "and --quiet; their output option is --out (-o).\n\n");
    dc_cli_exit_codes(f);
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

static int unknown_command(const char *name) {
    const char *names[N_COMMANDS + 1];
    for (size_t i = 0; i < N_COMMANDS; i++) names[i] = commands[i].name;
    names[N_COMMANDS] = NULL;
    const char *guess = dc_cli_closest(name, names);
    fprintf(stderr, "deconv: unknown command '%s'", name);
    if (guess)
        fprintf(stderr, " (did you mean %s?)\n", guess);
    else
        fprintf(stderr, " (deconv --help lists the commands)\n");
    return DC_EXIT_USAGE;
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
    if (argc < 2) {
        usage(stderr);
        return DC_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && argc == 2)) {
        usage(stdout);
        return DC_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("deconv %s\n", DECONV_VERSION);
        return DC_EXIT_OK;
    }
    if (!strcmp(argv[1], "help")) { /* deconv help CMD = deconv CMD --help */
        if (argc > 3) {
            fprintf(stderr, "deconv help: give one command (deconv help COMMAND)\n");
            return DC_EXIT_USAGE;
        }
        const command *c = find_command(argv[2]);
        if (!c) return unknown_command(argv[2]);
        char help[] = "--help";
        char *args[] = {argv[2], help, NULL};
        return c->fn(2, args);
    }
    if (argv[1][0] == '-') {
        fprintf(stderr, "deconv: unknown option '%s' (options follow the command: deconv "
                        "COMMAND --help)\n",
                argv[1]);
        return DC_EXIT_USAGE;
    }
    const command *c = find_command(argv[1]);
    if (!c) return unknown_command(argv[1]);
    return c->fn(argc - 1, argv + 1);
}
