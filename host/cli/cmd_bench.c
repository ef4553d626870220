/* deconv bench: training and inference throughput of the model presets on one or more
 * backends, with the numbers needed to judge them: the FLOPs of a step, the achieved
 * GFLOP/s, the backend's own GEMM rate on the exact products the step runs, peak host and
 * device memory, and the OpenCL start-up time (cold and warm program cache).
 *
 * Each (device, model) pair runs in a child process (this binary, `bench --single`), so
 * the peak resident memory (getrusage) is that model's alone and one model's allocator
 * state or thread pools cannot colour the next. The start-up probe is a child as well:
 * its clock starts before the child is spawned, so it includes exec and dynamic loading.
 *
 * What a timed step is (the same calls `deconv train` makes): upload a fixed random batch,
 * set the step's seed, forward, zero the parameter gradients, backward, Adam step. The
 * timed region ends with a blocking read of the loss, so asynchronous backends are
 * measured to completion. Inference: eval mode, upload, forward to the output node. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"

extern char **environ;

/* --------------------------------------------------------------- the parent */
/* Runs this binary with `args` (NULL-terminated, after "bench"), environment `env` (NULL:
 * ours), and returns the parsed result object it printed, or NULL. *t_spawn gets the
 * monotonic time just before the spawn. */
static cJSON *spawn_child(char *const *args, char **env, double *t_spawn) {
    char *argv[48];
    int n = 0;
    argv[n++] = (char *)"deconv";
    argv[n++] = (char *)"bench";
    for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int fd[2];
    if (pipe(fd) != 0) return NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    const double t0 = bench_now_s();
    int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env ? env : environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (t_spawn) *t_spawn = t0;
    if (e != 0) {
        close(fd[0]);
        fprintf(stderr, "deconv bench: cannot start a child: %s\n", strerror(e));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t got;
    while (out && (got = read(fd[0], out + len, cap - 1 - len)) > 0) {
        len += (size_t)got;
        if (len + 1 >= cap) {
            char *bigger = realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger, cap *= 2;
        }
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    cJSON *r = NULL;
    if (out) {
        out[len] = 0;
        char *tag = strstr(out, BENCH_RESULT_TAG);
        if (tag && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            r = cJSON_Parse(tag + strlen(BENCH_RESULT_TAG));
        free(out);
    }
    return r;
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Our environment with XDG_CACHE_HOME=dir and without DECONV_CACHE_DIR (which would win). */
static char **env_with_cache(const char *dir, char *slot, size_t cap) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "XDG_CACHE_HOME=", 15) && strncmp(environ[i], "DECONV_CACHE_DIR=", 17))
            env[j++] = environ[i];
    snprintf(slot, cap, "XDG_CACHE_HOME=%s", dir);
    env[j++] = slot;
    env[j] = NULL;
    return env;
}

static void remove_tree(const char *dir) {
    /* the probe's cache: XDG/deconv/<hash>.clbin, nothing deeper */
    char sub[1200], cmd[2600];
    snprintf(sub, sizeof sub, "%s/deconv", dir);
    struct stat st;
    if (stat(sub, &st) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "deconv bench: could not remove %s\n", dir);
        return;
    }
    rmdir(dir);
}

/* Cold start (empty cache folder), then warm start (the same folder). */
static cJSON *startup_bench(const bench_opts *o, const char *device) {
    char tmpl[] = "/tmp/deconv-bench-cache-XXXXXX";
    if (!mkdtemp(tmpl)) {
        fprintf(stderr, "deconv bench: mkdtemp: %s\n", strerror(errno));
        return NULL;
    }
    char slot[1100];
    char **env = env_with_cache(tmpl, slot, sizeof slot);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "device", device);
    cJSON_AddStringToObject(res, "model", o->startup_model);
    cJSON_AddStringToObject(res, "measured_from", "before the child process is spawned");
    const char *names[2] = {"first_start", "second_start"};
    for (int run = 0; run < 2 && env; run++) {
        char *args[] = {(char *)"--startup-probe", (char *)"--device", (char *)device,
                        (char *)"--model", (char *)o->startup_model, NULL};
        double t0 = 0;
        cJSON *r = spawn_child(args, env, &t0);
        if (!r) {
            fprintf(stderr, "deconv bench: the start-up probe on %s failed\n", device);
            break;
        }
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "to_main_s", jnum(r, "t_enter") - t0);
        cJSON_AddNumberToObject(s, "to_backend_s", jnum(r, "t_backend") - t0);
        cJSON_AddNumberToObject(s, "to_ready_s", jnum(r, "t_ready") - t0);
        cJSON_AddNumberToObject(s, "to_first_step_done_s", jnum(r, "t_step1") - t0);
        cJSON_AddNumberToObject(s, "first_step_s", jnum(r, "t_step1") - jnum(r, "t_ready"));
        cJSON_AddNumberToObject(s, "second_step_s", jnum(r, "t_step2") - jnum(r, "t_step1"));
        cJSON_AddNumberToObject(s, "program_s", jnum(r, "program_s"));
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(r, "program_from_cache");
        cJSON_AddBoolToObject(s, "program_from_cache", cJSON_IsTrue(fc));
        cJSON_AddItemToObject(res, names[run], s);
        cJSON_Delete(r);
    }
    free(env);
    remove_tree(tmpl);
    return res;
}

static void machine_info(cJSON *root) {
    char model[256] = "unknown", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *c = strchr(line, ':');
            if (c) {
                snprintf(model, sizeof model, "%s", c + 2);
                model[strcspn(model, "\n")] = 0;
            }
            break;
        }
    if (f) fclose(f);
    cJSON_AddStringToObject(root, "cpu", model);
    cJSON_AddNumberToObject(root, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
}

static void print_table(const cJSON *results, const cJSON *startups) {
    printf("\n%-8s %-16s %5s %11s %11s %9s %8s %8s %6s %8s %8s\n", "device", "model", "batch",
           "train img/s", "infer img/s", "step GFLOP", "GFLOP/s", "SGEMM/s", "ratio", "RSS MB",
           "dev MB");
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
        const cJSON *mod = cJSON_GetObjectItemCaseSensitive(r, "model");
        const cJSON *errv = cJSON_GetObjectItemCaseSensitive(r, "error");
        if (cJSON_IsString(errv)) {
            printf("%-8s %-16s  failed: %s\n", dev->valuestring, mod->valuestring, errv->valuestring);
            continue;
        }
        printf("%-8s %-16s %5.0f %11.1f %11.1f %9.2f %8.1f %8.1f %6.2f %8.0f %8.0f\n",
               dev->valuestring, mod->valuestring, jnum(r, "batch"), jnum(r, "train_ips"),
               jnum(r, "infer_ips"), jnum(r, "step_flops") / 1e9, jnum(r, "step_gflops"),
               jnum(r, "sgemm_gflops"), jnum(r, "ratio_to_sgemm"), jnum(r, "peak_rss_mb"),
               jnum(r, "device_peak_mb"));
    }
    printf("step GFLOP = 3 x forward FLOPs of the graph; GFLOP/s = step GFLOP / median step time;\n"
           "SGEMM/s = the backend's gemm on the step's own conv/dense products (same chunking);\n"
           "ratio = GFLOP/s / SGEMM/s; RSS = peak resident memory of the process (getrusage);\n"
           "dev MB = peak bytes allocated through the backend.\n");
    cJSON_ArrayForEach(r, startups) {
        const cJSON *dev = cJSON_GetObjectItemCaseSensitive(r, "device");
        if (!cJSON_GetObjectItemCaseSensitive(r, "first_start")) {
            printf("\nstart-up on %s: the probe failed\n", dev->valuestring);
            continue;
        }
        printf("\nstart-up on %s (%s model, from spawn):\n", dev->valuestring,
               cJSON_GetObjectItemCaseSensitive(r, "model")->valuestring);
        const char *names[2] = {"first_start", "second_start"};
        for (int i = 0; i < 2; i++) {
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, names[i]);
            if (!s) continue;
            printf("  %-13s ready %.3f s (program %.3f s, %s), first step done %.3f s "
                   "(first step %.3f s, next step %.3f s)\n",
                   i ? "second start" : "first start", jnum(s, "to_ready_s"), jnum(s, "program_s"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "program_from_cache"))
                       ? "from cache"
                       : "compiled",
                   jnum(s, "to_first_step_done_s"), jnum(s, "first_step_s"), jnum(s, "second_step_s"));
        }
    }
}

static const dc_option bench_options[] = {
    {"device", 0, DC_OPT_TEXT, "LIST", "cpu, opencl, opencl:P:D, comma-separated", "cpu", NULL},
    {"models", 0, DC_OPT_TEXT, "LIST",
     BENCH_ALL_MODELS " (the presets the PyTorch twin rebuilds), or\n" BENCH_COMPLETE_DEFAULT
                      " (complete as `deconv train` builds it: U-Net skips, two unrolled passes)",
     "all", "model"},
    {"warmup", 0, DC_OPT_INT, "N", "untimed steps first", "3", NULL},
    {"repeats", 0, DC_OPT_INT, "N", "timed runs; the median is reported", "5", NULL},
    {"steps", 0, DC_OPT_INT, "N", "steps per timed run", "5", NULL},
    {"threads", 0, DC_OPT_INT, "N", "CPU backend threads (0: all cores)", "all cores", NULL},
    {"batch", 0, DC_OPT_INT, "N", "override the presets' batch sizes", NULL, NULL},
    {"gemm-seconds", 0, DC_OPT_NUM, "S", "measuring time per distinct GEMM shape", "0.2", NULL},
    {"no-gemm", 0, DC_OPT_FLAG, NULL, "skip the GEMM measurement", NULL, NULL},
    {"profile", 0, DC_OPT_INT, "N", "also time every backend primitive over N more training steps",
     NULL, NULL},
    {"trace", 0, DC_OPT_FLAG, NULL, "with --profile: print every primitive call of one step first",
     NULL, NULL},
    {"no-infer", 0, DC_OPT_FLAG, NULL, "skip the inference timing (e.g. to profile training alone)",
     NULL, NULL},
    {"startup", 0, DC_OPT_FLAG, NULL,
     "measure the start-up time on every device (default: OpenCL ones)", NULL, NULL},
    {"no-startup", 0, DC_OPT_FLAG, NULL, "never measure it", NULL, NULL},
    {"startup-model", 0, DC_OPT_TEXT, "M", "model of the start-up probe", "complete", NULL},
    {"json", 0, DC_OPT_TEXT, "FILE", "write every figure as JSON", NULL, NULL},
    {"single", 0, DC_OPT_FLAG, NULL,
     "run one --device and one --models in this process and print its\nresult as one JSON line "
     "(what the parent spawns; handy under perf)",
     NULL, NULL},
    {"startup-probe", 0, DC_OPT_FLAG, NULL, "the start-up child (spawned by the parent)", NULL,
     NULL},
    DC_OPT_END,
};

static const dc_command bench_command = {
    .name = "bench",
    .synopsis = "[options]",
    .about = "Training and inference images/s of the model presets (complete, vae, glo at 64x64\n"
             "batch 64, glo with 1024 latents; classifier 28x28 batch 128; diffusion 32x32\n"
             "batch 64), median of repeated timed runs after warm-up, with FLOPs, achieved\n"
             "GFLOP/s, the backend's GEMM rate on the step's own products, peak memory, and the\n"
             "OpenCL start-up time.\n",
    .options = bench_options,
    .max_positional = 0,
    .positional_what = "options only",
    .computes = 1,
};

int dc_cmd_bench(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &bench_command, argc, argv)) return a.status;
    bench_opts o;
    memset(&o, 0, sizeof o);
    snprintf(o.devices, sizeof o.devices, "%s", dc_args_str(&a, "device", "cpu"));
    snprintf(o.models, sizeof o.models, "%s", dc_args_str(&a, "models", BENCH_ALL_MODELS));
    o.warmup = dc_args_int(&a, "warmup", 3);
    o.repeats = dc_args_int(&a, "repeats", 5);
    o.steps = dc_args_int(&a, "steps", 5);
    o.threads = dc_args_int(&a, "threads", 0);
    o.batch = dc_args_int(&a, "batch", 0);
    o.gemm_seconds = dc_args_float(&a, "gemm-seconds", 0.2f);
    o.gemm = !dc_args_flag(&a, "no-gemm");
    o.infer = !dc_args_flag(&a, "no-infer");
    o.profile = dc_args_int(&a, "profile", 0);
    o.trace = dc_args_flag(&a, "trace");
    o.startup = dc_args_flag(&a, "no-startup") ? 0 : dc_args_flag(&a, "startup") ? 1 : -1;
    snprintf(o.startup_model, sizeof o.startup_model, "%s", dc_args_str(&a, "startup-model", "complete"));
    snprintf(o.json, sizeof o.json, "%s", dc_args_str(&a, "json", ""));
    const int single = dc_args_flag(&a, "single"), probe = dc_args_flag(&a, "startup-probe");
    if (dc_args_check_unused(&a)) return 2;
    if (o.warmup < 0 || o.repeats < 1 || o.steps < 1 || o.repeats > 1000 || o.batch < 0 ||
        !(o.gemm_seconds >= 0)) {
        fprintf(stderr, "deconv bench: --warmup >= 0, --repeats in [1, 1000], --steps >= 1, "
                        "--batch >= 0, --gemm-seconds >= 0\n");
        return 2;
    }
    {
        char devs[256];
        snprintf(devs, sizeof devs, "%s", o.devices);
        for (char *save = NULL, *dev = strtok_r(devs, ",", &save); dev;
             dev = strtok_r(NULL, ",", &save))
            if (dc_cli_check_device("bench", dev)) return 2;
    }
    if (single || probe) {
        if (strchr(o.devices, ',') || strchr(o.models, ','))
            return dc_cli_fail("bench", "--single and --startup-probe take one --device and one --models");
        return probe ? bench_run_startup_probe(&o, o.devices, o.models) : bench_run_single(&o, o.devices, o.models);
    }

    /* ---- the parent: one child per (device, model) ---- */
    {
        char mods[256];
        snprintf(mods, sizeof mods, "%s", o.models);
        for (char *save = NULL, *mod = strtok_r(mods, ",", &save); mod; mod = strtok_r(NULL, ",", &save)) {
            dc_model_spec spec;
            int batch;
            dc_error err = {0};
            if (bench_preset(mod, o.batch, &spec, &batch, &err)) {
                fprintf(stderr, "deconv bench: --models: %s\n", err.msg);
                return 2;
            }
        }
    }
    char threads[16], warmup[16], repeats[16], steps[16], batch[16], gsec[32];
    snprintf(threads, sizeof threads, "%d", o.threads);
    snprintf(warmup, sizeof warmup, "%d", o.warmup);
    snprintf(repeats, sizeof repeats, "%d", o.repeats);
    snprintf(steps, sizeof steps, "%d", o.steps);
    snprintf(batch, sizeof batch, "%d", o.batch);
    snprintf(gsec, sizeof gsec, "%g", o.gemm_seconds);
    cJSON *root = cJSON_CreateObject();
    machine_info(root);
    cJSON_AddNumberToObject(root, "loadavg_start", bench_loadavg1());
    {
        time_t t = time(NULL);
        char date[64];
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", localtime(&t));
        cJSON_AddStringToObject(root, "date", date);
    }
    cJSON_AddStringToObject(root, "version", DECONV_VERSION);
    cJSON *results = cJSON_AddArrayToObject(root, "results");
    cJSON *startups = cJSON_AddArrayToObject(root, "startup");
    int failures = 0;
    char devs[256];
    snprintf(devs, sizeof devs, "%s", o.devices);
    for (char *dsave = NULL, *dev = strtok_r(devs, ",", &dsave); dev; dev = strtok_r(NULL, ",", &dsave)) {
        char mods[256];
        snprintf(mods, sizeof mods, "%s", o.models);
        for (char *msave = NULL, *mod = strtok_r(mods, ",", &msave); mod; mod = strtok_r(NULL, ",", &msave)) {
            if (!a.quiet) fprintf(stderr, "deconv bench: %s on %s ...\n", mod, dev);
            char *args[24];
            int n = 0;
            args[n++] = (char *)"--single";
            args[n++] = (char *)"--device", args[n++] = dev;
            args[n++] = (char *)"--models", args[n++] = mod;
            args[n++] = (char *)"--threads", args[n++] = threads;
            args[n++] = (char *)"--warmup", args[n++] = warmup;
            args[n++] = (char *)"--repeats", args[n++] = repeats;
            args[n++] = (char *)"--steps", args[n++] = steps;
            args[n++] = (char *)"--batch", args[n++] = batch;
            args[n++] = (char *)"--gemm-seconds", args[n++] = gsec;
            if (!o.gemm) args[n++] = (char *)"--no-gemm";
            if (!o.infer) args[n++] = (char *)"--no-infer";
            char prof_steps[16];
            snprintf(prof_steps, sizeof prof_steps, "%d", o.profile);
            if (o.profile > 0) args[n++] = (char *)"--profile", args[n++] = prof_steps;
            if (o.trace) args[n++] = (char *)"--trace";
            args[n] = NULL;
            cJSON *r = spawn_child(args, NULL, NULL);
            if (!r) {
                failures++;
                r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "device", dev);
                cJSON_AddStringToObject(r, "model", mod);
                cJSON_AddStringToObject(r, "error", "the benchmark child failed (see above)");
            } else if (!a.quiet) {
                fprintf(stderr, "deconv bench: %s on %s: train %.1f img/s, inference %.1f img/s\n",
                        mod, dev, jnum(r, "train_ips"), jnum(r, "infer_ips"));
            }
            cJSON_AddItemToArray(results, r);
        }
        const int is_cl = !strncmp(dev, "opencl", 6);
        if (o.startup == 1 || (o.startup == -1 && is_cl)) {
            if (!a.quiet) fprintf(stderr, "deconv bench: start-up time on %s ...\n", dev);
            cJSON *s = startup_bench(&o, dev);
            if (s) cJSON_AddItemToArray(startups, s);
        }
    }
    cJSON_AddNumberToObject(root, "loadavg_end", bench_loadavg1());
    print_table(results, startups);
    printf("load average (1 min): %.2f at the start, %.2f at the end\n", jnum(root, "loadavg_start"),
           jnum(root, "loadavg_end"));
    int rc = failures ? 1 : 0;
    if (o.json[0]) {
        char *text = cJSON_Print(root);
        FILE *f = text ? fopen(o.json, "w") : NULL;
        if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) {
            dc_cli_fail("bench", "cannot write --json %s: %s", o.json, strerror(errno));
            rc = 1;
        }
        if (f && fclose(f) != 0) rc = 1;
        free(text);
    }
    cJSON_Delete(root);
    return rc;
}
