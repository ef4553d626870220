/* Atomic file writes and the self-contained HTML report. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deconv/report.h"
#include "internal.h"
#include "io/io_internal.h"

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
