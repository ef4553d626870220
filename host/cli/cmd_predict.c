/* deconv predict RUN IMAGE...: a classifier's top classes for image files, with the class
 * names stored in the run's checkpoint and softmax probabilities. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "deconv/viz.h"

static const dc_option predict_options[] = {
    {"top", 0, DC_OPT_INT, "K", "classes per image", "3", NULL},
    {"json", 0, DC_OPT_FLAG, NULL,
     "one JSON array on stdout instead of text:\n[{\"image\", \"top\": [{\"class\", \"index\", "
     "\"probability\"}]}]",
     NULL, NULL},
    {"max-image-pixels", 0, DC_OPT_INT, "N", "width x height cap per image file", "64 Mpx",
     NULL},
    DC_OPT_DEVICE_ENTRY,
    DC_OPT_END,
};

static const dc_command predict_command = {
    .name = "predict",
    .synopsis = "RUN IMAGE... [--top K] [--json] [--device D] [--max-image-pixels N]",
    .about = "The classifier run's top K classes for each image file, by name, with their\n"
             "probabilities (softmax of the scores). Each image is prepared as the training\n"
             "images were: fitted into the model's square, its colour or grey as the run's\n"
             "channels, JPEG turned upright by its EXIF orientation. A file that cannot be read\n"
             "is named on stderr and the exit status is 1.\n",
    .options = predict_options,
    .max_positional = -1,
    .computes = 1,
};

/* Stable softmax of scores[0..k) into p. */
static void softmax(const float *scores, int k, double *p) {
    double max = scores[0], sum = 0;
    for (int i = 1; i < k; i++)
        if (scores[i] > max) max = scores[i];
    for (int i = 0; i < k; i++)
        sum += p[i] = exp((double)scores[i] - max);
    for (int i = 0; i < k; i++)
        p[i] /= sum;
}

/* order[0..k): class indices by falling probability (ties: lower index first). */
static void rank(const double *p, int k, int *order) {
    for (int i = 0; i < k; i++)
        order[i] = i;
    for (int i = 1; i < k; i++) /* insertion sort: k is a class count */
        for (int j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

int dc_cmd_predict(int argc, char **argv) {
    dc_args a;
    if (dc_args_parse(&a, &predict_command, argc, argv)) return a.status;
    if (a.n_positional < 2)
        return dc_cli_usage("predict", "give a RUN and at least one IMAGE (deconv predict --help)");
    const int top_opt = dc_args_int(&a, "top", 3);
    const int json = dc_args_flag(&a, "json");
    dc_load_options load;
    if (dc_cli_load_options(&a, &load)) return 2;
    if (top_opt < 1) {
        fprintf(stderr, "deconv predict: --top %d must be >= 1\n", top_opt);
        return 2;
    }
    dc_backend *be = NULL;
    int rc = dc_cli_backend_last(&a, &be);
    if (rc) return rc;
    const char *run = a.positional[0];
    dc_model *m = NULL;
    dc_meta meta = {0};
    char **names = NULL;
    int n_names = 0, C = 0, H = 0, W = 0, K = 0;
    float *image = NULL, *scores = NULL;
    double *p = NULL;
    int *order = NULL;
    cJSON *out = NULL;
    rc = 1;
    if (dc_cli_open_run("predict", run, be, 1, &m, &meta)) goto done;
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_CLASSIFIES)) {
        dc_cli_fail("predict", "%s is a %s model; predict needs a classifier run", run,
                    dc_model_kind_name(m->spec.kind));
        goto done;
    }
    if (dc_cli_run_classes(&meta, &names, &n_names)) {
        dc_cli_fail("predict", "%s: the stored class names are malformed", run);
        goto done;
    }
    dc_error err = {0};
    if (dc_viz_model_geometry(m, &C, &H, &W, &K, &err) != DC_OK) {
        dc_cli_fail("predict", "%s", err.msg);
        goto done;
    }
    if (names && n_names != K) {
        dc_cli_fail("predict", "%s stores %d class names for a model of %d classes", run, n_names,
                    K);
        goto done;
    }
    if (!names)
        fprintf(stderr,
                "deconv predict: %s stores no class names (a run made before they were "
                "saved): classes are shown by number\n",
                run);
    const int top = top_opt < K ? top_opt : K;
    image = malloc(sizeof(float) * (size_t)C * H * W);
    scores = malloc(sizeof(float) * (size_t)K);
    p = malloc(sizeof(double) * (size_t)K);
    order = malloc(sizeof(int) * (size_t)K);
    out = json ? cJSON_CreateArray() : NULL;
    if (!image || !scores || !p || !order || (json && !out)) {
        dc_cli_fail("predict", "out of memory");
        goto done;
    }
    dc_graph *g = dc_model_graph(m);
    dc_graph_set_train(g, 0);
    int failed = 0;
    for (int i = 1; i < a.n_positional; i++) {
        const char *file = a.positional[i];
        if (dc_image_read_opts(file, H, C, &load, image, &err) != DC_OK) {
            fprintf(stderr, "deconv predict: %s\n", err.msg);
            failed = 1;
            continue;
        }
        if (dc_graph_set_input(g, m->x, image) != DC_OK || dc_graph_forward(g, m->out) != DC_OK ||
            dc_graph_read(g, m->out, scores) != DC_OK) {
            dc_cli_fail("predict", "%s: %s", file, dc_graph_error(g)->msg);
            goto done;
        }
        softmax(scores, K, p);
        rank(p, K, order);
        cJSON *item = json ? cJSON_CreateObject() : NULL;
        if (item) cJSON_AddStringToObject(item, "image", file);
        cJSON *list = item ? cJSON_AddArrayToObject(item, "top") : NULL;
        if (!json) printf("%s:", file);
        for (int r = 0; r < top; r++) {
            const int k = order[r];
            char number[16];
            snprintf(number, sizeof number, "%d", k);
            const char *name = names ? names[k] : number;
            if (json) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "class", name);
                cJSON_AddNumberToObject(e, "index", k);
                cJSON_AddNumberToObject(e, "probability", p[k]);
                cJSON_AddItemToArray(list, e);
            } else {
                printf("%s %s %.4f", r ? "," : "", name, p[k]);
            }
        }
        if (json)
            cJSON_AddItemToArray(out, item);
        else
            printf("\n");
    }
    if (json) {
        char *text = cJSON_Print(out);
        if (text) printf("%s\n", text);
        cJSON_free(text);
    }
    rc = failed;
done:
    cJSON_Delete(out);
    free(image);
    free(scores);
    free(p);
    free(order);
    dc_cli_names_free(names, n_names);
    dc_meta_clear(&meta);
    dc_model_free(m);
    dc_backend_free(be);
    return rc;
}
