/* Atomic file writes and the self-contained HTML report. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconv/image.h"
#include "deconv/report.h"
#include "internal.h"
#include "io/io_internal.h"

#include <stb_easy_font.h>

dc_status dc_write_file_atomic(const char *path, const void *data, size_t len, dc_error *err) {
    dc_atomic_file af;
    DC_TRY(dc_atomic_open(&af, path, err));
    dc_status s = dc_atomic_write(&af, data, len, err);
    if (s == DC_OK) return dc_atomic_commit(&af, err);
    dc_atomic_abort(&af);
    return s;
}

static char *base64_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) {
        fclose(f);
        return NULL;
    }
    unsigned char *raw = malloc((size_t)n + 1);
    if (!raw || fread(raw, 1, (size_t)n, f) != (size_t)n) {
        free(raw);
        fclose(f);
        return NULL;
    }
    fclose(f);
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t m = 4 * (((size_t)n + 2) / 3);
    char *s = malloc(m + 1);
    if (!s) {
        free(raw);
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < (size_t)n; i += 3) {
        unsigned v = raw[i] << 16;
        if (i + 1 < (size_t)n) v |= raw[i + 1] << 8;
        if (i + 2 < (size_t)n) v |= raw[i + 2];
        s[j++] = tab[(v >> 18) & 63];
        s[j++] = tab[(v >> 12) & 63];
        s[j++] = i + 1 < (size_t)n ? tab[(v >> 6) & 63] : '=';
        s[j++] = i + 2 < (size_t)n ? tab[v & 63] : '=';
    }
    s[j] = 0;
    free(raw);
    *out_len = j;
    return s;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }
static void sb_html(sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        case '&': sb_str(b, "&amp;"); break;
        case '"': sb_str(b, "&quot;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

dc_status dc_report_write_html(const char *path, const char *title, const char *summary,
                               const dc_report_image *images, int n_images, dc_error *err) {
    sbuf b = {0};
    sb_str(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    sb_html(&b, title);
    sb_str(&b, "</title>\n<style>body{font-family:sans-serif;margin:2em;background:#fafafa}"
               "img{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}"
               "figure{display:inline-block;margin:1em;vertical-align:top}"
               "pre{background:#fff;border:1px solid #ddd;padding:1em}</style></head><body>\n<h1>");
    sb_html(&b, title);
    sb_str(&b, "</h1>\n<pre>");
    sb_html(&b, summary);
    sb_str(&b, "</pre>\n");
    for (int i = 0; i < n_images; i++) {
        size_t len = 0;
        char *b64 = base64_file(images[i].path, &len);
        if (!b64) continue; /* an image not written yet is left out, not an error */
        sb_str(&b, "<figure><img src=\"data:image/png;base64,");
        sb_add(&b, b64, len);
        sb_str(&b, "\"><figcaption>");
        sb_html(&b, images[i].caption);
        sb_str(&b, "</figcaption></figure>\n");
        free(b64);
    }
    sb_str(&b, "</body></html>\n");
    if (b.oom) {
        free(b.p);
        return dc_set_error(err, DC_ERR_OOM, "report '%s': out of memory", path);
    }
    dc_status s = dc_write_file_atomic(path, b.p, b.n, err);
    free(b.p);
    return s;
}

/* ---- labelled sample grids ---- */
#define LABEL_LINE 12 /* stb_easy_font's line height in pixels */
#define LABEL_PAD 4

typedef struct label_canvas {
    int w, h;
    float *rgb; /* [3, h, w] in [0, 1] */
} label_canvas;

static void canvas_fill(label_canvas *c, int x0, int y0, int x1, int y1, float v) {
    for (int ch = 0; ch < 3; ch++)
        for (int y = y0 < 0 ? 0 : y0; y < y1 && y < c->h; y++)
            for (int x = x0 < 0 ? 0 : x0; x < x1 && x < c->w; x++)
                c->rgb[((size_t)ch * c->h + y) * c->w + x] = v;
}

/* Black text at (x, y), cut at x_end. */
static dc_status canvas_text(label_canvas *c, int x, int y, int x_end, const char *s) {
    if (!s || !*s) return DC_OK;
    /* at most a dozen quads of 64 bytes per glyph; the font stops when the buffer is full */
    const size_t cap = (strlen(s) + 1) * 16 * 64;
    char *buf = malloc(cap);
    if (!buf) return DC_ERR_OOM;
    const int quads = stb_easy_font_print(0, 0, (char *)s, NULL, buf, (int)cap);
    for (int q = 0; q < quads; q++) {
        const float *v = (const float *)(buf + (size_t)q * 64); /* 4 vertices x (x, y, z, color) */
        const int x1 = x + (int)v[8] < x_end ? x + (int)v[8] : x_end;
        canvas_fill(c, x + (int)v[0], y + (int)v[1], x1, y + (int)v[9], 0.0f);
    }
    free(buf);
    return DC_OK;
}

dc_status dc_report_write_labelled_grid(const char *path, const float *nchw, int c, int h, int w,
                                        int rows, int cols, const char *title,
                                        const char *const *row_labels,
                                        const char *const *col_labels, dc_error *err) {
    if (!path || !nchw || (c != 1 && c != 3) || h < 1 || w < 1 || rows < 1 || cols < 1)
        return dc_set_error(err, DC_ERR_ARG, "labelled grid '%s': bad arguments",
                            path ? path : "(null)");
    const int sep = DC_GRID_SEPARATOR;
    int left = 0;
    for (int r = 0; row_labels && r < rows; r++) {
        const int tw = stb_easy_font_width((char *)(row_labels[r] ? row_labels[r] : ""));
        if (tw + 2 * LABEL_PAD > left) left = tw + 2 * LABEL_PAD;
    }
    const int top = (title ? LABEL_LINE : 0) + (col_labels ? LABEL_LINE : 0) + (title || col_labels ? LABEL_PAD : 0);
    label_canvas cv = {left + cols * (w + sep) + sep, top + rows * (h + sep) + sep, NULL};
    if (cv.w > 32768 || cv.h > 32768)
        return dc_set_error(err, DC_ERR_ARG, "%s: a %dx%d grid is too large", path, cv.w, cv.h);
    cv.rgb = malloc(sizeof(float) * 3 * (size_t)cv.w * cv.h);
    if (!cv.rgb) return dc_set_error(err, DC_ERR_OOM, "writing %s: out of memory", path);
    canvas_fill(&cv, 0, 0, cv.w, cv.h, 1.0f);
    canvas_fill(&cv, left, top, cv.w, cv.h, DC_GRID_SEPARATOR_GRAY / 255.0f);
    dc_status st = DC_OK;
    if (title) st = canvas_text(&cv, LABEL_PAD, LABEL_PAD / 2, cv.w, title);
    const size_t per = (size_t)c * h * w;
    for (int r = 0; r < rows && st == DC_OK; r++) {
        const int y0 = top + sep + r * (h + sep);
        if (row_labels && row_labels[r])
            st = canvas_text(&cv, LABEL_PAD, y0 + (h - 7) / 2, left, row_labels[r]);
        for (int col = 0; col < cols; col++) {
            const int x0 = left + sep + col * (w + sep);
            const float *im = nchw + ((size_t)r * cols + col) * per;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++) {
                        float v = (im[((size_t)(c == 3 ? ch : 0) * h + y) * w + x] + 1.0f) * 0.5f;
                        v = v < 0 ? 0 : v > 1 ? 1 : v;
                        cv.rgb[((size_t)ch * cv.h + y0 + y) * cv.w + x0 + x] = v;
                    }
        }
    }
    for (int col = 0; col < cols && col_labels && st == DC_OK; col++) {
        const int x0 = left + sep + col * (w + sep);
        st = canvas_text(&cv, x0, top - LABEL_LINE, x0 + w + sep, col_labels[col]);
    }
    if (st != DC_OK) st = dc_set_error(err, st, "writing %s: out of memory", path);
    else st = dc_image_write_png(path, cv.rgb, 3, cv.h, cv.w, DC_RANGE_01, err);
    free(cv.rgb);
    return st;
}
