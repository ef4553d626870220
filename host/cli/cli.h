/* Shared helpers of the command-line tool. The CLI is the only place that exits. */
#ifndef DECONV_CLI_H
#define DECONV_CLI_H

#include <stdio.h>

#include "deconv/deconv.h"

#define X(name, fn, help) int fn(int argc, char **argv);
#include "cli/commands.def"
#undef X

/* Tiny option parser: options are "--name value" or "--flag"; positionals are kept in
 * order. Unknown options are an error naming the option. */
typedef struct dc_args {
    int argc;
    char **argv;
    const char *cmd;
    char *positional[16];
    int n_positional;
    unsigned char used[256]; /* which argv entries were consumed */
} dc_args;

/* `flags` lists options that take no value, e.g. {"tied", "help", NULL}. Returns 0 or
 * prints an error and returns 2. */
int dc_args_parse(dc_args *a, const char *cmd, int argc, char **argv, const char *const *flags);
const char *dc_args_str(dc_args *a, const char *name, const char *def);
int dc_args_int(dc_args *a, const char *name, int def);
long dc_args_long(dc_args *a, const char *name, long def);
float dc_args_float(dc_args *a, const char *name, float def);
int dc_args_flag(dc_args *a, const char *name);
/* After all lookups: error (returns 2) if an option was given that no lookup read. */
int dc_args_check_unused(dc_args *a);
/* Set when a numeric option did not parse; the parse error was printed. */
extern const char *dc_cli_prog;

/* Print "deconv CMD: message" to stderr and return exit code 1. */
int dc_cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Create the backend named by --device (default "auto"). Prints the choice. */
int dc_cli_backend(dc_args *a, dc_backend **out);

#endif
