/* deconv visualize METHOD RUN: what a trained classifier looks at, as a PNG.
 *
 * Heatmap methods write three cells: the input, the map alone (colour map) and the map
 * over the input. DeconvNet and guided backprop add the signed pattern they project to
 * pixel space. --sanity runs the same method on a copy of the model with re-initialised
 * weights and writes that next to the output, with the rank correlation of the two maps
 * (Adebayo et al. 2018: a map that does not change is not explaining the model). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "deconv/train.h"
#include "deconv/data.h"
#include "deconv/image.h"
#include "deconv/viz.h"

/* Exit status when a map comes out constant (nothing to see). */
#define VIZ_EXIT_FLAT 3
/* --sanity passes when the trained and the randomised model's results agree less than
 * this: the rank correlation of the two maps, or for maxact the share of images both
 * found (Adebayo et al. 2018 read a high similarity as a map that ignores the weights). */
#define VIZ_SANITY_THRESHOLD 0.5
/* Occlusion: a largest drop in p(class) below this is reported as negligible. */
#define VIZ_OCCLUSION_NEGLIGIBLE 0.01

typedef enum viz_method {
    VIZ_DECONVNET,
    VIZ_GUIDED,
    VIZ_SALIENCY,
    VIZ_OCCLUSION,
    VIZ_ASCENT,
    VIZ_CAM,
    VIZ_GRADCAM,
    VIZ_MAXACT,
    VIZ_FILTERS,
    VIZ_METHOD_COUNT
} viz_method;

static const char *const methods[VIZ_METHOD_COUNT + 1] = { /* NULL-terminated */
    [VIZ_DECONVNET] = "deconvnet", [VIZ_GUIDED] = "guided", [VIZ_SALIENCY] = "saliency",
    [VIZ_OCCLUSION] = "occlusion", [VIZ_ASCENT] = "ascent", [VIZ_CAM] = "cam",
    [VIZ_GRADCAM] = "gradcam",     [VIZ_MAXACT] = "maxact", [VIZ_FILTERS] = "filters"};

static const dc_option viz_table[] = {
    {"image", 0, DC_OPT_TEXT, "FILE", "an image file (resized to the model's input)", NULL, NULL},
    {"index", 0, DC_OPT_INT, "I",
     "item I of --data (default data: the run's own, a Fashion-MNIST\nrun's test set; index 0); "
     "not with --image",
     NULL, NULL},
    {"data", 0, DC_OPT_TEXT, "SPEC", "the images of --index and maxact", "the run's own", NULL},
    {"class", 0, DC_OPT_TEXT, "K",
     "class to explain: number or name (the names the run stores;\ndefault: the predicted class)",
     NULL, NULL},
    {"layer", 0, DC_OPT_TEXT, "NODE", "the layer (deconvnet, cam, gradcam, maxact)",
     "the last conv", NULL},
    {"channel", 0, DC_OPT_INT, "C", "the channel (deconvnet, maxact)", "the strongest", NULL},
    {"whole-map", 0, DC_OPT_FLAG, NULL, "deconvnet: all of the channel's map, not its maximum",
     NULL, NULL},
    {"out", 'o', DC_OPT_TEXT, "OUT.png", "PNG to write", "METHOD.png", "output"},
    {"scale", 0, DC_OPT_INT, "S", "pixel size of the cells", "cells of about 224 pixels", NULL},
    {"alpha", 0, DC_OPT_NUM, "A", "heatmap opacity over the image", "0.5", NULL},
    {"samples", 0, DC_OPT_INT, "N", "saliency: SmoothGrad samples", NULL, NULL},
    {"noise", 0, DC_OPT_NUM, "SIGMA", "saliency: SmoothGrad noise", NULL, NULL},
    {"seed", 0, DC_OPT_INT, "S", "saliency, ascent: random seed", "1", NULL},
    {"patch", 0, DC_OPT_INT, "P", "occlusion: square side", "6", NULL},
    {"stride", 0, DC_OPT_INT, "S", "occlusion: step between squares", "2", NULL},
    {"fill", 0, DC_OPT_NUM, "V", "occlusion: fill value",
     "the data's background, the mean of\nthe images' border pixels", NULL},
    {"batch", 0, DC_OPT_INT, "B", "saliency, occlusion, maxact: images per pass", "64", NULL},
    {"steps", 0, DC_OPT_INT, "N", "ascent: steps", "200", NULL},
    {"lr", 0, DC_OPT_NUM, "LR", "ascent: step size", "0.05", NULL},
    {"l2", 0, DC_OPT_NUM, "W", "ascent: L2 penalty", "0.01", NULL},
    {"blur-every", 0, DC_OPT_INT, "N", "ascent: blur every N steps", "4", NULL},
    {"blur-sigma", 0, DC_OPT_NUM, "S", "ascent: blur width", "0.5", NULL},
    {"jitter", 0, DC_OPT_INT, "J", "ascent: random shift in pixels", "1", NULL},
    {"top", 0, DC_OPT_INT, "K", "maxact: images shown", "9", NULL},
    {"limit", 0, DC_OPT_INT, "N", "maxact: the first N images of --data only", NULL, NULL},
    {"sanity", 0, DC_OPT_FLAG, NULL,
     "also run on randomly re-initialised weights with the class, layer\nand channel of the "
     "trained model's run held fixed; write\nOUT_sanity.png and print PASS when the rank "
     "correlation of the\ntwo maps (maxact: the share of images both find) is below\n"
     "--sanity-threshold, FAIL otherwise",
     NULL, NULL},
    {"sanity-seed", 0, DC_OPT_INT, "S", "--sanity: seed of the random weights", "7", NULL},
    {"sanity-threshold", 0, DC_OPT_NUM, "T", "--sanity: the PASS threshold", "0.5", NULL},
    DC_OPT_DEVICE_ENTRY,
    DC_OPT_END,
};

static void viz_notes(FILE *f) {
    fprintf(
        f,
        "METHOD (RUN: a classifier run folder or its .safetensors file):\n"
        "  deconvnet  Zeiler & Fergus: one activation of --layer (default: the last conv)\n"
        "             projected back to pixels through unpooling switches, rectification and\n"
        "             transposed filters. --channel C (default: the strongest channel) at its\n"
        "             maximum, or --whole-map for all of the channel's map\n"
        "  guided     guided backpropagation from the class score\n"
        "  saliency   |d score / d pixel|; SmoothGrad with --samples N [--noise SIGMA] [--seed S]\n"
        "  occlusion  drop in the class probability when a square is hidden (--patch,\n"
        "             --stride, --fill, --batch); warns when the largest drop is below 0.01\n"
        "  ascent     class model by gradient ascent from seeded noise (all classes unless\n"
        "             --class): --steps --lr --l2 --blur-every --blur-sigma --jitter --seed;\n"
        "             warns when the image does not end up classified as the class\n"
        "  cam        class activation map from the dense weights over the last conv maps\n"
        "             (--layer: only the layer that feeds the global average pool)\n"
        "  gradcam    Grad-CAM at --layer (default: the last conv; maps with height and width)\n"
        "  maxact     the --top K images of --data that activate --channel C of --layer\n"
        "             most, each with the crop of its receptive field; --limit N: first N only\n"
        "  filters    the first conv layer's kernels, each normalised to its own range\n\n"
        "An option the method does not use is an error (exit status 2), not ignored.\n"
        "Exit status 3: a map came out constant (reported on stderr; the PNG is still written).\n");
}

static const dc_command viz_command = {
    .name = "visualize",
    .synopsis = "METHOD RUN [--image FILE | --index I [--data SPEC]]\n"
                "[--class K] [--layer NODE] [--channel C] [-o OUT.png]\n"
                "[--sanity] [--device cpu|opencl|opencl:P:D|auto]",
    .about = "Explains a classifier: what its units and classes respond to.\n",
    .options = viz_table,
    .notes = viz_notes,
    .max_positional = 2,
    .positional_what = "METHOD RUN",
    .takes_data = 1,
    .computes = 1,
};

#define M(x) (1u << (x))
#define PER_IMAGE                                                                                  \
    (M(VIZ_DECONVNET) | M(VIZ_GUIDED) | M(VIZ_SALIENCY) | M(VIZ_OCCLUSION) | M(VIZ_CAM) |          \
     M(VIZ_GRADCAM))
/* Which methods read each method-specific option: any other method refuses it rather than
 * ignore it. */
static const struct {
    const char *name;
    unsigned methods;
    const char *why; /* when refused, or NULL */
} viz_options[] = {
    {"image", PER_IMAGE, "the method does not explain one image"},
    {"index", PER_IMAGE, "the method does not explain one image"},
    {"class", (PER_IMAGE & ~M(VIZ_DECONVNET)) | M(VIZ_ASCENT), NULL},
    {"layer", M(VIZ_DECONVNET) | M(VIZ_CAM) | M(VIZ_GRADCAM) | M(VIZ_MAXACT), NULL},
    {"channel", M(VIZ_DECONVNET) | M(VIZ_MAXACT), NULL},
    {"whole-map", M(VIZ_DECONVNET), NULL},
    {"samples", M(VIZ_SALIENCY), NULL},
    {"noise", M(VIZ_SALIENCY), NULL},
    {"seed", M(VIZ_SALIENCY) | M(VIZ_ASCENT), NULL},
    {"patch", M(VIZ_OCCLUSION), NULL},
    {"stride", M(VIZ_OCCLUSION), NULL},
    {"fill", M(VIZ_OCCLUSION), NULL},
    {"batch", M(VIZ_SALIENCY) | M(VIZ_OCCLUSION) | M(VIZ_MAXACT), NULL},
    {"steps", M(VIZ_ASCENT), NULL},
    {"lr", M(VIZ_ASCENT), NULL},
    {"l2", M(VIZ_ASCENT), NULL},
    {"blur-every", M(VIZ_ASCENT), NULL},
    {"blur-sigma", M(VIZ_ASCENT), NULL},
    {"jitter", M(VIZ_ASCENT), NULL},
    {"top", M(VIZ_MAXACT), NULL},
    {"limit", M(VIZ_MAXACT), NULL},
    {"alpha", PER_IMAGE, NULL},
};

/* 0, or 2 after naming the first option the method would not use. */
static int check_method_options(dc_args *a, int id) {
    for (size_t i = 0; i < sizeof viz_options / sizeof viz_options[0]; i++) {
        const char *name = viz_options[i].name;
        const int given =
            !strcmp(name, "whole-map") ? dc_args_flag(a, name) : dc_args_str(a, name, NULL) != NULL;
        if (!given || (viz_options[i].methods & M(id))) continue;
        fprintf(stderr, "deconv visualize: --%s does not apply to %s", name, methods[id]);
        if (!strcmp(name, "class") && id == VIZ_DECONVNET) {
            fprintf(stderr, ": it projects one activation of --layer (--channel), not a class "
                            "score; guided, saliency or gradcam explain a class\n");
            return 2;
        }
        if (viz_options[i].why) {
            fprintf(stderr, ": %s\n", viz_options[i].why);
            return 2;
        }
        fprintf(stderr, " (it applies to");
        int k = 0;
        for (int m = 0; m < VIZ_METHOD_COUNT; m++)
            if (viz_options[i].methods & M(m)) fprintf(stderr, "%s %s", k++ ? "," : "", methods[m]);
        fprintf(stderr, ")\n");
        return 2;
    }
    return 0;
}
#undef M

typedef struct viz_cli {
    const char *method; /* its name */
    viz_method id;
    dc_viz_opts o;
    int scale;
    float alpha;
    int C, H, W, K;
    float *image;             /* the input image [C, H, W] (not for ascent / filters / maxact) */
    dc_dataset *ds;           /* --data, when loaded */
    dc_dataset view;          /* ds limited to --limit items (a shallow copy) */
    const char *const *names; /* class names or NULL */
    int n_names;
} viz_cli;

/* One method's output: RGB cells in [0, 1] (before upscaling) and the raw map. */
typedef struct viz_out {
    float *cells;
    int n, ch, cw, rows, cols;
    float *map;
    size_t map_n;
    int flat; /* some map came out constant */
    char flat_what[256];
    dc_viz_info info;
    dc_viz_hit *hits; /* maxact */
    int n_hits;
} viz_out;

static void viz_out_free(viz_out *r) {
    free(r->cells);
    free(r->map);
    free(r->hits);
    memset(r, 0, sizeof *r);
}

static const char *class_name(const viz_cli *v, int k, char *buf, size_t cap) {
    if (k >= 0 && v->names && k < v->n_names)
        snprintf(buf, cap, "%d (%s)", k, v->names[k]);
    else
        snprintf(buf, cap, "%d", k);
    return buf;
}

static void gray_to_rgb(const float *chw, int c, int h, int w, dc_image_range range, float *rgb) {
    const size_t hw = (size_t)h * w;
    for (int k = 0; k < 3; k++)
        for (size_t p = 0; p < hw; p++) {
            float x = chw[(size_t)(c == 3 ? k : 0) * hw + p];
            if (range == DC_RANGE_PM1) x = 0.5f * (x + 1.0f);
            rgb[(size_t)k * hw + p] = x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x;
        }
}

/* Signed map to gray around 0.5: v / (2 max|v|) + 0.5. */
static void signed_to_rgb(const float *chw, int c, int h, int w, float *rgb) {
    const size_t n = (size_t)c * h * w;
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++)
        if (fabsf(chw[i]) > mx) mx = fabsf(chw[i]);
    float *t = malloc(sizeof(float) * n);
    if (!t) return;
    for (size_t i = 0; i < n; i++)
        t[i] = mx > 0.0f ? 0.5f + 0.5f * chw[i] / mx : 0.5f;
    gray_to_rgb(t, c, h, w, DC_RANGE_01, rgb);
    free(t);
}

static int alloc_cells(viz_out *r, int n, int h, int w, int rows, int cols) {
    r->cells = calloc((size_t)n * 3 * h * w, sizeof(float));
    r->n = n, r->ch = h, r->cw = w, r->rows = rows, r->cols = cols;
    return r->cells ? 0 : -1;
}

static float *cell(viz_out *r, int i) {
    return r->cells + (size_t)i * 3 * r->ch * r->cw;
}

/* input | [signed pattern] | map alone | map over the input */
static int heat_cells(const viz_cli *v, viz_out *r, const float *pattern_chw, const float *heat) {
    const int n = pattern_chw ? 4 : 3;
    if (alloc_cells(r, n, v->H, v->W, 1, n)) return -1;
    dc_error err = {0};
    int i = 0;
    gray_to_rgb(v->image, v->C, v->H, v->W, DC_RANGE_PM1, cell(r, i++));
    if (pattern_chw) signed_to_rgb(pattern_chw, v->C, v->H, v->W, cell(r, i++));
    if (dc_heatmap_overlay(NULL, v->C, v->H, v->W, DC_RANGE_PM1, heat, 1.0f, cell(r, i++), &err) ||
        dc_heatmap_overlay(v->image, v->C, v->H, v->W, DC_RANGE_PM1, heat, v->alpha, cell(r, i++),
                           &err))
        return dc_cli_fail("visualize", "%s", err.msg);
    return 0;
}

static void note_flat(viz_out *r, const char *what, const dc_viz_info *info) {
    char d[64];
    if (!info->constant) return;
    r->flat = 1;
    size_t len = strlen(r->flat_what);
    snprintf(r->flat_what + len, sizeof r->flat_what - len, "%s%s map is %s%s", len ? "; " : "",
             what, dc_viz_describe_flat(info, d, sizeof d),
             !strcmp(what, "gradcam") && info->max == 0.0f
                 ? " (no feature map adds positive evidence for this class at this layer)"
                 : "");
}

/* Red outline of [y0, y1) x [x0, x1) on an RGB image. */
static void draw_box(float *rgb, int h, int w, int y0, int x0, int y1, int x1) {
    const size_t hw = (size_t)h * w;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            if (y != y0 && y != y1 - 1 && x != x0 && x != x1 - 1) continue;
            rgb[(size_t)y * w + x] = 1.0f;
            rgb[hw + (size_t)y * w + x] = 0.1f;
            rgb[2 * hw + (size_t)y * w + x] = 0.1f;
        }
}

/* Nearest-neighbour resize of an RGB image. */
static void resize_nearest(const float *src, int sh, int sw, float *dst, int dh, int dw) {
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
                dst[((size_t)k * dh + y) * dw + x] =
                    src[((size_t)k * sh + (size_t)y * sh / dh) * sw + (size_t)x * sw / dw];
}

/* Nearest-neighbour resize keeping the aspect ratio, centred on mid gray. */
static void fit_nearest(const float *src, int sh, int sw, float *dst, int dh, int dw) {
    const double f = (double)dh / sh < (double)dw / sw ? (double)dh / sh : (double)dw / sw;
    int h = (int)(sh * f + 0.5), w = (int)(sw * f + 0.5);
    h = h < 1 ? 1 : h > dh ? dh : h;
    w = w < 1 ? 1 : w > dw ? dw : w;
    const int y0 = (dh - h) / 2, x0 = (dw - w) / 2;
    for (size_t i = 0; i < (size_t)3 * dh * dw; i++)
        dst[i] = 0.5f;
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                dst[((size_t)k * dh + y0 + y) * dw + x0 + x] =
                    src[((size_t)k * sh + (size_t)y * sh / h) * sw + (size_t)x * sw / w];
}

static int run_method(viz_cli *v, dc_model *m, viz_out *r) {
    dc_error err = {0};
    const char *meth = v->method;
    const viz_method id = v->id;
    const size_t hw = (size_t)v->H * v->W, chw = (size_t)v->C * hw;
    memset(r, 0, sizeof *r);
    dc_status s = DC_OK;
    if (id == VIZ_DECONVNET || id == VIZ_GUIDED) {
        float *pat = malloc(sizeof(float) * chw), *heat = malloc(sizeof(float) * hw);
        if (!pat || !heat) {
            free(pat);
            free(heat);
            return dc_cli_fail("visualize", "out of memory");
        }
        s = id == VIZ_DECONVNET ? dc_viz_deconvnet(m, v->image, &v->o, pat, &r->info, &err)
                                : dc_viz_guided(m, v->image, &v->o, pat, &r->info, &err);
        int rc = 0;
        if (s == DC_OK) {
            note_flat(r, meth, &r->info);
            dc_viz_abs_max_channels(pat, v->C, v->H, v->W, heat);
            rc = heat_cells(v, r, pat, heat);
        }
        free(pat);
        r->map = heat;
        r->map_n = hw;
        if (rc) return rc;
    } else if (id == VIZ_SALIENCY || id == VIZ_OCCLUSION || id == VIZ_CAM || id == VIZ_GRADCAM) {
        float *heat = malloc(sizeof(float) * hw);
        if (!heat) return dc_cli_fail("visualize", "out of memory");
        r->map = heat;
        r->map_n = hw;
        if (id == VIZ_SALIENCY)
            s = dc_viz_saliency(m, v->image, &v->o, heat, &r->info, &err);
        else if (id == VIZ_OCCLUSION)
            s = dc_viz_occlusion(m, v->image, &v->o, heat, &r->info, &err);
        else if (id == VIZ_CAM)
            s = dc_viz_cam(m, v->image, &v->o, heat, &r->info, &err);
        else
            s = dc_viz_gradcam(m, v->image, &v->o, heat, &r->info, &err);
        if (s == DC_OK) {
            note_flat(r, v->o.samples > 0 && id == VIZ_SALIENCY ? "smoothgrad" : meth, &r->info);
            if (id == VIZ_OCCLUSION && !r->info.constant && r->info.max < VIZ_OCCLUSION_NEGLIGIBLE)
                fprintf(stderr,
                        "deconv visualize: warning: occlusion: the largest drop in p(class) is "
                        "%.4f (below %.2f): no %dx%d patch of %.3f changes the prediction much; "
                        "try a larger --patch or another --fill\n",
                        (double)r->info.max, VIZ_OCCLUSION_NEGLIGIBLE, v->o.patch, v->o.patch,
                        (double)v->o.fill);
            if (heat_cells(v, r, NULL, heat)) return 1;
        }
    } else if (id == VIZ_ASCENT) {
        const int first = v->o.target >= 0 ? v->o.target : 0;
        const int last = v->o.target >= 0 ? v->o.target : v->K - 1;
        const int n = last - first + 1;
        float *img = malloc(sizeof(float) * chw);
        r->map = malloc(sizeof(float) * chw * n);
        if (!img || !r->map || alloc_cells(r, n, v->H, v->W, 0, 0)) {
            free(img);
            return dc_cli_fail("visualize", "out of memory");
        }
        r->map_n = chw * n;
        dc_viz_opts o = v->o;
        for (int k = first; k <= last && s == DC_OK; k++) {
            o.target = k;
            dc_viz_info info;
            s = dc_viz_ascent(m, &o, img, &info, &err);
            if (s != DC_OK) break;
            char b[96], c[96];
            printf("ascent: class %s: score %.3f -> %.3f, p = %.4f\n",
                   class_name(v, k, b, sizeof b), (double)info.score_start, (double)info.score,
                   (double)info.prob);
            if (info.predicted != k)
                fprintf(stderr,
                        "deconv visualize: warning: ascent did not reach class %s: after %d "
                        "steps the image is classified as %s (p(class) = %.4f); try more "
                        "--steps or a larger --lr\n",
                        b, o.steps, class_name(v, info.predicted, c, sizeof c), (double)info.prob);
            if (info.constant) {
                snprintf(b, sizeof b, "ascent class %d", k);
                note_flat(r, b, &info);
            }
            memcpy(r->map + chw * (k - first), img, sizeof(float) * chw);
            /* show each image stretched to its own range */
            float lo = info.min, hi = info.max;
            for (size_t i = 0; i < chw; i++)
                img[i] = hi > lo ? (img[i] - lo) / (hi - lo) : 0.5f;
            gray_to_rgb(img, v->C, v->H, v->W, DC_RANGE_01, cell(r, k - first));
            r->info = info;
        }
        free(img);
    } else if (id == VIZ_MAXACT) {
        const int top = v->o.top;
        r->hits = calloc((size_t)top, sizeof *r->hits);
        if (!r->hits) return dc_cli_fail("visualize", "out of memory");
        s = dc_viz_maxact(m, &v->view, &v->o, r->hits, &r->n_hits, &err);
        if (s == DC_OK) {
            const int n = r->n_hits, S = v->scale;
            /* row 1: the images with the receptive field outlined; row 2: the crops */
            if (alloc_cells(r, 2 * n, v->H * S, v->W * S, 2, n))
                return dc_cli_fail("visualize", "out of memory");
            float *rgb = malloc(sizeof(float) * 3 * hw);
            r->map = malloc(sizeof(float) * (size_t)n);
            if (!rgb || !r->map) {
                free(rgb);
                return dc_cli_fail("visualize", "out of memory");
            }
            r->map_n = (size_t)n;
            for (int i = 0; i < n; i++) {
                const dc_viz_hit *h = &r->hits[i];
                r->map[i] = h->value;
                gray_to_rgb(dc_dataset_image(v->ds, h->index), v->C, v->H, v->W, DC_RANGE_PM1, rgb);
                resize_nearest(rgb, v->H, v->W, cell(r, i), v->H * S, v->W * S);
                draw_box(cell(r, i), v->H * S, v->W * S, h->y0 * S, h->x0 * S, h->y1 * S,
                         h->x1 * S);
                const int ch = h->y1 - h->y0, cw = h->x1 - h->x0;
                float *crop = malloc(sizeof(float) * 3 * (size_t)ch * cw);
                if (!crop) {
                    free(rgb);
                    return dc_cli_fail("visualize", "out of memory");
                }
                for (int k = 0; k < 3; k++)
                    for (int y = 0; y < ch; y++)
                        for (int x = 0; x < cw; x++)
                            crop[((size_t)k * ch + y) * cw + x] =
                                rgb[(size_t)k * hw + (size_t)(h->y0 + y) * v->W + h->x0 + x];
                fit_nearest(crop, ch, cw, cell(r, n + i), v->H * S, v->W * S);
                free(crop);
                char b[96] = "";
                if (v->ds->labels) class_name(v, v->ds->labels[h->index], b, sizeof b);
                printf("maxact: #%d item %d%s%s activation %.4f at (%d, %d), receptive field "
                       "rows %d-%d, columns %d-%d\n",
                       i + 1, h->index, b[0] ? " label " : "", b, (double)h->value, h->y, h->x,
                       h->y0, h->y1 - 1, h->x0, h->x1 - 1);
            }
            free(rgb);
            dc_viz_info st;
            if (dc_viz_map_check(r->map, r->map_n, "maxact", &st, &err) == DC_OK && st.constant &&
                n > 1)
                note_flat(r, "maxact activation", &st);
        }
    } else if (id == VIZ_FILTERS) {
        int n, c, k;
        s = dc_viz_filters(m, NULL, &n, &c, &k, &err);
        if (s == DC_OK) {
            r->map = malloc(sizeof(float) * (size_t)n * c * k * k);
            if (!r->map) return dc_cli_fail("visualize", "out of memory");
            r->map_n = (size_t)n * c * k * k;
            s = dc_viz_filters(m, r->map, &n, &c, &k, &err);
        }
        if (s == DC_OK) {
            const int side = k * (v->scale > 1 ? v->scale : 1) * 2;
            if (alloc_cells(r, n, side, side, 0, 0))
                return dc_cli_fail("visualize", "out of memory");
            float *rgb = malloc(sizeof(float) * 3 * k * k);
            if (!rgb) return dc_cli_fail("visualize", "out of memory");
            for (int i = 0; i < n; i++) {
                gray_to_rgb(r->map + (size_t)i * c * k * k, c, k, k, DC_RANGE_01, rgb);
                resize_nearest(rgb, k, k, cell(r, i), side, side);
            }
            free(rgb);
            dc_viz_info st;
            if (dc_viz_map_check(r->map, r->map_n, "filters", &st, &err) == DC_OK)
                note_flat(r, "filters", &st);
            printf("filters: %d kernels of %d x %d x %d\n", n, c, k, k);
        }
    }
    if (s != DC_OK) return dc_cli_fail("visualize", "%s", err.msg);
    return 0;
}

/* The mean of the border pixels (one pixel wide, all channels) of the first images of ds,
 * or of `image` when there is no dataset: what the data looks like where nothing is. */
static float occlusion_background(const dc_dataset *ds, const float *image, int C, int H, int W) {
    double sum = 0;
    long count = 0;
    const int n = ds ? (ds->n < 1000 ? ds->n : 1000) : 1;
    for (int i = 0; i < n; i++) {
        const float *im = ds ? dc_dataset_image(ds, i) : image;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    if (y != 0 && y != H - 1 && x != 0 && x != W - 1) continue;
                    sum += im[((size_t)c * H + y) * W + x];
                    count++;
                }
    }
    return count ? (float)(sum / (double)count) : 0.0f;
}

/* Write the cells, upscaled by v->scale unless they were made at full size. */
static int write_out(viz_cli *v, viz_out *r, const char *path) {
    dc_error err = {0};
    const int up = (v->id == VIZ_MAXACT || v->id == VIZ_FILTERS) ? 1 : v->scale;
    const int h = r->ch * up, w = r->cw * up;
    float *big = malloc(sizeof(float) * (size_t)r->n * 3 * h * w);
    if (!big) return dc_cli_fail("visualize", "out of memory");
    for (int i = 0; i < r->n; i++)
        resize_nearest(cell(r, i), r->ch, r->cw, big + (size_t)i * 3 * h * w, h, w);
    dc_status s =
        dc_image_write_grid(path, big, r->n, 3, h, w, r->rows, r->cols, DC_RANGE_01, &err);
    free(big);
    if (s != DC_OK) return dc_cli_fail("visualize", "%s", err.msg);
    return 0;
}

static void sanity_path(const char *out, char *buf, size_t cap) {
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    if (dot && (!slash || dot > slash))
        snprintf(buf, cap, "%.*s_sanity%s", (int)(dot - out), out, dot);
    else
        snprintf(buf, cap, "%s_sanity.png", out);
}

static int parse_class(viz_cli *v, const char *s, int *out) {
    char *end;
    long k = strtol(s, &end, 10);
    if (end != s && !*end) {
        *out = (int)k;
        if (k < 0 || k >= v->K)
            return dc_cli_fail("visualize", "--class %s: the model has classes 0 to %d", s,
                               v->K - 1);
        return 0;
    }
    for (int i = 0; v->names && i < v->n_names; i++)
        if (!strcasecmp(s, v->names[i])) {
            *out = i;
            return 0;
        }
    return dc_cli_fail("visualize", "--class %s: not a class number%s", s,
                       v->names ? " or name of the data's classes" : " (no class names known)");
}

static void print_info(const viz_cli *v, const viz_out *r, dc_model *m, const char *label) {
    const dc_viz_info *i = &r->info;
    char a[96], b[96];
    if (v->id == VIZ_ASCENT || v->id == VIZ_MAXACT || v->id == VIZ_FILTERS)
        return;
    printf("%s%s: ", v->method, label);
    if (i->target >= 0)
        printf("class %s, p = %.4f, score %.4f; ", class_name(v, i->target, a, sizeof a),
               (double)i->prob, (double)i->score);
    if (i->predicted >= 0) printf("predicted %s; ", class_name(v, i->predicted, b, sizeof b));
    if (i->node >= 0) printf("layer %s; ", dc_graph_node_name(m->g, i->node));
    if (i->channel >= 0)
        printf("channel %d, activation %.4f at (%d, %d); ", i->channel, (double)i->activation,
               i->pos_y, i->pos_x);
    printf("map range [%.4g, %.4g]\n", (double)i->min, (double)i->max);
}

int dc_cmd_visualize(int argc, char **argv) {
    dc_args a;
    int rc = 2;
    dc_backend *be = NULL;
    dc_model *m = NULL, *rnd = NULL;
    viz_cli v;
    viz_out real = {0}, sane = {0};
    char **run_names = NULL;
    int n_run_names = 0;
    memset(&v, 0, sizeof v);
    if (dc_args_parse(&a, &viz_command, argc, argv)) return a.status;
    if (a.n_positional != 2) {
        rc = dc_cli_usage("visualize", "give a METHOD and a RUN (deconv visualize --help)");
        goto out;
    }
    v.method = a.positional[0];
    const char *run = a.positional[1];
    v.id = VIZ_METHOD_COUNT;
    for (int i = 0; i < VIZ_METHOD_COUNT; i++)
        if (!strcmp(v.method, methods[i])) v.id = (viz_method)i;
    if (v.id == VIZ_METHOD_COUNT) {
        /* the full names, from the table */
        fprintf(stderr, "deconv visualize: unknown method '%s' (use ", v.method);
        for (int i = 0; i < VIZ_METHOD_COUNT; i++)
            fprintf(stderr, "%s%s", i == 0 ? "" : i + 1 == VIZ_METHOD_COUNT ? " or " : ", ",
                    methods[i]);
        const char *guess = dc_cli_closest(v.method, methods);
        if (guess) fprintf(stderr, "; did you mean %s?", guess);
        fprintf(stderr, ")\n");
        goto out;
    }
    if ((rc = check_method_options(&a, v.id))) goto out;
    rc = 2;
    dc_viz_opts_default(&v.o);
    const char *image_path = dc_args_str(&a, "image", NULL);
    const char *data = dc_args_str(&a, "data", NULL);
    if (image_path && dc_args_str(&a, "index", NULL)) {
        fprintf(stderr, "deconv visualize: give --image FILE or --index I (an item of --data), "
                        "not both\n");
        goto out;
    }
    const int index = dc_args_int(&a, "index", 0);
    const char *cls = dc_args_str(&a, "class", NULL);
    v.o.layer = dc_args_str(&a, "layer", NULL);
    const int channel_given = dc_args_str(&a, "channel", NULL) != NULL;
    v.o.channel = dc_args_int(&a, "channel", -1);
    if (channel_given && v.o.channel < 0) {
        fprintf(stderr, "deconv visualize: --channel %d: channels count from 0%s\n", v.o.channel,
                v.id == VIZ_DECONVNET ? " (leave --channel out for the strongest channel)" : "");
        goto out;
    }
    v.o.whole_map = dc_args_flag(&a, "whole-map");
    v.o.batch = dc_args_int(&a, "batch", v.o.batch);
    v.o.samples = dc_args_int(&a, "samples", 0);
    v.o.noise = dc_args_float(&a, "noise", v.o.noise);
    v.o.seed = (uint64_t)dc_args_long(&a, "seed", (long)v.o.seed);
    v.o.patch = dc_args_int(&a, "patch", v.o.patch);
    v.o.stride = dc_args_int(&a, "stride", v.o.stride);
    const int fill_given = dc_args_str(&a, "fill", NULL) != NULL;
    v.o.fill = dc_args_float(&a, "fill", v.o.fill);
    v.o.steps = dc_args_int(&a, "steps", v.o.steps);
    v.o.lr = dc_args_float(&a, "lr", v.o.lr);
    v.o.l2 = dc_args_float(&a, "l2", v.o.l2);
    v.o.blur_every = dc_args_int(&a, "blur-every", v.o.blur_every);
    v.o.blur_sigma = dc_args_float(&a, "blur-sigma", v.o.blur_sigma);
    v.o.jitter = dc_args_int(&a, "jitter", v.o.jitter);
    v.o.top = dc_args_int(&a, "top", v.o.top);
    const int limit = dc_args_int(&a, "limit", 0);
    const int sanity = dc_args_flag(&a, "sanity");
    const long sanity_seed = dc_args_long(&a, "sanity-seed", 7);
    const double sanity_threshold =
        dc_args_float(&a, "sanity-threshold", (float)VIZ_SANITY_THRESHOLD);
    if (!sanity &&
        (dc_args_str(&a, "sanity-seed", NULL) || dc_args_str(&a, "sanity-threshold", NULL))) {
        fprintf(stderr, "deconv visualize: --sanity-seed and --sanity-threshold need --sanity\n");
        goto out;
    }
    char def_out[64];
    snprintf(def_out, sizeof def_out, "%s.png", v.method);
    const char *out_path = dc_args_str(&a, "out", def_out);
    const int scale_opt = dc_args_int(&a, "scale", 0);
    v.alpha = dc_args_float(&a, "alpha", 0.5f);
    if ((rc = dc_cli_backend_last(&a, &be))) goto out;
    rc = 1;
    dc_meta meta = {0};
    const int opened = dc_cli_open_run("visualize", run, be, 1, &m, &meta) == 0;
    /* the class names the run stores come first; the data's only for older runs */
    if (opened && dc_cli_run_classes(&meta, &run_names, &n_run_names) == 0 && run_names) {
        v.names = (const char *const *)run_names;
        v.n_names = n_run_names;
    }
    dc_meta_clear(&meta);
    if (!opened) goto out;
    if (!dc_model_kind_has(m->spec.kind, DC_KIND_CLASSIFIES)) {
        dc_cli_fail("visualize", "%s is a %s model; the explanation methods need a classifier", run,
                    dc_model_kind_name(m->spec.kind));
        goto out;
    }
    dc_error err = {0};
    if (dc_viz_model_geometry(m, &v.C, &v.H, &v.W, &v.K, &err) != DC_OK) {
        dc_cli_fail("visualize", "%s", err.msg);
        goto out;
    }
    v.scale = scale_opt > 0 ? scale_opt : (224 + v.H - 1) / (v.H > v.W ? v.H : v.W);
    if (v.scale < 1) v.scale = 1;
    const int per_image = v.id != VIZ_ASCENT && v.id != VIZ_FILTERS && v.id != VIZ_MAXACT;
    /* the dataset: for maxact, for --index, or for class names next to --image */
    if (v.id == VIZ_MAXACT || (per_image && !image_path) || data) {
        /* without --data: the run's own images (a Fashion-MNIST run: its test set) */
        dc_train_checkpoint at;
        dc_error ignored = {0};
        const int own = !data && dc_train_read_checkpoint(run, &at, &ignored) == DC_OK &&
                        !strstr(at.config.data, "fashion-mnist");
        const char *spec = data ? data : own ? at.config.data : "fashion-mnist:test";
        if (dc_dataset_load_path(spec, v.H, v.C, &v.ds, &err) != DC_OK) {
            dc_cli_fail("visualize", "--data %s: %s", spec, err.msg);
            goto out;
        }
        v.view = *v.ds;
        if (limit > 0 && limit < v.view.n) v.view.n = limit;
        if (!run_names && v.ds->class_names && v.ds->n_classes == v.K) {
            v.names = (const char *const *)v.ds->class_names;
            v.n_names = v.ds->n_classes;
        }
    }
    if (cls && parse_class(&v, cls, &v.o.target)) goto out;
    char label[800] = "";
    if (per_image) {
        v.image = malloc(sizeof(float) * (size_t)v.C * v.H * v.W);
        if (!v.image) {
            dc_cli_fail("visualize", "out of memory");
            goto out;
        }
        if (image_path) {
            struct stat st;
            if (stat(image_path, &st) == 0 && S_ISDIR(st.st_mode)) {
                dc_cli_fail("visualize",
                            "--image %s is a folder; give one image file, or the folder as "
                            "--data %s with --index I",
                            image_path, image_path);
                goto out;
            }
            if (dc_image_read(image_path, v.H, v.C, v.image, &err) != DC_OK) {
                dc_cli_fail("visualize", "%s", err.msg);
                goto out;
            }
            snprintf(label, sizeof label, "%s", image_path);
        } else {
            if (index < 0 || index >= v.ds->n) {
                dc_cli_fail("visualize", "--index %d: %s has items 0 to %d", index, v.ds->source,
                            v.ds->n - 1);
                goto out;
            }
            memcpy(v.image, dc_dataset_image(v.ds, index), sizeof(float) * (size_t)v.C * v.H * v.W);
            char b[96] = "";
            if (v.ds->labels) class_name(&v, v.ds->labels[index], b, sizeof b);
            snprintf(label, sizeof label, "%s item %d%s%s", v.ds->source, index,
                     b[0] ? ", label " : "", b);
        }
        printf("input: %s\n", label);
    }
    if (v.id == VIZ_MAXACT && v.o.channel < 0) {
        dc_cli_fail("visualize", "maxact needs --channel C (a channel of --layer)");
        goto out;
    }
    if (v.id == VIZ_OCCLUSION && !fill_given) {
        /* grey patches on a black background read as evidence: hide with the background */
        v.o.fill = occlusion_background(v.ds, v.image, v.C, v.H, v.W);
        printf("occlusion: fill %.3f (the %s's background: the mean of %s border pixels; "
               "--fill V to choose)\n",
               (double)v.o.fill, v.ds ? "data" : "image", v.ds ? "the images'" : "its");
    }
    if (run_method(&v, m, &real) || write_out(&v, &real, out_path)) goto out;
    print_info(&v, &real, m, "");
    printf("wrote %s\n", out_path);
    int flat = real.flat;
    if (real.flat) fprintf(stderr, "deconv visualize: %s: nothing to show\n", real.flat_what);
    if (sanity) {
        char path[4096];
        sanity_path(out_path, path, sizeof path);
        if (dc_viz_randomized_model(m, (uint64_t)sanity_seed, &rnd, &err) != DC_OK) {
            dc_cli_fail("visualize", "%s", err.msg);
            goto out;
        }
        /* the random model explains what the trained one did: the same class, layer and
         * unit, not its own prediction or strongest channel */
        viz_cli vr = v;
        char held[512] = "";
        size_t hl = 0;
        /* (the per-image methods fill info; maxact, ascent and filters take layer, channel
         * and class from the options alone) */
        if (per_image && real.info.target >= 0) {
            char b[96];
            vr.o.target = real.info.target;
            hl += (size_t)snprintf(held + hl, sizeof held - hl, "class %s",
                                   class_name(&v, vr.o.target, b, sizeof b));
        }
        if (per_image && real.info.node >= 0) {
            vr.o.layer = dc_graph_node_name(m->g, real.info.node);
            hl += (size_t)snprintf(held + hl, sizeof held - hl, "%slayer %s", hl ? ", " : "",
                                   vr.o.layer);
        }
        if (v.id == VIZ_DECONVNET && real.info.channel >= 0) {
            vr.o.channel = real.info.channel;
            snprintf(held + hl, sizeof held - hl, "%schannel %d", hl ? ", " : "", vr.o.channel);
        } else if (v.id == VIZ_MAXACT) {
            snprintf(held + hl, sizeof held - hl, "%slayer %s, channel %d", hl ? ", " : "",
                     v.o.layer ? v.o.layer : "(last conv)", v.o.channel);
        }
        if (run_method(&vr, rnd, &sane) || write_out(&vr, &sane, path)) goto out;
        print_info(&vr, &sane, rnd, " (random weights)");
        if (held[0]) printf("sanity: held fixed: %s\n", held);
        double similarity = NAN;
        const char *what = NULL;
        if (v.id == VIZ_MAXACT) {
            /* the images found, not their activations: two sorted lists of maxima always
             * correlate */
            int common = 0;
            for (int i = 0; i < real.n_hits; i++)
                for (int j = 0; j < sane.n_hits; j++)
                    if (real.hits[i].index == sane.hits[j].index) {
                        common++;
                        break;
                    }
            const int n = real.n_hits > sane.n_hits ? real.n_hits : sane.n_hits;
            similarity = n ? (double)common / n : NAN;
            printf("sanity: %d of the %d images found are the same for trained and random "
                   "weights (overlap %.3f)\n",
                   common, n, similarity);
            what = "overlap";
        } else if (real.map && sane.map && real.map_n == sane.map_n && real.map_n > 1) {
            similarity = dc_viz_rank_correlation(real.map, sane.map, real.map_n);
            printf("sanity: rank correlation of the maps, trained vs random weights: %.3f "
                   "(near 1: the map does not depend on what the model learned)\n",
                   similarity);
            what = "rank correlation";
        }
        if (what && !isnan(similarity))
            printf("sanity: %s: %s %.3f %s %.3f (threshold; --sanity-threshold)\n",
                   similarity < sanity_threshold ? "PASS" : "FAIL", what, similarity,
                   similarity < sanity_threshold ? "<" : ">=", sanity_threshold);
        printf("wrote %s\n", path);
        if (sane.flat) {
            fprintf(stderr, "deconv visualize: random weights: %s: nothing to show\n",
                    sane.flat_what);
            flat = 1;
        }
    }
    rc = flat ? VIZ_EXIT_FLAT : 0;
out:
    viz_out_free(&real);
    viz_out_free(&sane);
    free(v.image);
    dc_dataset_free(v.ds);
    dc_model_free(rnd);
    dc_model_free(m);
    dc_backend_free(be);
    dc_cli_names_free(run_names, n_run_names);
    return rc;
}
