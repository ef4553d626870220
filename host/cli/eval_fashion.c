/* deconv eval, Fashion-MNIST block: the samples as the pinned classifier sees them (its
 * 128-d `gap` features and its predicted classes), against the test set, with the floor
 * that real images reach: the same number of training images against the test set. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/eval_report.h"
#include "deconv/data.h"

/* Features (n x dim) and predicted classes of n images through the classifier. */
static int classify(const char *cmd, dc_model *clf, int gap, int dim, int n_classes,
                    const float *images, int n, float *features, int *labels) {
    const int B = clf->batch;
    const size_t isz = (size_t)clf->spec.channels * clf->spec.size * clf->spec.size;
    float *in = calloc((size_t)B * isz, sizeof(float));
    float *f = malloc(sizeof(float) * (size_t)B * dim);
    float *scores = malloc(sizeof(float) * (size_t)B * n_classes);
    int *lab = malloc(sizeof(int) * (size_t)B);
    int rc = 0;
    if (!in || !f || !scores || !lab) {
        rc = dc_cli_fail(cmd, "out of memory");
        goto done;
    }
    dc_graph_set_train(clf->g, 0);
    for (int i0 = 0; i0 < n; i0 += B) {
        const int cnt = n - i0 < B ? n - i0 : B;
        memcpy(in, images + (size_t)i0 * isz, sizeof(float) * isz * (size_t)cnt);
        dc_error err = {0};
        if (dc_graph_set_input(clf->g, clf->x, in) || dc_graph_forward(clf->g, clf->out) ||
            dc_graph_read(clf->g, gap, f) || dc_graph_read(clf->g, clf->out, scores)) {
            rc = dc_cli_fail(cmd, "classifier: %s", dc_graph_error(clf->g)->msg);
            goto done;
        }
        if (dc_argmax_rows(scores, cnt, n_classes, lab, &err) != DC_OK) {
            rc = dc_cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        memcpy(features + (size_t)i0 * dim, f, sizeof(float) * (size_t)cnt * dim);
        memcpy(labels + i0, lab, sizeof(int) * (size_t)cnt);
    }
done:
    free(in), free(f), free(scores), free(lab);
    return rc;
}

typedef struct fm_figures {
    dc_frechet_result fd;
    dc_precision_recall pr;
    dc_class_histogram hist;
    int64_t counts[64];
} fm_figures;

static int figures(const char *cmd, const float *feat, const int *labels, int n, const float *test_feat,
                   int n_test, int dim, int n_classes, fm_figures *out) {
    dc_error err = {0};
    if (dc_frechet_distance(feat, n, test_feat, n_test, dim, &out->fd, &err) ||
        dc_precision_recall_compute(test_feat, n_test, feat, n, dim, DC_PRECISION_RECALL_K, &out->pr,
                                    &err) ||
        dc_class_histogram_compute(labels, n, n_classes, out->counts, &out->hist, &err))
        return dc_cli_fail(cmd, "%s", err.msg);
    return 0;
}

static cJSON *fm_json(const fm_figures *f, int n, int n_classes) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "n", n);
    ev_json_number(o, "frechet_distance", f->fd.distance);
    ev_json_number(o, "frechet_mean_term", f->fd.mean_term);
    ev_json_number(o, "frechet_trace_term", f->fd.trace_term);
    ev_json_number(o, "precision", f->pr.precision);
    ev_json_number(o, "recall", f->pr.recall);
    cJSON_AddNumberToObject(o, "top_class", f->hist.top_class);
    ev_json_number(o, "top_class_share", f->hist.top_share);
    ev_json_number(o, "class_entropy_norm", f->hist.entropy_norm);
    cJSON *h = cJSON_AddArrayToObject(o, "class_counts");
    for (int k = 0; h && k < n_classes; k++) cJSON_AddItemToArray(h, cJSON_CreateNumber((double)f->counts[k]));
    return o;
}

/* ------------------------------------------------------------------ cache
 * The test set's features and the floor's figures depend only on the classifier file and
 * the floor's size, and take most of the block's time (20,000 classifier passes for 10,000
 * samples): they are kept in $DECONV_CACHE (default $XDG_CACHE_HOME/deconv, or
 * ~/.cache/deconv), in a file named by a 64-bit FNV-1a hash of the classifier's bytes and
 * the floor size. A file that does not match (size, header) is recomputed and rewritten. */
#define FM_CACHE_MAGIC "deconv-eval-fm-cache-2"

typedef struct fm_cache_header {
    char magic[24];
    uint64_t classifier_hash;
    int32_t dim, n_test, n_floor, n_classes;
    uint32_t figures_bytes;
} fm_cache_header;

static int file_hash(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    uint64_t h = 1469598103934665603ull;
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ull;
    const int bad = ferror(f);
    fclose(f);
    *out = h;
    return bad;
}

static int cache_path(uint64_t hash, int n_floor, char *out, size_t cap) {
    const char *dir = getenv("DECONV_CACHE"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    /* a folder name too long for these buffers means no cache (never a cut path) */
    char base[1024];
    int n;
    if (dir && *dir)
        n = snprintf(base, sizeof base, "%s", dir);
    else if (xdg && *xdg)
        n = snprintf(base, sizeof base, "%s/deconv", xdg);
    else if (home && *home)
        n = snprintf(base, sizeof base, "%s/.cache/deconv", home);
    else
        return 1;
    if (n < 0 || (size_t)n >= sizeof base) return 1;
    if (!(dir && *dir) && !(xdg && *xdg)) {
        char parent[1100];
        snprintf(parent, sizeof parent, "%s/.cache", home); /* shorter than base */
        mkdir(parent, 0755);
    }
    if (mkdir(base, 0755) != 0 && errno != EEXIST) return 1;
    n = snprintf(out, cap, "%s/fm32_%016llx_floor%d.bin", base, (unsigned long long)hash, n_floor);
    return n < 0 || (size_t)n >= cap;
}

static int cache_read(const char *path, const fm_cache_header *want, float *test_feat, int *test_labels,
                      void *floor, size_t floor_bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    fm_cache_header h;
    int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(&h, want, sizeof h) == 0 &&
             fread(test_feat, sizeof(float) * want->dim, (size_t)want->n_test, f) == (size_t)want->n_test &&
             fread(test_labels, sizeof(int), (size_t)want->n_test, f) == (size_t)want->n_test &&
             fread(floor, floor_bytes, 1, f) == 1 && fgetc(f) == EOF;
    fclose(f);
    return !ok;
}

static int cache_write(const char *path, const fm_cache_header *h, const float *test_feat,
                       const int *test_labels, const void *floor, size_t floor_bytes) {
    /* a temporary name of this process's own, so two evals filling the cache never share it */
    char tmp[1300];
    const int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) return 1;
    FILE *f = fopen(tmp, "wb");
    if (!f) return 1;
    int ok = fwrite(h, sizeof *h, 1, f) == 1 &&
             fwrite(test_feat, sizeof(float) * h->dim, (size_t)h->n_test, f) == (size_t)h->n_test &&
             fwrite(test_labels, sizeof(int), (size_t)h->n_test, f) == (size_t)h->n_test &&
             fwrite(floor, floor_bytes, 1, f) == 1;
    ok &= fclose(f) == 0;
    /* rename: a concurrent reader sees the old file or the whole new one */
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return 1;
    }
    return 0;
}

int ev_fashion_mnist(ev_report *r, const char *cmd, dc_backend *be, const char *classifier_path,
                     const float *samples, int n, int c, int size, int use_cache) {
    cJSON *o = cJSON_AddObjectToObject(r->root, "fashion_mnist");
    FILE *t = r->text;
    if (c != 1 || size != 32) {
        char why[200];
        snprintf(why, sizeof why,
                 "skipped: the Frechet distance needs 32x32 grey images (the pinned classifier's "
                 "input); this run makes %dx%d with %d channel%s",
                 size, size, c, c > 1 ? "s" : "");
        fprintf(t, "Frechet distance / precision / recall: %s\n", why);
        if (o) cJSON_AddStringToObject(o, "skipped", why);
        return 0;
    }
    if (n < DC_PRECISION_RECALL_K + 2)
        return dc_cli_fail(cmd, "the Fashion-MNIST figures need at least %d samples (--samples %d)",
                           DC_PRECISION_RECALL_K + 2, n);
    dc_model *clf = NULL;
    dc_dataset *test = NULL, *train = NULL;
    float *fs = NULL, *ft = NULL, *ff = NULL;
    int *ls = NULL, *lt = NULL, *lf = NULL;
    int rc = 1;
    dc_error err = {0};
    if (dc_cli_open_run(cmd, classifier_path, be, 250, &clf, NULL)) goto done;
    const int gap = dc_graph_find(clf->g, "gap");
    int shape[DC_MAX_DIMS];
    const int nd = gap >= 0 ? dc_graph_node_shape(clf->g, gap, shape) : 0;
    int dim = 1;
    for (int d = 1; d < nd; d++) dim *= shape[d];
    if (!dc_model_kind_has(clf->spec.kind, DC_KIND_CLASSIFIES) || gap < 0 || clf->spec.size != 32 ||
        clf->spec.channels != 1) {
        dc_cli_fail(cmd, "%s is not a 32x32 grey classifier with a 'gap' node", classifier_path);
        goto done;
    }
    int out_shape[DC_MAX_DIMS];
    dc_graph_node_shape(clf->g, clf->out, out_shape);
    const int K = out_shape[1];
    if (K > 64) {
        dc_cli_fail(cmd, "%s predicts %d classes (at most 64 here)", classifier_path, K);
        goto done;
    }
    /* the test set's size and the floor's, without decoding the training images when cached */
    if (dc_dataset_load_path("fashion-mnist:test", 32, 1, &test, &err) != DC_OK) {
        dc_cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    const int n_floor = n < 60000 ? n : 60000;
    fs = malloc(sizeof(float) * (size_t)n * dim);
    ft = malloc(sizeof(float) * (size_t)test->n * dim);
    ls = malloc(sizeof(int) * (size_t)n);
    lt = malloc(sizeof(int) * (size_t)test->n);
    if (!fs || !ft || !ls || !lt) {
        dc_cli_fail(cmd, "out of memory");
        goto done;
    }
    fm_figures s, fl, te;
    memset(&fl, 0, sizeof fl);
    memset(&te, 0, sizeof te);
    fm_cache_header key;
    memset(&key, 0, sizeof key);
    memcpy(key.magic, FM_CACHE_MAGIC, sizeof FM_CACHE_MAGIC);
    key.dim = dim, key.n_test = test->n, key.n_floor = n_floor, key.n_classes = K;
    key.figures_bytes = (uint32_t)sizeof fl;
    char cpath[1300] = "", ckpt[4096];
    dc_cli_checkpoint_path(classifier_path, ckpt, sizeof ckpt); /* a run folder or the file */
    const int cache_ok = use_cache && file_hash(ckpt, &key.classifier_hash) == 0 &&
                         cache_path(key.classifier_hash, n_floor, cpath, sizeof cpath) == 0;
    const int cached = cache_ok && cache_read(cpath, &key, ft, lt, &fl, sizeof fl) == 0;
    if (cached) {
        fprintf(t, "test-set features and the floor's figures from the cache %s\n", cpath);
    } else {
        if (dc_dataset_load_path("fashion-mnist:train", 32, 1, &train, &err) != DC_OK) {
            dc_cli_fail(cmd, "%s", err.msg);
            goto done;
        }
        if (train->n < n_floor) {
            dc_cli_fail(cmd, "the floor needs %d training images, fashion-mnist:train has %d", n_floor, train->n);
            goto done;
        }
        ff = malloc(sizeof(float) * (size_t)n_floor * dim);
        lf = malloc(sizeof(int) * (size_t)n_floor);
        if (!ff || !lf) {
            dc_cli_fail(cmd, "out of memory");
            goto done;
        }
        if (classify(cmd, clf, gap, dim, K, dc_dataset_image(test, 0), test->n, ft, lt) ||
            classify(cmd, clf, gap, dim, K, dc_dataset_image(train, 0), n_floor, ff, lf) ||
            figures(cmd, ff, lf, n_floor, ft, test->n, dim, K, &fl))
            goto done;
        if (cache_ok && cache_write(cpath, &key, ft, lt, &fl, sizeof fl) == 0)
            fprintf(t, "test-set features and the floor's figures cached in %s\n", cpath);
    }
    if (classify(cmd, clf, gap, dim, K, samples, n, fs, ls) ||
        figures(cmd, fs, ls, n, ft, test->n, dim, K, &s))
        goto done;
    if (dc_class_histogram_compute(lt, test->n, K, te.counts, &te.hist, &err) != DC_OK) {
        dc_cli_fail(cmd, "%s", err.msg);
        goto done;
    }
    if (o) {
        cJSON_AddStringToObject(o, "classifier", classifier_path);
        cJSON_AddStringToObject(o, "features", "gap");
        cJSON_AddNumberToObject(o, "feature_dim", dim);
        cJSON_AddNumberToObject(o, "k", s.pr.k);
        cJSON_AddNumberToObject(o, "n_test", test->n);
        cJSON_AddItemToObject(o, "samples", fm_json(&s, n, K));
        cJSON_AddItemToObject(o, "floor_train_vs_test", fm_json(&fl, n_floor, K));
    }
    fprintf(t, "Fashion-MNIST: %d samples and %d training images (the floor) against the %d test "
               "images,\n  in the %d-d '%s' features of %s\n",
            n, n_floor, test->n, dim, "gap", classifier_path);
    fprintf(t, "  %-40s %10s %12s\n", "figure", "samples", "floor");
    fprintf(t, "  %-40s %10.3f %12.3f\n", "Frechet distance to the test set", s.fd.distance, fl.fd.distance);
    fprintf(t, "  %-40s %10.3f %12.3f\n", "precision (k = 3)", s.pr.precision, fl.pr.precision);
    fprintf(t, "  %-40s %10.3f %12.3f\n", "recall (k = 3)", s.pr.recall, fl.pr.recall);
    fprintf(t, "  %-40s %9.1f%% %11.1f%%\n", "top class share", 100 * s.hist.top_share, 100 * fl.hist.top_share);
    fprintf(t, "  %-40s %10.3f %12.3f\n", "class entropy (1 = all equally often)", s.hist.entropy_norm,
            fl.hist.entropy_norm);
    const char *const *names = dc_fashion_mnist_class_names();
    fprintf(t, "  classes of the samples as the classifier sees them (test set in brackets):\n   ");
    for (int k = 0; k < K; k++)
        fprintf(t, " %s %.1f%% (%.1f%%)%s", k < 10 ? names[k] : "?", 100.0 * s.counts[k] / n,
                100.0 * te.counts[k] / test->n, k + 1 < K ? "," : "\n");
    const int fd_ok = s.fd.distance <= EV_FD_FACTOR * fl.fd.distance;
    ev_verdict(r, "realism (Frechet distance)", fd_ok, "%.2f vs %.2f for training images (%.0fx the floor)",
               s.fd.distance, fl.fd.distance, fl.fd.distance > 0 ? s.fd.distance / fl.fd.distance : INFINITY);
    const int p_ok = s.pr.precision >= EV_PR_SHARE * fl.pr.precision;
    ev_verdict(r, "realism (precision)", p_ok,
               "%.0f%% of samples lie on the test set's feature manifold vs %.0f%% of training images",
               100 * s.pr.precision, 100 * fl.pr.precision);
    const int r_ok = s.pr.recall >= EV_PR_SHARE * fl.pr.recall;
    ev_verdict(r, "coverage (recall)", r_ok,
               "the samples cover %.0f%% of the test images vs %.0f%% for training images",
               100 * s.pr.recall, 100 * fl.pr.recall);
    const int h_ok = s.hist.top_share <= fl.hist.top_share + EV_TOP_SHARE_MARGIN &&
                     s.hist.entropy_norm >= fl.hist.entropy_norm - EV_ENTROPY_MARGIN;
    ev_verdict(r, "class balance", h_ok,
               "top class %s takes %.0f%% of the samples (training images: %.0f%%), entropy %.2f vs %.2f",
               s.hist.top_class < 10 ? names[s.hist.top_class] : "?", 100 * s.hist.top_share,
               100 * fl.hist.top_share, s.hist.entropy_norm, fl.hist.entropy_norm);
    rc = 0;
done:
    free(fs), free(ft), free(ff), free(ls), free(lt), free(lf);
    dc_dataset_free(test);
    dc_dataset_free(train);
    dc_model_free(clf);
    return rc;
}

/* ------------------------------------------------------------------ --images FILE.npy
 * Images made elsewhere (the PyTorch twin's samples, bench/diffusion_parity.sh) scored with
 * the same classifier features as a run's own samples. The file is a NumPy .npy of
 * little-endian float32 in C order, shape [N, 1, 32, 32] or [N, 32, 32], values in [-1, 1]. */

/* The .npy header's dict: "descr", "fortran_order" and the shape tuple. 0, or 1 after
 * printing why. */
static int npy_parse_header(const char *cmd, const char *path, const char *h, long *dims,
                            int *ndim) {
    const char *d = strstr(h, "'descr'"), *f = strstr(h, "'fortran_order'"),
               *s = strstr(h, "'shape'");
    if (!d || !f || !s)
        return dc_cli_fail(cmd, "--images %s: the .npy header lacks descr, fortran_order or shape",
                           path);
    d = strchr(d + 7, '\'');
    if (!d || strncmp(d, "'<f4'", 5) != 0) {
        const char *close = d ? strchr(d + 1, '\'') : NULL;
        return dc_cli_fail(
            cmd,
            "--images %s: the values must be little-endian float32 ('<f4'), the header says %.*s",
            path, close ? (int)(close - d + 1) : 1, close ? d : "?");
    }
    if (!strstr(f, "False"))
        return dc_cli_fail(
            cmd, "--images %s: Fortran-order arrays are not read (save a C-order array)", path);
    s = strchr(s, '(');
    *ndim = 0;
    while (s && *ndim < 5) {
        s++;
        while (*s == ' ')
            s++;
        if (*s == ')') break;
        char *end;
        const long v = strtol(s, &end, 10);
        if (end == s || v < 0) break;
        dims[(*ndim)++] = v;
        s = end;
        while (*s == ' ')
            s++;
        if (*s != ',') break;
    }
    if (!s || *ndim == 0)
        return dc_cli_fail(cmd, "--images %s: cannot read the shape in the .npy header", path);
    return 0;
}

/* The float32 images of a .npy file into *out (n images of 32x32). 0, or 1 after printing why. */
static int npy_read_images(const char *cmd, const char *path, float **out, int *n_out) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return dc_cli_fail(cmd, "--images %s: %s", path, strerror(errno));
    unsigned char pre[12];
    char *header = NULL;
    float *data = NULL;
    int rc = 1;
    size_t header_len = 0, pre_len = 10;
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        dc_cli_fail(cmd, "--images %s: not a NumPy .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    if (pre[6] == 1) {
        header_len = pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            dc_cli_fail(cmd, "--images %s: the .npy header is cut short", path);
            goto done;
        }
        header_len = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        pre_len = 12;
    } else {
        dc_cli_fail(cmd, "--images %s: .npy format version %d is not known", path, pre[6]);
        goto done;
    }
    if (header_len > 65536 || !(header = calloc(header_len + 1, 1)) ||
        fread(header, 1, header_len, fp) != header_len) {
        dc_cli_fail(cmd, "--images %s: cannot read the .npy header (%zu bytes)", path, header_len);
        goto done;
    }
    long dims[5];
    int ndim = 0;
    if (npy_parse_header(cmd, path, header, dims, &ndim)) goto done;
    const int grey4 = ndim == 4 && dims[1] == 1 && dims[2] == 32 && dims[3] == 32;
    const int grey3 = ndim == 3 && dims[1] == 32 && dims[2] == 32;
    if (!grey4 && !grey3) {
        char shape[96] = "";
        size_t used = 0;
        for (int i = 0; i < ndim && used < sizeof shape; i++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, "%s%ld", i ? ", " : "",
                                     dims[i]);
        dc_cli_fail(cmd,
                    "--images %s: shape [%s]; the pinned classifier needs 32x32 grey images, "
                    "[N, 1, 32, 32] or [N, 32, 32]",
                    path, shape);
        goto done;
    }
    if (dims[0] < 1 || dims[0] > 1000000) {
        dc_cli_fail(cmd, "--images %s: %ld images (use 1 to 1000000)", path, dims[0]);
        goto done;
    }
    const size_t count = (size_t)dims[0] * 32 * 32;
    if (!(data = malloc(sizeof(float) * count))) {
        dc_cli_fail(cmd, "--images %s: out of memory for %ld images", path, dims[0]);
        goto done;
    }
    if (fread(data, sizeof(float), count, fp) != count || fgetc(fp) != EOF) {
        dc_cli_fail(
            cmd,
            "--images %s: the data after the %zu-byte header is not %ld images of 32x32 float32",
            path, pre_len + header_len, dims[0]);
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        if (!isfinite(data[i])) {
            dc_cli_fail(cmd, "--images %s: image %zu holds a non-finite value", path,
                        i / (32 * 32));
            goto done;
        }
    *out = data, data = NULL;
    *n_out = (int)dims[0];
    rc = 0;
done:
    free(header);
    free(data);
    fclose(fp);
    return rc;
}

int ev_fashion_mnist_images(const char *cmd, dc_backend *be, const char *npy_path,
                            const char *classifier_path, const char *json, int use_cache) {
    float *img = NULL;
    int n = 0;
    if (npy_read_images(cmd, npy_path, &img, &n)) return 1;
    ev_report r;
    if (ev_report_init(&r, json && strcmp(json, "-") == 0 ? stderr : stdout)) {
        free(img);
        return dc_cli_fail(cmd, "out of memory");
    }
    cJSON_AddStringToObject(r.root, "images", npy_path);
    cJSON_AddStringToObject(r.root, "data", "fashion-mnist");
    cJSON_AddNumberToObject(r.root, "n_samples", n);
    fprintf(r.text, "images %s: %d of 32x32\n", npy_path, n);
    int rc = ev_fashion_mnist(&r, cmd, be, classifier_path, img, n, 1, 32, use_cache);
    if (rc == 0) {
        ev_report_finish(&r);
        if (json && ev_report_write_json(&r, json))
            rc = dc_cli_fail(cmd, "--json %s: cannot write it (%s)", json, strerror(errno));
    }
    ev_report_free(&r);
    free(img);
    return rc;
}
