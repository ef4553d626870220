/* deconv eval's report for generative runs: every figure next to its floor (the same figure
 * of the training images, or a baseline), one verdict line per figure, and all of it as a
 * JSON object.
 *
 * The verdicts are conventions, written so that noise or grey cannot look good: novelty is
 * only credited to samples that pass realism and do not copy the training set. The
 * thresholds below are the whole rule; README "Evaluating generative runs" repeats them. */
#ifndef DECONV_CLI_EVAL_REPORT_H
#define DECONV_CLI_EVAL_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "deconv/eval.h"

/* realism (mid-grey): samples may have at most this many more mid-grey pixels (share) than
 * the training images */
#define EV_MID_GREY_MARGIN 0.05
/* realism (edges): edge sharpness at least this share of the training images' */
#define EV_SHARPNESS_SHARE 0.8
/* realism (edges): edge length per image within [1/x, x] times the training images' */
#define EV_EDGE_LENGTH_FACTOR 2.0
/* memorisation: at most this share of near-copies, and a mean nearest/2nd-nearest ratio of
 * at least EV_RATIO_SHARE times the training images' own */
#define EV_MEMORISED_MAX 0.10
#define EV_RATIO_SHARE 0.5
/* diversity: samples vary per pixel at least this share of what the training images do */
#define EV_SPREAD_SHARE 0.5
/* Frechet distance: at most this many times the train-vs-test floor */
#define EV_FD_FACTOR 5.0
/* precision, recall: at least this share of the train-vs-test floor */
#define EV_PR_SHARE 0.5
/* class histogram: a top-class share at most this much above the floor's, a normalised
 * entropy at most this much below it */
#define EV_TOP_SHARE_MARGIN 0.15
#define EV_ENTROPY_MARGIN 0.1

typedef struct ev_report {
    FILE *text;      /* readable lines go here (stdout, or stderr when the JSON goes to stdout) */
    cJSON *root;     /* every figure, floor and verdict */
    cJSON *verdicts; /* array in root: {"figure", "pass", "text"} */
    int n_fail;
} ev_report;

/* 0, or 1 when out of memory. */
int ev_report_init(ev_report *r, FILE *text);
void ev_report_free(ev_report *r);
/* Print "  FIGURE: PASS|FAIL — why" and append it to the verdicts. */
void ev_verdict(ev_report *r, const char *figure, int pass, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* A number into a JSON object (non-finite values become null). */
void ev_json_number(cJSON *obj, const char *key, double v);
/* The closing line ("verdict: PASS" or the failed figures) and root's "pass". */
void ev_report_finish(ev_report *r);
/* Write root to path ("-": stdout). 0, or 1 when it cannot be written (errno says why). */
int ev_report_write_json(const ev_report *r, const char *path);

/* Mean over pixels of the per-pixel standard deviation across n images (numel values each):
 * how much the images differ from each other. */
double ev_spread(const float *images, int n, size_t numel);

/* The small-data figures of n samples against n_train training images (c x h x w each,
 * values in [-1, 1]): realism (mid-grey share, edge sharpness and length), memorisation,
 * novelty and diversity, each next to the training images' own figure, with their verdicts.
 * Adds "small_data" to the report. 0, or 1 with err set. */
int ev_small_data(ev_report *r, const float *samples, int n, const float *train, int n_train,
                  int c, int h, int w, dc_error *err);

/* The Fashion-MNIST block: Frechet distance in the `gap` features of the pinned classifier
 * (classifier_path), precision/recall (k = 3) and the class histogram of the samples, each
 * next to the floor (n training images vs the test set). Samples must be 32x32 grey; other
 * sizes get a line saying why the block is skipped. The floor is made of as many training
 * images as there are samples (the FD depends on the count). use_cache: keep the test-set
 * features and the floor in a cache folder (host/cli/eval_fashion.c). Adds "fashion_mnist".
 * 0, or 1 after printing why. */
int ev_fashion_mnist(ev_report *r, const char *cmd, dc_backend *be, const char *classifier_path,
                     const float *samples, int n, int c, int size, int use_cache);

/* deconv eval --images FILE.npy: the Fashion-MNIST block on images made elsewhere (e.g. the
 * PyTorch twin's samples): a little-endian float32 .npy of [N, 1, 32, 32] or [N, 32, 32] in
 * [-1, 1]. json: NULL, a path or "-" (stdout). Returns the exit status (0, or 1 after
 * printing why). */
int ev_fashion_mnist_images(const char *cmd, dc_backend *be, const char *npy_path,
                            const char *classifier_path, const char *json, int use_cache);

#endif
