/* PNG output: single images, grids and colour-mapped heatmaps (stb_image_write), written
 * atomically (dc_write_file_atomic: a unique temp file renamed into place). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "deconv/image.h"
#include "deconv/report.h"
#include "internal.h"

/* Static so that no other file of the library or a program linking it can clash. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO /* we do the file I/O, to report errno and write atomically */
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* Declared-but-undefined static stb functions are reported at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

/* ------------------------------------------------------------ file output */

typedef struct byte_buffer {
    unsigned char *data;
    size_t len, cap;
    int failed;
} byte_buffer;

static void append_bytes(void *context, void *data, int size) {
    byte_buffer *b = context;
    if (b->failed || size <= 0) return;
    if (b->len + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)size) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, (size_t)size);
    b->len += (size_t)size;
}

/* Interleaved 8-bit pixels (comp 1 or 3) to a PNG file. */
static dc_status write_png_pixels(const char *path, const unsigned char *px, int w, int h,
                                  int comp, dc_error *err) {
    byte_buffer b = {0};
    int ok = stbi_write_png_to_func(append_bytes, &b, w, h, comp, px, w * comp);
    dc_status s = DC_OK;
    if (!ok || b.failed)
        s = dc_set_error(err, DC_ERR_OOM, "cannot encode %s (%dx%d, %d channels)", path, w, h,
                         comp);
    else
        s = dc_write_file_atomic(path, b.data, b.len, err);
    free(b.data);
    return s;
}

/* ----------------------------------------------------------- conversions */

static float to_unit(float v, dc_image_range range) {
    float u = range == DC_RANGE_PM1 ? 0.5f * (v + 1.0f) : v;
    if (!(u > 0.0f)) return 0.0f; /* also NaN */
    return u > 1.0f ? 1.0f : u;
}

static unsigned char unit_to_byte(float u) { return (unsigned char)(u * 255.0f + 0.5f); }

static dc_status check_image_args(const char *path, const void *data, int c, int h, int w,
                                  dc_error *err) {
    if (!path || !data) return dc_set_error(err, DC_ERR_ARG, "image write: NULL argument");
    if (c != 1 && c != 3)
        return dc_set_error(err, DC_ERR_ARG, "%s: images must have 1 or 3 channels, got %d",
                            path, c);
    if (h <= 0 || w <= 0 || h > 32768 || w > 32768)
        return dc_set_error(err, DC_ERR_ARG, "%s: bad image size %dx%d", path, w, h);
    return DC_OK;
}

/* CHW floats into an interleaved byte image at (x0, y0) of a canvas `stride` pixels wide. */
static void blit_chw(const float *chw, int c, int h, int w, dc_image_range range,
                     unsigned char *canvas, int stride, int x0, int y0) {
    size_t plane = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *o = canvas + ((size_t)(y0 + y) * (size_t)stride + (size_t)(x0 + x)) * (size_t)c;
            for (int ch = 0; ch < c; ch++)
                o[ch] = unit_to_byte(to_unit(chw[(size_t)ch * plane + (size_t)y * (size_t)w + (size_t)x], range));
        }
}

dc_status dc_image_write_png(const char *path, const float *chw, int c, int h, int w,
                             dc_image_range range, dc_error *err) {
    DC_TRY(check_image_args(path, chw, c, h, w, err));
    unsigned char *px = malloc((size_t)c * (size_t)h * (size_t)w);
    if (!px) return dc_set_error(err, DC_ERR_OOM, "writing %s: out of memory", path);
    blit_chw(chw, c, h, w, range, px, w, 0, 0);
    dc_status s = write_png_pixels(path, px, w, h, c, err);
    free(px);
    return s;
}

/* ------------------------------------------------------------------ grid */

static void grid_shape(int n, int *rows, int *cols) {
    if (*rows <= 0 && *cols <= 0) {
        *cols = (int)ceil(sqrt((double)n));
        if (*cols < 1) *cols = 1;
    }
    if (*cols <= 0) *cols = (n + *rows - 1) / *rows;
    if (*rows <= 0) *rows = (n + *cols - 1) / *cols;
    if (*cols < 1) *cols = 1;
    if (*rows < 1) *rows = 1;
}

dc_status dc_image_write_grid(const char *path, const float *nchw, int n, int c, int h, int w,
                              int rows, int cols, dc_image_range range, dc_error *err) {
    DC_TRY(check_image_args(path, nchw, c, h, w, err));
    if (n <= 0) return dc_set_error(err, DC_ERR_ARG, "%s: grid of %d images", path, n);
    grid_shape(n, &rows, &cols);
    if ((long)rows * cols < n)
        return dc_set_error(err, DC_ERR_ARG, "%s: %d images do not fit a %dx%d grid", path, n,
                            rows, cols);
    const int sep = DC_GRID_SEPARATOR;
    long gw = (long)cols * (w + sep) + sep, gh = (long)rows * (h + sep) + sep;
    if (gw > 32768 || gh > 32768)
        return dc_set_error(err, DC_ERR_ARG, "%s: a %ldx%ld grid is too large", path, gw, gh);
    size_t bytes = (size_t)gw * (size_t)gh * (size_t)c;
    unsigned char *canvas = malloc(bytes);
    if (!canvas) return dc_set_error(err, DC_ERR_OOM, "writing %s: out of memory", path);
    memset(canvas, DC_GRID_SEPARATOR_GRAY, bytes);
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++)
        blit_chw(nchw + (size_t)i * per, c, h, w, range, canvas, (int)gw,
                 sep + (i % cols) * (w + sep), sep + (i / cols) * (h + sep));
    dc_status s = write_png_pixels(path, canvas, (int)gw, (int)gh, c, err);
    free(canvas);
    return s;
}

/* --------------------------------------------------------------- heatmaps */

/* Key colours at t = 0, 1/8, ..., 1, picked so that luminance rises monotonically from
 * black through purple, red and orange to pale yellow; linear interpolation between them. */
static const float colormap_keys[9][3] = {
    {0.000f, 0.000f, 0.016f}, {0.122f, 0.047f, 0.282f}, {0.333f, 0.059f, 0.427f},
    {0.533f, 0.133f, 0.416f}, {0.729f, 0.212f, 0.333f}, {0.890f, 0.349f, 0.200f},
    {0.976f, 0.549f, 0.039f}, {0.976f, 0.788f, 0.196f}, {0.988f, 1.000f, 0.643f},
};

void dc_colormap(float t, float rgb[3]) {
    if (!(t > 0.0f)) t = 0.0f;
    if (t > 1.0f) t = 1.0f;
    float pos = t * 8.0f;
    int k = (int)pos;
    if (k > 7) k = 7;
    float f = pos - (float)k;
    for (int ch = 0; ch < 3; ch++)
        rgb[ch] = (1.0f - f) * colormap_keys[k][ch] + f * colormap_keys[k + 1][ch];
}

static void heat_range(const float *heat, size_t n, float *lo, float *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(heat[i])) continue;
        if (heat[i] < *lo) *lo = heat[i];
        if (heat[i] > *hi) *hi = heat[i];
    }
}

dc_status dc_heatmap_overlay(const float *image, int c, int h, int w, dc_image_range range,
                             const float *heat, float alpha, float *rgb_out, dc_error *err) {
    if (!heat || !rgb_out) return dc_set_error(err, DC_ERR_ARG, "heatmap overlay: NULL argument");
    if (h <= 0 || w <= 0 || (image && c != 1 && c != 3))
        return dc_set_error(err, DC_ERR_ARG, "heatmap overlay: bad image shape [%d, %d, %d]", c,
                            h, w);
    if (!image) alpha = 1.0f;
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return dc_set_error(err, DC_ERR_ARG, "heatmap overlay: alpha %g is outside [0, 1]",
                            (double)alpha);
    size_t plane = (size_t)h * (size_t)w;
    float lo, hi;
    heat_range(heat, plane, &lo, &hi);
    float scale = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    for (size_t i = 0; i < plane; i++) {
        float rgb[3];
        dc_colormap(isfinite(heat[i]) ? (heat[i] - lo) * scale : 0.0f, rgb);
        for (int ch = 0; ch < 3; ch++) {
            float base = image ? to_unit(image[(size_t)(c == 3 ? ch : 0) * plane + i], range) : 0.0f;
            rgb_out[(size_t)ch * plane + i] = (1.0f - alpha) * base + alpha * rgb[ch];
        }
    }
    return DC_OK;
}

dc_status dc_image_write_heatmap(const char *path, const float *image, int c, int h, int w,
                                 dc_image_range range, const float *heat, float alpha,
                                 dc_error *err) {
    if (!path) return dc_set_error(err, DC_ERR_ARG, "heatmap write: NULL path");
    if (h <= 0 || w <= 0) return dc_set_error(err, DC_ERR_ARG, "%s: bad size %dx%d", path, w, h);
    float *rgb = malloc(3 * (size_t)h * (size_t)w * sizeof(float));
    if (!rgb) return dc_set_error(err, DC_ERR_OOM, "writing %s: out of memory", path);
    dc_status s = dc_heatmap_overlay(image, c, h, w, range, heat, alpha, rgb, err);
    if (s != DC_OK) dc_wrap_error(err, s, "%s", path);
    else s = dc_image_write_png(path, rgb, 3, h, w, DC_RANGE_01, err);
    free(rgb);
    return s;
}
