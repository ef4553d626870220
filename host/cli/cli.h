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

/* One command-line grammar for every command. Each command declares its options in a
 * table; the parser, the --help text, the man pages and the bash completion all come from
 * it. Options are "--name value", "--name=value", "--flag" or "-x [value]" (the short
 * letter of a table entry); "--" ends the options; every other word is positional. */
typedef enum dc_opt_kind {
    DC_OPT_FLAG,   /* takes no value */
    DC_OPT_TEXT,   /* any string */
    DC_OPT_INT,    /* a whole number */
    DC_OPT_NUM,    /* a finite number */
    DC_OPT_DEVICE, /* cpu | opencl | opencl:P:D | auto */
} dc_opt_kind;

typedef struct dc_option {
    const char *name;    /* long name without "--"; NULL ends a table */
    char letter;         /* the short form "-x", 0 when none */
    dc_opt_kind kind;
    const char *value;   /* what the value looks like in the help: "N", "FILE", "a|b|c" */
    const char *help;    /* one line; "\n" continues it on the next line */
    const char *def;     /* the default, shown in the help; NULL: none shown */
    const char *aliases; /* older spellings still accepted, space-separated, not documented */
} dc_option;

typedef struct dc_command {
    const char *name;
    const char *synopsis; /* after "usage: deconv NAME "; further lines after "\n" */
    const char *about;    /* what the command does, printed before the options */
    const dc_option *options;
    const dc_option *shared; /* a second table, e.g. the model options (may be NULL) */
    /* Prose after the options that needs values known only at build time (may be NULL). */
    void (*notes)(FILE *f);
    int max_positional;      /* -1: any number */
    const char *positional_what; /* "one RUN", for the stray-argument message */
    int takes_data;          /* a stray folder gets "did you mean --data FOLDER?" */
    int computes;            /* gets --threads N and --quiet (and --json where declared) */
} dc_command;

/* Exit statuses, the same for every command. */
enum { DC_EXIT_OK = 0, DC_EXIT_FAILURE = 1, DC_EXIT_USAGE = 2, DC_EXIT_INTERRUPTED = 130 };

#define DC_ARGS_MAX_OPTIONS 128
typedef struct dc_args_given {
    const dc_option *opt;
    const char *word;  /* as typed, for messages */
    const char *value; /* NULL for a flag */
    unsigned char used;
} dc_args_given;

typedef struct dc_args {
    const char *cmd;
    const dc_command *spec;
    char **positional; /* reordered in place within argv: positionals first */
    int n_positional;
    int quiet;   /* --quiet: no progress or info lines */
    int threads; /* --threads N; 0 when not given */
    int status;  /* the exit status when dc_args_parse says stop */
    int n_given;
    dc_args_given given[DC_ARGS_MAX_OPTIONS];
} dc_args;

/* Parses argv (argv[0] is the command name) against the command's table. Returns 0 to go
 * on, or 1 to stop with a->status as the exit status: 0 after printing --help to stdout, 2
 * after saying on stderr what was wrong (unknown option with a "did you mean", a missing
 * or malformed value, a stray argument). --threads N also sets the OpenMP thread count. */
int dc_args_parse(dc_args *a, const dc_command *cmd, int argc, char **argv);
/* 0 when name is a --device name (cpu, opencl, opencl:P:D, auto), else 2 after saying so. */
int dc_cli_check_device(const char *cmd, const char *name);
/* The help text of a command (what --help prints). */
void dc_args_usage(const dc_command *cmd, FILE *f);
/* The exit status table, as printed by every --help. */
void dc_cli_exit_codes(FILE *f);
/* The "did you mean" candidate among names (NULL-terminated) for a misspelt word, or NULL. */
const char *dc_cli_closest(const char *word, const char *const *names);
/* Lookups by the option's table name; each marks the option used. Values were checked
 * against their kind when parsed, so the numeric lookups cannot fail on a declared option. */
const char *dc_args_str(dc_args *a, const char *name, const char *def);
int dc_args_int(dc_args *a, const char *name, int def);
long dc_args_long(dc_args *a, const char *name, long def);
float dc_args_float(dc_args *a, const char *name, float def);
int dc_args_flag(dc_args *a, const char *name);
/* After all lookups: error (returns 2) if an option was given that this use of the
 * command does not read (e.g. a diffusion-only option on a VAE run). */
int dc_args_check_unused(dc_args *a);
/* --max-image-pixels N (a whole number >= 1; absent: the library's default) into opts.
 * 0, or 2 after printing why. */
int dc_cli_load_options(dc_args *a, dc_load_options *opts);
/* The options every computing command shares (--device, --threads, --quiet), for tables. */
#define DC_OPT_DEVICE_ENTRY                                                                      \
    {"device", 0, DC_OPT_DEVICE, "cpu|opencl|opencl:P:D|auto", "where to compute", "auto", NULL}
/* A macro's value as a string, for defaults in the tables. */
#define DC_CLI_STR_(x) #x
#define DC_CLI_STR(x) DC_CLI_STR_(x)
/* The PSF options of blur and restore (dc_cli_psf reads them). */
#define DC_OPT_PSF_ENTRIES                                                                       \
    {"psf", 0, DC_OPT_TEXT, "FILE",                                                              \
     "PSF from an image or a text matrix (.txt/.csv), normalised to sum 1", NULL, NULL},         \
        {"gaussian", 0, DC_OPT_NUM, "SIGMA", "Gaussian PSF, size 2*ceil(3*SIGMA)+1", NULL, NULL}, \
        {"motion", 0, DC_OPT_TEXT, "LEN,ANGLE",                                                  \
         "linear motion of LEN pixels at ANGLE degrees (counter-clockwise)", NULL, NULL}
#define DC_OPT_END {NULL, 0, 0, NULL, NULL, NULL, NULL}
/* The model options of train and info (dc_cli_model_spec reads them). */
extern const dc_option dc_cli_model_options[];
extern const char *dc_cli_prog;

/* Print "deconv CMD: message" to stderr and return exit code 1. */
int dc_cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The same for a usage error (a bad option value): returns exit code 2. */
int dc_cli_usage(const char *cmd, const char *fmt, ...)
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
/* Create the backend named by --device (default "auto"). Prints the choice unless --quiet;
 * --threads applies to it. 0, or 1 after printing why (a device that fails: a runtime
 * error; a malformed name was refused as a usage error by the parser). */
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
