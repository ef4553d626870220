/* The command-line parser every command uses (its grammar: cli.h), the help text made from
 * the option tables, and small shared CLI helpers. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <omp.h>

#include "cli/cli.h"

/* Options every computing command has, after its own table. */
static const dc_option common_options[] = {
    {"threads", 0, DC_OPT_INT, "N", "CPU threads (default: all cores)", NULL, NULL},
    {"quiet", 'q', DC_OPT_FLAG, NULL, "no progress or info lines, only results and errors", NULL,
     NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL},
};
static const dc_option help_option[] = {
    {"help", 'h', DC_OPT_FLAG, NULL, "this text", NULL, NULL},
    {NULL, 0, 0, NULL, NULL, NULL, NULL},
};

/* The tables of a command in the order they are searched and printed. */
static int command_tables(const dc_command *cmd, const dc_option *tables[4]) {
    int n = 0;
    if (cmd->options) tables[n++] = cmd->options;
    if (cmd->shared) tables[n++] = cmd->shared;
    if (cmd->computes) tables[n++] = common_options;
    tables[n++] = help_option;
    return n;
}

/* Whether the space-separated `list` holds the len characters of `name`. */
static int in_list(const char *list, const char *name, size_t len) {
    for (const char *p = list; p && *p;) {
        const size_t n = strcspn(p, " ");
        if (n == len && !strncmp(p, name, len)) return 1;
        p += n + (p[n] == ' ');
    }
    return 0;
}

static int option_is(const dc_option *o, const char *name, size_t len) {
    return (strlen(o->name) == len && !strncmp(o->name, name, len)) ||
           in_list(o->aliases, name, len);
}

/* The table entry of "--name" (len characters) or of the letter; NULL when unknown. */
static const dc_option *find_option(const dc_command *cmd, const char *name, size_t len,
                                    char letter) {
    const dc_option *tables[4];
    const int n = command_tables(cmd, tables);
    for (int t = 0; t < n; t++)
        for (const dc_option *o = tables[t]; o->name; o++)
            if (letter ? o->letter == letter : option_is(o, name, len)) return o;
    return NULL;
}

/* Edit distance with adjacent transpositions counting one ("--modle"), capped at 9. */
static int edit_distance(const char *a, const char *b) {
    enum { CAP = 40 };
    const size_t n = strlen(a), m = strlen(b);
    if (n >= CAP || m >= CAP) return 9;
    int d[CAP][CAP];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] > 9 ? 9 : d[n][m];
}

const char *dc_cli_closest(const char *word, const char *const *names) {
    const char *best = NULL;
    int best_d = 9;
    const size_t len = strlen(word);
    for (int i = 0; names[i]; i++) {
        int d = edit_distance(word, names[i]);
        /* a prefix of a longer name ("--epoch" for --epochs) is as good as one edit */
        if (len >= 3 && !strncmp(names[i], word, len) && d > 1) d = 1;
        if (d < best_d) best_d = d, best = names[i];
    }
    /* at most a third of the word may differ: "--seed" is no suggestion for "--size" */
    const int allowed = len <= 3 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= allowed ? best : NULL;
}

static void unknown_option(const dc_args *a, const char *word) {
    const char *names[4 * 64 + 1];
    int n = 0;
    const dc_option *tables[4];
    const int n_tables = command_tables(a->spec, tables);
    for (int t = 0; t < n_tables; t++)
        for (const dc_option *o = tables[t]; o->name && n < 4 * 64; o++) names[n++] = o->name;
    names[n] = NULL;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(word + 2, "="), word + 2);
    /* a single letter is too short to guess from */
    const char *guess = word[1] == '-' ? dc_cli_closest(name, names) : NULL;
    fprintf(stderr, "deconv %s: unknown option '%s'", a->cmd, word);
    if (guess)
        fprintf(stderr, " (did you mean --%s?)\n", guess);
    else
        fprintf(stderr, " (see deconv %s --help)\n", a->cmd);
}

int dc_cli_check_device(const char *cmd, const char *name) {
    int p, d;
    char tail;
    if (!strcmp(name, "cpu") || !strcmp(name, "opencl") || !strcmp(name, "auto") ||
        (!strncmp(name, "opencl:", 7) && sscanf(name + 7, "%d:%d%c", &p, &d, &tail) == 2 &&
         p >= 0 && d >= 0))
        return 0;
    fprintf(stderr,
            "deconv %s: --device %s: unknown device (use cpu, opencl, opencl:P:D or auto; "
            "deconv devices lists them)\n",
            cmd, name);
    return DC_EXIT_USAGE;
}

/* The value of an option checked against its kind; 0, or 2 after saying why. */
static int check_value(const dc_args *a, const dc_option *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case DC_OPT_INT:
        (void)strtol(v, &end, 10);
        if (errno || end == v || *end) break;
        return 0;
    case DC_OPT_NUM: {
        const float x = strtof(v, &end);
        if (errno || end == v || *end) break;
        /* nan or inf would only poison the run later */
        if (!isfinite(x)) {
            fprintf(stderr, "deconv %s: --%s expects a finite number, got '%s'\n", a->cmd,
                    o->name, v);
            return 2;
        }
        return 0;
    }
    case DC_OPT_DEVICE: return dc_cli_check_device(a->cmd, v);
    default: return 0;
    }
    fprintf(stderr, "deconv %s: --%s expects %s, got '%s'\n", a->cmd, o->name,
            o->kind == DC_OPT_INT ? "a whole number" : "a number", v);
    return 2;
}

/* A stray word that names an existing file or folder was most likely meant as data. */
static int names_a_path(const char *s) {
    struct stat st;
    return stat(s, &st) == 0;
}

static int check_positionals(dc_args *a) {
    const int max = a->spec->max_positional;
    if (max < 0 || a->n_positional <= max) return 0;
    const char *stray = a->positional[max];
    fprintf(stderr, "deconv %s: unexpected argument '%s' (%s takes %s", a->cmd, stray, a->cmd,
            a->spec->positional_what ? a->spec->positional_what : "options only");
    if (a->spec->takes_data && names_a_path(stray))
        fprintf(stderr, "; did you mean --data %s?", stray);
    fprintf(stderr, ")\n");
    return 2;
}

/* --help or -h anywhere among the options (not as another option's value) wins over every
 * other complaint: a user asking for help gets it. */
static int asks_for_help(const dc_command *cmd, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (!strcmp(w, "--")) return 0;
        if (!strcmp(w, "--help") || !strcmp(w, "-h")) return 1;
        const dc_option *o = NULL;
        if (w[0] == '-' && w[1] == '-' && !strchr(w, '='))
            o = find_option(cmd, w + 2, strlen(w + 2), 0);
        else if (w[0] == '-' && isalpha((unsigned char)w[1]) && !w[2])
            o = find_option(cmd, NULL, 0, w[1]);
        if (o && o->kind != DC_OPT_FLAG) i++; /* its value */
    }
    return 0;
}

static int stop(dc_args *a, int status) {
    a->status = status;
    return 1;
}

/* Positionals move to the front of argv (in order), so any number of them (a shell glob of
 * images) needs no fixed table. */
int dc_args_parse(dc_args *a, const dc_command *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd->name;
    a->spec = cmd;
    a->positional = argv + 1;
    if (asks_for_help(cmd, argc, argv)) {
        dc_args_usage(cmd, stdout);
        return stop(a, DC_EXIT_OK);
    }
    int options_end = 0;
    for (int i = 1; i < argc; i++) {
        char *w = argv[i];
        const int is_long = !options_end && w[0] == '-' && w[1] == '-' && w[2];
        const int is_short = !options_end && w[0] == '-' && isalpha((unsigned char)w[1]) && !w[2];
        if (!options_end && !strcmp(w, "--")) {
            options_end = 1;
            continue;
        }
        if (!is_long && !is_short) {
            argv[1 + a->n_positional++] = w; /* never ahead of i: order is kept */
            continue;
        }
        const char *eq = is_long ? strchr(w, '=') : NULL;
        const size_t len = is_long ? (eq ? (size_t)(eq - w - 2) : strlen(w + 2)) : 0;
        const dc_option *o = find_option(cmd, w + 2, len, is_short ? w[1] : 0);
        if (!o) {
            if (cmd->computes && len == 4 && !strncmp(w + 2, "json", 4)) {
                fprintf(stderr, "deconv %s: --json: %s has no JSON output\n", a->cmd, a->cmd);
                return stop(a, DC_EXIT_USAGE);
            }
            unknown_option(a, w);
            return stop(a, DC_EXIT_USAGE);
        }
        const char *value = NULL;
        if (o->kind == DC_OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "deconv %s: --%s takes no value\n", a->cmd, o->name);
                return stop(a, DC_EXIT_USAGE);
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "deconv %s: option %s needs a value (%s)\n", a->cmd, w,
                    o->value ? o->value : "see --help");
            return stop(a, DC_EXIT_USAGE);
        }
        if (value && check_value(a, o, value)) return stop(a, DC_EXIT_USAGE);
        if (a->n_given == DC_ARGS_MAX_OPTIONS) {
            fprintf(stderr, "deconv %s: too many options (at most %d)\n", a->cmd,
                    DC_ARGS_MAX_OPTIONS);
            return stop(a, DC_EXIT_USAGE);
        }
        a->given[a->n_given++] = (dc_args_given){o, w, value, 0};
    }
    if (check_positionals(a)) return stop(a, DC_EXIT_USAGE);
    if (cmd->computes) {
        a->quiet = dc_args_flag(a, "quiet");
        const long threads = dc_args_long(a, "threads", 0);
        if (threads < 0 || threads > 4096) {
            fprintf(stderr, "deconv %s: --threads %ld: use 1 to 4096 (0: all cores)\n", a->cmd,
                    threads);
            return stop(a, DC_EXIT_USAGE);
        }
        a->threads = (int)threads;
        if (threads > 0) omp_set_num_threads((int)threads);
    }
    return 0;
}

/* ---- the help text, from the table ---- */

/* Prints text whose lines are separated by '\n', each line after the first indented. */
static void print_indented(FILE *f, const char *text, int indent) {
    for (const char *p = text; *p;) {
        const size_t n = strcspn(p, "\n");
        fprintf(f, "%.*s", (int)n, p);
        p += n;
        if (*p == '\n' && *++p) fprintf(f, "\n%*s", indent, "");
    }
}

static void print_option(FILE *f, const dc_option *o) {
    char left[96];
    const int n = o->letter ? snprintf(left, sizeof left, "  -%c, --%s", o->letter, o->name)
                            : snprintf(left, sizeof left, "      --%s", o->name);
    if (o->kind != DC_OPT_FLAG && n > 0 && (size_t)n < sizeof left)
        snprintf(left + n, sizeof left - (size_t)n, " %s", o->value ? o->value : "VALUE");
    enum { COLUMN = 30 };
    if (strlen(left) + 2 > COLUMN)
        fprintf(f, "%s\n%*s", left, COLUMN, "");
    else
        fprintf(f, "%-*s", COLUMN, left);
    print_indented(f, o->help, COLUMN);
    if (o->def) {
        fprintf(f, " (default: ");
        print_indented(f, o->def, COLUMN);
        fputc(')', f);
    }
    fputc('\n', f);
}

void dc_cli_exit_codes(FILE *f) {
    fprintf(f, "exit status: %d ok, %d failure (bad file, bad data, device error), %d usage error\n"
               "(unknown command or option, bad value), %d interrupted (Ctrl-C)\n",
            DC_EXIT_OK, DC_EXIT_FAILURE, DC_EXIT_USAGE, DC_EXIT_INTERRUPTED);
}

void dc_args_usage(const dc_command *cmd, FILE *f) {
    fprintf(f, "usage: deconv %s ", cmd->name);
    print_indented(f, cmd->synopsis, (int)strlen("usage: deconv  ") + (int)strlen(cmd->name));
    fprintf(f, "\n\n");
    if (cmd->about) fprintf(f, "%s\n", cmd->about);
    fprintf(f, "options:\n");
    const dc_option *tables[4];
    const int n = command_tables(cmd, tables);
    for (int t = 0; t < n; t++)
        for (const dc_option *o = tables[t]; o->name; o++)
            /* a command's own entry replaces a shared one of the same name */
            if (find_option(cmd, o->name, strlen(o->name), 0) == o) print_option(f, o);
    if (cmd->notes) {
        fputc('\n', f);
        cmd->notes(f);
    }
    fputc('\n', f);
    dc_cli_exit_codes(f);
}

/* ---- lookups ---- */

/* Value of option `name` (last occurrence wins); marks it used. */
static const char *lookup(dc_args *a, const char *name, int *present) {
    const size_t len = strlen(name);
    const char *val = NULL;
    *present = 0;
    for (int i = 0; i < a->n_given; i++)
        if (option_is(a->given[i].opt, name, len)) {
            a->given[i].used = 1;
            *present = 1;
            val = a->given[i].value;
        }
    return val;
}

const char *dc_args_str(dc_args *a, const char *name, const char *def) {
    int present;
    const char *v = lookup(a, name, &present);
    return present && v ? v : def;
}

/* A value read as a number that its table entry does not declare as one. */
static void bad_number(dc_args *a, const char *name, const char *v) {
    fprintf(stderr, "deconv %s: --%s expects a number, got '%s'\n", a->cmd, name, v);
    exit(DC_EXIT_USAGE);
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
    if (!isfinite(x)) {
        fprintf(stderr, "deconv %s: --%s expects a finite number, got '%s'\n", a->cmd, name, v);
        exit(DC_EXIT_USAGE);
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
    int present;
    (void)lookup(a, name, &present);
    return present;
}

int dc_args_check_unused(dc_args *a) {
    for (int i = 0; i < a->n_given; i++)
        if (!a->given[i].used) {
            fprintf(stderr, "deconv %s: option '%s' does not apply here (see deconv %s --help)\n",
                    a->cmd, a->given[i].word, a->cmd);
            return DC_EXIT_USAGE;
        }
    return 0;
}

/* "deconv CMD: message" on stderr; returns status. */
static int say(int status, const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "deconv %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return status;
}

int dc_cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int status = say(DC_EXIT_FAILURE, cmd, fmt, ap);
    va_end(ap);
    return status;
}

int dc_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int status = say(DC_EXIT_USAGE, cmd, fmt, ap);
    va_end(ap);
    return status;
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
    if (dc_backend_create_from_spec(spec, !a->quiet, out, &err) != DC_OK)
        return dc_cli_fail(a->cmd, "--device %s: %s", spec, err.msg);
    if (a->threads > 0) dc_backend_set_threads(*out, a->threads);
    return 0;
}

int dc_cli_backend_last(dc_args *a, dc_backend **out) {
    *out = NULL;
    (void)dc_args_str(a, "device", "auto"); /* --device counts as used */
    if (dc_args_check_unused(a)) return 2;
    return dc_cli_backend(a, out) ? 1 : 0;
}
