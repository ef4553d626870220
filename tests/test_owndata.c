/* A practitioner's own data through the CLI (issue 15): stray arguments refused with a
 * hint, the data's channels detected and said, class names kept in the checkpoint and
 * config.json, evaluation folders matched by class name, predict, visualize --class NAME,
 * info RUN, a resume from another working folder and what a resume may change. Every data
 * set is made here, so the test knows its truth (colours, classes, counts). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "deconv/io.h"
#include "deconv/train.h"
#include "testutil.h"

static char *g_dir;
static char g_err[1300], g_out[1300];

#define SMALL "--size 16 --base 4 --blocks 2 --batch 4 --device cpu --threads 1"

static char *path(const char *a, const char *b) {
    static char ring[16][2048];
    static int slot;
    char *p = ring[slot++ & 15];
    const size_t na = strlen(a), nb = strlen(b);
    if (na + nb + 2 > sizeof ring[0]) fail_msg("path too long for the test: %s/%s", a, b);
    memmove(p, a, na); /* a may be an earlier result of path() */
    p[na] = '/';
    memmove(p + na + 1, b, nb + 1);
    return p;
}

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)len + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)len, f), (size_t)len);
    d[len] = 0;
    fclose(f);
    return d;
}

/* File p holds s. */
static int file_has(const char *p, const char *s) {
    char *d = slurp(p);
    int found = d && strstr(d, s) != NULL;
    if (!found) print_message("[ %s ] %s\n[ expected ] %s\n", p, d ? d : "(none)", s);
    free(d);
    return found;
}

/* The CLI with stdout in g_out and stderr in g_err: its exit status. */
#define CLI(fmt, ...) tu_system("%s " fmt " >%s 2>%s", tu_cli_path(), __VA_ARGS__, g_out, g_err)

/* A 16x16 binary PPM: stripes of colour (r, g, b) on white, shifted by `shift`. */
static void write_ppm(const char *p, int r, int g, int b, int shift) {
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fprintf(f, "P6\n16 16\n255\n");
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            const int on = (x + shift) % 5 < 3;
            fputc(on ? r : 255, f);
            fputc(on ? g : 255, f);
            fputc(on ? b : 255, f);
        }
    assert_int_equal(fclose(f), 0);
}

static const char *const class_names[3] = {"blue", "green", "red"};
static const int class_rgb[3][3] = {{30, 30, 200}, {30, 200, 30}, {200, 30, 30}};

/* dir/CLASS/NN.ppm for the listed classes (-1 ends), n images each. */
static void make_classes(const char *dir_in, const int *which, int n) {
    char dir[2048]; /* path()'s ring is reused below */
    snprintf(dir, sizeof dir, "%s", dir_in);
    mkdir(dir, 0755);
    for (int k = 0; which[k] >= 0; k++) {
        const int c = which[k];
        mkdir(path(dir, class_names[c]), 0755);
        for (int i = 0; i < n; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s/%02d.ppm", class_names[c], i);
            write_ppm(path(dir, name), class_rgb[c][0], class_rgb[c][1], class_rgb[c][2], i);
        }
    }
}

static int setup(void **state) {
    (void)state;
    g_dir = tu_tmpdir("owndata");
    if (!g_dir) return -1;
    snprintf(g_err, sizeof g_err, "%s/err.txt", g_dir);
    snprintf(g_out, sizeof g_out, "%s/out.txt", g_dir);
    const int all[] = {0, 1, 2, -1};
    make_classes(path(g_dir, "cls"), all, 8);
    /* a grey flat folder */
    mkdir(path(g_dir, "grey"), 0755);
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "grey/g%d.ppm", i);
        write_ppm(path(g_dir, name), 60, 60, 60, i);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_system("rm -rf '%s'", g_dir);
    free(g_dir);
    return 0;
}

static cJSON *read_json(const char *p) {
    char *text = slurp(p);
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static cJSON *get(const cJSON *o, const char *path_keys) {
    char keys[256];
    snprintf(keys, sizeof keys, "%s", path_keys);
    const cJSON *at = o;
    for (char *save = NULL, *k = strtok_r(keys, ".", &save); k; k = strtok_r(NULL, ".", &save))
        at = cJSON_GetObjectItemCaseSensitive(at, k);
    if (!at) fail_msg("no %s in the JSON", path_keys);
    return (cJSON *)at;
}

/* 15.1: stray positional arguments, everywhere, with a hint for a folder. */
static void test_stray_arguments(void **state) {
    (void)state;
    /* from inside g_dir, so that a wrongly accepted command would leave runs/ there */
    assert_int_equal(
        tu_system("cd '%s' && %s train cls " SMALL " --epochs 1 2>%s", g_dir, tu_cli_path(), g_err),
        2);
    assert_true(file_has(g_err, "unexpected argument 'cls' (train takes options only; did you "
                                "mean --data cls?)"));
    assert_int_equal(access(path(g_dir, "runs"), F_OK), -1);
    assert_int_equal(CLI("info foo bar%s", ""), 2);
    assert_true(file_has(g_err, "unexpected argument 'bar'"));
    assert_int_equal(CLI("devices extra%s", ""), 2);
    assert_int_equal(CLI("export %s %s --format npz", "a", "b"), 2);
}

/* 15.2, 15.3, 15.9: a colour classifier on class folders: channels detected and said,
 * class names in the checkpoint and config.json, info RUN, eval by name, predict,
 * visualize --class NAME. */
static void test_classifier_on_own_folders(void **state) {
    (void)state;
    char run[1100];
    snprintf(run, sizeof run, "%s/run_cls", g_dir);
    assert_int_equal(CLI("train --data %s --model classifier --out %s " SMALL " --epochs 3 "
                         "--val 0.25",
                         path(g_dir, "cls"), run),
                     0);
    assert_true(file_has(g_err, "3 channel(s): detected: colour"));

    /* the checkpoint's metadata names the classes in the folders' order */
    dc_meta meta = {0};
    dc_error err = {0};
    assert_int_equal(dc_checkpoint_read_meta(path(run, "model.safetensors"), &meta, &err), DC_OK);
    assert_non_null(dc_meta_get(&meta, "classes"));
    assert_string_equal(dc_meta_get(&meta, "classes"), "[\"blue\",\"green\",\"red\"]");
    dc_meta_clear(&meta);

    /* config.json: options, seed, version, device, data with an absolute path */
    cJSON *cfg = read_json(path(run, "config.json"));
    assert_string_equal(cJSON_GetStringValue(get(cfg, "status")), "finished");
    assert_string_equal(cJSON_GetStringValue(get(cfg, "seed")), "1");
    assert_non_null(cJSON_GetStringValue(get(cfg, "version")));
    assert_non_null(strstr(cJSON_GetStringValue(get(cfg, "device")), "CPU"));
    const char *data_path = cJSON_GetStringValue(get(cfg, "data.path"));
    char *abs = realpath(path(g_dir, "cls"), NULL);
    assert_non_null(abs);
    assert_string_equal(data_path, abs);
    free(abs);
    assert_int_equal(get(cfg, "data.images")->valueint, 24);
    assert_int_equal(
        get(cfg, "data.train_images")->valueint + get(cfg, "data.val_images")->valueint, 24);
    assert_int_equal(get(cfg, "data.channels")->valueint, 3);
    assert_int_equal(get(cfg, "model.channels")->valueint, 3);
    assert_int_equal(cJSON_GetArraySize(get(cfg, "data.classes")), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(get(cfg, "data.classes"), 2)),
                        "red");
    assert_int_equal(get(cfg, "train.epochs")->valueint, 3);
    assert_int_equal(get(cfg, "progress.epochs_done")->valueint, 3);
    const double best = get(cfg, "progress.best_val_loss")->valuedouble;
    cJSON_Delete(cfg);

    /* info RUN: the run, not the default model */
    assert_int_equal(CLI("info %s", run), 0);
    assert_true(file_has(g_out, "model classifier, 3 channel(s), 16x16"));
    assert_true(file_has(g_out, "classes 3: blue, green, red"));
    assert_true(file_has(g_out, "epochs done 3 of 3"));
    char line[128];
    char *info = slurp(g_out);
    const char *at = strstr(info, "best validation loss ");
    assert_non_null(at);
    double printed = NAN;
    assert_int_equal(sscanf(at, "best validation loss %lf", &printed), 1);
    assert_float_equal(printed, best, 1e-6); /* loss.csv's 8 digits vs config.json's double */
    free(info);
    assert_true(file_has(g_out, "\"status\":\t\"finished\""));

    /* eval without --data: the run's own validation split (6 of 24 images) */
    assert_int_equal(CLI("eval %s --device cpu", run), 0);
    assert_true(file_has(g_out, "validation split"));
    assert_true(file_has(g_out, "/ 6)"));

    /* predict: top-1 per image, by name; the oracle for eval's mapping below */
    char part[1100];
    snprintf(part, sizeof part, "%s/part", g_dir);
    const int only_red[] = {2, -1};
    make_classes(part, only_red, 5);
    assert_int_equal(CLI("predict %s %s/red/00.ppm %s/red/01.ppm %s/red/02.ppm %s/red/03.ppm "
                         "%s/red/04.ppm --top 3 --json --device cpu",
                         run, part, part, part, part, part),
                     0);
    cJSON *pred = read_json(g_out);
    assert_int_equal(cJSON_GetArraySize(pred), 5);
    int top1_red = 0;
    for (int i = 0; i < 5; i++) {
        const cJSON *item = cJSON_GetArrayItem(pred, i);
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(item, "top");
        assert_int_equal(cJSON_GetArraySize(top), 3);
        double sum = 0, prev = 2;
        for (int r = 0; r < 3; r++) {
            const cJSON *e = cJSON_GetArrayItem(top, r);
            const double p = cJSON_GetObjectItemCaseSensitive(e, "probability")->valuedouble;
            const int k = cJSON_GetObjectItemCaseSensitive(e, "index")->valueint;
            assert_true(p <= prev);
            prev = p;
            sum += p;
            assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "class")),
                                class_names[k]);
        }
        assert_float_equal(sum, 1.0, 1e-5); /* all three classes: the whole softmax */
        const char *first = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(top, 0), "class"));
        top1_red += !strcmp(first, "red");
    }
    cJSON_Delete(pred);
    /* a test folder with only "red": its images are class 2 of the run, not class 0 */
    assert_int_equal(CLI("eval %s --data %s --device cpu", run, part), 0);
    snprintf(line, sizeof line, "accuracy %.4f (%d / 5)", top1_red / 5.0, top1_red);
    assert_true(file_has(g_out, line));
    /* text output names the classes too */
    assert_int_equal(CLI("predict %s %s/red/00.ppm --top 1 --device cpu", run, part), 0);
    assert_true(file_has(g_out, "red/00.ppm: "));

    /* a class the run does not know is a clear error */
    char odd[1100];
    snprintf(odd, sizeof odd, "%s/odd", g_dir);
    mkdir(odd, 0755);
    mkdir(path(odd, "purple"), 0755);
    write_ppm(path(odd, "purple/a.ppm"), 200, 30, 200, 0);
    assert_int_equal(CLI("eval %s --data %s --device cpu", run, odd), 1);
    assert_true(file_has(g_err, "class 'purple' of"));
    assert_true(file_has(g_err, "not one of the run's classes (blue, green, red)"));

    /* visualize --class NAME with the run's names and its own data */
    assert_int_equal(
        CLI("visualize saliency %s --class green --device cpu -o %s", run, path(g_dir, "sal.png")),
        0);
    assert_true(file_has(g_out, "class 1 (green)"));
    assert_int_equal(
        CLI("visualize saliency %s --class mauve --device cpu -o %s", run, path(g_dir, "sal.png")),
        1);
}

/* 15.2: grey data stays one channel, and says so. */
static void test_grey_detected(void **state) {
    (void)state;
    char run[1100];
    snprintf(run, sizeof run, "%s/run_grey", g_dir);
    assert_int_equal(CLI("train --data %s --out %s " SMALL " --latent 8 --epochs 1 --val 0",
                         path(g_dir, "grey"), run),
                     0);
    assert_true(file_has(g_err, "1 channel(s): detected: grey"));
    cJSON *cfg = read_json(path(run, "config.json"));
    assert_int_equal(get(cfg, "model.channels")->valueint, 1);
    assert_int_equal(get(cfg, "data.images")->valueint, 8);
    cJSON_Delete(cfg);
    /* --channels given wins */
    assert_int_equal(CLI("train --data %s --out %s " SMALL " --latent 8 --epochs 1 --val 0 "
                         "--channels 3 --force",
                         path(g_dir, "grey"), run),
                     0);
    assert_true(file_has(g_err, "3 channel(s): given (--channels 3)"));
}

/* 15.4: the data path stored absolute; a resume from / works; what may change says so. */
static void test_resume_anywhere(void **state) {
    (void)state;
    char run[1100];
    snprintf(run, sizeof run, "%s/run_resume", g_dir);
    /* a relative --data from inside g_dir */
    assert_int_equal(tu_system("cd '%s' && %s train --data grey --out run_resume " SMALL
                               " --latent 8 --epochs 1 --val 0.25 --quiet 2>%s",
                               g_dir, tu_cli_path(), g_err),
                     0);
    assert_int_equal(tu_system("cd / && %s train --resume '%s' --epochs 2 --quiet --device cpu "
                               "2>%s",
                               tu_cli_path(), run, g_err),
                     0);
    cJSON *cfg = read_json(path(run, "config.json"));
    assert_int_equal(get(cfg, "progress.epochs_done")->valueint, 2);
    const char *data_path = cJSON_GetStringValue(get(cfg, "data.path"));
    assert_true(data_path[0] == '/');
    cJSON_Delete(cfg);

    /* model and training options are the run's own: named, not "unknown option" */
    assert_int_equal(CLI("train --resume %s --epochs 3 --lr 0.5 --device cpu", run), 2);
    assert_true(file_has(g_err, "--lr cannot change on --resume"));
    assert_true(file_has(g_err, "--epochs"));
    assert_int_equal(CLI("train --resume %s --epochs 3 --base 8 --device cpu", run), 2);
    assert_true(file_has(g_err, "--base cannot change on --resume"));

    /* --data to a moved copy: its content matches, the run continues and records it */
    char copy[1100];
    snprintf(copy, sizeof copy, "%s/grey_moved", g_dir);
    assert_int_equal(tu_system("cp -r '%s' '%s'", path(g_dir, "grey"), copy), 0);
    assert_int_equal(CLI("train --resume %s --epochs 3 --data %s --quiet --device cpu", run, copy),
                     0);
    cfg = read_json(path(run, "config.json"));
    char *abs = realpath(copy, NULL);
    assert_string_equal(cJSON_GetStringValue(get(cfg, "data.path")), abs);
    free(abs);
    assert_int_equal(get(cfg, "progress.epochs_done")->valueint, 3);
    cJSON_Delete(cfg);
    /* --data to other images: refused by the content check */
    char other[1100];
    snprintf(other, sizeof other, "%s/grey_other", g_dir);
    assert_int_equal(
        tu_system("cp -r '%s' '%s' && rm '%s/g0.ppm'", path(g_dir, "grey"), other, other), 0);
    assert_int_equal(CLI("train --resume %s --epochs 4 --data %s --quiet --device cpu", run, other),
                     1);
    assert_true(file_has(g_err, "its images differ from the data"));

    /* a run folder from before item-wise fingerprints stores the old one (16 hex digits):
     * a resume compares with it, computed the old way. The oracle: FNV-1a over the sizes,
     * the whole load's contiguous pixels, the labels and class names, train then val. */
    cfg = read_json(path(run, "config.json"));
    const char *now = cJSON_GetStringValue(get(cfg, "data.fingerprint"));
    assert_true(strncmp(now, DC_DATA_FINGERPRINT_PREFIX, 3) == 0);
    cJSON_Delete(cfg);
    dc_train_checkpoint at;
    dc_error err = {0};
    assert_int_equal(dc_train_read_checkpoint(run, &at, &err), DC_OK);
    dc_dataset *tr = NULL, *va = NULL;
    assert_int_equal(dc_train_load_data(&at.config, at.spec.size, at.spec.channels, &tr, &va, &err),
                     DC_OK);
    uint64_t h = 14695981039346656037ull;
    const dc_dataset *sets[2] = {tr, va};
    for (int k = 0; k < 2; k++) {
        const dc_dataset *ds = sets[k];
        const int32_t dims[4] = {ds->n, ds->c, ds->h, ds->w};
        const struct {
            const void *p;
            size_t len;
        } parts[3] = {{dims, sizeof dims},
                      {ds->images, sizeof(float) * dc_dataset_image_numel(ds) * ds->n},
                      {ds->labels, ds->labels ? sizeof(int32_t) * ds->n : 0}};
        for (int q = 0; q < 3; q++)
            for (size_t i = 0; i < parts[q].len; i++)
                h = (h ^ ((const unsigned char *)parts[q].p)[i]) * 1099511628211ull;
        for (int c = 0; ds->class_names && c < ds->n_classes; c++)
            for (size_t i = 0; i <= strlen(ds->class_names[c]); i++)
                h = (h ^ (unsigned char)ds->class_names[c][i]) * 1099511628211ull;
    }
    dc_dataset_free(tr), dc_dataset_free(va);
    char old_fp[32];
    snprintf(old_fp, sizeof old_fp, "%016llx", (unsigned long long)h);
    for (int round = 0; round < 2; round++) {
        /* round 0: the old fingerprint of this data, accepted; round 1: another, refused */
        cfg = read_json(path(run, "config.json"));
        cJSON_ReplaceItemInObjectCaseSensitive(
            get(cfg, "data"), "fingerprint",
            cJSON_CreateString(round ? "0123456789abcdef" : old_fp));
        char *text = cJSON_Print(cfg);
        FILE *f = fopen(path(run, "config.json"), "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        free(text);
        cJSON_Delete(cfg);
        /* --data moves each round (grey, then the copy): a moved path must match */
        assert_int_equal(CLI("train --resume %s --epochs %d --data %s --quiet --device cpu", run,
                             4 + round, round ? copy : path(g_dir, "grey")),
                         round ? 1 : 0);
        if (round) {
            assert_true(file_has(g_err, "its images differ from the data"));
            assert_true(file_has(g_err, old_fp)); /* computed the old way */
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stray_arguments),
        cmocka_unit_test(test_classifier_on_own_folders),
        cmocka_unit_test(test_grey_detected),
        cmocka_unit_test(test_resume_anywhere),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
