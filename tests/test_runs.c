/* A hostile user against the CLI's runs (issue 14), each case with files the test makes:
 * run folders (non-empty refused, --force, the lock and its release on kill -9, stale temp
 * files), divergence (stops, names the cause, never replaces a good checkpoint), non-finite
 * options and weights, stored positions and loss.csv checked on resume (and history kept
 * exactly), sizes, paths and counts checked, and every bad file of the fuzz corpora through
 * the CLI. In the sanitizer job the CLI itself is the ASan + UBSan build: a crash, leak or
 * undefined behaviour fails the case. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deconv/image.h"
#include "deconv/io.h"
#include "deconv/train.h"
#include "internal.h"
#include "testutil.h"

static char *g_dir;
static char g_err[1300];

#define SMALL                                                                                      \
    "--size 16 --base 4 --blocks 2 --latent 8 --batch 4 --val 0 --device cpu --quiet "             \
    "--threads 1"

static char *path(const char *a, const char *b) {
    static char ring[16][2048];
    static int slot;
    char *p = ring[slot++ & 15];
    const size_t na = strlen(a), nb = strlen(b);
    if (na + nb + 2 > sizeof ring[0]) fail_msg("path too long for the test: %s/%s", a, b);
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static unsigned char *slurp(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)len + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
    d[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return d;
}

static void spit(const char *p, const void *d, size_t n) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The last command's stderr holds s. */
static int err_has(const char *s) {
    size_t n;
    unsigned char *d = slurp(g_err, &n);
    int found = d && strstr((char *)d, s) != NULL;
    if (!found) print_message("[ stderr   ] %s\n[ expected ] %s\n", d ? (char *)d : "(none)", s);
    free(d);
    return found;
}

/* The CLI with its stderr in g_err: the exit status, -1 for a signal (a crash). */
#define CLI(fmt, ...) tu_system("%s " fmt " 2>%s", tu_cli_path(), __VA_ARGS__, g_err)

static void make_images(const char *dir, int n, int offset) {
    mkdir(dir, 0755);
    dc_error err = {0};
    for (int i = 0; i < n; i++) {
        float img[256];
        for (int p = 0; p < 256; p++)
            img[p] = 1.0f;
        for (int y = 4 + (i + offset) % 4; y < 8 + (i + offset) % 4; y++)
            for (int x = 2; x < 10 + i % 5; x++)
                img[y * 16 + x] = -1.0f;
        char name[32];
        snprintf(name, sizeof name, "g%02d.png", i);
        assert_int_equal(dc_image_write_png(path(dir, name), img, 1, 16, 16, DC_RANGE_PM1, &err),
                         DC_OK);
    }
}

/* Replace `from` by `to` in a checkpoint's JSON header (re-padded; offsets are relative to
 * the data, so the tensors stay valid). */
static void patch_header(const char *src, const char *dst, const char *from, const char *to) {
    size_t n;
    unsigned char *d = slurp(src, &n);
    assert_non_null(d);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    char *hdr = calloc(hl + strlen(to) + 16, 1);
    memcpy(hdr, d + 8, hl);
    char *at = strstr(hdr, from);
    if (!at) fail_msg("'%s' not in the header of %s", from, src);
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to));
    size_t tl = strlen(hdr);
    while (tl && hdr[tl - 1] == ' ')
        tl--;
    const size_t nl = (tl + 7) & ~(size_t)7;
    memset(hdr + tl, ' ', nl - tl);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(nl >> (8 * i));
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, nl, f);
    fwrite(d + 8 + hl, 1, n - 8 - hl, f);
    assert_int_equal(fclose(f), 0);
    free(hdr);
    free(d);
}

/* A copy of run folder src (checkpoint and loss.csv) as dst. */
static void copy_run(const char *src, const char *dst) {
    assert_int_equal(tu_system("rm -rf '%s' && mkdir -p '%s' && cp '%s/model.safetensors' "
                               "'%s/loss.csv' '%s/'",
                               dst, dst, src, src, dst),
                     0);
}

static int setup(void **state) {
    (void)state;
    g_dir = tu_tmpdir("runs");
    if (!g_dir) return -1;
    snprintf(g_err, sizeof g_err, "%s/err.txt", g_dir);
    make_images(path(g_dir, "data"), 12, 0);
    /* a labelled folder for the classifier: two classes */
    mkdir(path(g_dir, "cls"), 0755);
    make_images(path(g_dir, "cls/a"), 6, 0);
    make_images(path(g_dir, "cls/b"), 6, 2);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_system("rm -rf '%s'", g_dir);
    free(g_dir);
    return 0;
}

/* ------------------------------------------------------------------ run folders */
static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void test_run_folder_guarded(void **state) {
    (void)state;
    char run[1100];
    snprintf(run, sizeof run, "%s/guarded", g_dir);
    assert_int_equal(
        CLI("train --data %s/data --epochs 2 --sample-every 1 --out %s " SMALL, g_dir, run), 0);
    assert_true(exists(path(run, "samples/epoch_0002.png")));
    size_t n0, n1;
    unsigned char *before = slurp(path(run, "model.safetensors"), &n0);

    /* a new run into the finished one's folder: refused, nothing touched */
    assert_int_equal(CLI("train --data %s/data --epochs 1 --out %s " SMALL, g_dir, run), 1);
    assert_true(err_has("not empty"));
    assert_true(err_has("--force"));
    unsigned char *after = slurp(path(run, "model.safetensors"), &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    free(before);
    assert_int_equal(CLI("train --resume %s --force", run), 2);

    /* --force replaces the old run's files, stale sample grids included; others stay */
    spit(path(run, "notes.txt"), "mine", 4);
    /* files of an old classifier run's report, which this run (not a classifier) does not
     * write again */
    spit(path(run, "val_accuracy.csv"), "epoch,val_accuracy\n", 19);
    spit(path(run, "samples/val_03.png"), "x", 1);
    assert_int_equal(
        CLI("train --data %s/data --epochs 1 --sample-every 1 --force --out %s " SMALL, g_dir, run),
        0);
    assert_true(exists(path(run, "samples/epoch_0001.png")));
    assert_false(exists(path(run, "samples/epoch_0002.png")));
    assert_true(exists(path(run, "notes.txt")));
    assert_false(exists(path(run, "val_accuracy.csv")));
    assert_false(exists(path(run, "samples/val_03.png")));
    size_t n;
    char *csv = (char *)slurp(path(run, "loss.csv"), &n);
    assert_null(strstr(csv, "\n2,")); /* the old run's second epoch is gone */
    free(csv);

    /* the lock: a training in a folder another process holds is refused, naming it */
    dc_run_lock *lock = NULL;
    dc_error err = {0};
    assert_int_equal(dc_run_lock_acquire(run, &lock, &err), DC_OK);
    assert_int_equal(CLI("train --resume %s --epochs 3", run), 1);
    char pid[64];
    snprintf(pid, sizeof pid, "in use by process %ld", (long)getpid());
    assert_true(err_has(pid));
    dc_run_lock_release(lock);

    /* the holder killed with SIGKILL: the system released its lock */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        dc_run_lock *l = NULL;
        dc_error e = {0};
        char ok = dc_run_lock_acquire(run, &l, &e) == DC_OK ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    assert_int_equal(dc_run_lock_acquire(run, &lock, &err), DC_ERR_STATE);
    snprintf(pid, sizeof pid, "process %ld", (long)child);
    assert_non_null(strstr(err.msg, pid));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(dc_run_lock_acquire(run, &lock, &err), DC_OK);
    dc_run_lock_release(lock);

    /* temp files of dead writers go when a training takes the folder; a live one's stay */
    char stale1[64], stale2[64], live[64];
    snprintf(stale1, sizeof stale1, "loss.png.tmp.%ld.Ab12Cd", (long)dead_pid());
    snprintf(stale2, sizeof stale2, "samples/epoch_0001.png.tmp.%ld", (long)dead_pid());
    snprintf(live, sizeof live, "model.safetensors.tmp.%ld.Zz99Yy", (long)getpid());
    spit(path(run, stale1), "x", 1);
    spit(path(run, stale2), "x", 1);
    spit(path(run, live), "x", 1);
    assert_int_equal(CLI("train --resume %s --epochs 2", run), 0);
    assert_false(exists(path(run, stale1)));
    assert_false(exists(path(run, stale2)));
    assert_true(exists(path(run, live)));
    unlink(path(run, live));
}

/* ------------------------------------------------------------------ divergence */
static void test_divergence(void **state) {
    (void)state;
    char run[1100], good[1100];
    snprintf(run, sizeof run, "%s/diverged", g_dir);
    /* a learning rate of 1e9: stopped at the step, named, nothing saved */
    assert_int_equal(
        CLI("train --data %s/data --epochs 3 --optim sgd --lr 1e9 --out %s " SMALL, g_dir, run), 1);
    assert_true(err_has("diverged at step"));
    assert_false(exists(path(run, "model.safetensors")));

    /* a good checkpoint, resumed with the stored learning rate raised to 1e30: the run
     * stops and the good checkpoint stays byte for byte */
    snprintf(good, sizeof good, "%s/good", g_dir);
    assert_int_equal(
        CLI("train --data %s/data --epochs 1 --optim sgd --lr 0.125 --out %s " SMALL, g_dir, good),
        0);
    char resumed[1100];
    snprintf(resumed, sizeof resumed, "%s/diverged_resume", g_dir);
    copy_run(good, resumed);
    patch_header(path(good, "model.safetensors"), path(resumed, "model.safetensors"),
                 "\\\"lr\\\":0.125", "\\\"lr\\\":1e30");
    size_t n0, n1;
    unsigned char *before = slurp(path(resumed, "model.safetensors"), &n0);
    assert_int_equal(CLI("train --resume %s --epochs 4", resumed), 1);
    assert_true(err_has("diverged"));
    assert_true(err_has("the last checkpoint stays as it was"));
    unsigned char *after = slurp(path(resumed, "model.safetensors"), &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* non-finite options are refused by the option parser, whichever option */
    const char *bad[] = {
        "--weight-decay nan", "--lr inf",      "--clip -nan", "--visible-weight nan",
        "--noise inf",        "--dropout nan", "--lr 1e99"};
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        assert_int_equal(CLI("train --data %s/data %s --out %s/never " SMALL, g_dir, bad[i], g_dir),
                         2);
        assert_true(err_has("expects a"));
    }
    assert_int_equal(CLI("generate %s --temperature nan --device cpu", good), 2);
    assert_true(err_has("finite"));
    assert_false(exists(path(g_dir, "never")));
}

/* ------------------------------------------------------- non-finite checkpoints */
static void write_float_at(const char *p, long from_end_or_data, int at_data, float v) {
    size_t n;
    unsigned char *d = slurp(p, &n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    const size_t off = at_data ? 8 + hl + (size_t)from_end_or_data : n - (size_t)from_end_or_data;
    memcpy(d + off, &v, 4); /* little-endian hosts: the file's byte order */
    spit(p, d, n);
    free(d);
}

static void test_non_finite_checkpoints(void **state) {
    (void)state;
    char good[1100], bad[1100];
    snprintf(good, sizeof good, "%s/nf_good", g_dir);
    snprintf(bad, sizeof bad, "%s/nf_bad", g_dir);
    assert_int_equal(CLI("train --data %s/data --epochs 1 --out %s " SMALL, g_dir, good), 0);
    copy_run(good, bad);
    write_float_at(path(bad, "model.safetensors"), 0, 1, NAN); /* the first tensor's first value */
    const char *cmds[] = {"generate %s -n 2 --device cpu", "eval %s --device cpu --samples 4",
                          "export %s --format npz -o %s.npz", "train --resume %s --epochs 2",
                          "complete %s %s --device cpu"};
    char image[1100];
    snprintf(image, sizeof image, "%s/data/g01.png", g_dir);
    for (size_t i = 0; i < DC_ARRAY_LEN(cmds); i++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, cmds[i], bad, i == 4 ? image : bad);
        assert_int_equal(CLI("%s", cmd), 1);
        assert_true(err_has("holds nan"));
        assert_true(err_has("tensor '"));
    }
    /* an infinity in the optimizer state: a resume refuses it, naming it */
    copy_run(good, bad);
    write_float_at(path(bad, "model.safetensors"), 4, 0, INFINITY); /* the last tensor */
    assert_int_equal(CLI("train --resume %s --epochs 2", bad), 1);
    assert_true(err_has("optimizer state 'optim.v."));
    assert_true(err_has("holds inf"));
}

/* ------------------------------------------------------------- resume checks */
static void test_resume_checks(void **state) {
    (void)state;
    char run[1100], bad[1100];
    snprintf(run, sizeof run, "%s/resume_src", g_dir);
    snprintf(bad, sizeof bad, "%s/resume_bad", g_dir);
    /* 12 images, batch 4, no validation: 3 steps per epoch; stored epoch 2, step 6 */
    assert_int_equal(CLI("train --data %s/data --epochs 2 --out %s " SMALL, g_dir, run), 0);
    const char *src = path(run, "model.safetensors");
    const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"\"step_in_epoch\":\"0\"", "\"step_in_epoch\":\"-1\"", "step_in_epoch"},
        {"\"step_in_epoch\":\"0\"", "\"step_in_epoch\":\"99\"", "past the epoch"},
        {"\"epoch\":\"2\"", "\"epoch\":\"-1\"", "\"epoch\""},
        {"\"step\":\"6\"", "\"step\":\"5\"", "global step 5"},
        {"\"step\":\"6\"", "\"step\":\"-6\"", "\"step\""},
        {"\"step\":\"6\"", "\"step\":\"6x\"", "\"step\""},
        {"\\\"batch\\\":4", "\\\"batch\\\":0", "batch 0"},
        {"\\\"epochs\\\":2", "\\\"epochs\\\":-3", "epochs -3"},
    };
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        copy_run(run, bad);
        patch_header(src, path(bad, "model.safetensors"), cases[i].from, cases[i].to);
        print_message("[ resume   ] %s\n", cases[i].to);
        const int rc = CLI("train --resume %s --epochs 4", bad);
        assert_true(rc == 1 || rc == 2);
        assert_true(err_has(cases[i].why));
    }

    /* loss.csv: rows after the checkpoint are dropped (trained again), rows before it are
     * kept exactly; a row that breaks the sequence is refused */
    size_t n;
    char *orig = (char *)slurp(path(run, "loss.csv"), &n);
    copy_run(run, bad);
    FILE *f = fopen(path(bad, "loss.csv"), "a");
    for (int e = 3; e < 40; e++)
        fprintf(f, "%d,%d,1e300,1e300,1e300,1e300\n", e, e * 3);
    fclose(f);
    assert_int_equal(CLI("train --resume %s --epochs 4", bad), 0);
    size_t m;
    char *now = (char *)slurp(path(bad, "loss.csv"), &m);
    assert_true(m > n);
    assert_memory_equal(orig, now, n); /* header and epochs 1-2, byte for byte */
    int rows = 0;
    for (size_t i = 0; i < m; i++)
        rows += now[i] == '\n';
    assert_int_equal(rows, 5); /* header + 4 epochs */
    assert_null(strstr(now, "1e+300"));
    free(now);
    const char *broken[] = {"-1,3,0.5,0.5,0.001,10\n", "1,3,0.5\n", "7,3,0.5,0.5,0.001,10\n"};
    for (size_t i = 0; i < DC_ARRAY_LEN(broken); i++) {
        copy_run(run, bad);
        char *text = malloc(n + 64);
        const char *first_row = strchr(orig, '\n') + 1;
        const size_t head = (size_t)(first_row - orig);
        memcpy(text, orig, head);
        strcpy(text + head, broken[i]);
        strcat(text, first_row);
        spit(path(bad, "loss.csv"), text, strlen(text));
        free(text);
        assert_int_equal(CLI("train --resume %s --epochs 4", bad), 1);
        assert_true(err_has("loss.csv: row 2"));
    }
    free(orig);
}

/* --------------------------------------------------------- sizes, paths, counts */
static void test_sizes_paths_counts(void **state) {
    (void)state;
    assert_int_equal(CLI("train --data %s/data --size 0 --out %s/never", g_dir, g_dir), 2);
    assert_true(err_has("--size 0 must be >= 1"));
    assert_int_equal(CLI("train --data %s/data --size -16 --out %s/never", g_dir, g_dir), 2);
    assert_true(err_has("--size -16 must be >= 1"));
    assert_int_equal(CLI("info --size 65536 --blocks 1 --base 1024%s", ""), 2);
    assert_true(err_has("model too big"));
    assert_int_equal(CLI("info --model glo --size 64 --latent 65536 --glo-count 2000000000%s", ""),
                     2);
    assert_true(err_has("the table of learned latents"));
    assert_false(exists(path(g_dir, "never")));

    /* a path longer than the options can hold is refused, not cut */
    char *longp = malloc(1200);
    memset(longp, 'p', 1199);
    longp[1199] = 0;
    assert_int_equal(CLI("train --data %s/data --out %s/%s " SMALL, g_dir, g_dir, longp), 2);
    assert_true(err_has("longer than 1023 characters"));
    assert_int_equal(CLI("train --data %s/%s " SMALL, g_dir, longp), 2);
    assert_true(err_has("--data"));
    /* output paths built from a run or folder name: refused before any work, not cut */
    assert_int_equal(CLI("dream %s/run --out %s/%s", g_dir, g_dir, longp), 2);
    assert_true(err_has("too long (at most 1199)"));
    assert_int_equal(CLI("complete %s/%s %s/data/a.png", g_dir, longp, g_dir), 2);
    assert_true(err_has("too long (at most 1099)"));
    assert_int_equal(CLI("interpolate %s/%s a.png b.png", g_dir, longp), 2);
    assert_true(err_has("too long (at most 1099)"));
    assert_int_equal(CLI("generate %s/%s", g_dir, longp), 2);
    assert_true(err_has("too long (at most 1099)"));
    assert_int_equal(CLI("generate %s/run --dir %s/%s", g_dir, g_dir, longp), 2);
    assert_true(err_has("too long (at most 1199)"));
    free(longp);

    /* a '"' in --data survives the stored options: the resume reads the same folder */
    char quoted[1100], run[1100];
    snprintf(quoted, sizeof quoted, "%s/da\"ta", g_dir);
    make_images(quoted, 8, 1);
    snprintf(run, sizeof run, "%s/quoted_run", g_dir);
    assert_int_equal(tu_system("%s train --data '%s' --epochs 1 --out %s " SMALL " 2>%s",
                               tu_cli_path(), quoted, run, g_err),
                     0);
    dc_train_checkpoint at;
    dc_error err = {0};
    assert_int_equal(dc_train_read_checkpoint(run, &at, &err), DC_OK);
    assert_string_equal(at.config.data, quoted);
    assert_int_equal(CLI("train --resume %s --epochs 2", run), 0);

    /* the pixel cap reaches the loaders: 16x16 images over a cap of 100 pixels */
    assert_int_equal(
        CLI("train --data %s/data --max-image-pixels 100 --out %s/capped " SMALL, g_dir, g_dir), 1);
    assert_true(err_has("no readable image"));
    assert_int_equal(CLI("train --data %s/data --max-image-pixels 0 " SMALL, g_dir), 2);
    assert_int_equal(
        CLI("train --data %s/data --max-image-pixels 256 --epochs 1 --out %s/capped256 " SMALL,
            g_dir, g_dir),
        0);

    /* a classifier: eval --limit must be a count; huge stored class counts are refused */
    char cls[1100];
    snprintf(cls, sizeof cls, "%s/cls_run", g_dir);
    assert_int_equal(
        CLI("train --model classifier --data %s/cls --epochs 1 --out %s " SMALL, g_dir, cls), 0);
    /* a bad option value is a usage error (exit 2, as the README's table says) */
    assert_int_equal(CLI("eval %s --data %s/cls --limit -5 --device cpu", cls, g_dir), 2);
    assert_true(err_has("--limit -5 must be >= 1"));
    assert_int_equal(CLI("eval %s --data %s/cls --max-image-pixels 100 --device cpu", cls, g_dir),
                     1);
    assert_true(err_has("no readable image"));
    char huge[1100];
    snprintf(huge, sizeof huge, "%s/cls_huge", g_dir);
    copy_run(cls, huge);
    patch_header(path(cls, "model.safetensors"), path(huge, "model.safetensors"),
                 "\\\"classes\\\":2", "\\\"classes\\\":1800000000");
    const int rc = CLI("eval %s --data %s/cls --device cpu", huge, g_dir);
    assert_true(rc == 1 || rc == 2);
    assert_true(err_has("model too big"));
}

/* ------------------------------------------------------ the corpora, through the CLI */
static int list_dir(const char *dir, char names[][256], int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < cap;)
        if (e->d_name[0] != '.') snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    return n;
}

static void test_bad_files_through_cli(void **state) {
    (void)state;
    char dir[1100], names[64][256];
    /* checkpoints: the fuzz seeds (valid and broken) into every reader command */
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", tu_source_dir());
    int n = list_dir(dir, names, 64);
    assert_true(n > 0);
    const char *cmds[] = {"generate", "eval", "export", "train --resume"};
    for (int i = 0; i < n; i++)
        for (size_t c = 0; c < DC_ARRAY_LEN(cmds); c++) {
            char run[1200];
            snprintf(run, sizeof run, "%s/corpus_run", g_dir);
            tu_system("rm -rf '%s' && mkdir -p '%s' && cp '%s/%s' '%s/model.safetensors'", run, run,
                      dir, names[i], run);
            const int rc = CLI("%s %s --device cpu %s", cmds[c], run,
                               !strcmp(cmds[c], "export") ? "--format npz" : "");
            print_message("[ corpus   ] %-12s %-16s -> %d\n", names[i], cmds[c], rc);
            assert_true(rc >= 0 && rc <= 2); /* -1: killed by a signal */
        }
    /* images: each seed alone in a folder, truncated to half, and cut to 20 bytes */
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus_image", tu_source_dir());
    n = list_dir(dir, names, 64);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        for (int cut = 0; cut < 3; cut++) {
            char data[1200];
            snprintf(data, sizeof data, "%s/imgdata", g_dir);
            tu_system("rm -rf '%s' && mkdir -p '%s'", data, data);
            size_t len;
            unsigned char *bytes = slurp(path(dir, names[i]), &len);
            assert_non_null(bytes);
            const size_t keep = cut == 0 ? len : cut == 1 ? len / 2 : (len < 20 ? len : 20);
            spit(path(data, names[i]), bytes, keep);
            free(bytes);
            const int rc =
                CLI("train --data %s --epochs 1 --force --out %s/imgrun " SMALL, data, g_dir);
            print_message("[ corpus   ] %-12s %5zu bytes -> %d\n", names[i], keep, rc);
            assert_true(rc == 0 || rc == 1);
        }
    /* a 32x0 PGM and a TGA that claims 65280x224 in 93 bytes */
    char data[1200];
    snprintf(data, sizeof data, "%s/imgdata", g_dir);
    tu_system("rm -rf '%s' && mkdir -p '%s'", data, data);
    spit(path(data, "zero.pgm"), "P5\n32 0\n255\n", 12);
    unsigned char tga[93] = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xff, 0xe0, 0, 24, 0};
    spit(path(data, "huge.tga"), tga, sizeof tga);
    assert_int_equal(CLI("train --data %s --epochs 1 --force --out %s/imgrun " SMALL, data, g_dir),
                     1);
    assert_true(err_has("no readable image"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_folder_guarded),     cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_non_finite_checkpoints), cmocka_unit_test(test_resume_checks),
        cmocka_unit_test(test_sizes_paths_counts),     cmocka_unit_test(test_bad_files_through_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
