/* IDX files (the MNIST family's format), gzipped or plain through zlib's gz* API, and the
 * dc_dataset_load_path() entry point that picks a loader from a spec string. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data_internal.h"

#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned byte data, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned byte data, 1 dimension */
#define IDX_MAX_SIDE 4096

static const char *const fashion_mnist_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

const char *const *dc_fashion_mnist_class_names(void) { return fashion_mnist_names; }

static uint32_t read_be32(const unsigned char *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

static dc_status open_gz(const char *path, gzFile *out, dc_error *err) {
    errno = 0;
    *out = gzopen(path, "rb");
    if (*out) return DC_OK;
    int e = errno;
    return dc_set_error(err, e == ENOENT ? DC_ERR_NOT_FOUND : DC_ERR_IO, "cannot open %s: %s",
                        path, e ? strerror(e) : "out of memory");
}

/* A short read is a truncated file: say how much was promised, how much was there, and
 * zlib's reason (a cut .gz reports "unexpected end of file"). */
static dc_status truncated_error(gzFile f, const char *path, const char *what, size_t len,
                                 size_t got, dc_error *err) {
    int zerr = Z_OK;
    const char *reason = gzerror(f, &zerr);
    size_t plen = strlen(path); /* zlib prefixes its message with the path: say it once */
    if (!strncmp(reason, path, plen) && !strncmp(reason + plen, ": ", 2)) reason += plen + 2;
    /* Z_BUF_ERROR is zlib's "unexpected end of file": a cut file. Anything else (a bad
     * CRC or length check, invalid deflate data) is damage, whatever was read before. */
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: corrupt gzip data while reading the %s (zlib: %s)", path, what,
                            reason);
    return dc_set_error(err, DC_ERR_FORMAT,
                        "%s: truncated: expected %zu bytes of %s but the file holds only %zu%s%s",
                        path, len, what, got, zerr != Z_OK ? "; zlib: " : "",
                        zerr != Z_OK ? reason : "");
}

/* Up to len bytes into dst; returns how many were read. */
static size_t read_upto(gzFile f, unsigned char *dst, size_t len) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, dst + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

static dc_status read_exact(gzFile f, const char *path, void *dst, size_t len, const char *what,
                            dc_error *err) {
    size_t got = read_upto(f, dst, len);
    return got == len ? DC_OK : truncated_error(f, path, what, len, got, err);
}

/* read_exact into a buffer that grows with the data, so a corrupt header that promises
 * terabytes ends as "truncated", not as a failed giant allocation. */
static dc_status read_growing(gzFile f, const char *path, size_t len, unsigned char **out,
                              dc_error *err) {
    size_t cap = len < ((size_t)1 << 26) ? len : ((size_t)1 << 26), got = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    for (;;) {
        size_t r = read_upto(f, buf + got, cap - got);
        got += r;
        if (got == len) break;
        if (got < cap) {
            free(buf);
            return truncated_error(f, path, "pixels", len, got, err);
        }
        size_t grown_cap = cap > len / 2 ? len : 2 * cap;
        unsigned char *grown = realloc(buf, grown_cap);
        if (!grown) {
            free(buf);
            return dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate %zu bytes", path,
                                grown_cap);
        }
        buf = grown;
        cap = grown_cap;
    }
    *out = buf;
    return DC_OK;
}

static dc_status check_magic(const char *path, uint32_t magic, uint32_t want, dc_error *err) {
    if (magic == want) return DC_OK;
    const char *hint = magic == IDX_MAGIC_LABELS   ? " (this is a labels file)"
                       : magic == IDX_MAGIC_IMAGES ? " (this is an images file)"
                                                   : "";
    return dc_set_error(err, DC_ERR_FORMAT,
                        "%s: not an IDX %s file: magic 0x%08x, expected 0x%08x%s", path,
                        want == IDX_MAGIC_IMAGES ? "images" : "labels", (unsigned)magic,
                        (unsigned)want, hint);
}

#define IDX_IMAGES_HEADER 16

/* The header of an IDX images file, checked: n images of rows x cols bytes. */
static dc_status read_idx_header(gzFile f, const char *path, uint32_t *count, uint32_t *r,
                                 uint32_t *c, dc_error *err) {
    unsigned char hdr[IDX_IMAGES_HEADER] = {0};
    DC_TRY(read_exact(f, path, hdr, sizeof hdr, "header", err));
    DC_TRY(check_magic(path, read_be32(hdr), IDX_MAGIC_IMAGES, err));
    *count = read_be32(hdr + 4), *r = read_be32(hdr + 8), *c = read_be32(hdr + 12);
    if (*count == 0 || *count > INT_MAX || *r == 0 || *c == 0 || *r > IDX_MAX_SIDE ||
        *c > IDX_MAX_SIDE)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: implausible IDX image dimensions [%u, %u, %u] (images, rows, "
                            "cols)",
                            path, (unsigned)*count, (unsigned)*r, (unsigned)*c);
    return DC_OK;
}

/* The header and all pixels of an IDX images file (pixels NULL: read through and
 * dropped, so that a cut or damaged file is found without keeping it). */
static dc_status read_idx_images(const char *path, unsigned char **pixels, int *n, int *rows,
                                 int *cols, dc_error *err) {
    if (pixels) *pixels = NULL;
    gzFile f;
    DC_TRY(open_gz(path, &f, err));
    uint32_t count = 0, r = 0, c = 0;
    dc_status s = read_idx_header(f, path, &count, &r, &c, err);
    if (s == DC_OK && pixels) s = read_growing(f, path, (size_t)count * r * c, pixels, err);
    if (s == DC_OK && !pixels) {
        const size_t len = (size_t)count * r * c;
        size_t got = 0, r_got;
        unsigned char *chunk = malloc((size_t)1 << 20);
        if (!chunk) s = dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
        while (chunk && got < len &&
               (r_got = read_upto(f, chunk, len - got < ((size_t)1 << 20) ? len - got
                                                                          : ((size_t)1 << 20))) > 0)
            got += r_got;
        free(chunk);
        if (s == DC_OK && got != len) s = truncated_error(f, path, "pixels", len, got, err);
    }
    gzclose(f);
    if (s != DC_OK) {
        if (pixels) free(*pixels), *pixels = NULL;
        return s;
    }
    *n = (int)count;
    *rows = (int)r;
    *cols = (int)c;
    return DC_OK;
}

/* Labels of an IDX labels file, which must hold exactly `expect` of them. */
static dc_status read_idx_labels(const char *path, const char *images_path, int expect,
                                 int32_t *labels, int *n_classes, dc_error *err) {
    gzFile f;
    DC_TRY(open_gz(path, &f, err));
    unsigned char hdr[8] = {0};
    unsigned char *raw = NULL;
    dc_status s = read_exact(f, path, hdr, sizeof hdr, "header", err);
    if (s == DC_OK) s = check_magic(path, read_be32(hdr), IDX_MAGIC_LABELS, err);
    if (s == DC_OK && read_be32(hdr + 4) != (uint32_t)expect)
        s = dc_set_error(err, DC_ERR_SHAPE, "%s holds %u labels but %s holds %d images", path,
                         (unsigned)read_be32(hdr + 4), images_path, expect);
    if (s == DC_OK && !(raw = malloc((size_t)expect)))
        s = dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate %d labels", path, expect);
    if (s == DC_OK) s = read_exact(f, path, raw, (size_t)expect, "labels", err);
    gzclose(f);
    int max_label = -1;
    for (int i = 0; s == DC_OK && i < expect; i++) {
        labels[i] = raw[i];
        if (raw[i] > max_label) max_label = raw[i];
    }
    free(raw);
    if (s == DC_OK) *n_classes = max_label + 1;
    return s;
}

/* One IDX image (u8, rows x cols) into dst [channels, size, size]. */
static dc_status convert_idx_image(const unsigned char *px, int rows, int cols, int channels,
                                   int size, float *scratch, float *dst, dc_error *err) {
    size_t plane = (size_t)size * (size_t)size;
    if (rows == size && cols == size) {
        for (size_t i = 0; i < plane; i++) dst[i] = (float)px[i] / 127.5f - 1.0f;
    } else {
        for (size_t i = 0; i < (size_t)rows * (size_t)cols; i++)
            scratch[i] = (float)px[i] / 127.5f - 1.0f;
        DC_TRY(dc_image_fit(scratch, 1, rows, cols, dst, size, err));
    }
    for (int ch = 1; ch < channels; ch++) memcpy(dst + (size_t)ch * plane, dst, plane * sizeof(float));
    return DC_OK;
}

static dc_status fill_idx_images(dc_dataset *ds, const unsigned char *pixels, int rows,
                                 int cols, const char *path, dc_error *err) {
    float *scratch = malloc((size_t)rows * (size_t)cols * sizeof(float));
    if (!scratch) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    dc_status s = DC_OK;
    for (int i = 0; s == DC_OK && i < ds->n; i++)
        s = convert_idx_image(pixels + (size_t)i * (size_t)rows * (size_t)cols, rows, cols,
                              ds->c, ds->h, scratch, dc_dataset_image(ds, i), err);
    free(scratch);
    if (s != DC_OK) return dc_wrap_error(err, s, "%s", path);
    return DC_OK;
}

dc_status dc_idx_decode_records(const char *path, int rows, int cols, int channels, int size,
                                const int32_t *records, int count, float *const *dst,
                                dc_error *err) {
    gzFile f;
    DC_TRY(open_gz(path, &f, err));
    const size_t bytes = (size_t)rows * (size_t)cols;
    unsigned char *px = malloc(bytes);
    float *scratch = malloc(bytes * sizeof(float));
    dc_status s = px && scratch ? DC_OK : dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    for (int k = 0; s == DC_OK && k < count; k++) {
        /* records ascend: every seek goes forward through the stream */
        const z_off_t at = (z_off_t)(IDX_IMAGES_HEADER + (size_t)records[k] * bytes);
        if (gzseek(f, at, SEEK_SET) != at)
            s = truncated_error(f, path, "pixels", bytes, 0, err);
        if (s == DC_OK) s = read_exact(f, path, px, bytes, "pixels", err);
        if (s == DC_OK) s = convert_idx_image(px, rows, cols, channels, size, scratch, dst[k], err);
    }
    gzclose(f);
    free(px);
    free(scratch);
    return s;
}

static dc_status load_idx(const char *images_path, const char *labels_path, int size,
                          int channels, int lazy, dc_dataset **out, dc_error *err) {
    if (!images_path || !out)
        return dc_set_error(err, DC_ERR_ARG, "dc_dataset_load_idx: NULL argument");
    *out = NULL;
    if (channels != 1 && channels != 3)
        return dc_set_error(err, DC_ERR_ARG, "loading %s: channels must be 1 or 3, got %d",
                            images_path, channels);
    /* lazy: the labels and where each image lies; the pixels are decoded when asked
     * (host/data/lazy.c). The file is read through all the same, so that a cut or damaged
     * one is refused here. */
    unsigned char *pixels = NULL;
    int n = 0, rows = 0, cols = 0;
    DC_TRY(read_idx_images(images_path, lazy ? NULL : &pixels, &n, &rows, &cols, err));
    if (size <= 0) size = rows > cols ? rows : cols;
    dc_dataset *ds = NULL;
    dc_status s = dc_dataset_create(lazy ? 0 : n, channels, size, size, labels_path && !lazy,
                                    &ds, err);
    if (s == DC_OK && lazy) {
        ds->n = n;
        s = dc_lazy_create(images_path, rows, cols, n, channels, size, &ds->lazy, err);
        if (s == DC_OK && labels_path && !(ds->labels = calloc((size_t)n, sizeof(int32_t))))
            s = dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate %d labels", labels_path, n);
    } else if (s == DC_OK) {
        s = fill_idx_images(ds, pixels, rows, cols, images_path, err);
    }
    free(pixels);
    if (s == DC_OK && labels_path)
        s = read_idx_labels(labels_path, images_path, n, ds->labels, &ds->n_classes, err);
    if (s != DC_OK) {
        dc_dataset_free(ds);
        return s;
    }
    dc_dataset_set_source(ds, images_path);
    *out = ds;
    return DC_OK;
}

dc_status dc_dataset_load_idx(const char *images_path, const char *labels_path, int size,
                              int channels, dc_dataset **out, dc_error *err) {
    return load_idx(images_path, labels_path, size, channels, 0, out, err);
}

/* ------------------------------------------------------------ load by spec */

static int path_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int path_is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static dc_status load_fashion_mnist(const char *spec, int size, int channels, int lazy,
                                    dc_dataset **out, dc_error *err) {
    const char *part = spec[13] == ':' ? spec + 14 : "train";
    const char *prefix = NULL;
    if (!strcmp(part, "train")) prefix = "train";
    if (!strcmp(part, "test") || !strcmp(part, "t10k")) prefix = "t10k";
    if (!prefix)
        return dc_set_error(err, DC_ERR_ARG,
                            "dataset '%s': unknown part '%s' (use fashion-mnist:train or "
                            "fashion-mnist:test)",
                            spec, part);
    char images[600], labels[600];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", DC_FASHION_MNIST_DIR, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", DC_FASHION_MNIST_DIR, prefix);
    if (!path_is_file(images) || !path_is_file(labels))
        return dc_set_error(err, DC_ERR_NOT_FOUND,
                            "dataset '%s': %s or %s is missing (Debian package "
                            "dataset-fashion-mnist installs them)",
                            spec, images, labels);
    DC_TRY(load_idx(images, labels, size, channels, lazy, out, err));
    dc_dataset_set_source(*out, spec);
    return dc_dataset_set_class_names(*out, 10, fashion_mnist_names, err);
}

/* ".../X-images-idx3-ubyte[.gz]" -> ".../X-labels-idx1-ubyte[.gz]", either compression;
 * returns 0 when no labels file is there. */
/* labels must hold strlen(images_path) + 4 bytes ("images-idx3" -> "labels-idx1" keeps the
 * length; ".gz" may be added). */
static int find_labels_beside(const char *images_path, char *labels, size_t cap) {
    const char *at = strstr(images_path, "images-idx3-ubyte");
    for (const char *next; at && (next = strstr(at + 1, "images-idx3-ubyte")) != NULL;)
        at = next; /* the file name's occurrence, not a folder's */
    if (!at) return 0;
    const char *suffixes[2] = {"", ".gz"};
    if (ends_with(images_path, ".gz")) suffixes[0] = ".gz", suffixes[1] = "";
    for (int i = 0; i < 2; i++) {
        snprintf(labels, cap, "%.*slabels-idx1-ubyte%s", (int)(at - images_path), images_path,
                 suffixes[i]);
        if (path_is_file(labels)) return 1;
    }
    return 0;
}

/* Fashion-MNIST files keep their class names when loaded from a "fashion-mnist" folder. */
static int in_fashion_mnist_folder(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return 0;
    size_t len = (size_t)(slash - path);
    return len >= 13 && !strncmp(slash - 13, "fashion-mnist", 13) &&
           (len == 13 || slash[-14] == '/');
}

static dc_status load_idx_file(const char *path, int size, int channels, int lazy,
                               dc_dataset **out, dc_error *err) {
    const size_t cap = strlen(path) + 8;
    char *labels = malloc(cap);
    if (!labels) return dc_set_error(err, DC_ERR_OOM, "%s: out of memory", path);
    int have_labels = find_labels_beside(path, labels, cap);
    dc_status s =
        load_idx(path, have_labels ? labels : NULL, size, channels, lazy, out, err);
    free(labels);
    if (s == DC_OK && have_labels && in_fashion_mnist_folder(path) && (*out)->n_classes <= 10)
        s = dc_dataset_set_class_names(*out, 10, fashion_mnist_names, err);
    return s;
}

dc_status dc_dataset_load_path(const char *spec, int size, int channels, dc_dataset **out,
                               dc_error *err) {
    return dc_dataset_load_path_opts(spec, size, channels, NULL, out, err);
}

dc_status dc_dataset_load_path_opts(const char *spec, int size, int channels,
                                    const dc_load_options *opts, dc_dataset **out,
                                    dc_error *err) {
    if (!spec || !out) return dc_set_error(err, DC_ERR_ARG, "dc_dataset_load_path: NULL argument");
    *out = NULL;
    if (!strncmp(spec, "fashion-mnist", 13) && (spec[13] == 0 || spec[13] == ':'))
        return load_fashion_mnist(spec, size, channels, opts && opts->lazy, out, err);
    if (path_is_dir(spec))
        return dc_dataset_load_folder_opts(spec, size, channels, opts, out, err);
    if (ends_with(spec, "-images-idx3-ubyte") || ends_with(spec, "-images-idx3-ubyte.gz"))
        return load_idx_file(spec, size, channels, opts && opts->lazy, out, err);
    if (path_is_file(spec))
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: not a dataset; give a folder of images, an IDX images file "
                            "(...-images-idx3-ubyte[.gz]) or fashion-mnist[:train|:test]",
                            spec);
    return dc_set_error(err, DC_ERR_NOT_FOUND,
                        "dataset '%s' not found: no such folder or file (or give "
                        "fashion-mnist[:train|:test])",
                        spec);
}
