/* The CLI end to end on a tiny dataset: train every model kind, then generate, complete,
 * dream, interpolate, eval; resume after Ctrl-C is bit-identical to an uninterrupted run
 * on the CPU backend; bad input gives a clear message and a non-zero exit status. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tu_stb_image.h"

#include "deconv/image.h"
#include "deconv/io.h"
#include "deconv/train.h"
#include "internal.h"
#include "testutil.h"

static char *g_dir;

static int exists(const char *dir, const char *name) {
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

/* 12 tiny 16x16 "guns": dark bars on white at different places. */
static int setup(void **state) {
    (void)state;
    g_dir = tu_tmpdir("cli");
    if (!g_dir) return -1;
    char data[1024];
    snprintf(data, sizeof data, "%s/data", g_dir);
    mkdir(data, 0755);
    dc_error err = {0};
    for (int i = 0; i < 12; i++) {
        float img[256];
        for (int p = 0; p < 256; p++) img[p] = 1.0f;
        for (int y = 4 + i % 4; y < 8 + i % 4; y++)
            for (int x = 2; x < 10 + i % 5; x++) img[y * 16 + x] = -1.0f;
        for (int y = 8; y < 14; y++) img[y * 16 + 3 + i % 3] = -1.0f;
        char p[1200];
        snprintf(p, sizeof p, "%s/g%02d.png", data, i);
        if (dc_image_write_png(p, img, 1, 16, 16, DC_RANGE_PM1, &err) != DC_OK) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_system("rm -rf '%s'", g_dir);
    free(g_dir);
    return 0;
}

#define SMALL "--size 16 --base 4 --blocks 2 --latent 8 --batch 4 --device cpu --quiet --threads 1"

static void test_train_and_generate_each_kind(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    /* the last: a completion model without the hole input (the design before it, as older
     * runs have), through every command */
    const char *kinds[] = {"complete", "vae", "glo", "complete"};
    const char *opts[] = {"--tied --mask random --unroll 2", "", "",
                          "--no-hole-input --feedback 0.5 --unroll 3 --skips"};
    for (int k = 0; k < 4; k++) {
        const int has_encoder = k != 2;
        char run[1200];
        snprintf(run, sizeof run, "%s/run_%s%s", g_dir, kinds[k], k == 3 ? "_hole" : "");
        assert_int_equal(tu_system("%s train --model %s --data %s/data --epochs 3 --out %s " SMALL
                                   " --sample-every 2 %s",
                                   bin, kinds[k], g_dir, run, opts[k]),
                         0);
        assert_true(exists(run, "model.safetensors"));
        assert_true(exists(run, "loss.csv"));
        assert_true(exists(run, "loss.png"));
        assert_true(exists(run, "report.html"));
        assert_true(exists(run, "samples/epoch_0002.png"));
        assert_true(exists(run, "samples/epoch_0003.png"));
        if (k == 0 || k == 3) /* the run keeps its unrolled passes */
            assert_int_equal(tu_system("grep -Eq '\"unroll\":[[:space:]]*%d' %s/config.json", k == 0 ? 2 : 3, run), 0);
        char warn[1300];
        snprintf(warn, sizeof warn, "%s/generate.err", run);
        assert_int_equal(tu_system("%s generate %s -n 5 --dir %s/gen --device cpu >/dev/null 2>%s",
                                   bin, run, run, warn),
                         0);
        assert_true(exists(run, "generated.png"));
        /* a completion model trained without the blank canvas says it cannot generate */
        if (k == 0)
            assert_int_equal(tu_system("grep -q 'never saw a blank canvas' %s", warn), 0);
        assert_true(exists(run, "gen/sample_0004.png"));
        assert_int_equal(tu_system("%s dream %s --device cpu >/dev/null", bin, run), 0);
        assert_true(exists(run, "dream_onehot.png"));
        assert_int_equal(tu_system("%s eval %s --device cpu --samples 8 --draws 4 > %s/eval.txt", bin, run, run), 0);
        if (has_encoder) {
            assert_int_equal(tu_system("%s complete %s %s/data/g01.png %s/data/g05.png --passes 3 "
                                       "--device cpu >/dev/null", bin, run, g_dir, g_dir), 0);
            assert_true(exists(run, "completed.png"));
            assert_int_equal(tu_system("%s interpolate %s %s/data/g01.png %s/data/g05.png --steps 5 "
                                       "--device cpu >/dev/null", bin, run, g_dir, g_dir), 0);
            assert_int_equal(tu_system("grep -q 'nearest visible part' %s/eval.txt", run), 0);
        } else {
            /* training images by index or file name, no dummy arguments; --list shows them */
            assert_int_equal(tu_system("%s interpolate %s --list --device cpu > %s/list.txt", bin,
                                       run, run), 0);
            assert_int_equal(tu_system("grep -Eq '^ +0  g[0-9]+\\.png$' %s/list.txt", run), 0);
            assert_int_equal(tu_system("%s interpolate %s 0 \"$(sed -n 3p %s/list.txt | awk '{print $2}')\" "
                                       "--steps 5 --device cpu >/dev/null", bin, run, run), 0);
            assert_int_equal(tu_system("%s interpolate %s 0 nosuchgun --device cpu 2>%s/err.txt", bin,
                                       run, run), 1);
            assert_int_equal(tu_system("grep -q 'not a training image' %s/err.txt", run), 0);
            /* held-out images are validated by projection: no NaN in loss.csv */
            assert_int_equal(tu_system("grep -qi nan %s/loss.csv", run), 1);
            /* glo has no encoder: completion is refused with a reason */
            assert_int_equal(tu_system("%s complete %s %s/data/g01.png --device cpu 2>%s/err.txt", bin,
                                       run, g_dir, run), 1);
            assert_int_equal(tu_system("grep -q 'no image input' %s/err.txt", run), 0);
        }
        assert_true(exists(run, "interpolation.png"));
        assert_int_equal(tu_system("grep -q 'nearest training image' %s/eval.txt", run), 0);
        /* the sample grid carries its labels: a margin left of the 18-pixel tiles (4
         * columns: the batch) and a header above them (PNG width and height, big-endian at
         * bytes 16 and 20) */
        char png[1300];
        snprintf(png, sizeof png, "%s/samples/epoch_0003.png", run);
        FILE *f = fopen(png, "rb");
        assert_non_null(f);
        unsigned char hdr[24];
        assert_int_equal(fread(hdr, 1, 24, f), 24);
        fclose(f);
        const long w = (long)hdr[16] << 24 | hdr[17] << 16 | hdr[18] << 8 | hdr[19];
        const long h = (long)hdr[20] << 24 | hdr[21] << 16 | hdr[22] << 8 | hdr[23];
        const int rows = k == 0 || k == 3 ? 5 : 4;
        assert_true(w > 4 * 18 + 2 + 40);
        assert_true(h > rows * 18 + 2 + 12);
    }
}

/* complete takes any number of images (more than one batch, more than the old 16
 * positionals) and lays them out in blocks of 16 columns. */
static void test_complete_many_images(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char run[1200];
    snprintf(run, sizeof run, "%s/run_many", g_dir);
    assert_int_equal(tu_system("%s train --data %s/data --epochs 1 --out %s " SMALL, bin, g_dir, run), 0);
    /* 40 images: the 12 three times over and 4 more (two chunks of 32) */
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd, "%s complete %s", bin, run);
    for (int i = 0; i < 40; i++)
        len += snprintf(cmd + len, sizeof cmd - len, " %s/data/g%02d.png", g_dir, i % 12);
    snprintf(cmd + len, sizeof cmd - len, " --device cpu > %s/many.txt", run);
    assert_int_equal(tu_system("%s", cmd), 0);
    assert_int_equal(tu_system("grep -q '40 images' %s/many.txt", run), 0);
    /* 3 blocks of 16 columns x 3 rows (input, one pass, original) of 16-pixel tiles */
    char png[1300];
    snprintf(png, sizeof png, "%s/completed.png", run);
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    unsigned char hdr[24];
    assert_int_equal(fread(hdr, 1, 24, f), 24);
    fclose(f);
    assert_int_equal(hdr[18] << 8 | hdr[19], 16 * 18 + 2);
    assert_int_equal(hdr[22] << 8 | hdr[23], 9 * 18 + 2);
}

/* Weights of a run's checkpoint, read back through the library. */
static float *run_weights(const char *run, size_t *n) {
    char path[1300];
    snprintf(path, sizeof path, "%s/model.safetensors", run);
    dc_meta meta = {0};
    dc_error err = {0};
    if (dc_checkpoint_read_meta(path, &meta, &err) != DC_OK) fail_msg("%s", err.msg);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_from_json(dc_meta_get(&meta, "model"), &spec, &err), DC_OK);
    dc_backend *be;
    dc_backend_create_cpu(1, &be, &err);
    dc_model *m;
    assert_int_equal(dc_model_create(be, &spec, 1, &m, &err), DC_OK);
    if (dc_checkpoint_load(path, m->params, NULL, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    *n = dc_params_total(m->params);
    float *w = malloc(*n * 4);
    be->ops->read(be, dc_params_values_ptr(m->params), w, *n * 4);
    dc_model_free(m);
    dc_backend_free(be);
    dc_meta_clear(&meta);
    return w;
}

static void test_resume_is_bit_identical(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/resume_a", g_dir);
    snprintf(b, sizeof b, "%s/resume_b", g_dir);
    /* batch 2 over 12 images: 6 steps per epoch, so an interrupt lands mid-epoch */
#define RUNOPTS "--data %s/data --epochs 6 --batch 2 --augment --mask random --size 16 --base 4 " \
                "--blocks 2 --latent 8 --device cpu --quiet --threads 1 --sample-every 100"
    assert_int_equal(tu_system("%s train --out %s " RUNOPTS, bin, a, g_dir), 0);
    /* the same run, interrupted with SIGINT while it trains, then resumed */
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec %s train --out %s " RUNOPTS, bin, b, g_dir);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* wait until the run folder exists and training is under way */
    char ck[1300];
    snprintf(ck, sizeof ck, "%s/loss.csv", b);
    for (int i = 0; i < 600 && access(ck, F_OK) != 0; i++) {
        struct timespec t = {0, 20 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 130) {
        assert_true(exists(b, "model.safetensors"));
        /* the report says so, and how to go on */
        assert_int_equal(tu_system("grep -q '<b>stopped</b>' %s/report.html && grep -q "
                                   "'deconv train --resume' %s/report.html",
                                   b, b),
                         0);
        assert_int_equal(tu_system("%s train --resume %s --quiet --device cpu --threads 1", bin, b), 0);
    } else {
        /* the run finished before the signal arrived: still a valid comparison */
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    size_t na, nb;
    float *wa = run_weights(a, &na), *wb = run_weights(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(wa, wb, na * 4);
    free(wa);
    free(wb);
    /* and a resume from an epoch boundary, with more epochs */
    char c[1200];
    snprintf(c, sizeof c, "%s/resume_c", g_dir);
    assert_int_equal(tu_system("%s train --out %s " RUNOPTS " --epochs 3", bin, c, g_dir), 0);
    assert_int_equal(tu_system("%s train --resume %s --epochs 6 --quiet --device cpu --threads 1", bin, c), 0);
    size_t nc;
    float *wa2 = run_weights(a, &na), *wc = run_weights(c, &nc);
    assert_memory_equal(wa2, wc, na * 4);
    free(wa2);
    free(wc);
#undef RUNOPTS
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf) buf[fread(buf, 1, (size_t)n, f)] = 0;
    fclose(f);
    return buf;
}

/* --augment-oversample: 2 by default only for the bundled 64x64 guns at sizes up to 32
 * (at 64 a copy at 128 would be upsampled), 1 for other data, a given value is kept, and
 * one outside 1..4 is a usage error. config.json records what the run used. */
static void test_augment_oversample_defaults(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    static const struct {
        const char *opts;
        const char *want;
    } cases[] = {
        {"--size 16", "\"augment_oversample\":\t2"},
        {"--size 64", "\"augment_oversample\":\t1"},
        {"--size 16 --augment-oversample 3", "\"augment_oversample\":\t3"},
        {"--size 16 --data %s/data --augment", "\"augment_oversample\":\t1"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char opts[512];
        snprintf(opts, sizeof opts, cases[k].opts, g_dir);
        assert_int_equal(tu_system("%s train --out %s/oversample %s --epochs 1 --base 4 --blocks 2 "
                                   "--latent 8 --device cpu --quiet --threads 1 --sample-every 100",
                                   bin, g_dir, opts),
                         0);
        char path[1300];
        snprintf(path, sizeof path, "%s/oversample/config.json", g_dir);
        char *text = slurp(path);
        assert_non_null(text);
        if (!strstr(text, cases[k].want)) fail_msg("%s: config.json lacks %s", opts, cases[k].want);
        free(text);
        tu_system("rm -rf '%s/oversample'", g_dir);
    }
    assert_int_equal(tu_system("%s train --out %s/oversample --augment-oversample 5 --epochs 1 "
                               ">%s/over.log 2>&1",
                               bin, g_dir, g_dir),
                     2);
    assert_int_equal(tu_system("grep -q -- '--augment-oversample 5' %s/over.log", g_dir), 0);
}

/* The run's loss.csv: epochs and validation losses, in file order. */
static int read_val_losses(const char *run, int *epoch, double *val, int cap) {
    char path[1300], line[512];
    snprintf(path, sizeof path, "%s/loss.csv", run);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    while (n < cap && fgets(line, sizeof line, f)) {
        double e, step, train;
        if (sscanf(line, "%lf,%lf,%lf,%lf", &e, &step, &train, &val[n]) == 4) epoch[n++] = (int)e;
    }
    fclose(f);
    return n;
}

/* Progress lines when stderr is a file, model.best.safetensors, --early-stop and the report,
 * each checked against what loss.csv says happened. */
static void test_progress_best_early_stop_report(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char run[1200], log[1300];
    snprintf(run, sizeof run, "%s/run_early", g_dir);
    snprintf(log, sizeof log, "%s/early.txt", g_dir);
    const int epochs = 40, patience = 2;
    assert_int_equal(tu_system("%s train --data %s/data --epochs %d --early-stop %d --lr 0.05 "
                               "--out %s --size 16 --base 4 --blocks 2 --latent 8 --batch 4 "
                               "--device cpu --threads 1 --sample-every 2 --progress-every 0 "
                               "2>%s",
                               bin, g_dir, epochs, patience, run, log),
                     0);
    /* the rule, replayed on loss.csv: stop after the first epoch that is `patience` epochs
     * past the best so far */
    int ep[64];
    double val[64];
    const int n = read_val_losses(run, ep, val, 64);
    assert_true(n >= 1);
    int best = 0, expect_stop = epochs;
    for (int i = 0; i < n; i++) {
        if (i == 0 || val[i] < val[best]) best = i;
        if (ep[i] - ep[best] >= patience && ep[i] < epochs) {
            expect_stop = ep[i];
            break;
        }
    }
    assert_int_equal(ep[n - 1], expect_stop);
    if (expect_stop == epochs)
        fail_msg("the run never stopped early: the test needs a run that does");
    /* stopped at that epoch's boundary: the checkpoint resumes at the next epoch's start */
    dc_train_checkpoint at;
    dc_error cerr = {0};
    if (dc_train_read_checkpoint(run, &at, &cerr) != DC_OK) fail_msg("%s", cerr.msg);
    assert_int_equal(at.epoch, expect_stop);
    assert_int_equal(at.step_in_epoch, 0);
    /* the best checkpoint is the epoch with the lowest validation loss, and it loads */
    char path[1300];
    snprintf(path, sizeof path, "%s/model.best.safetensors", run);
    dc_meta meta = {0};
    dc_error err = {0};
    if (dc_checkpoint_read_meta(path, &meta, &err) != DC_OK) fail_msg("%s", err.msg);
    assert_non_null(dc_meta_get(&meta, "epoch"));
    assert_int_equal(atoi(dc_meta_get(&meta, "epoch")), ep[best]);
    assert_true(fabs(atof(dc_meta_get(&meta, "val_loss")) - val[best]) <= 1e-5 * fabs(val[best]));
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_from_json(dc_meta_get(&meta, "model"), &spec, &err), DC_OK);
    dc_meta_clear(&meta);
    dc_backend *be;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model *m;
    assert_int_equal(dc_model_create(be, &spec, 1, &m, &err), DC_OK);
    if (dc_checkpoint_load(path, m->params, NULL, NULL, &err) != DC_OK) fail_msg("%s", err.msg);
    dc_model_free(m);
    dc_backend_free(be);
    /* progress: plain lines (stderr is a file), the whole run's percentage */
    char *text = slurp(log);
    assert_non_null(text);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int pct, e, E, st, S;
        if (sscanf(line, "%d%%|%*[#.]| epoch %d/%d step %d/%d", &pct, &e, &E, &st, &S) != 5)
            continue;
        assert_int_equal(E, epochs);
        assert_int_equal(pct, (int)(100.0 * ((e - 1) * S + st) / ((double)E * S)));
        assert_non_null(strstr(line, "img/s"));
        assert_non_null(strchr(line, '<')); /* elapsed<ETA */
        lines++;
    }
    assert_true(lines >= ep[n - 1]); /* at least one per epoch with --progress-every 0 */
    free(text);
    /* the report: final status, the best epoch, vector charts, every sample grid */
    snprintf(path, sizeof path, "%s/report.html", run);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "stopped early"));
    assert_null(strstr(text, "http-equiv=\"refresh\"")); /* only while running */
    char want[128];
    snprintf(want, sizeof want, "best epoch %d", ep[best]);
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "(log scale)"));
    assert_non_null(strstr(text, "Learning rate"));
    assert_non_null(strstr(text, "Configuration"));
    for (int e = 2; e <= ep[n - 1]; e += 2) {
        snprintf(want, sizeof want, "samples/epoch_%04d.png", e);
        if (!strstr(text, want)) fail_msg("report.html does not show %s", want);
    }
    free(text);
}

/* The report shows config.json (nested keys flattened, escaped); runs made before
 * config.json existed show what the checkpoint stores. */
static void test_report_configuration(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char run[1200], path[1300];
    snprintf(run, sizeof run, "%s/run_config", g_dir);
    assert_int_equal(
        tu_system("%s train --data %s/data --epochs 1 --out %s " SMALL, bin, g_dir, run), 0);
    snprintf(path, sizeof path, "%s/report.html", run);
    char *text = slurp(path);
    assert_non_null(text);
    /* every run writes config.json now: the report reads it */
    assert_non_null(strstr(text, "from config.json"));
    assert_non_null(strstr(text, "data.channels"));
    free(text);
    /* a resume rewrites config.json and the report with it */
    assert_int_equal(
        tu_system("%s train --resume %s --epochs 2 --quiet --device cpu --threads 1", bin, run), 0);
    snprintf(path, sizeof path, "%s/report.html", run);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "from config.json"));
    assert_non_null(strstr(text, ">data.channels</th><td>1<")); /* nested keys flattened */
    assert_non_null(strstr(text, "<b>finished</b>"));
    free(text);
}

/* On a terminal the line is redrawn in place, cleared to its end and never wider than the
 * terminal (here $COLUMNS: `script` gives the command a terminal without a size). */
static void test_progress_fits_the_terminal(void **state) {
    (void)state;
    if (tu_system("command -v script >/dev/null 2>&1") != 0) TU_SKIP_OR_FAIL("no script(1)");
    const char *bin = tu_cli_path();
    char run[1200], out[1300];
    snprintf(run, sizeof run, "%s/run_tty", g_dir);
    snprintf(out, sizeof out, "%s/tty.txt", g_dir);
    for (int cols = 30; cols <= 100; cols += 70) {
        assert_int_equal(tu_system("script -qec \"env COLUMNS=%d %s train --data %s/data "
                                   "--epochs 2 --out %s --force --size 16 --base 4 --blocks 2 "
                                   "--latent 8 --batch 4 --device cpu --threads 1\" /dev/null "
                                   "</dev/null >%s",
                                   cols, bin, g_dir, run, out),
                         0);
        char *text = slurp(out);
        assert_non_null(text);
        assert_non_null(strstr(text, "\033[K"));
        int drawn = 0;
        for (char *seg = strtok(text, "\r\n"); seg; seg = strtok(NULL, "\r\n")) {
            char *k = strstr(seg, "\033[K");
            if (!k || !strchr(seg, '%')) continue; /* a progress line ends in \033[K */
            *k = 0;
            if ((int)strlen(seg) > cols - 1)
                fail_msg("a %zu-character progress line in %d columns: '%s'", strlen(seg), cols,
                         seg);
            drawn++;
        }
        assert_true(drawn >= 1);
        free(text);
    }
}

static void test_bad_cli_input(void **state) {
    (void)state;
    const char *bin = tu_cli_path();
    char err[1300];
    snprintf(err, sizeof err, "%s/err.txt", g_dir);
    assert_int_equal(tu_system("%s train --data %s/nope --quiet --device cpu 2>%s", bin, g_dir, err), 1);
    assert_int_equal(tu_system("grep -q nope %s", err), 0);
    assert_int_equal(tu_system("%s train --model gan --data %s/data 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q \"unknown model 'gan'\" %s", err), 0);
    assert_int_equal(tu_system("%s train --data %s/data --size 20 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q 'size 20' %s", err), 0);
    assert_int_equal(tu_system("%s train --data %s/data --epochs x 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("%s train --bogus 1 2>%s", bin, err), 2);
    assert_int_equal(tu_system("grep -q bogus %s", err), 0);
    assert_int_equal(tu_system("%s generate %s/missing 2>%s", bin, g_dir, err), 1);
    /* an unknown device name is a usage error like an unknown model: exit status 2 */
    assert_int_equal(tu_system("%s train --device tpu --data %s/data 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q tpu %s", err), 0);
    /* the hole input is the completion model's */
    assert_int_equal(tu_system("%s train --model vae --no-hole-input --data %s/data 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q -- '--no-hole-input is an option of the complete model' %s", err), 0);
    /* skips and tied kernels do not fit; the unrolled passes have a range */
    assert_int_equal(tu_system("%s train --skips --tied --data %s/data 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q -- '--skips with --tied' %s", err), 0);
    assert_int_equal(tu_system("%s train --unroll 9 --data %s/data 2>%s", bin, g_dir, err), 2);
    assert_int_equal(tu_system("grep -q -- '--unroll 9 must be in \\[1, 4\\]' %s", err), 0);
}

/* The command names, from the CLI's own list (host/cli/commands.def). */
static int read_commands(char names[][32], int cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/host/cli/commands.def", tu_source_dir());
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0;
    char line[512];
    while (n < cap && fgets(line, sizeof line, f))
        if (sscanf(line, "X(%31[a-z0-9_],", names[n]) == 1) n++;
    fclose(f);
    return n;
}

/* Runs "deconv ARGS" with stdout and stderr in files; the exit status. */
static int run_cli(const char *out, const char *err, const char *args) {
    return tu_system("%s %s >%s 2>%s", tu_cli_path(), args, out, err);
}

static int file_empty(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size == 0;
}

/* One grammar for every command: help, misspelt options and commands, bad values and the
 * exit statuses are the same everywhere. */
static void test_one_grammar_for_every_command(void **state) {
    (void)state;
    char names[64][32];
    const int n = read_commands(names, 64);
    assert_true(n >= 14);
    char out[1300], err[1300], out2[1300], args[8192];
    snprintf(out, sizeof out, "%s/grammar.out", g_dir);
    snprintf(out2, sizeof out2, "%s/grammar2.out", g_dir);
    snprintf(err, sizeof err, "%s/grammar.err", g_dir);
    for (int i = 0; i < n; i++) {
        const char *cmd = names[i];
        /* -h and --help: usage on stdout, nothing on stderr, exit 0 */
        const char *helps[] = {"-h", "--help"};
        for (int h = 0; h < 2; h++) {
            snprintf(args, sizeof args, "%s %s", cmd, helps[h]);
            assert_int_equal(run_cli(out, err, args), 0);
            assert_int_equal(tu_system("grep -q '^usage: deconv %s' %s", cmd, out), 0);
            assert_true(file_empty(err));
        }
        /* help after other options, even a malformed one, still wins */
        snprintf(args, sizeof args, "%s --bogus -h", cmd);
        assert_int_equal(run_cli(out, err, args), 0);
        /* deconv help CMD is CMD --help */
        snprintf(args, sizeof args, "help %s", cmd);
        assert_int_equal(run_cli(out2, err, args), 0);
        assert_int_equal(tu_system("cmp -s %s %s", out, out2), 0);
        /* a misspelt option: exit 2, the near option named on stderr, nothing on stdout */
        snprintf(args, sizeof args, "%s --hepl", cmd);
        assert_int_equal(run_cli(out, err, args), 2);
        assert_int_equal(tu_system("grep -q \"deconv %s: unknown option '--hepl' (did you mean "
                                   "--help?)\" %s",
                                   cmd, err),
                         0);
        assert_true(file_empty(out));
        /* an unknown option far from every name: no guess, but no "needs a value" either */
        snprintf(args, sizeof args, "%s --zzzzzz", cmd);
        assert_int_equal(run_cli(out, err, args), 2);
        assert_int_equal(tu_system("grep -q \"unknown option '--zzzzzz'\" %s", err), 0);
        assert_int_equal(tu_system("grep -q 'needs a value' %s", err), 1);
        /* every command that computes takes --threads N, checked as a number */
        const int computes = strcmp(cmd, "devices") && strcmp(cmd, "info");
        snprintf(args, sizeof args, "%s %s abc", cmd, computes ? "--threads" : "--batch");
        if (strcmp(cmd, "devices")) {
            assert_int_equal(run_cli(out, err, args), 2);
            assert_int_equal(tu_system("grep -q -- \"%s expects a whole number, got 'abc'\" %s",
                                       computes ? "--threads" : "--batch", err),
                             0);
        }
        /* and --json: a JSON output or a usage error, never ignored */
        if (computes) {
            snprintf(args, sizeof args, "%s --json", cmd);
            const int rc = run_cli(out, err, args);
            assert_int_equal(rc, 2);
            assert_true(file_empty(out));
        }
    }
    /* the near option of a real one, on the option of the command */
    assert_int_equal(run_cli(out, err, "train --epoch 3"), 2);
    assert_int_equal(tu_system("grep -q \"unknown option '--epoch' (did you mean --epochs?)\" %s",
                               err),
                     0);
    assert_int_equal(run_cli(out, err, "train --modle vae"), 2);
    assert_int_equal(tu_system("grep -q 'did you mean --model?' %s", err), 0);
    assert_int_equal(run_cli(out, err, "info --bogus"), 2);
    assert_int_equal(tu_system("grep -q \"unknown option '--bogus'\" %s", err), 0);
    /* --json where a command has no JSON output says so */
    assert_int_equal(run_cli(out, err, "blur --json"), 2);
    assert_int_equal(tu_system("grep -q 'blur has no JSON output' %s", err), 0);
    /* bad numbers name the option */
    assert_int_equal(run_cli(out, err, "train --epochs abc"), 2);
    assert_int_equal(tu_system("grep -q -- \"--epochs expects a whole number, got 'abc'\" %s",
                               err),
                     0);
    assert_int_equal(run_cli(out, err, "train --lr nan"), 2);
    assert_int_equal(tu_system("grep -q -- '--lr expects a finite number' %s", err), 0);
    assert_int_equal(run_cli(out, err, "train --epochs"), 2);
    assert_int_equal(tu_system("grep -q -- '--epochs needs a value' %s", err), 0);
    /* misspelt commands */
    assert_int_equal(run_cli(out, err, "trian"), 2);
    assert_int_equal(tu_system("grep -q 'did you mean train?' %s", err), 0);
    assert_int_equal(run_cli(out, err, "exprot"), 2);
    assert_int_equal(tu_system("grep -q 'did you mean export?' %s", err), 0);
    assert_int_equal(run_cli(out, err, "help trian"), 2);
    assert_int_equal(tu_system("grep -q 'did you mean train?' %s", err), 0);
    assert_int_equal(run_cli(out, err, "frobnicate"), 2);
    assert_int_equal(tu_system("grep -q \"unknown command 'frobnicate'\" %s", err), 0);
    /* the general help: stdout and exit 0 when asked for, stderr and 2 when no command */
    assert_int_equal(run_cli(out, err, "--help"), 0);
    assert_int_equal(tu_system("grep -q 'exit status' %s", out), 0);
    assert_int_equal(run_cli(out, err, "help"), 0);
    assert_int_equal(run_cli(out, err, ""), 2);
    assert_true(file_empty(out));
    /* an unknown --device or --model is a usage error on every command: exit 2 */
    char run[1300];
    snprintf(run, sizeof run, "%s/run_complete", g_dir);
    snprintf(args, sizeof args, "train --device gpu --data %s/data", g_dir);
    assert_int_equal(run_cli(out, err, args), 2);
    assert_int_equal(tu_system("grep -q -- '--device gpu' %s", err), 0);
    snprintf(args, sizeof args, "generate %s --device gpu", run);
    assert_int_equal(run_cli(out, err, args), 2);
    snprintf(args, sizeof args, "eval %s --device gpu", run);
    assert_int_equal(run_cli(out, err, args), 2);
    assert_int_equal(run_cli(out, err, "bench --device gpu"), 2);
    assert_int_equal(run_cli(out, err, "train --model gan"), 2);
    assert_int_equal(run_cli(out, err, "info --model gan"), 2);
    assert_int_equal(run_cli(out, err, "bench --models gan"), 2);
    {
        /* the bench preset `complete` is the PyTorch twin's plain design; complete-default is
         * the model train builds (skips, two unrolled passes): one step holds two passes, so at
         * least twice the plain step's FLOPs, and its graph carries the unrolled pass */
        char json[1300];
        snprintf(json, sizeof json, "%s/bench.json", g_dir);
        snprintf(args, sizeof args,
                 "bench --device cpu --models complete,complete-default --batch 2 --warmup 0 "
                 "--repeats 1 --steps 1 --no-gemm --no-infer --no-startup --quiet --json %s",
                 json);
        assert_int_equal(run_cli(out, err, args), 0);
        double flops[2] = {0, 0};
        FILE *f = fopen(json, "rb");
        assert_non_null(f);
        static char text[1 << 20];
        const size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        cJSON *root = cJSON_Parse(text), *r;
        if (!root) fail_msg("%s is not JSON", json);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(root, "results")) {
            const cJSON *model = cJSON_GetObjectItemCaseSensitive(r, "model");
            const cJSON *fl = cJSON_GetObjectItemCaseSensitive(r, "step_flops");
            if (!cJSON_IsString(model) || !cJSON_IsNumber(fl)) continue;
            const int which = !strcmp(model->valuestring, "complete")           ? 0
                              : !strcmp(model->valuestring, "complete-default") ? 1
                                                                                : -1;
            if (which >= 0) flops[which] = fl->valuedouble;
        }
        cJSON_Delete(root);
        if (!(flops[0] > 0 && flops[1] >= 2.0 * flops[0]))
            fail_msg("bench step FLOPs: complete %g, complete-default %g", flops[0], flops[1]);
    }
    /* stray positionals are still refused */
    assert_int_equal(run_cli(out, err, "devices extra"), 2);
    assert_int_equal(tu_system("grep -q \"unexpected argument 'extra'\" %s", err), 0);
    /* one output option: --out / -o, the older --output and --dir still accepted */
    snprintf(args, sizeof args, "dream %s --device cpu --quiet -o %s/dream_o", run, g_dir);
    assert_int_equal(run_cli(out, err, args), 0);
    assert_true(exists(g_dir, "dream_o/dream_onehot.png"));
    snprintf(args, sizeof args, "dream %s --device cpu --quiet --dir %s/dream_dir", run, g_dir);
    assert_int_equal(run_cli(out, err, args), 0);
    assert_true(exists(g_dir, "dream_dir/dream_onehot.png"));
    {
        /* --zoom 3: the same grid with every pixel a 3x3 block (the separators stay 2 px) */
        char p1[1300], p3[1300];
        snprintf(p1, sizeof p1, "%s/zoom1.png", g_dir);
        snprintf(p3, sizeof p3, "%s/zoom3.png", g_dir);
        snprintf(args, sizeof args, "generate %s -n 5 --device cpu --quiet -o %s", run, p1);
        assert_int_equal(run_cli(out, err, args), 0);
        snprintf(args, sizeof args, "generate %s -n 5 --zoom 3 --device cpu --quiet -o %s", run, p3);
        assert_int_equal(run_cli(out, err, args), 0);
        int w1, h1, w3, h3, ch;
        unsigned char *a = stbi_load(p1, &w1, &h1, &ch, 1), *b = stbi_load(p3, &w3, &h3, &ch, 1);
        assert_true(a && b);
        const int sep = DC_GRID_SEPARATOR, z = 3;
        /* width = cols * (S + sep) + sep at zoom 1 and cols * (z S + sep) + sep at zoom z */
        const int cols = (z * (w1 - sep) - (w3 - sep)) / (z * sep - sep);
        const int rows = (z * (h1 - sep) - (h3 - sep)) / (z * sep - sep);
        assert_true(cols >= 2 && rows >= 2 && cols * rows >= 5);
        const int S = (w1 - sep) / cols - sep;
        assert_int_equal(cols * (S + sep) + sep, w1);
        assert_int_equal(cols * (z * S + sep) + sep, w3);
        assert_int_equal(rows * (z * S + sep) + sep, h3);
        for (int cell = 0; cell < 5; cell++) {
            const int r = cell / cols, c = cell % cols;
            for (int y = 0; y < z * S; y++)
                for (int x = 0; x < z * S; x++) {
                    const int y1 = sep + r * (S + sep) + y / z, x1 = sep + c * (S + sep) + x / z;
                    const int y3 = sep + r * (z * S + sep) + y, x3 = sep + c * (z * S + sep) + x;
                    if (a[y1 * w1 + x1] != b[y3 * w3 + x3])
                        fail_msg("--zoom 3: cell %d pixel (%d, %d) is %d, the unzoomed pixel %d",
                                 cell, y, x, b[y3 * w3 + x3], a[y1 * w1 + x1]);
                }
        }
        stbi_image_free(a);
        stbi_image_free(b);
        snprintf(args, sizeof args, "generate %s --zoom 17 --device cpu --quiet -o %s", run, p3);
        assert_int_equal(run_cli(out, err, args), 2);
        assert_int_equal(tu_system("grep -q -- '--zoom 17: use 1 to 16' %s", err), 0);
    }
    snprintf(args, sizeof args, "export %s --format npz --output %s/w.npz --quiet", run, g_dir);
    assert_int_equal(run_cli(out, err, args), 0);
    assert_true(exists(g_dir, "w.npz"));
    /* --quiet: no info lines (the backend choice) on stderr */
    snprintf(args, sizeof args, "generate %s -n 2 --device cpu --quiet --threads 1", run);
    assert_int_equal(run_cli(out, err, args), 0);
    assert_int_equal(tu_system("grep -q 'using' %s", err), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_generate_each_kind),
        cmocka_unit_test(test_complete_many_images),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_augment_oversample_defaults),
        cmocka_unit_test(test_progress_best_early_stop_report),
        cmocka_unit_test(test_progress_fits_the_terminal),
        cmocka_unit_test(test_report_configuration),
        cmocka_unit_test(test_bad_cli_input),
        cmocka_unit_test(test_one_grammar_for_every_command),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
