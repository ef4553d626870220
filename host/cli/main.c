/* deconv command-line entry point: dispatches to one file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
