/* Option parsing and small shared CLI helpers. Options are "--name value", "--name=value",
 * "--flag", or a one-letter "-x value" ("-o" is the short form of "--output"); everything
 * else is positional. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"

/* The option name of argv entry s, or NULL when s is not an option. */
static const char *opt_name(const char *s) {
    if (s[0] == '-' && s[1] == '-' && s[2]) return s + 2;
    if (!strcmp(s, "-o")) return "output";
    if (s[0] == '-' && isalpha((unsigned char)s[1]) && s[2] == 0) return s + 1;
    return NULL;
}

static int is_flag(const char *name, const char *const *flags) {
    for (int i = 0; flags && flags[i]; i++)
        if (!strcmp(name, flags[i])) return 1;
    return 0;
}

/* Positionals move to the front of argv (in order) and the options after them, so any
 * number of positionals (e.g. a shell glob of images) needs no fixed table; only the
 * option words are counted against DC_ARGS_MAX_OPTION_WORDS. */
int dc_args_parse(dc_args *a, const char *cmd, int argc, char **argv, const char *const *flags) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc > 0 ? argc : 1;
    a->argv = argv;
    a->positional = argv + 1;
    char **options = malloc(sizeof(char *) * (size_t)a->argc);
    if (!options) {
        fprintf(stderr, "deconv %s: out of memory\n", cmd);
        return 2;
    }
    int n_options = 0;
    for (int i = 1; i < a->argc; i++) {
        const char *name = opt_name(argv[i]);
        if (name) {
            options[n_options++] = argv[i];
            if (!is_flag(name, flags) && !strchr(name, '=')) {
                if (i + 1 >= a->argc) {
                    fprintf(stderr, "deconv %s: option %s needs a value\n", cmd, argv[i]);
                    free(options);
                    return 2;
                }
                options[n_options++] = argv[++i];
            }
        } else {
            argv[1 + a->n_positional++] = argv[i]; /* never ahead of i: order is kept */
        }
    }
    if (n_options > DC_ARGS_MAX_OPTION_WORDS) {
        fprintf(stderr, "deconv %s: too many options (%d words; at most %d)\n", cmd, n_options,
                DC_ARGS_MAX_OPTION_WORDS);
        free(options);
        return 2;
    }
    a->first_option = 1 + a->n_positional;
    memcpy(argv + a->first_option, options, sizeof(char *) * (size_t)n_options);
    free(options);
    return 0;
}

/* Value of option `name` (last occurrence wins); marks it used. */
static const char *lookup(dc_args *a, const char *name, int *present) {
    size_t len = strlen(name);
    const char *val = NULL;
    *present = 0;
    for (int i = a->first_option; i < a->argc; i++) {
        const char *o = opt_name(a->argv[i]);
        if (!o) continue; /* a value already taken with its option */
        unsigned char *used = &a->used[i - a->first_option];
        if (!strncmp(o, name, len) && o[len] == '=') {
            *used = 2;
            *present = 1;
            val = o + len + 1;
        } else if (!strcmp(o, name) && i + 1 < a->argc) {
            used[0] = used[1] = 2;
            *present = 1;
            val = a->argv[++i];
        }
    }
    return val;
}

const char *dc_args_str(dc_args *a, const char *name, const char *def) {
    int present;
    const char *v = lookup(a, name, &present);
    return present && v ? v : def;
}

static void bad_number(dc_args *a, const char *name, const char *v) {
    fprintf(stderr, "deconv %s: --%s expects a number, got '%s'\n", a->cmd, name, v);
    exit(2);
}

long dc_args_long(dc_args *a, const char *name, long def) {
    const char *v = dc_args_str(a, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) bad_number(a, name, v);
    return x;
}

int dc_args_int(dc_args *a, const char *name, int def) {
    long x = dc_args_long(a, name, def);
    if (x > 2147483647L || x < -2147483647L) bad_number(a, name, dc_args_str(a, name, "?"));
    return (int)x;
}

float dc_args_float(dc_args *a, const char *name, float def) {
    const char *v = dc_args_str(a, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end) bad_number(a, name, v);
    /* no option means "nan" or "inf": a non-finite value would only poison the run later */
    if (!isfinite(x)) {
        fprintf(stderr, "deconv %s: --%s expects a finite number, got '%s'\n", a->cmd, name, v);
        exit(2);
    }
    return x;
}

int dc_cli_load_options(dc_args *a, dc_load_options *opts) {
    memset(opts, 0, sizeof *opts);
    const char *v = dc_args_str(a, "max-image-pixels", NULL);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < 1) {
        fprintf(stderr, "deconv %s: --max-image-pixels expects a whole number >= 1, got '%s'\n",
                a->cmd, v);
        return 2;
    }
    opts->max_image_pixels = (int64_t)x;
    return 0;
}

int dc_args_flag(dc_args *a, const char *name) {
    int found = 0;
    for (int i = a->first_option; i < a->argc; i++) {
        const char *o = opt_name(a->argv[i]);
        if (o && !strcmp(o, name)) {
            a->used[i - a->first_option] = 2;
            found = 1;
        }
    }
    return found;
}

/* How many positional arguments each command takes (-1: any number); a command missing
 * here is not checked. Kept beside the parser so that every command gets the same check
 * without repeating it. */
static const struct {
    const char *cmd;
    int max;
    const char *what;
    int takes_data; /* has a --data option: a stray folder gets "did you mean --data" */
} positional_limits[] = {
    {"info", 1, "one RUN", 0},         {"train", 0, "options only", 1},
    {"devices", 0, "options only", 0}, {"bench", 0, "options only", 0},
    {"blur", 1, "one IMAGE", 0},       {"restore", 1, "one IMAGE", 0},
    {"generate", 1, "one RUN", 0},     {"dream", -1, "", 0}, /* diffusion: RUN IMAGE... */
    {"interpolate", 3, "RUN A B", 0},  {"export", 1, "one RUN", 0},
    {"eval", 1, "one RUN", 1},         {"visualize", 2, "METHOD RUN", 1},
    {"complete", -1, "", 0},           {"predict", -1, "", 0},
};

/* A stray word that names an existing file or folder was most likely meant as data. */
static int names_a_path(const char *s) {
    struct stat st;
    return stat(s, &st) == 0;
}

static int check_positionals(dc_args *a) {
    for (size_t i = 0; i < sizeof positional_limits / sizeof positional_limits[0]; i++) {
        if (strcmp(a->cmd, positional_limits[i].cmd)) continue;
        const int max = positional_limits[i].max;
        if (max < 0 || a->n_positional <= max) return 0;
        const char *stray = a->positional[max];
        fprintf(stderr, "deconv %s: unexpected argument '%s' (%s takes %s", a->cmd, stray, a->cmd,
                positional_limits[i].what);
        if (positional_limits[i].takes_data && names_a_path(stray))
            fprintf(stderr, "; did you mean --data %s?", stray);
        fprintf(stderr, ")\n");
        return 2;
    }
    return 0;
}

int dc_args_check_unused(dc_args *a) {
    if (check_positionals(a)) return 2;
    for (int i = a->first_option; i < a->argc; i++)
        if (!a->used[i - a->first_option]) {
            fprintf(stderr, "deconv %s: unknown option '%s' (see deconv %s --help)\n", a->cmd,
                    a->argv[i], a->cmd);
            return 2;
        }
    return 0;
}

int dc_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "deconv %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int dc_cli_copy_path(const char *cmd, const char *opt, const char *value, char *dst, size_t cap) {
    const size_t n = strlen(value);
    if (n >= cap) {
        fprintf(stderr, "deconv %s: %s '%.60s...' is longer than %zu characters\n", cmd, opt, value,
                cap - 1);
        return 2;
    }
    memcpy(dst, value, n + 1);
    return 0;
}

double dc_cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int dc_cli_path(const char *cmd, char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < cap) return 0;
    fprintf(stderr, "deconv %s: a path of %d characters is too long (at most %zu): %.60s...\n",
            cmd, n, cap - 1, buf);
    return 2;
}

int dc_cli_backend(dc_args *a, dc_backend **out) {
    const char *spec = dc_args_str(a, "device", "auto");
    dc_error err = {0};
    if (dc_backend_create_from_spec(spec, 1, out, &err) != DC_OK)
        return dc_cli_fail(a->cmd, "--device %s: %s", spec, err.msg);
    return 0;
}

int dc_cli_backend_last(dc_args *a, dc_backend **out) {
    *out = NULL;
    (void)dc_args_str(a, "device", "auto"); /* --device counts as used */
    if (dc_args_check_unused(a)) return 2;
    return dc_cli_backend(a, out) ? 1 : 0;
}
