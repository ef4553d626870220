/* deconv eval RUN: test accuracy and confusion matrix of a classifier run; other runs
 * (complete, vae, glo) are handed to dc_cli_eval_generative. deconv eval --images FILE.npy
 * scores images made elsewhere (host/cli/eval_fashion.c). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/eval_report.h"
#include "deconv/data.h"
#include "deconv/train.h"
#include "deconv/viz.h"

/* Evaluation of the generative runs (complete / vae / glo), in host/cli/eval_generative.c.
 * `a` is parsed (RUN is a->positional[0]) and --device has been read; it reads its own
 * options, calls dc_args_check_unused and returns the exit status. */
int dc_cli_eval_generative(dc_args *a, const char *run, dc_backend *be);

static const dc_option eval_options[] = {
    {"data", 0, DC_OPT_TEXT, "FOLDER|IDX|fashion-mnist", "evaluation data",
     "the run's validation split", NULL},
    {"batch", 0, DC_OPT_INT, "N", "classifier: images per forward pass", "250", NULL},
    {"limit", 0, DC_OPT_INT, "N", "the first N images only", "all; generative 500", NULL},
    {"max-image-pixels", 0, DC_OPT_INT, "N", "width x height cap per image file", "64 Mpx",
     NULL},
    {"samples", 0, DC_OPT_INT, "N", "generative: new images to judge",
     "64; 10000 for Fashion-MNIST runs", NULL},
    {"draws", 0, DC_OPT_INT, "N", "complete/vae: codes per hidden region (diffusion: inpaintings)", "16", NULL},
    {"seed", 0, DC_OPT_INT, "S", "generative: random seed", "1", NULL},
    {"steps", 0, DC_OPT_INT, "N", "diffusion: sampler steps", DC_CLI_STR(DC_FLOW_STEPS), NULL},
    {"sampler", 0, DC_OPT_TEXT, "euler|heun|sde", "diffusion: the sampler (sde: churn 1)", "euler", NULL},
    {"resample", 0, DC_OPT_INT, "R", "diffusion: RePaint resampling per step of the inpaintings",
     "3; 1 for a mask-conditioned model", NULL},
    {"guidance", 0, DC_OPT_NUM, "W",
     "class-conditioned diffusion: classifier-free guidance (0: unconditional)", "1", NULL},
    {"save-samples", 0, DC_OPT_TEXT, "FILE.npy",
     "generative: write the samples as float32 [N, C, S, S] in [-1, 1]", NULL, NULL},
    {"classifier", 0, DC_OPT_TEXT, "FILE", "the pinned Fashion-MNIST network",
     "ASSETS/fm32_classifier.safetensors", NULL},
    {"no-cache", 0, DC_OPT_FLAG, NULL, "do not cache the test set's features and the floor", NULL,
     NULL},
    {"images", 0, DC_OPT_TEXT, "FILE.npy", "score images made elsewhere (see below)", NULL, NULL},
    {"json", 0, DC_OPT_TEXT, "FILE|-",
     "generative: every figure, floor and verdict as JSON (\"-\": stdout,\nthe text then goes to "
     "stderr)",
     NULL, NULL},
    DC_OPT_DEVICE_ENTRY,
    DC_OPT_END,
};

static void eval_notes(FILE *f) {
    fprintf(
        f,
        "Classifier runs: accuracy on --data and the confusion matrix (rows: true class,\n"
        "columns: predicted class) with the class names. Without --data: the run's own\n"
        "validation split (a run on Fashion-MNIST: its test set). A folder's class sub-folders\n"
        "are matched to the run's classes by name, so a test folder may hold only some of\n"
        "them; a name the run does not know is an error.\n\n"
        "Generative runs (complete, vae, glo, diffusion): --samples new images, made as\n"
        "`deconv generate` makes them, each figure next to the same figure of the training\n"
        "images: realism (mid-grey share, edge sharpness and length), memorisation\n"
        "(near-copies, nearest/2nd-nearest ratio), novelty, diversity. complete/vae also:\n"
        "hidden-region PSNR vs the training-set mean and nearest-visible-part baselines on the\n"
        "validation split (or --data; the first --limit images) and how much --draws codes\n"
        "change it (diffusion: the mean of --draws inpaintings against the baselines, and\n"
        "whether single inpaintings stay sharp). A class-conditioned diffusion model samples\n"
        "each class in turn with classifier-free guidance --guidance W (0: unconditionally).\n"
        "Fashion-MNIST 32x32 runs also: Frechet distance, precision/recall (k = 3)\n"
        "and the class histogram in the 'gap' features of the pinned classifier (--classifier,\n"
        "default %s/fm32_classifier.safetensors), next to the floor of as many\n"
        "training images against the test set. One verdict line per figure. The test set's\n"
        "features and the floor are cached in $DECONV_CACHE (default ~/.cache/deconv) unless\n"
        "--no-cache.\n\n"
        "deconv eval --images FILE.npy: the Fashion-MNIST block above (Frechet distance,\n"
        "precision/recall, class histogram against the test set, next to the floor) for images\n"
        "made elsewhere, e.g. the PyTorch twin's samples (bench/diffusion_parity.sh): a float32\n"
        ".npy of [N, 1, 32, 32] or [N, 32, 32] with values in [-1, 1].\n",
        DECONV_ASSETS_DIR);
}

static const dc_command eval_command = {
    .name = "eval",
    .synopsis = "RUN [--device cpu|opencl|opencl:P:D|auto] [options]\n"
                "--images FILE.npy [--data fashion-mnist] [--classifier FILE] [--json FILE|-]",
    .about = "Classifier: test accuracy and confusion matrix; generative runs: their metrics.\n",
    .options = eval_options,
    .notes = eval_notes,
    .max_positional = 1,
    .positional_what = "one RUN",
    .takes_data = 1,
    .computes = 1,
};

/* The evaluation data when --data is not given: a Fashion-MNIST run's test set, else the
 * run's own validation part, split as training split it. */
static int own_eval_data(const char *run, int H, int C, const dc_load_options *load,
                         dc_dataset **out, char *desc, size_t cap) {
    dc_train_checkpoint at;
    dc_error err = {0};
    *out = NULL;
    if (dc_train_read_checkpoint(run, &at, &err) != DC_OK)
        return dc_cli_fail("eval", "%s", err.msg);
    if (strstr(at.config.data, "fashion-mnist")) {
        snprintf(desc, cap, "fashion-mnist:test");
        if (dc_dataset_load_path_opts(desc, H, C, load, out, &err) != DC_OK)
            return dc_cli_fail("eval", "%s: %s", desc, err.msg);
        return 0;
    }
    dc_dataset *train = NULL;
    if (dc_train_load_data_opts(&at.config, H, C, load, &train, out, &err) != DC_OK)
        return dc_cli_fail("eval", "the run's data %s: %s (give --data)", at.config.data, err.msg);
    dc_dataset_free(train);
    if ((*out)->n == 0) {
        dc_dataset_free(*out);
        *out = NULL;
        return dc_cli_fail("eval",
                           "%s holds no validation images (trained with --val 0); give "
                           "--data",
                           run);
    }
    snprintf(desc, cap, "%s (the run's validation split: %.0f%%, split seed %llu)", at.config.data,
             100.0 * at.config.val, (unsigned long long)at.config.split_seed);
    return 0;
}

/* map[k]: the model's class for the data's class k, matched by name (exact, else ignoring
 * case) when both name their classes, else by number. 0, or 1 after naming the class that
 * does not fit. */
static int map_classes(const dc_dataset *ds, const char *what, char **names, int n_names, int K,
                       int *map) {
    if (!names || !ds->class_names) {
        if (ds->n_classes > K)
            return dc_cli_fail("eval", "--data %s has %d classes, the model predicts %d", what,
                               ds->n_classes, K);
        for (int k = 0; k < ds->n_classes; k++)
            map[k] = k;
        return 0;
    }
    for (int k = 0; k < ds->n_classes; k++) {
        map[k] = -1;
        for (int j = 0; j < n_names && map[k] < 0; j++)
            if (!strcmp(ds->class_names[k], names[j])) map[k] = j;
        for (int j = 0; j < n_names && map[k] < 0; j++)
            if (!strcasecmp(ds->class_names[k], names[j])) map[k] = j;
        if (map[k] < 0) {
            fprintf(stderr, "deconv eval: class '%s' of %s is not one of the run's classes (",
                    ds->class_names[k], what);
            for (int j = 0; j < n_names; j++)
                fprintf(stderr, "%s%s", j ? ", " : "", names[j]);
            fprintf(stderr, ")\n");
            return 1;
        }
    }
    return 0;
}

static int eval_images(dc_args *a, const char *images) {
    const char *data = dc_args_str(a, "data", "fashion-mnist");
    const char *classifier =
        dc_args_str(a, "classifier", DECONV_ASSETS_DIR "/fm32_classifier.safetensors");
    const char *json = dc_args_str(a, "json", NULL);
    const int use_cache = !dc_args_flag(a, "no-cache");
    if (a->n_positional != 0)
        return dc_cli_usage("eval", "--images scores a file, not a run: drop '%s'",
                           a->positional[0]);
    if (strcmp(data, "fashion-mnist") != 0)
        return dc_cli_usage(
            "eval", "--images with --data %s: only fashion-mnist has a pinned classifier", data);
    dc_backend *be = NULL;
    int rc = dc_cli_backend_last(a, &be);
    if (rc) return rc;
    rc = ev_fashion_mnist_images("eval", be, images, classifier, json, use_cache);
    dc_backend_free(be);
    return rc;
}

static int eval_classifier(dc_args *a, const char *run, dc_backend *be) {
    const char *spec = dc_args_str(a, "data", NULL);
    const int batch = dc_args_int(a, "batch", 250);
    const int limit = dc_args_int(a, "limit", 0);
    dc_load_options load;
    if (dc_cli_load_options(a, &load)) return 2;
    if (dc_args_check_unused(a)) return 2;
    if (batch < 1) return dc_cli_usage("eval", "--batch %d must be >= 1", batch);
    /* absent means all; a given limit must be a count */
    if (dc_args_str(a, "limit", NULL) && limit < 1)
        return dc_cli_usage("eval", "--limit %d must be >= 1 (leave it out to use every image)",
                           limit);
    dc_model *m = NULL;
    dc_meta meta = {0};
    if (dc_cli_open_run("eval", run, be, batch, &m, &meta)) return 1;
    char **run_names = NULL;
    int n_run_names = 0;
    const int names_ok = dc_cli_run_classes(&meta, &run_names, &n_run_names) == 0;
    dc_meta_clear(&meta);
    if (!names_ok) {
        dc_model_free(m);
        return dc_cli_fail("eval", "%s: the stored class names are malformed", run);
    }
    dc_error err = {0};
    dc_dataset *ds = NULL;
    int rc = 1;
    int C, H, W, K;
    long *conf = NULL;
    float *scores = NULL, *pad = NULL;
    int *map = NULL;
    char what[1400];
    if (dc_viz_model_geometry(m, &C, &H, &W, &K, &err) != DC_OK) {
        rc = dc_cli_fail("eval", "%s", err.msg);
        goto done;
    }
    if (n_run_names > 0 && n_run_names != K) {
        rc = dc_cli_fail("eval", "%s stores %d class names for a model of %d classes", run,
                         n_run_names, K);
        goto done;
    }
    if (spec) {
        snprintf(what, sizeof what, "%s", spec);
        if (dc_dataset_load_path_opts(spec, H, C, &load, &ds, &err) != DC_OK) {
            rc = dc_cli_fail("eval", "--data %s: %s", spec, err.msg);
            goto done;
        }
    } else if (own_eval_data(run, H, C, &load, &ds, what, sizeof what)) {
        goto done;
    }
    if (!ds->labels) {
        rc = dc_cli_fail("eval",
                         "--data %s has no labels (a folder needs one sub-folder per class)", what);
        goto done;
    }
    map = malloc(sizeof(int) * (size_t)(ds->n_classes > 0 ? ds->n_classes : 1));
    if (!map) {
        rc = dc_cli_fail("eval", "out of memory");
        goto done;
    }
    if (map_classes(ds, what, run_names, n_run_names, K, map)) goto done;
    const int n = limit > 0 && limit < ds->n ? limit : ds->n;
    const size_t chw = (size_t)C * H * W;
    conf = calloc((size_t)K * K, sizeof(long));
    scores = malloc(sizeof(float) * (size_t)batch * K);
    pad = calloc((size_t)batch * chw, sizeof(float));
    if (!conf || !scores || !pad) {
        rc = dc_cli_fail("eval", "out of memory");
        goto done;
    }
    dc_graph *g = dc_model_graph(m);
    dc_graph_set_train(g, 0);
    long correct = 0;
    for (int i0 = 0; i0 < n; i0 += batch) {
        const int cnt = n - i0 < batch ? n - i0 : batch;
        const float *src = dc_dataset_image(ds, i0);
        if (cnt < batch) {
            memcpy(pad, src, sizeof(float) * chw * (size_t)cnt);
            src = pad;
        }
        if (dc_graph_set_input(g, m->x, src) != DC_OK || dc_graph_forward(g, m->out) != DC_OK ||
            dc_graph_read(g, m->out, scores) != DC_OK) {
            rc = dc_cli_fail("eval", "%s", dc_graph_error(g)->msg);
            goto done;
        }
        for (int i = 0; i < cnt; i++) {
            const float *s = scores + (size_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (s[k] > s[best]) best = k;
            const int truth = map[ds->labels[i0 + i]];
            conf[(size_t)truth * K + best]++;
            correct += best == truth;
        }
    }
    /* the run's names; an older run without them shows the data's */
    const char *const *names = run_names ? (const char *const *)run_names
                               : ds->class_names && ds->n_classes <= K
                                   ? (const char *const *)ds->class_names
                                   : NULL;
    const int n_names = run_names ? n_run_names : ds->n_classes;
    printf("run %s on %s (%s)\n", run, spec ? ds->source : what, dc_backend_device(be));
    printf("accuracy %.4f (%ld / %d)\n\n", (double)correct / n, correct, n);
    printf("confusion matrix (rows: true class, columns: predicted class)\n");
    printf("%-4s %-16s", "", "");
    for (int k = 0; k < K; k++)
        printf(" %5d", k);
    printf("  recall\n");
    for (int t = 0; t < K; t++) {
        long row = 0;
        for (int k = 0; k < K; k++)
            row += conf[(size_t)t * K + k];
        const char *nm = names && t < n_names ? names[t] : "";
        printf("%-4d %-16.16s", t, nm);
        for (int k = 0; k < K; k++)
            printf(" %5ld", conf[(size_t)t * K + k]);
        if (row)
            printf("  %.3f\n", (double)conf[(size_t)t * K + t] / row);
        else
            printf("  -\n");
    }
    rc = 0;
done:
    dc_cli_names_free(run_names, n_run_names);
    free(map);
    free(conf);
    free(scores);
    free(pad);
    dc_dataset_free(ds);
    dc_model_free(m);
    return rc;
}

int dc_cmd_eval(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &eval_command, argc, argv)) return a.status;
    const char *images = dc_args_str(&a, "images", NULL);
    if (images) return eval_images(&a, images);
    if (a.n_positional != 1) return dc_cli_usage("eval", "give a RUN or --images FILE.npy");
    const char *run = a.positional[0];
    char path[4096];
    if (dc_cli_checkpoint_path(run, path, sizeof path))
        return dc_cli_fail("eval", "run path '%.100s...' is too long", run);
    dc_meta meta = {0};
    dc_error err = {0};
    if (dc_checkpoint_read_meta(path, &meta, &err) != DC_OK)
        return dc_cli_fail("eval", "%s", err.msg);
    dc_model_spec spec;
    const char *js = dc_meta_get(&meta, "model");
    if (!js || dc_model_spec_from_json(js, &spec, &err) != DC_OK) {
        dc_meta_clear(&meta);
        return dc_cli_fail("eval", "%s: no usable model description in the metadata (%s)", path,
                           js ? err.msg : "key 'model' missing");
    }
    dc_meta_clear(&meta);
    dc_backend *be = NULL;
    if (dc_cli_backend(&a, &be)) return 1;
    int rc = dc_model_kind_has(spec.kind, DC_KIND_CLASSIFIES) ? eval_classifier(&a, run, be)
                                              : dc_cli_eval_generative(&a, run, be);
    dc_backend_free(be);
    return rc;
}
