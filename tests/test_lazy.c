/* Lazily loaded datasets (dc_load_options.lazy) and the graph's backward progress hook.
 * Oracles: the ordinary (whole) load of the same file, bit for bit; the trainer on
 * ordinarily loaded data, bit for bit; the node order of backward (the root down to 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconv/data.h"
#include "deconv/model.h"
#include "deconv/train.h"
#include "graph_internal.h"
#include "testutil.h"

#define FMNIST_TEST DC_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz"

static void need_fashion_mnist(void) {
    if (access(FMNIST_TEST, R_OK) != 0)
        TU_SKIP_OR_FAIL("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
}

/* Items of a lazy subset decoded on demand equal the whole load's, bit for bit; the rest
 * hold nothing; decode_all gives the whole load back. Resized (size 20) and 3 channels
 * take the conversion's other paths. */
static void check_lazy_matches_whole(int size, int channels) {
    dc_error err = {0};
    dc_dataset *whole = NULL, *lazy = NULL;
    dc_load_options opt = {0};
    opt.lazy = 1;
    assert_int_equal(dc_dataset_load_path("fashion-mnist:test", size, channels, &whole, &err),
                     DC_OK);
    assert_int_equal(
        dc_dataset_load_path_opts("fashion-mnist:test", size, channels, &opt, &lazy, &err), DC_OK);
    assert_non_null(lazy->lazy);
    assert_null(lazy->images);
    assert_int_equal(lazy->n, whole->n);
    assert_int_equal(lazy->n_classes, whole->n_classes);
    assert_memory_equal(lazy->labels, whole->labels, sizeof(int32_t) * whole->n);
    assert_string_equal(lazy->class_names[3], whole->class_names[3]);
    assert_int_equal(dc_dataset_decoded_count(lazy), 0);
    assert_null(dc_dataset_image(lazy, 0));
    const size_t bytes = dc_dataset_image_numel(whole) * sizeof(float);

    /* a split of the lazy set is lazy and matches the whole set's split */
    dc_dataset *wt = NULL, *wv = NULL, *lt = NULL, *lv = NULL;
    assert_int_equal(dc_dataset_split(whole, 0.5f, 9, &wt, &wv, &err), DC_OK);
    assert_int_equal(dc_dataset_split(lazy, 0.5f, 9, &lt, &lv, &err), DC_OK);
    assert_non_null(lt->lazy);
    assert_int_equal(lt->n, wt->n);
    assert_memory_equal(lt->labels, wt->labels, sizeof(int32_t) * wt->n);

    /* two rounds: the second keeps some items, drops others, adds new ones (repeats too) */
    int32_t items[2][6] = {{4999, 3, 17, 3, 2500, 0}, {17, 4000, 1, 4999, 1, 42}};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(dc_dataset_decode_only(lt, items[round], 6, &err), DC_OK);
        assert_int_equal(dc_dataset_decoded_count(lt), 5);
        for (int k = 0; k < 6; k++) {
            const float *px = dc_dataset_image(lt, items[round][k]);
            assert_non_null(px);
            assert_memory_equal(px, dc_dataset_image(wt, items[round][k]), bytes);
        }
    }
    assert_null(dc_dataset_image(lt, 3)); /* dropped in the second round */
    assert_null(dc_dataset_image(lt, 2));
    /* a batch of an item not decoded is refused, naming it */
    float buf[3 * 32 * 32];
    int32_t absent = 2;
    assert_int_equal(dc_dataset_batch(lt, &absent, 1, buf, NULL, &err), DC_ERR_STATE);
    assert_non_null(strstr(err.msg, "not decoded"));
    int32_t outside = 5000;
    assert_int_equal(dc_dataset_decode_only(lt, &outside, 1, &err), DC_ERR_ARG);

    /* corner means: every second item from the lazy set, the others untouched */
    double *a = calloc((size_t)wt->n, sizeof(double)), *b = calloc((size_t)wt->n, sizeof(double));
    assert_int_equal(dc_dataset_corner_means(wt, 0, 1, a, &err), DC_OK);
    assert_int_equal(dc_dataset_corner_means(lt, 1, 2, b, &err), DC_OK);
    for (int i = 0; i < wt->n; i++) {
        const float *im = dc_dataset_image(wt, i);
        const int S = wt->w;
        assert_true(a[i] == (im[0] + im[S - 1] + im[(S - 1) * S] + im[S * S - 1]) / 4.0);
        if (i % 2)
            assert_true(b[i] == a[i]);
        else
            assert_true(b[i] == 0.0);
    }
    free(a), free(b);

    assert_int_equal(dc_dataset_decode_all(lv, &err), DC_OK);
    assert_null(lv->lazy);
    assert_int_equal(dc_dataset_decoded_count(lv), wv->n);
    assert_memory_equal(lv->images, wv->images, bytes * wv->n);
    dc_dataset_free(wt), dc_dataset_free(wv), dc_dataset_free(lt), dc_dataset_free(lv);
    dc_dataset_free(whole);
    dc_dataset_free(lazy);
}

/* Every parameter of a trained model, concatenated in parameter order (caller frees). */
static float *all_weights(dc_params *p, size_t *total) {
    *total = 0;
    for (int i = 0; i < dc_params_count(p); i++) *total += dc_params_get(p, i)->numel;
    float *w = malloc(*total * sizeof(float));
    assert_non_null(w);
    size_t at = 0;
    for (int i = 0; i < dc_params_count(p); at += dc_params_get(p, i)->numel, i++)
        assert_int_equal(dc_params_read(p, i, w + at), DC_OK);
    return w;
}

static void test_lazy_load_matches_whole_load(void **state) {
    (void)state;
    need_fashion_mnist();
    check_lazy_matches_whole(0, 1);
    check_lazy_matches_whole(20, 3);
}

/* A cut file is refused when the lazy load opens it, as the whole load refuses it. */
static void test_lazy_load_refuses_a_cut_file(void **state) {
    (void)state;
    need_fashion_mnist();
    char *dir = tu_tmpdir("lazy_cut");
    char path[1024];
    snprintf(path, sizeof path, "%s/cut-images-idx3-ubyte", dir);
    assert_int_equal(tu_system("gzip -dc %s | head -c 100000 > %s", FMNIST_TEST, path), 0);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    dc_load_options opt = {0};
    opt.lazy = 1;
    assert_int_equal(dc_dataset_load_path_opts(path, 0, 1, &opt, &ds, &err), DC_ERR_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_non_null(strstr(err.msg, path));
    tu_system("rm -rf %s", dir);
    free(dir);
}

/* The first n images and labels of Fashion-MNIST's test set as IDX files in dir; returns
 * the images file's path (static). */
static const char *write_small_idx(const char *dir, int n) {
    static char images[1024];
    char labels[1024];
    snprintf(images, sizeof images, "%s/small-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/small-labels-idx1-ubyte", dir);
    const unsigned char count[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                                    (unsigned char)(n >> 8), (unsigned char)n};
    const unsigned char image_magic[4] = {0, 0, 8, 3}, label_magic[4] = {0, 0, 8, 1},
                        side[4] = {0, 0, 0, 28};
    FILE *f = fopen(images, "wb");
    assert_non_null(f);
    fwrite(image_magic, 1, 4, f), fwrite(count, 1, 4, f), fwrite(side, 1, 4, f);
    fwrite(side, 1, 4, f);
    fclose(f);
    f = fopen(labels, "wb");
    assert_non_null(f);
    fwrite(label_magic, 1, 4, f), fwrite(count, 1, 4, f);
    fclose(f);
    assert_int_equal(
        tu_system("gzip -dc %s | tail -c +17 | head -c %d >> %s", FMNIST_TEST, n * 784, images), 0);
    assert_int_equal(tu_system("gzip -dc %s/t10k-labels-idx1-ubyte.gz | tail -c +9 | head -c "
                               "%d >> %s",
                               DC_FASHION_MNIST_DIR, n, labels),
                     0);
    return images;
}

/* One process on lazily loaded data: the trainer decodes each epoch's items itself and
 * ends with the same weights, bit for bit, as on the whole data (augmented: the fill comes
 * from the corner pixels of every image). */
static void test_trainer_on_lazy_data(void **state) {
    (void)state;
    need_fashion_mnist();
    dc_error err = {0};
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "classifier", 1, 28, &err), DC_OK);
    spec.base = 4;
    spec.blocks = 2;
    spec.classes = 10;
    char *dir = tu_tmpdir("lazy_train");
    const char *data = write_small_idx(dir, 400);
    float *w[2] = {NULL, NULL};
    size_t total = 0;
    for (int lazy = 0; lazy < 2; lazy++) {
        dc_train_config cfg;
        dc_train_config_default(&cfg);
        snprintf(cfg.data, sizeof cfg.data, "%s", data);
        snprintf(cfg.out, sizeof cfg.out, "%s/run%d", dir, lazy);
        cfg.val = 0.25f; /* 300 training images, 2 epochs of 19 steps */
        cfg.epochs = 2;
        cfg.batch = 16;
        cfg.augment = 1;
        dc_load_options opt = {0};
        opt.lazy = lazy;
        dc_dataset *tr = NULL, *va = NULL;
        assert_int_equal(dc_train_load_data_opts(&cfg, 28, 1, &opt, &tr, &va, &err), DC_OK);
        assert_true(lazy ? tr->lazy != NULL : tr->lazy == NULL);
        assert_null(va->lazy);
        dc_trainer *t = NULL;
        assert_int_equal(dc_trainer_create(be, &spec, tr, va, &cfg, NULL, &t, &err), DC_OK);
        assert_int_equal(dc_trainer_run(t, &err), DC_OK);
        /* one process holds the whole epoch: every item */
        assert_int_equal(dc_dataset_decoded_count(tr), tr->n);
        w[lazy] = all_weights(dc_trainer_model(t)->params, &total);
        dc_trainer_free(t);
        dc_dataset_free(tr), dc_dataset_free(va);
    }
    assert_memory_equal(w[0], w[1], total * sizeof(float));
    free(w[0]), free(w[1]);
    /* a lazy validation set is refused with a message */
    dc_train_config cfg;
    dc_train_config_default(&cfg);
    snprintf(cfg.out, sizeof cfg.out, "%s/refused", dir);
    dc_dataset *lz = NULL;
    dc_load_options opt = {0};
    opt.lazy = 1;
    assert_int_equal(dc_dataset_load_path_opts(data, 28, 1, &opt, &lz, &err), DC_OK);
    dc_trainer *t = NULL;
    assert_int_equal(dc_trainer_create(be, &spec, lz, lz, &cfg, NULL, &t, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "validation set is lazily loaded"));
    dc_dataset_free(lz);
    dc_backend_free(be);
    tu_system("rm -rf %s", dir);
    free(dir);
}

/* A labelled folder made from the gun silhouettes: two classes, one with a nested
 * sub-folder, a non-square grey PGM (the fit's resize and padding), and a file that is no
 * image, which both loads skip with a warning. The caller frees the path. */
static char *make_gun_folder(void) {
    char *dir = tu_tmpdir("lazy_folder");
    const char *src = tu_source_dir();
    assert_int_equal(tu_system("mkdir -p %s/a/deep %s/b && cp %s/assets/guns/a*.png %s/a/ && "
                               "cp %s/assets/guns/m*.png %s/a/deep/ && "
                               "cp %s/assets/guns/[b-l]*.png %s/b/ && "
                               "echo 'not an image' > %s/b/broken.png && "
                               "(printf 'P5\n40 24\n255\n'; head -c 960 /dev/urandom) > "
                               "%s/b/wide.pgm",
                               dir, dir, src, dir, src, dir, src, dir, dir, dir),
                     0);
    return dir;
}

/* A lazily loaded folder lists the same items as a whole load (names, labels, classes),
 * decodes each item bit for bit as the whole load does, keeps its laziness through a
 * split, and every whole-set figure computed from it (corner means, item hashes, the
 * near-binary count, the data fingerprint) equals the whole load's. */
static void check_lazy_folder(const char *dir, int size, int channels) {
    dc_error err = {0};
    dc_dataset *whole = NULL, *lazy = NULL;
    dc_load_options opt = {0};
    opt.lazy = 1;
    assert_int_equal(dc_dataset_load_path(dir, size, channels, &whole, &err), DC_OK);
    assert_int_equal(dc_dataset_load_path_opts(dir, size, channels, &opt, &lazy, &err), DC_OK);
    assert_non_null(lazy->lazy);
    assert_null(lazy->images);
    assert_int_equal(dc_dataset_decoded_count(lazy), 0);
    assert_int_equal(lazy->n, whole->n);
    assert_int_equal(whole->n, 16); /* 15 guns and the PGM; the broken file skipped */
    assert_int_equal(lazy->h, whole->h);
    assert_int_equal(lazy->w, whole->w);
    assert_int_equal(lazy->c, whole->c);
    assert_int_equal(lazy->n_classes, 2);
    assert_string_equal(lazy->class_names[1], whole->class_names[1]);
    assert_memory_equal(lazy->labels, whole->labels, sizeof(int32_t) * whole->n);
    for (int i = 0; i < whole->n; i++)
        assert_string_equal(lazy->names[i], whole->names[i]);
    const size_t bytes = dc_dataset_image_numel(whole) * sizeof(float);

    int32_t items[5] = {15, 0, 7, 0, 13};
    assert_int_equal(dc_dataset_decode_only(lazy, items, 5, &err), DC_OK);
    assert_int_equal(dc_dataset_decoded_count(lazy), 4);
    for (int k = 0; k < 5; k++)
        assert_memory_equal(dc_dataset_image(lazy, items[k]), dc_dataset_image(whole, items[k]),
                            bytes);
    assert_null(dc_dataset_image(lazy, 1));

    /* figures over the whole set from two "ranks" (every second item) */
    double *ca = calloc((size_t)whole->n, sizeof(double));
    double *cb = calloc((size_t)whole->n, sizeof(double));
    uint64_t *ha = calloc((size_t)whole->n, sizeof(uint64_t));
    uint64_t *hb = calloc((size_t)whole->n, sizeof(uint64_t));
    double near_whole = 0, near_lazy = 0;
    assert_int_equal(dc_dataset_corner_means(whole, 0, 1, ca, &err), DC_OK);
    assert_int_equal(dc_dataset_item_hashes(whole, 0, 1, ha, &err), DC_OK);
    assert_int_equal(dc_dataset_near_binary_count(whole, 0, 1, &near_whole, &err), DC_OK);
    for (int rank = 0; rank < 2; rank++) {
        assert_int_equal(dc_dataset_corner_means(lazy, rank, 2, cb, &err), DC_OK);
        assert_int_equal(dc_dataset_item_hashes(lazy, rank, 2, hb, &err), DC_OK);
        assert_int_equal(dc_dataset_near_binary_count(lazy, rank, 2, &near_lazy, &err), DC_OK);
    }
    /* the oracle of the near count: the share over the whole load's pixels */
    const size_t numel = (size_t)whole->n * dc_dataset_image_numel(whole);
    assert_true(near_whole / (double)numel == dc_near_binary_share(whole->images, numel));
    assert_true(near_lazy == near_whole);
    for (int i = 0; i < whole->n; i++) {
        assert_true(ca[i] == cb[i]);
        assert_true(ha[i] == hb[i]);
    }
    /* the item hashes tell items apart */
    assert_true(ha[0] != ha[1]);
    free(ca), free(cb), free(ha), free(hb);

    /* a split of the lazy set is lazy; decoded whole it is the whole set's split */
    dc_dataset *wt = NULL, *wv = NULL, *lt = NULL, *lv = NULL;
    assert_int_equal(dc_dataset_split(whole, 0.25f, 3, &wt, &wv, &err), DC_OK);
    assert_int_equal(dc_dataset_split(lazy, 0.25f, 3, &lt, &lv, &err), DC_OK);
    assert_non_null(lt->lazy);
    assert_non_null(lv->lazy);
    assert_int_equal(dc_dataset_decoded_count(lt), 0);
    int32_t last = lt->n - 1;
    assert_int_equal(dc_dataset_decode_only(lt, &last, 1, &err), DC_OK);
    assert_memory_equal(dc_dataset_image(lt, last), dc_dataset_image(wt, last), bytes);
    assert_int_equal(dc_dataset_decode_all(lv, &err), DC_OK);
    assert_null(lv->lazy);
    assert_memory_equal(lv->images, wv->images, bytes * wv->n);
    char fw[32], fl[32];
    assert_int_equal(dc_train_data_fingerprint(wt, wv, NULL, fw, sizeof fw, &err), DC_OK);
    assert_int_equal(dc_train_data_fingerprint(lt, lv, NULL, fl, sizeof fl, &err), DC_OK);
    assert_string_equal(fw, fl);
    assert_true(strncmp(fw, DC_DATA_FINGERPRINT_PREFIX, 3) == 0);
    assert_int_equal(strlen(fw) + 1, DC_DATA_FINGERPRINT_CHARS);
    /* other data: another fingerprint */
    assert_int_equal(dc_train_data_fingerprint(wv, wt, NULL, fl, sizeof fl, &err), DC_OK);
    assert_string_not_equal(fw, fl);
    dc_dataset_free(wt), dc_dataset_free(wv), dc_dataset_free(lt), dc_dataset_free(lv);
    dc_dataset_free(whole);
    dc_dataset_free(lazy);
}

static void test_lazy_folder_matches_whole_load(void **state) {
    (void)state;
    char *dir = make_gun_folder();
    check_lazy_folder(dir, 0, 1);
    check_lazy_folder(dir, 20, 3);
    tu_system("rm -rf %s", dir);
    free(dir);
}

/* A file that turns unreadable after the lazy load listed it is an error naming the file
 * when its item is decoded; the items decoded before stay as they were. */
static void test_lazy_folder_file_turns_unreadable(void **state) {
    (void)state;
    char *dir = make_gun_folder();
    dc_error err = {0};
    dc_dataset *lazy = NULL;
    dc_load_options opt = {0};
    opt.lazy = 1;
    assert_int_equal(dc_dataset_load_path_opts(dir, 16, 1, &opt, &lazy, &err), DC_OK);
    int32_t item = 2;
    assert_int_equal(dc_dataset_decode_only(lazy, &item, 1, &err), DC_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, lazy->names[5]);
    assert_int_equal(tu_system("head -c 60 %s > %s.cut && mv %s.cut %s", path, path, path, path),
                     0);
    int32_t both[2] = {2, 5};
    assert_int_equal(dc_dataset_decode_only(lazy, both, 2, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(dc_dataset_image(lazy, 2));
    assert_null(dc_dataset_image(lazy, 5));
    /* gone altogether */
    assert_int_equal(tu_system("rm %s", path), 0);
    assert_int_equal(dc_dataset_decode_only(lazy, both + 1, 1, &err), DC_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    dc_dataset_free(lazy);
    tu_system("rm -rf %s", dir);
    free(dir);
}

/* One process on a lazily loaded folder, augmented at twice the size (the trainer loads
 * the folder again, lazily too, and decodes the same items in it): the weights equal the
 * whole load's bit for bit. */
static void test_trainer_on_lazy_folder(void **state) {
    (void)state;
    char *dir = make_gun_folder();
    dc_error err = {0};
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "complete", 1, 16, &err), DC_OK);
    spec.base = 4;
    spec.blocks = 2;
    spec.latent = 8;
    float *w[2] = {NULL, NULL};
    size_t total = 0;
    for (int lazy = 0; lazy < 2; lazy++) {
        dc_train_config cfg;
        dc_train_config_default(&cfg);
        snprintf(cfg.data, sizeof cfg.data, "%s", dir);
        snprintf(cfg.out, sizeof cfg.out, "%s/run%d", dir, lazy);
        cfg.epochs = 2;
        cfg.batch = 8;
        cfg.augment = 1;
        cfg.augment_oversample = 2;
        dc_load_options opt = {0};
        opt.lazy = lazy;
        dc_dataset *tr = NULL, *va = NULL;
        assert_int_equal(dc_train_load_data_opts(&cfg, 16, 1, &opt, &tr, &va, &err), DC_OK);
        assert_true(lazy ? tr->lazy != NULL : tr->lazy == NULL);
        dc_trainer *t = NULL;
        assert_int_equal(dc_trainer_create(be, &spec, tr, va, &cfg, NULL, &t, &err), DC_OK);
        assert_int_equal(dc_trainer_run(t, &err), DC_OK);
        w[lazy] = all_weights(dc_trainer_model(t)->params, &total);
        dc_trainer_free(t);
        dc_dataset_free(tr), dc_dataset_free(va);
    }
    assert_memory_equal(w[0], w[1], total * sizeof(float));
    free(w[0]), free(w[1]);
    dc_backend_free(be);
    tu_system("rm -rf %s", dir);
    free(dir);
}

/* The backward hook hears every node from the root down to 0, once each, and its error
 * stops backward with that error. */
typedef struct heard {
    int nodes[64], n, fail_at;
} heard;
static dc_status hear(void *user, int node, dc_error *err) {
    heard *h = user;
    if (h->n < 64) h->nodes[h->n++] = node;
    if (node == h->fail_at) return dc_set_error(err, DC_ERR_IO, "stopped at node %d", node);
    return DC_OK;
}

static void test_backward_hook_order(void **state) {
    (void)state;
    dc_error err = {0};
    dc_backend *be = NULL;
    assert_int_equal(dc_backend_create_cpu(1, &be, &err), DC_OK);
    dc_model_spec spec;
    assert_int_equal(dc_model_spec_default(&spec, "classifier", 1, 16, &err), DC_OK);
    spec.base = 4;
    spec.blocks = 2;
    spec.classes = 3;
    dc_model *m = NULL;
    assert_int_equal(dc_model_create_training(be, &spec, 2, &m, &err), DC_OK);
    float x[2 * 16 * 16];
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    tu_fill_uniform(x, 2 * 16 * 16, &rng, -1, 1);
    int32_t labels[2] = {0, 2};
    assert_int_equal(dc_graph_set_input(m->g, m->x, x), DC_OK);
    assert_int_equal(dc_graph_set_input_int(m->g, m->labels, labels), DC_OK);
    assert_int_equal(dc_graph_forward(m->g, -1), DC_OK);
    heard h = {.n = 0, .fail_at = -1};
    m->g->backward_passed = hear;
    m->g->backward_passed_user = &h;
    assert_int_equal(dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL), DC_OK);
    assert_true(m->loss + 1 <= 64);
    assert_int_equal(h.n, m->loss + 1);
    for (int k = 0; k < h.n; k++)
        assert_int_equal(h.nodes[k], m->loss - k);
    h.n = 0;
    h.fail_at = m->loss / 2;
    assert_int_equal(dc_graph_backward(m->g, m->loss, DC_RELU_NORMAL), DC_ERR_IO);
    assert_non_null(strstr(dc_graph_error(m->g)->msg, "stopped at node"));
    assert_int_equal(h.n, m->loss - m->loss / 2 + 1);
    dc_model_free(m);
    dc_backend_free(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_load_matches_whole_load),
        cmocka_unit_test(test_lazy_load_refuses_a_cut_file),
        cmocka_unit_test(test_trainer_on_lazy_data),
        cmocka_unit_test(test_lazy_folder_matches_whole_load),
        cmocka_unit_test(test_lazy_folder_file_turns_unreadable),
        cmocka_unit_test(test_trainer_on_lazy_folder),
        cmocka_unit_test(test_backward_hook_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
