/* Shared helpers of the command-line tool. The CLI is the only place that exits. */
#ifndef DECONV_CLI_H
#define DECONV_CLI_H

#include <stdio.h>

#include "deconv/data.h"
#include "deconv/deconv.h"
#include "deconv/io.h"
#include "deconv/model.h"

#define X(name, fn, help) int fn(int argc, char **argv);
#include "cli/commands.def"
#undef X

/* Tiny option parser: options are "--name value" or "--flag"; positionals are kept in
 * order, as many as given. Unknown options are an error naming the option. */
#define DC_ARGS_MAX_OPTION_WORDS 255
typedef struct dc_args {
    int argc;
    char **argv; /* reordered in place: positionals first, then the options */
    const char *cmd;
    char **positional; /* argv + 1 */
    int n_positional;
    int first_option;  /* argv index of the first option word */
    unsigned char used[DC_ARGS_MAX_OPTION_WORDS]; /* which option words were consumed */
} dc_args;

/* `flags` lists options that take no value, e.g. {"tied", "help", NULL}. Returns 0 or
 * prints an error and returns 2. */
int dc_args_parse(dc_args *a, const char *cmd, int argc, char **argv, const char *const *flags);
const char *dc_args_str(dc_args *a, const char *name, const char *def);
int dc_args_int(dc_args *a, const char *name, int def);
long dc_args_long(dc_args *a, const char *name, long def);
/* A finite number: "nan", "inf" and out-of-range values exit with status 2 naming the
 * option, so no command has to check its float options for non-finite values. */
float dc_args_float(dc_args *a, const char *name, float def);
int dc_args_flag(dc_args *a, const char *name);
/* After all lookups: error (returns 2) if an option was given that no lookup read. */
int dc_args_check_unused(dc_args *a);
/* --max-image-pixels N (a whole number >= 1; absent: the library's default) into opts.
 * 0, or 2 after printing why. */
int dc_cli_load_options(dc_args *a, dc_load_options *opts);
/* Set when a numeric option did not parse; the parse error was printed. */
extern const char *dc_cli_prog;

/* Print "deconv CMD: message" to stderr and return exit code 1. */
int dc_cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A path option's value into a fixed field; 0, or 2 after saying it does not fit. */
int dc_cli_copy_path(const char *cmd, const char *opt, const char *value, char *dst, size_t cap);
/* Seconds on a monotonic clock (for elapsed times). */
double dc_cli_now_s(void);
/* Format a path into buf; 0, or 2 after saying that it is too long (never a cut path). */
int dc_cli_path(const char *cmd, char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Create the backend named by --device (default "auto"). Prints the choice. */
int dc_cli_backend(dc_args *a, dc_backend **out);
/* The end of a command's option parsing: every option other than --device must have been
 * read by now (dc_args_check_unused), then the backend is created. Returns 0, or the exit
 * status (2: unknown option, 1: no backend) after printing why. */
int dc_cli_backend_last(dc_args *a, dc_backend **out);
/* The PSF given by exactly one of --psf FILE, --gaussian SIGMA, --motion LEN,ANGLE (blur,
 * restore); desc (may be NULL) gets a one-line description. 0, or the exit status. */
struct dc_fimage;
int dc_cli_psf(dc_args *a, struct dc_fimage **psf, char *desc, size_t cap);

/* The latest checkpoint of a run folder: RUN/model.safetensors. */
#define DC_RUN_CHECKPOINT "model.safetensors"
/* Open a run folder or a .safetensors file: rebuild its model (spec from the metadata key
 * "model") with the given batch size on `be` and load the weights. meta may be NULL.
 * Prints the error and returns 1 on failure, 0 on success. */
int dc_cli_open_run(const char *cmd, const char *run, dc_backend *be, int batch, dc_model **out,
                    dc_meta *meta);
/* Resolve RUN to its checkpoint path into buf: 0, or -1 when it does not fit (buf then
 * holds a truncated path that must not be used). */
int dc_cli_checkpoint_path(const char *run, char *buf, size_t cap);
/* Parse model options (--model --size --channels --base --blocks --kernel --latent --tied
 * --noise --mask --visible-weight --loss --beta --classes --batchnorm --dropout) into spec. */
int dc_cli_model_spec(dc_args *a, dc_model_spec *spec);
/* The same with the channels used when --channels is not given (train: the data's). */
int dc_cli_model_spec_channels(dc_args *a, dc_model_spec *spec, int default_channels);

/* The class names a checkpoint stores (metadata key "classes", a JSON array): 0 with
 * *names NULL when there are none, -1 when the entry is malformed or memory runs out.
 * Free with dc_cli_names_free. */
int dc_cli_run_classes(const dc_meta *meta, char ***names, int *count);
void dc_cli_names_free(char **names, int count); /* NULL-safe */
/* Replace a data path that names an existing file or folder by its absolute form (a
 * dataset name such as "fashion-mnist" stays). 0, or 2 after saying it does not fit. */
int dc_cli_absolute_data(char *data, size_t cap);
/* A whole text file (NUL-terminated, malloc'ed), or NULL. */
char *dc_cli_read_text(const char *path);

#endif
