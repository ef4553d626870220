/* Datasets and image files: pixel-exact loading against patterns written here with
 * stb_image_write, bad input, IDX (plain, gzipped, truncated), splits, batches,
 * augmentation, PNG output, Fashion-MNIST and the shipped guns. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#include "deconv/data.h"
#include "deconv/eval.h"
#include "deconv/image.h"
#include "data/data_internal.h"

#define TU_STB_IMAGE_WRITE /* the tests also write odd files of their own */
#include "tu_stb_image.h"

/* ------------------------------------------------------------------ helpers */

static float pm1(int pixel) { return (float)pixel / 127.5f - 1.0f; }

static char *path_in(const char *dir, const char *name) {
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* A fresh temporary folder (mkdtemp under $TMPDIR or /tmp); the caller removes it. */
static char *data_tmpdir(const char *tag) {
    const char *base = getenv("TMPDIR");
    char tmpl[1024];
    snprintf(tmpl, sizeof tmpl, "%s/deconv-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char *copy = malloc(strlen(dir) + 1);
    assert_non_null(copy);
    strcpy(copy, dir);
    return copy;
}

/* Removes a test's temporary folder and frees its name. */
static void remove_tmpdir(char *dir) {
    if (!dir) return;
    tu_system("rm -rf '%s'", dir);
    free(dir);
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int gray_pattern(int x, int y) { return (x * 37 + y * 11 + 5) % 256; }
static int rgb_pattern(int x, int y, int ch) { return (x * 7 + y * 13 + ch * 50 + 3) % 256; }

static void write_gray_png(const char *path, int w, int h) {
    unsigned char *px = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) px[y * w + x] = (unsigned char)gray_pattern(x, y);
    assert_true(stbi_write_png(path, w, h, 1, px, w));
    free(px);
}

static void write_rgb_bmp(const char *path, int w, int h) {
    unsigned char *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) px[(y * w + x) * 3 + ch] = (unsigned char)rgb_pattern(x, y, ch);
    assert_true(stbi_write_bmp(path, w, h, 3, px));
    free(px);
}

static void write_constant_png(const char *path, int w, int h, unsigned char value) {
    unsigned char *px = malloc((size_t)w * h);
    memset(px, value, (size_t)w * h);
    assert_true(stbi_write_png(path, w, h, 1, px, w));
    free(px);
}

/* Runs a load with stderr captured into `captured` (for the skip warnings). */
typedef struct stderr_capture {
    int saved_fd;
    char path[1024];
} stderr_capture;

static void capture_begin(stderr_capture *c, const char *dir) {
    snprintf(c->path, sizeof c->path, "%s/stderr.txt", dir);
    fflush(stderr);
    c->saved_fd = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(stderr_capture *c) {
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    static char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    remove(c->path);
    return text;
}

static void write_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char idx_pixel(int i, int k) { return (unsigned char)((i * 31 + k * 7) % 256); }

/* An IDX images file of n rows x cols images (pixel idx_pixel(i, k)), gzipped or plain. */
static void write_idx_images(const char *path, uint32_t magic, int n, int rows, int cols, int gz) {
    size_t bytes = 16 + (size_t)n * rows * cols;
    unsigned char *buf = malloc(bytes);
    write_be32(buf, magic);
    write_be32(buf + 4, (uint32_t)n);
    write_be32(buf + 8, (uint32_t)rows);
    write_be32(buf + 12, (uint32_t)cols);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < rows * cols; k++) buf[16 + (size_t)i * rows * cols + k] = idx_pixel(i, k);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, buf, (unsigned)bytes), (int)bytes);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        write_bytes(path, buf, bytes);
    }
    free(buf);
}

static void write_idx_labels(const char *path, int n) {
    unsigned char *buf = malloc(8 + (size_t)n);
    write_be32(buf, 0x00000801);
    write_be32(buf + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) buf[8 + i] = (unsigned char)(i % 10);
    write_bytes(path, buf, 8 + (size_t)n);
    free(buf);
}

/* ------------------------------------------------------- folder loading */

static void test_folder_pixels_exact(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-exact");
    assert_non_null(dir);
    write_gray_png(path_in(dir, "a.png"), 9, 9);
    write_rgb_bmp(path_in(dir, "b.bmp"), 9, 9);
    dc_error err = {0};
    dc_dataset *ds = NULL;

    /* channels = 3: the gray PNG gives three equal planes, the BMP its exact RGB. */
    assert_int_equal(dc_dataset_load_folder(dir, 9, 3, &ds, &err), DC_OK);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->c, 3);
    assert_int_equal(ds->h, 9);
    assert_int_equal(ds->w, 9);
    assert_null(ds->labels);
    assert_string_equal(ds->names[0], "a.png");
    assert_string_equal(ds->names[1], "b.bmp");
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 9; x++) {
                assert_float_equal(dc_dataset_image(ds, 0)[(ch * 9 + y) * 9 + x],
                                   pm1(gray_pattern(x, y)), 1e-6);
                assert_float_equal(dc_dataset_image(ds, 1)[(ch * 9 + y) * 9 + x],
                                   pm1(rgb_pattern(x, y, ch)), 1e-6);
            }
    dc_dataset_free(ds);

    /* channels = 1 and native size (size 0): gray exact, RGB as luminance. */
    assert_int_equal(dc_dataset_load_folder(dir, 0, 1, &ds, &err), DC_OK);
    assert_int_equal(ds->h, 9);
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 9; x++) {
            assert_float_equal(dc_dataset_image(ds, 0)[y * 9 + x], pm1(gray_pattern(x, y)), 1e-6);
            double lum = 0.299 * rgb_pattern(x, y, 0) + 0.587 * rgb_pattern(x, y, 1) +
                         0.114 * rgb_pattern(x, y, 2);
            assert_float_equal(dc_dataset_image(ds, 1)[y * 9 + x], lum / 127.5 - 1.0, 1e-4);
        }
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static void test_folder_resize_constant(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-resize");
    write_constant_png(path_in(dir, "wide.png"), 30, 20, 77);
    write_constant_png(path_in(dir, "small.png"), 17, 17, 77);
    write_constant_png(path_in(dir, "tall.png"), 10, 90, 77);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_folder(dir, 64, 1, &ds, &err), DC_OK);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->h, 64);
    assert_int_equal(ds->w, 64);
    for (size_t i = 0; i < (size_t)ds->n * 64 * 64; i++)
        assert_float_equal(ds->images[i], pm1(77), 1e-5);
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static void test_folder_fit_pads_with_border(void **state) {
    (void)state;
    /* A dark 8x4 image on a black border fitted to 8: the padding rows are black too. */
    char *dir = data_tmpdir("data-pad");
    unsigned char px[4 * 8];
    memset(px, 0, sizeof px);
    px[1 * 8 + 3] = 255; /* one white pixel inside */
    assert_true(stbi_write_png(path_in(dir, "strip.png"), 8, 4, 1, px, 8));
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_folder(dir, 8, 1, &ds, &err), DC_OK);
    const float *im = dc_dataset_image(ds, 0);
    for (int x = 0; x < 8; x++) {
        assert_float_equal(im[0 * 8 + x], -1.0f, 1e-6); /* padding above */
        assert_float_equal(im[7 * 8 + x], -1.0f, 1e-6); /* padding below */
    }
    assert_float_equal(im[(2 + 1) * 8 + 3], 1.0f, 1e-6); /* the strip sits in rows 2..5 */
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static void test_folder_skips_bad_files(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-bad");
    write_gray_png(path_in(dir, "good.png"), 6, 6);
    write_bytes(path_in(dir, "corrupt.png"), "this is not a png at all, only some bytes", 41);
    write_bytes(path_in(dir, "empty.png"), "", 0);
    write_bytes(path_in(dir, "notes.txt"), "ignored", 7);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    stderr_capture cap;
    capture_begin(&cap, dir);
    dc_status s = dc_dataset_load_folder(dir, 6, 1, &ds, &err);
    char *warnings = capture_end(&cap);
    assert_int_equal(s, DC_OK);
    assert_int_equal(ds->n, 1);
    assert_string_equal(ds->names[0], "good.png");
    assert_non_null(strstr(warnings, "corrupt.png"));
    assert_non_null(strstr(warnings, "empty.png"));
    assert_null(strstr(warnings, "notes.txt"));
    assert_null(strstr(warnings, "good.png"));
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static void test_folder_errors_name_the_folder(void **state) {
    (void)state;
    dc_error err = {0};
    dc_dataset *ds = NULL;
    char *empty = data_tmpdir("data-empty");
    assert_int_equal(dc_dataset_load_folder(empty, 8, 1, &ds, &err), DC_ERR_NOT_FOUND);
    assert_null(ds);
    assert_non_null(strstr(err.msg, empty));

    char *bad = data_tmpdir("data-allbad");
    write_bytes(path_in(bad, "x.png"), "garbage", 7);
    write_bytes(path_in(bad, "y.jpg"), "", 0);
    stderr_capture cap;
    capture_begin(&cap, empty);
    dc_status s = dc_dataset_load_folder(bad, 8, 1, &ds, &err);
    capture_end(&cap);
    assert_int_equal(s, DC_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, bad));

    char missing[1100];
    snprintf(missing, sizeof missing, "%s/does-not-exist", empty);
    assert_int_equal(dc_dataset_load_folder(missing, 8, 1, &ds, &err), DC_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(dc_dataset_load_path(missing, 8, 1, &ds, &err), DC_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, missing));

    assert_int_equal(dc_dataset_load_folder(empty, 8, 2, &ds, &err), DC_ERR_ARG);
    remove_tmpdir(empty);
    remove_tmpdir(bad);
}

static void test_folder_with_classes(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-classes");
    char sub[1100];
    const char *classes[] = {"cat", "dog", "emptyclass"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, classes[i]);
        assert_int_equal(mkdir(sub, 0755), 0);
    }
    write_constant_png(path_in(dir, "dog/d1.png"), 4, 4, 10);
    write_constant_png(path_in(dir, "cat/c2.png"), 4, 4, 20);
    write_constant_png(path_in(dir, "cat/c1.png"), 4, 4, 30);
    write_bytes(path_in(dir, "emptyclass/readme.txt"), "x", 1);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_path(dir, 4, 1, &ds, &err), DC_OK);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->n_classes, 2);
    assert_string_equal(ds->class_names[0], "cat");
    assert_string_equal(ds->class_names[1], "dog");
    assert_string_equal(ds->names[0], "cat/c1.png");
    assert_string_equal(ds->names[2], "dog/d1.png");
    assert_int_equal(ds->labels[0], 0);
    assert_int_equal(ds->labels[1], 0);
    assert_int_equal(ds->labels[2], 1);
    assert_float_equal(dc_dataset_image(ds, 0)[0], pm1(30), 1e-6);
    assert_float_equal(dc_dataset_image(ds, 2)[0], pm1(10), 1e-6);
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static size_t file_size(const char *path);

/* Issue 15.5: a class folder's nested folders belong to the class; a flat folder whose
 * sub-folders hold images only deeper down is a labelled set too (nothing skipped
 * silently). */
static void test_folder_nested_class_folders(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-nested");
    char sub[1100];
    const char *folders[] = {"cat", "cat/2019", "cat/2019/summer", "dog", "dog/old"};
    for (int i = 0; i < 5; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, folders[i]);
        assert_int_equal(mkdir(sub, 0755), 0);
    }
    write_constant_png(path_in(dir, "cat/c1.png"), 4, 4, 30);
    write_constant_png(path_in(dir, "cat/2019/c2.png"), 4, 4, 40);
    write_constant_png(path_in(dir, "cat/2019/summer/c3.png"), 4, 4, 50);
    write_constant_png(path_in(dir, "dog/old/d1.png"), 4, 4, 60); /* only deeper down */
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_path(dir, 4, 1, &ds, &err), DC_OK);
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_classes, 2);
    assert_string_equal(ds->class_names[0], "cat");
    assert_string_equal(ds->class_names[1], "dog");
    /* files before folders, each sorted */
    assert_string_equal(ds->names[0], "cat/c1.png");
    assert_string_equal(ds->names[1], "cat/2019/c2.png");
    assert_string_equal(ds->names[2], "cat/2019/summer/c3.png");
    assert_string_equal(ds->names[3], "dog/old/d1.png");
    const int labels[] = {0, 0, 0, 1}, values[] = {30, 40, 50, 60};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ds->labels[i], labels[i]);
        assert_float_equal(dc_dataset_image(ds, i)[0], pm1(values[i]), 1e-6);
    }
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

/* Issue 15.2: the channels a folder calls for, from its pixels (not the file format: a
 * grey picture stored as RGB stays grey). */
static void test_detect_channels(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-channels");
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/grey", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof sub, "%s/colour", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    unsigned char rgb[8 * 8 * 3];
    for (int i = 0; i < 8 * 8; i++) /* grey values stored as RGB */
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = (unsigned char)(i * 4);
    assert_true(stbi_write_png(path_in(dir, "grey/a.png"), 8, 8, 3, rgb, 8 * 3));
    assert_true(stbi_write_png(path_in(dir, "colour/a.png"), 8, 8, 3, rgb, 8 * 3));
    for (int i = 0; i < 8 * 8; i++)
        rgb[3 * i] = 200, rgb[3 * i + 2] = 20; /* orange */
    assert_true(stbi_write_png(path_in(dir, "colour/b.png"), 8, 8, 3, rgb, 8 * 3));
    dc_error err = {0};
    int channels = 0;
    char why[160];
    assert_int_equal(
        dc_dataset_detect_channels(path_in(dir, "grey"), &channels, why, sizeof why, &err), DC_OK);
    assert_int_equal(channels, 1);
    assert_non_null(strstr(why, "grey"));
    assert_int_equal(
        dc_dataset_detect_channels(path_in(dir, "colour"), &channels, why, sizeof why, &err),
        DC_OK);
    assert_int_equal(channels, 3);
    assert_non_null(strstr(why, "1 of the 2"));
    /* the class sub-folders are looked into: "colour" holds colour */
    assert_int_equal(dc_dataset_detect_channels(dir, &channels, NULL, 0, &err), DC_OK);
    assert_int_equal(channels, 3);
    remove_tmpdir(dir);
}

/* Issue 15.5: the EXIF orientation of a JPEG (APP1 "Exif", TIFF tag 0x0112), all eight
 * values, in both TIFF byte orders. The Exif block is inserted byte by byte after the SOI
 * of the fuzz corpus' 9x7 colour JPEG; the oracle is the plain image decoded by stb_image
 * and turned by flips and a transpose composed here. */
static unsigned char oracle_pixel(const unsigned char *px, int w, int h, int o, int x, int y,
                                  int ch) {
    /* undo the display steps in reverse: the stored pixel shown at (x, y) */
    const int tw = o >= 5 ? h : w, th = o >= 5 ? w : h; /* the displayed size */
    const int flipx = o == 2 || o == 3 || o == 6 || o == 7;
    const int flipy = o == 3 || o == 4 || o == 7 || o == 8;
    if (flipx) x = tw - 1 - x;
    if (flipy) y = th - 1 - y;
    if (o >= 5) { /* transposed first */
        const int t = x;
        x = y;
        y = t;
    }
    return px[((size_t)y * w + x) * 3 + ch];
}

static void test_jpeg_exif_orientation(void **state) {
    (void)state;
    char seed[1024];
    snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus_image/rgb.jpg", tu_source_dir());
    size_t n = file_size(seed);
    unsigned char *jpg = malloc(n);
    FILE *f = fopen(seed, "rb");
    assert_non_null(f);
    assert_int_equal(fread(jpg, 1, n, f), n);
    fclose(f);
    int w = 0, h = 0, comp = 0;
    unsigned char *plain = stbi_load_from_memory(jpg, (int)n, &w, &h, &comp, 3);
    assert_non_null(plain);
    assert_true(w != h); /* so that a missed turn shows in the size */
    char *dir = data_tmpdir("data-exif");
    for (int o = 1; o <= 8; o++) {
        const int big = o % 2; /* "MM" for odd values, "II" for even */
        unsigned char tiff[26] = {0};
        tiff[0] = tiff[1] = big ? 'M' : 'I';
        tiff[big ? 3 : 2] = 42;
        tiff[big ? 7 : 4] = 8;                                            /* IFD0 at offset 8 */
        tiff[big ? 9 : 8] = 1;                                            /* one entry */
        tiff[10 + (big ? 0 : 1)] = 0x01, tiff[10 + (big ? 1 : 0)] = 0x12; /* tag 0x0112 */
        tiff[12 + (big ? 1 : 0)] = 3;                                     /* SHORT */
        tiff[14 + (big ? 3 : 0)] = 1;                                     /* count 1 */
        tiff[18 + (big ? 1 : 0)] = (unsigned char)o;                      /* the value */
        const size_t seg = 2 + 6 + sizeof tiff;
        unsigned char *out = malloc(n + 2 + seg);
        memcpy(out, jpg, 2); /* SOI */
        out[2] = 0xFF, out[3] = 0xE1, out[4] = (unsigned char)(seg >> 8),
        out[5] = (unsigned char)seg;
        memcpy(out + 6, "Exif\0\0", 6);
        memcpy(out + 12, tiff, sizeof tiff);
        memcpy(out + 2 + 2 + seg, jpg + 2, n - 2);
        char name[32];
        snprintf(name, sizeof name, "o%d.jpg", o);
        write_bytes(path_in(dir, name), out, n + 2 + seg);
        free(out);
        float *planes = NULL;
        int ph = 0, pw = 0;
        dc_error err = {0};
        assert_int_equal(dc_image_decode_file(path_in(dir, name), 3, 0, &planes, &ph, &pw, &err),
                         DC_OK);
        assert_int_equal(pw, o >= 5 ? h : w);
        assert_int_equal(ph, o >= 5 ? w : h);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < ph; y++)
                for (int x = 0; x < pw; x++)
                    assert_float_equal(planes[((size_t)ch * ph + y) * pw + x],
                                       pm1(oracle_pixel(plain, w, h, o, x, y, ch)), 1e-6);
        free(planes);
    }
    stbi_image_free(plain);
    free(jpg);
    remove_tmpdir(dir);
}

/* ------------------------------------------------------------------- IDX */

static void test_idx_plain_and_gz(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-idx");
    for (int gz = 0; gz < 2; gz++) {
        const char *images = gz ? "toy-images-idx3-ubyte.gz" : "toy-images-idx3-ubyte";
        write_idx_images(path_in(dir, images), 0x00000803, 5, 6, 4, gz);
        write_idx_labels(path_in(dir, gz ? "toy-labels-idx1-ubyte.gz" : "toy-labels-idx1-ubyte"),
                         5);
        dc_error err = {0};
        dc_dataset *ds = NULL;
        /* Through load_path: finds the labels file beside the images. Native size 6. */
        assert_int_equal(dc_dataset_load_path(path_in(dir, images), 0, 1, &ds, &err), DC_OK);
        assert_int_equal(ds->n, 5);
        assert_int_equal(ds->h, 6);
        assert_non_null(ds->labels);
        assert_int_equal(ds->n_classes, 5);
        for (int i = 0; i < 5; i++) assert_int_equal(ds->labels[i], i);
        /* 6 rows x 4 cols fitted into 6x6: one padding column each side. */
        for (int i = 0; i < 5; i++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 4; x++)
                    assert_float_equal(dc_dataset_image(ds, i)[y * 6 + x + 1],
                                       pm1(idx_pixel(i, y * 4 + x)), 1e-6);
        dc_dataset_free(ds);
    }
    /* Square IDX at native size, 3 channels, then resized. */
    write_idx_images(path_in(dir, "sq-images-idx3-ubyte"), 0x00000803, 3, 28, 28, 0);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_idx(path_in(dir, "sq-images-idx3-ubyte"), NULL, 28, 3, &ds,
                                         &err), DC_OK);
    assert_null(ds->labels);
    for (int ch = 0; ch < 3; ch++)
        for (int k = 0; k < 28 * 28; k++)
            assert_float_equal(dc_dataset_image(ds, 2)[ch * 784 + k], pm1(idx_pixel(2, k)), 1e-6);
    dc_dataset_free(ds);
    assert_int_equal(dc_dataset_load_idx(path_in(dir, "sq-images-idx3-ubyte"), NULL, 32, 1, &ds,
                                         &err), DC_OK);
    assert_int_equal(ds->h, 32);
    assert_int_equal(ds->w, 32);
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

static void test_idx_bad_magic(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-magic");
    char *p = path_in(dir, "bad-images-idx3-ubyte");
    write_idx_images(p, 0x00000804, 2, 4, 4, 0);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_idx(p, NULL, 4, 1, &ds, &err), DC_ERR_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "magic"));
    /* A labels file given as images says so. */
    char *l = path_in(dir, "l-labels-idx1-ubyte");
    write_idx_labels(l, 3);
    assert_int_equal(dc_dataset_load_idx(l, NULL, 4, 1, &ds, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, l));
    remove_tmpdir(dir);
}

static void test_idx_truncated_gz(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-trunc");
    char *p = path_in(dir, "cut-images-idx3-ubyte.gz");
    write_idx_images(p, 0x00000803, 200, 28, 28, 1);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_idx(p, NULL, 28, 1, &ds, &err), DC_ERR_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "truncated"));

    /* A plain file shorter than its header promises. */
    char *q = path_in(dir, "short-images-idx3-ubyte");
    write_idx_images(q, 0x00000803, 10, 28, 28, 0);
    assert_int_equal(truncate(q, 16 + 5 * 784), 0);
    assert_int_equal(dc_dataset_load_idx(q, NULL, 28, 1, &ds, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, q));

    /* A header that promises far more than any memory holds is still just "truncated". */
    unsigned char huge[16 + 100] = {0};
    write_be32(huge, 0x00000803);
    write_be32(huge + 4, 0x7fffffff);
    write_be32(huge + 8, 4096);
    write_be32(huge + 12, 4096);
    char *r = path_in(dir, "huge-images-idx3-ubyte");
    write_bytes(r, huge, sizeof huge);
    assert_int_equal(dc_dataset_load_idx(r, NULL, 28, 1, &ds, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));

    /* Only part of the header. */
    write_bytes(r, huge, 10);
    assert_int_equal(dc_dataset_load_idx(r, NULL, 28, 1, &ds, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, r));
    remove_tmpdir(dir);
}

static void test_idx_label_count_mismatch(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-mismatch");
    char images[1100], labels[1100];
    snprintf(images, sizeof images, "%s/m-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/m-labels-idx1-ubyte", dir);
    write_idx_images(images, 0x00000803, 5, 4, 4, 0);
    write_idx_labels(labels, 4);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_idx(images, labels, 4, 1, &ds, &err), DC_ERR_SHAPE);
    assert_null(ds);
    assert_non_null(strstr(err.msg, images));
    assert_non_null(strstr(err.msg, labels));
    remove_tmpdir(dir);
}

/* ------------------------------------------------- subsets and batches */

static dc_dataset *numbered_dataset(int n) {
    dc_dataset *ds = NULL;
    dc_error err = {0};
    assert_int_equal(dc_dataset_create(n, 1, 2, 2, 1, &ds, &err), DC_OK);
    for (int i = 0; i < n; i++) {
        ds->labels[i] = i;
        for (int k = 0; k < 4; k++) dc_dataset_image(ds, i)[k] = (float)i;
    }
    return ds;
}

/* ------------------------------------------------ hostile image files */

static size_t file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (size_t)st.st_size;
}

/* dc_image_read of path must fail with DC_ERR_FORMAT, naming the file and `why`. */
static void expect_refused(const char *path, const char *why) {
    float dst[3 * 8 * 8];
    dc_error err = {0};
    assert_int_equal(dc_image_read(path, 8, 3, dst, &err), DC_ERR_FORMAT);
    if (!strstr(err.msg, path) || !strstr(err.msg, why))
        fail_msg("expected '%s' and '%s' in: %s", path, why, err.msg);
}

static void write_pgm(const char *path, int w, int h, size_t pixel_bytes) {
    char head[64];
    int n = snprintf(head, sizeof head, "P5\n%d %d\n255\n", w, h);
    unsigned char *buf = calloc(1, (size_t)n + pixel_bytes + 1);
    memcpy(buf, head, (size_t)n);
    for (size_t i = 0; i < pixel_bytes; i++) buf[n + i] = (unsigned char)gray_pattern((int)i, 0);
    write_bytes(path, buf, (size_t)n + pixel_bytes);
    free(buf);
}

/* Issue 14.1: a 32x0 PGM read the resize's source out of bounds; a zero side is refused,
 * alone and in a folder (one warning naming the file). */
static void test_image_zero_dimension_refused(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-zero");
    char *zero = path_in(dir, "flat.pgm");
    write_pgm(zero, 32, 0, 0);
    expect_refused(zero, "zero dimension (32x0)");
    write_pgm(path_in(dir, "good.pgm"), 4, 4, 16);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    stderr_capture cap;
    capture_begin(&cap, dir);
    dc_status s = dc_dataset_load_folder(dir, 4, 1, &ds, &err);
    char *warnings = capture_end(&cap);
    assert_int_equal(s, DC_OK);
    assert_int_equal(ds->n, 1);
    assert_string_equal(ds->names[0], "good.pgm");
    for (int i = 0; i < 16; i++) assert_float_equal(ds->images[i], pm1(gray_pattern(i, 0)), 0);
    assert_non_null(strstr(warnings, "flat.pgm"));
    assert_non_null(strstr(warnings, "zero dimension"));
    assert_null(strchr(strchr(warnings, '\n') + 1, '\n')); /* one line */
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

/* A JPEG whose DHT segment declares `codes` Huffman codes (16 code counts of codes / 16,
 * the rest on the last length) between SOI and EOI. */
static size_t crafted_jpeg_dht(unsigned char *buf, int codes) {
    size_t n = 0;
    buf[n++] = 0xFF, buf[n++] = 0xD8;
    buf[n++] = 0xFF, buf[n++] = 0xC4;
    size_t len = 2 + 17 + (size_t)codes;
    buf[n++] = (unsigned char)(len >> 8), buf[n++] = (unsigned char)len;
    buf[n++] = 0x00; /* DC table 0 */
    for (int i = 0; i < 16; i++) buf[n++] = (unsigned char)(codes / 16 + (i == 15 ? codes % 16 : 0));
    for (int i = 0; i < codes; i++) buf[n++] = (unsigned char)i;
    buf[n++] = 0xFF, buf[n++] = 0xD9;
    return n;
}

/* Issue 14.2: stb_image 2.27 writes past its 257-entry code-size table
 * (stbi__build_huffman) for a table of more than 256 codes; such a table is refused
 * before stb sees it. A table of 256 codes passes the check (stb then reports the missing
 * frame header, as a header stb_image does not take). */
static void test_jpeg_huffman_table_overflow_refused(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-dht");
    unsigned char buf[1024];
    char *bad = path_in(dir, "dht272.jpg");
    write_bytes(bad, buf, crafted_jpeg_dht(buf, 272));
    expect_refused(bad, "declares 272 codes (at most 256)");
    char *ok = path_in(dir, "dht256.jpg");
    write_bytes(ok, buf, crafted_jpeg_dht(buf, 256));
    expect_refused(ok, "corrupt or unsupported header");

    /* A segment length that runs past the end of the file. */
    size_t n = crafted_jpeg_dht(buf, 16);
    buf[4] = 0x40;
    char *longseg = path_in(dir, "longseg.jpg");
    write_bytes(longseg, buf, n);
    expect_refused(longseg, "truncated JPEG");
    buf[4] = 0, buf[5] = 1; /* length 1: shorter than its own length field */
    write_bytes(longseg, buf, n);
    expect_refused(longseg, "has length 1 (at least 2)");
    remove_tmpdir(dir);
}

/* A scan that decodes with a Huffman table no DHT defined: stb_image 2.27 reads that table
 * from uninitialised memory (a fuzzer-found assertion in stbi__jpeg_huff_decode). The
 * committed seed JPEG loads; with its scan pointed at tables 3 it is refused by name. */
static void test_jpeg_undefined_huffman_table_refused(void **state) {
    (void)state;
    char seed[1024];
    snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus_image/gray.jpg", tu_source_dir());
    const size_t n = file_size(seed);
    unsigned char *buf = malloc(n);
    FILE *f = fopen(seed, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, n, f), n);
    fclose(f);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < n && !sos; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xDA) sos = i;
    assert_true(sos > 0 && sos + 7 < n);
    char *dir = data_tmpdir("data-sos");
    char *bad = path_in(dir, "undefined_tables.jpg");
    dc_error err = {0};
    float dst[8 * 8];
    write_bytes(bad, buf, n);
    assert_int_equal(dc_image_read(bad, 8, 1, dst, &err), DC_OK); /* the seed as it is */
    buf[sos + 6] = 0x03; /* component 1: DC table 0, AC table 3 */
    write_bytes(bad, buf, n);
    expect_refused(bad, "decodes with AC Huffman table 3, which no table segment defined");
    buf[sos + 6] = 0x30; /* DC table 3, AC table 0 */
    write_bytes(bad, buf, n);
    expect_refused(bad, "decodes with DC Huffman table 3, which no table segment defined");
    free(buf);
    remove_tmpdir(dir);
}

static void write_cut(const char *src, const char *dst, size_t keep) {
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    unsigned char *buf = malloc(keep);
    assert_int_equal(fread(buf, 1, keep, f), keep);
    fclose(f);
    write_bytes(dst, buf, keep);
    free(buf);
}

/* Issue 14.3: truncated files loaded silently with zero-filled pixels. Each accepted
 * format is written whole (it loads pixel-exact) and cut (it is refused as truncated);
 * in a folder each cut file costs one warning and the whole files load. */
static void test_truncated_images_refused(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-cut");
    char *whole = data_tmpdir("data-whole");
    const int w = 7, h = 5;
    unsigned char gray[7 * 5];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) gray[y * w + x] = (unsigned char)gray_pattern(x, y);
    assert_true(stbi_write_png(path_in(whole, "a.png"), w, h, 1, gray, w));
    assert_true(stbi_write_bmp(path_in(whole, "b.bmp"), w, h, 1, gray));
    stbi_write_tga_with_rle = 0;
    assert_true(stbi_write_tga(path_in(whole, "c.tga"), w, h, 1, gray));
    stbi_write_tga_with_rle = 1;
    assert_true(stbi_write_tga(path_in(whole, "d_rle.tga"), w, h, 1, gray));
    /* stb_image_write's JPEG encoder shifts a negative int (UBSan): the fuzz seed instead */
    char seed[1024];
    snprintf(seed, sizeof seed, "%s/tests/fuzz/corpus_image/gray.jpg", tu_source_dir());
    write_cut(seed, path_in(whole, "e.jpg"), file_size(seed));
    char head[32];
    int hn = snprintf(head, sizeof head, "P5\n%d %d\n255\n", w, h);
    unsigned char pgm[64];
    memcpy(pgm, head, (size_t)hn);
    memcpy(pgm + hn, gray, sizeof gray);
    write_bytes(path_in(whole, "f.pgm"), pgm, (size_t)hn + sizeof gray);

    static const char *const names[] = {"a.png", "b.bmp", "c.tga", "d_rle.tga", "e.jpg", "f.pgm"};
    static const char *const formats[] = {"PNG", "BMP", "TGA", "TGA", "JPEG", "PGM"};
    for (size_t i = 0; i < (sizeof names / sizeof names[0]); i++) {
        float img[7 * 7];
        dc_error err = {0};
        assert_int_equal(dc_image_read(path_in(whole, names[i]), 7, 1, img, &err), DC_OK);
        if (strcmp(names[i], "e.jpg") != 0) /* lossless formats: exact pixels (row 1 of 7) */
            for (int x = 0; x < w; x++) assert_float_equal(img[1 * 7 + x], pm1(gray_pattern(x, 0)), 0);
        size_t size = file_size(path_in(whole, names[i]));
        write_cut(path_in(whole, names[i]), path_in(dir, names[i]), size - 4); /* BMP rows end in 3 padding bytes */
        char why[64];
        snprintf(why, sizeof why, "truncated %s", formats[i]);
        expect_refused(path_in(dir, names[i]), why);
    }
    /* The 93-byte TGA of the issue: a header promising 65280x224 RGB pixels. */
    unsigned char tga[93] = {0, 0, 2};
    tga[12] = 0x00, tga[13] = 0xFF, tga[14] = 224, tga[16] = 24;
    write_bytes(path_in(dir, "g.tga"), tga, sizeof tga);
    expect_refused(path_in(dir, "g.tga"), "truncated TGA file: its header needs at least 43868178 bytes but the file has 93");

    write_cut(path_in(whole, "a.png"), path_in(dir, "whole.png"), file_size(path_in(whole, "a.png")));
    dc_error err = {0};
    dc_dataset *ds = NULL;
    stderr_capture cap;
    capture_begin(&cap, whole);
    dc_status s = dc_dataset_load_folder(dir, 7, 1, &ds, &err);
    char *warnings = capture_end(&cap);
    assert_int_equal(s, DC_OK);
    assert_int_equal(ds->n, 1);
    assert_string_equal(ds->names[0], "whole.png");
    int lines = 0;
    for (const char *c = warnings; *c; c++) lines += *c == '\n';
    assert_int_equal(lines, (int)(sizeof names / sizeof names[0]) + 1);
    for (size_t i = 0; i < (sizeof names / sizeof names[0]); i++) assert_non_null(strstr(warnings, names[i]));
    dc_dataset_free(ds);

    /* Formats that cannot be checked are refused with the list of accepted ones. */
    write_bytes(path_in(dir, "h.gif"), "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
    expect_refused(path_in(dir, "h.gif"), "GIF images are not accepted (accepted: PNG, JPEG");
    unsigned char rle_bmp[64] = {'B', 'M'};
    rle_bmp[10] = 54, rle_bmp[14] = 40, rle_bmp[18] = 2, rle_bmp[22] = 2, rle_bmp[26] = 1;
    rle_bmp[28] = 8, rle_bmp[30] = 1;
    write_bytes(path_in(dir, "i.bmp"), rle_bmp, sizeof rle_bmp);
    expect_refused(path_in(dir, "i.bmp"), "run-length compressed");
    remove_tmpdir(whole);
    remove_tmpdir(dir);
}

/* A PNG of just IHDR and IEND claiming w x h gray pixels (CRCs are not read). */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h) {
    unsigned char png[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    write_be32(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    write_be32(png + 16, w);
    write_be32(png + 20, h);
    png[24] = 8; /* bit depth; colour type 0 (gray) */
    memcpy(png + 33 + 4, "IEND", 4);
    write_bytes(path, png, sizeof png);
}

/* Issue 14.4: no cap on the decoded size. The header's size is checked against the cap
 * before decoding: the default refuses a 32000x32000 PNG header at once, a set cap
 * refuses a real image one pixel over it and accepts it at the cap. */
static void test_image_pixel_cap(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-cap");
    char *huge = path_in(dir, "huge.png");
    write_png_header_only(huge, 32000, 32000);
    expect_refused(huge, "32000x32000 = 1024000000 pixels, over the limit of 67108864");

    char *p = path_in(dir, "img.png");
    write_gray_png(p, 30, 20);
    float dst[8 * 8];
    dc_error err = {0};
    dc_load_options opts = {.max_image_pixels = 599};
    assert_int_equal(dc_image_read_opts(p, 8, 1, &opts, dst, &err), DC_ERR_FORMAT);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "30x20 = 600 pixels, over the limit of 599"));
    opts.max_image_pixels = 600;
    assert_int_equal(dc_image_read_opts(p, 8, 1, &opts, dst, &err), DC_OK);

    /* In a folder through the path entry point: skipped with a warning, the rest loads. */
    write_gray_png(path_in(dir, "small.png"), 10, 10);
    remove(huge);
    opts.max_image_pixels = 100;
    dc_dataset *ds = NULL;
    stderr_capture cap;
    capture_begin(&cap, dir);
    dc_status s = dc_dataset_load_path_opts(dir, 8, 1, &opts, &ds, &err);
    char *warnings = capture_end(&cap);
    assert_int_equal(s, DC_OK);
    assert_int_equal(ds->n, 1);
    assert_string_equal(ds->names[0], "small.png");
    assert_non_null(strstr(warnings, "img.png"));
    assert_non_null(strstr(warnings, "over the limit of 100"));
    dc_dataset_free(ds);
    remove_tmpdir(dir);
}

/* Issue 14 (smaller): stb's failure codes reach the user in plain words. */
static void test_decoder_reasons_in_plain_words(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-why");
    char *p = path_in(dir, "zlib.png");
    write_gray_png(p, 8, 8);
    size_t n = file_size(p);
    unsigned char *buf = malloc(n);
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(buf, 1, n, f), n);
    fclose(f);
    /* the IDAT's zlib header (after signature, IHDR chunk and the IDAT's length + type) */
    size_t idat = 8 + 25;
    assert_memory_equal(buf + idat + 4, "IDAT", 4);
    buf[idat + 8] = 0x0F, buf[idat + 9] = 0x0F;
    write_bytes(p, buf, n);
    free(buf);
    expect_refused(p, "cannot decode the PNG image: the compressed image data is corrupt");
    float dst[3 * 8 * 8];
    dc_error err = {0};
    assert_int_equal(dc_image_read(p, 8, 3, dst, &err), DC_ERR_FORMAT);
    assert_null(strstr(err.msg, "zlib header"));

    /* a header-only PNG: stb's "no IDAT" is reported as missing data */
    char *q = path_in(dir, "noidat.png");
    write_png_header_only(q, 4, 4);
    expect_refused(q, "no image data");
    remove_tmpdir(dir);
}

/* Issue 14 (smaller): a .gz with a bad CRC read as "truncated ... holds only 0". */
static void test_idx_corrupt_gz_crc(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-crc");
    char *p = path_in(dir, "bad-images-idx3-ubyte.gz");
    write_idx_images(p, 0x00000803, 5, 4, 4, 1);
    size_t n = file_size(p);
    unsigned char *buf = malloc(n);
    FILE *f = fopen(p, "rb");
    assert_int_equal(fread(buf, 1, n, f), n);
    fclose(f);
    buf[n - 8] ^= 0x55; /* the gzip trailer: CRC-32, then the length */
    write_bytes(p, buf, n);
    free(buf);
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_idx(p, NULL, 4, 1, &ds, &err), DC_ERR_FORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "corrupt gzip data"));
    assert_non_null(strstr(err.msg, "incorrect data check"));
    assert_null(strstr(err.msg, "truncated"));
    remove_tmpdir(dir);
}

static void test_split_reproducible(void **state) {
    (void)state;
    dc_dataset *ds = numbered_dataset(50);
    dc_error err = {0};
    dc_dataset *tr1, *va1, *tr2, *va2, *tr3, *va3;
    assert_int_equal(dc_dataset_split(ds, 0.2f, 7, &tr1, &va1, &err), DC_OK);
    assert_int_equal(dc_dataset_split(ds, 0.2f, 7, &tr2, &va2, &err), DC_OK);
    assert_int_equal(dc_dataset_split(ds, 0.2f, 8, &tr3, &va3, &err), DC_OK);
    assert_int_equal(va1->n, 10);
    assert_int_equal(tr1->n, 40);
    assert_memory_equal(va1->labels, va2->labels, 10 * sizeof(int32_t));
    assert_memory_equal(tr1->labels, tr2->labels, 40 * sizeof(int32_t));
    assert_true(memcmp(va1->labels, va3->labels, 10 * sizeof(int32_t)) != 0);
    int seen[50] = {0};
    for (int i = 0; i < tr1->n; i++) seen[tr1->labels[i]]++;
    for (int i = 0; i < va1->n; i++) seen[va1->labels[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1); /* disjoint and covering */
    for (int i = 1; i < va1->n; i++) assert_true(va1->labels[i - 1] < va1->labels[i]);
    for (int i = 0; i < va1->n; i++)
        assert_float_equal(dc_dataset_image(va1, i)[3], (float)va1->labels[i], 0);
    dc_dataset_free(tr1);
    dc_dataset_free(va1);
    dc_dataset_free(tr2);
    dc_dataset_free(va2);
    dc_dataset_free(tr3);
    dc_dataset_free(va3);

    assert_int_equal(dc_dataset_split(ds, 0.0f, 1, &tr1, &va1, &err), DC_OK);
    assert_int_equal(tr1->n, 50);
    assert_int_equal(va1->n, 0);
    dc_dataset_free(tr1);
    dc_dataset_free(va1);
    assert_int_equal(dc_dataset_split(ds, 1.0f, 1, &tr1, &va1, &err), DC_ERR_ARG);
    dc_dataset_free(ds);
}

static void test_epoch_permutation_and_batch(void **state) {
    (void)state;
    int32_t a[30], b[30], c[30];
    dc_epoch_permutation(a, 30, 42, 0);
    dc_epoch_permutation(b, 30, 42, 0);
    dc_epoch_permutation(c, 30, 42, 1);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    int seen[30] = {0};
    for (int i = 0; i < 30; i++) seen[a[i]]++;
    for (int i = 0; i < 30; i++) assert_int_equal(seen[i], 1);

    dc_dataset *ds = numbered_dataset(30);
    float images[4 * 4];
    int32_t labels[4];
    dc_error err = {0};
    assert_int_equal(dc_dataset_batch(ds, a, 4, images, labels, &err), DC_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(labels[i], a[i]);
        assert_float_equal(images[i * 4 + 2], (float)a[i], 0);
    }
    int32_t bad[2] = {3, 30};
    assert_int_equal(dc_dataset_batch(ds, bad, 2, images, labels, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "30"));
    dc_dataset_free(ds);
    dc_dataset_free(NULL);
}

/* ---------------------------------------------------------- augmentation */

static void test_augment_identity_and_seeded(void **state) {
    (void)state;
    enum { C = 3, H = 12, W = 10 };
    float src[C * H * W], out1[C * H * W], out2[C * H * W];
    dc_rng rng;
    dc_rng_seed(&rng, 1);
    tu_fill_uniform(src, C * H * W, &rng, -1, 1);

    dc_augment_config cfg;
    dc_augment_config_identity(&cfg);
    assert_int_equal(dc_augment_config_check(&cfg, NULL), DC_OK);
    dc_augment_image(src, out1, C, H, W, &cfg, &rng);
    assert_memory_equal(src, out1, sizeof src);

    cfg.hflip_prob = 0.5f;
    cfg.max_translate = 2.5f;
    cfg.scale_min = 0.8f;
    cfg.scale_max = 1.2f;
    cfg.max_rotate_deg = 15.0f;
    cfg.fill = 1.0f;
    assert_int_equal(dc_augment_config_check(&cfg, NULL), DC_OK);
    dc_rng r1, r2;
    dc_rng_seed(&r1, 99);
    dc_rng_seed(&r2, 99);
    dc_augment_image(src, out1, C, H, W, &cfg, &r1);
    dc_augment_image(src, out2, C, H, W, &cfg, &r2);
    assert_memory_equal(out1, out2, sizeof out1);
    assert_true(memcmp(out1, src, sizeof src) != 0);
    for (int i = 0; i < C * H * W; i++) assert_true(out1[i] >= -1.0f && out1[i] <= 1.0f);

    cfg.scale_min = -1.0f;
    dc_error err = {0};
    assert_int_equal(dc_augment_config_check(&cfg, &err), DC_ERR_ARG);
    assert_non_null(strstr(err.msg, "scale"));
}

static void test_augment_hflip_and_fill(void **state) {
    (void)state;
    enum { C = 2, H = 5, W = 7 };
    float src[C * H * W], out[C * H * W];
    for (int i = 0; i < C * H * W; i++) src[i] = (float)i / (C * H * W);
    dc_augment_config cfg;
    dc_augment_config_identity(&cfg);
    cfg.hflip_prob = 1.0f;
    dc_rng rng;
    dc_rng_seed(&rng, 3);
    dc_augment_image(src, out, C, H, W, &cfg, &rng);
    for (int ch = 0; ch < C; ch++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                assert_true(out[(ch * H + y) * W + x] == src[(ch * H + y) * W + (W - 1 - x)]);

    /* the parameters a conditioned model reads: a flip only is (1, 0, 0, 0, 0); the
     * identity all zeros; a fixed scale 0.5 gives log(0.5) */
    float params[DC_AUGMENT_PARAMS];
    dc_augment_image_params(src, out, C, H, W, &cfg, &rng, params);
    assert_true(params[0] == 1.0f && params[1] == 0.0f && params[2] == 0.0f &&
                params[3] == 0.0f && params[4] == 0.0f);
    dc_augment_config_identity(&cfg);
    dc_augment_image_params(src, out, C, H, W, &cfg, &rng, params);
    for (int i = 0; i < DC_AUGMENT_PARAMS; i++) assert_true(params[i] == 0.0f);
    assert_memory_equal(out, src, sizeof src);
    cfg.scale_min = cfg.scale_max = 0.5f;
    dc_augment_image_params(src, out, C, H, W, &cfg, &rng, params);
    assert_float_equal(params[3], log(0.5), 1e-6);

    /* geometric_prob: the share of draws that shift/scale/rotate follows it, and the others
     * are pixel-exact (flip only: here none) */
    dc_augment_config_identity(&cfg);
    cfg.max_translate = 1.5f;
    cfg.max_rotate_deg = 10.0f;
    cfg.geometric_prob = 0.25f;
    int exact = 0;
    for (int k = 0; k < 4000; k++) {
        dc_augment_image_params(src, out, C, H, W, &cfg, &rng, params);
        const int none = params[1] == 0.0f && params[2] == 0.0f && params[4] == 0.0f;
        if (none) {
            exact++;
            assert_memory_equal(out, src, sizeof src);
        }
    }
    if (fabs(exact / 4000.0 - 0.75) > 0.03) fail_msg("%d of 4000 draws unaugmented, expected 3000", exact);
    cfg.geometric_prob = 1.5f;
    assert_int_equal(dc_augment_config_check(&cfg, NULL), DC_ERR_ARG);

    /* Shrinking to half leaves the corners outside the source: they read the fill. */
    dc_augment_config_identity(&cfg);
    cfg.scale_min = cfg.scale_max = 0.5f;
    cfg.fill = -0.25f;
    dc_augment_image(src, out, C, H, W, &cfg, &rng);
    assert_true(out[0] == -0.25f);
    assert_true(out[C * H * W - 1] == -0.25f);
}

/* Augmenting at 2x the size (dc_augment_config.fine) and filtering down: an identity draw
 * copies the image, a flip alone equals the flipped image (the loader's filter is
 * symmetric), and the full augmentation keeps the guns' edges nearly as sharp as the
 * data's, where resampling at the size itself blurs them (the figure the samples of a
 * model trained on them inherit). */
static void test_augment_fine(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/assets/guns", tu_source_dir());
    dc_error err = {0};
    dc_dataset *small = NULL, *fine = NULL, *odd = NULL;
    if (dc_dataset_load_folder(dir, 32, 1, &small, &err) != DC_OK ||
        dc_dataset_load_folder(dir, 64, 1, &fine, &err) != DC_OK ||
        dc_dataset_load_folder(dir, 48, 1, &odd, &err) != DC_OK)
        fail_msg("%s", err.msg);
    enum { S = 32, P = S * S, REP = 8 };
    const int n = small->n * REP;
    float *a = malloc(sizeof(float) * (size_t)n * P), *b = malloc(sizeof(float) * (size_t)n * P);
    float params[DC_AUGMENT_PARAMS];
    dc_rng rng;
    dc_rng_seed(&rng, 5);
    dc_augment_config cfg;
    dc_augment_config_identity(&cfg);
    cfg.fine = fine;
    assert_int_equal(dc_augment_image_fine(dc_dataset_image(small, 3), dc_dataset_image(fine, 3),
                                           a, 1, S, &cfg, &rng, params, &err),
                     DC_OK);
    assert_memory_equal(a, dc_dataset_image(small, 3), sizeof(float) * P);
    for (int k = 0; k < DC_AUGMENT_PARAMS; k++) assert_true(params[k] == 0.0f);
    cfg.hflip_prob = 1.0f;
    for (int i = 0; i < small->n; i++) {
        const float *src = dc_dataset_image(small, i);
        assert_int_equal(dc_augment_image_fine(src, dc_dataset_image(fine, i), a, 1, S, &cfg,
                                               &rng, params, &err),
                         DC_OK);
        assert_true(params[0] == 1.0f);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                if (fabsf(a[y * S + x] - src[y * S + S - 1 - x]) > 1e-5f)
                    fail_msg("gun %d: flipped at 2x differs from the flipped image at (%d, %d): "
                             "%g vs %g",
                             i, x, y, (double)a[y * S + x], (double)src[y * S + S - 1 - x]);
    }
    /* the defaults of augmented training: both ways draw the same transforms */
    cfg.hflip_prob = 0.5f;
    cfg.max_translate = 2.0f;
    cfg.scale_min = 0.9f;
    cfg.scale_max = 1.1f;
    cfg.max_rotate_deg = 8.0f;
    dc_rng r1, r2;
    dc_rng_seed(&r1, 9);
    dc_rng_seed(&r2, 9);
    float p2[DC_AUGMENT_PARAMS];
    for (int i = 0; i < n; i++) {
        const int item = i % small->n;
        assert_int_equal(dc_augment_image_fine(dc_dataset_image(small, item),
                                               dc_dataset_image(fine, item), a + (size_t)i * P,
                                               1, S, &cfg, &r1, params, &err),
                         DC_OK);
        dc_augment_image_params(dc_dataset_image(small, item), b + (size_t)i * P, 1, S, S, &cfg,
                                &r2, p2);
        assert_memory_equal(params, p2, sizeof params);
    }
    dc_silhouette_figures data, at_fine, at_size;
    assert_int_equal(dc_silhouette_figures_compute(small->images, small->n, 1, S, S, &data, &err),
                     DC_OK);
    assert_int_equal(dc_silhouette_figures_compute(a, n, 1, S, S, &at_fine, &err), DC_OK);
    assert_int_equal(dc_silhouette_figures_compute(b, n, 1, S, S, &at_size, &err), DC_OK);
    /* measured: data 0.51, at 2x 0.47, at the size 0.38 */
    if (!(at_fine.edge_sharpness > 0.9 * data.edge_sharpness &&
          at_size.edge_sharpness < 0.8 * data.edge_sharpness))
        fail_msg("edge sharpness: data %.3f, augmented at 2x %.3f, at the size %.3f",
                 data.edge_sharpness, at_fine.edge_sharpness, at_size.edge_sharpness);
    /* a fine copy that is not a multiple of the size */
    cfg.fine = odd;
    assert_int_equal(dc_augment_image_fine(dc_dataset_image(small, 0), dc_dataset_image(odd, 0),
                                           a, 1, S, &cfg, &r1, params, &err),
                     DC_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "48x48"));
    free(a), free(b);
    dc_dataset_free(small), dc_dataset_free(fine), dc_dataset_free(odd);
}

/* ------------------------------------------------------------ PNG output */

static void test_png_write_roundtrip_and_grid(void **state) {
    (void)state;
    char *dir = data_tmpdir("data-png");
    enum { H = 4, W = 5 };
    float gray[H * W], rgb[3 * H * W];
    for (int i = 0; i < H * W; i++) gray[i] = pm1(i * 12);
    for (int i = 0; i < 3 * H * W; i++) rgb[i] = (float)(i % 11) / 10.0f;
    dc_error err = {0};
    char *p = path_in(dir, "gray.png");
    assert_int_equal(dc_image_write_png(p, gray, 1, H, W, DC_RANGE_PM1, &err), DC_OK);
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 0);
    assert_non_null(px);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    assert_int_equal(comp, 1);
    for (int i = 0; i < H * W; i++) assert_int_equal(px[i], i * 12);
    stbi_image_free(px);
    assert_int_equal(access(path_in(dir, "gray.png.tmp"), F_OK), -1);

    p = path_in(dir, "rgb.png");
    assert_int_equal(dc_image_write_png(p, rgb, 3, H, W, DC_RANGE_01, &err), DC_OK);
    px = stbi_load(p, &w, &h, &comp, 0);
    assert_int_equal(comp, 3);
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < H * W; i++)
            assert_int_equal(px[i * 3 + ch], (int)(rgb[ch * H * W + i] * 255.0f + 0.5f));
    stbi_image_free(px);

    /* 5 gray images in an automatic grid: 3 columns, 2 rows, 2-pixel gray separators. */
    float five[5 * H * W];
    for (int n = 0; n < 5; n++)
        for (int i = 0; i < H * W; i++) five[n * H * W + i] = n % 2 ? 1.0f : -1.0f;
    p = path_in(dir, "grid.png");
    assert_int_equal(dc_image_write_grid(p, five, 5, 1, H, W, 0, 0, DC_RANGE_PM1, &err), DC_OK);
    px = stbi_load(p, &w, &h, &comp, 0);
    assert_int_equal(w, 3 * (W + 2) + 2);
    assert_int_equal(h, 2 * (H + 2) + 2);
    assert_int_equal(px[0], DC_GRID_SEPARATOR_GRAY);
    assert_int_equal(px[2 * w + 2], 0);                 /* image 0, top-left */
    assert_int_equal(px[2 * w + 2 + (W + 2)], 255);     /* image 1 */
    assert_int_equal(px[(2 + H + 2) * w + 2], 255);           /* image 3: row 1, column 0 */
    assert_int_equal(px[(2 + H + 2) * w + 2 + (W + 2)], 0);   /* image 4 */
    assert_int_equal(px[(h - 3) * w + (w - 3)], DC_GRID_SEPARATOR_GRAY); /* empty cell */
    stbi_image_free(px);
    assert_int_equal(dc_image_write_grid(p, five, 5, 1, H, W, 2, 2, DC_RANGE_PM1, &err),
                     DC_ERR_ARG);

    /* A write into a missing folder names the file. */
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.png", dir);
    assert_int_equal(dc_image_write_png(missing, gray, 1, H, W, DC_RANGE_PM1, &err), DC_ERR_IO);
    assert_non_null(strstr(err.msg, "no/such/dir/x.png"));
    remove_tmpdir(dir);
}

static void test_colormap_and_heatmap(void **state) {
    (void)state;
    float prev = -1.0f, rgb[3];
    for (int i = 0; i <= 100; i++) {
        dc_colormap((float)i / 100.0f, rgb);
        float lum = 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2];
        assert_true(lum > prev);
        prev = lum;
        for (int ch = 0; ch < 3; ch++) assert_true(rgb[ch] >= 0.0f && rgb[ch] <= 1.0f);
    }
    dc_colormap(0.0f, rgb);
    assert_true(rgb[0] + rgb[1] + rgb[2] < 0.05f); /* dark end */
    dc_colormap(1.0f, rgb);
    assert_true(rgb[0] > 0.9f && rgb[1] > 0.9f); /* bright end */

    enum { H = 6, W = 6 };
    float image[H * W], heat[H * W], out[3 * H * W];
    for (int i = 0; i < H * W; i++) {
        image[i] = 1.0f;
        heat[i] = (float)i;
    }
    dc_error err = {0};
    assert_int_equal(dc_heatmap_overlay(image, 1, H, W, DC_RANGE_PM1, heat, 0.0f, out, &err),
                     DC_OK);
    for (int i = 0; i < 3 * H * W; i++) assert_float_equal(out[i], 1.0f, 1e-6);
    assert_int_equal(dc_heatmap_overlay(NULL, 1, H, W, DC_RANGE_PM1, heat, 0.5f, out, &err),
                     DC_OK);
    dc_colormap(1.0f, rgb);
    assert_float_equal(out[H * W - 1], rgb[0], 1e-6); /* the hottest pixel, red plane */
    char *dir = data_tmpdir("data-heat");
    char *p = path_in(dir, "heat.png");
    assert_int_equal(dc_image_write_heatmap(p, image, 1, H, W, DC_RANGE_PM1, heat, 0.6f, &err),
                     DC_OK);
    int w, h, comp;
    unsigned char *px = stbi_load(p, &w, &h, &comp, 0);
    assert_non_null(px);
    assert_int_equal(comp, 3);
    assert_int_equal(w, W);
    stbi_image_free(px);
    remove_tmpdir(dir);
}

/* ---------------------------------------------------------- real datasets */

static void test_fashion_mnist_test_set(void **state) {
    (void)state;
    if (access(DC_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        TU_SKIP_OR_FAIL("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
    dc_error err = {0};
    dc_dataset *ds = NULL;
    assert_int_equal(dc_dataset_load_path("fashion-mnist:test", 0, 1, &ds, &err), DC_OK);
    assert_int_equal(ds->n, 10000);
    assert_int_equal(ds->h, 28);
    assert_int_equal(ds->w, 28);
    assert_int_equal(ds->n_classes, 10);
    for (int i = 0; i < ds->n; i++) assert_true(ds->labels[i] >= 0 && ds->labels[i] <= 9);
    assert_int_equal(ds->labels[0], 9);
    assert_string_equal(ds->class_names[ds->labels[0]], "Ankle boot");
    for (size_t i = 0; i < (size_t)ds->n * 784; i++)
        assert_true(ds->images[i] >= -1.0f && ds->images[i] <= 1.0f);
    dc_dataset_free(ds);
    assert_int_equal(dc_dataset_load_path("fashion-mnist:valid", 0, 1, &ds, &err), DC_ERR_ARG);
}

static void test_guns_assets(void **state) {
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/assets/guns", tu_source_dir());
    dc_error err = {0};
    dc_dataset *ds = NULL;
    dc_status s = dc_dataset_load_folder(dir, 64, 1, &ds, &err);
    if (s != DC_OK) fail_msg("%s", err.msg);
    assert_int_equal(ds->n, 26);
    assert_int_equal(ds->c, 1);
    assert_int_equal(ds->h, 64);
    assert_int_equal(ds->w, 64);
    assert_null(ds->labels);
    assert_string_equal(ds->names[0], "ak47.png");
    assert_string_equal(ds->names[25], "winchester-rifle.png");
    /* Black shapes on white: corners white, some black in every image. */
    for (int i = 0; i < ds->n; i++) {
        const float *im = dc_dataset_image(ds, i);
        assert_float_equal(im[0], 1.0f, 1e-6);
        int dark = 0;
        for (int k = 0; k < 64 * 64; k++) dark += im[k] < 0.0f;
        assert_true(dark > 64 && dark < 64 * 64 / 2);
    }
    dc_dataset_free(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_pixels_exact),
        cmocka_unit_test(test_folder_resize_constant),
        cmocka_unit_test(test_folder_fit_pads_with_border),
        cmocka_unit_test(test_folder_skips_bad_files),
        cmocka_unit_test(test_folder_errors_name_the_folder),
        cmocka_unit_test(test_folder_with_classes),
        cmocka_unit_test(test_folder_nested_class_folders),
        cmocka_unit_test(test_detect_channels),
        cmocka_unit_test(test_jpeg_exif_orientation),
        cmocka_unit_test(test_idx_plain_and_gz),
        cmocka_unit_test(test_idx_bad_magic),
        cmocka_unit_test(test_idx_truncated_gz),
        cmocka_unit_test(test_idx_label_count_mismatch),
        cmocka_unit_test(test_image_zero_dimension_refused),
        cmocka_unit_test(test_jpeg_huffman_table_overflow_refused),
        cmocka_unit_test(test_jpeg_undefined_huffman_table_refused),
        cmocka_unit_test(test_truncated_images_refused),
        cmocka_unit_test(test_image_pixel_cap),
        cmocka_unit_test(test_decoder_reasons_in_plain_words),
        cmocka_unit_test(test_idx_corrupt_gz_crc),
        cmocka_unit_test(test_split_reproducible),
        cmocka_unit_test(test_epoch_permutation_and_batch),
        cmocka_unit_test(test_augment_identity_and_seeded),
        cmocka_unit_test(test_augment_hflip_and_fill),
        cmocka_unit_test(test_augment_fine),
        cmocka_unit_test(test_png_write_roundtrip_and_grid),
        cmocka_unit_test(test_colormap_and_heatmap),
        cmocka_unit_test(test_fashion_mnist_test_set),
        cmocka_unit_test(test_guns_assets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
