/* Line charts rasterised in memory: axes, ticks, labels (stb_easy_font quads), legend. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deconv/image.h"
#include "deconv/report.h"
#include "internal.h"

#include <stb_easy_font.h>

typedef struct canvas {
    int w, h;
    unsigned char *rgb;
} canvas;

static void put(canvas *c, int x, int y, const unsigned char col[3]) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->rgb + 3 * ((size_t)y * c->w + x), col, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const unsigned char col[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put(c, x, y, col);
}

/* Bresenham with a 2-pixel pen. */
static void line(canvas *c, int x0, int y0, int x1, int y1, const unsigned char col[3]) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        put(c, x0, y0, col);
        put(c, x0 + 1, y0, col);
        put(c, x0, y0 + 1, col);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static void text(canvas *c, int x, int y, const char *s, const unsigned char col[3]) {
    /* stb_easy_font emits at most a dozen quads of 64 bytes per glyph; 16 leaves room, and
     * it stops (never overflows) when the buffer is full. Per call, so charts drawn from two
     * threads do not share it. */
    const size_t cap = (strlen(s) + 1) * 16 * 64;
    char *buf = malloc(cap);
    if (!buf) return;
    int quads = stb_easy_font_print(0, 0, (char *)s, NULL, buf, (int)cap);
    for (int q = 0; q < quads; q++) {
        const float *v = (const float *)(buf + (size_t)q * 64); /* 4 vertices x (x,y,z,color) */
        rect(c, x + (int)v[0], y + (int)v[1], x + (int)v[8], y + (int)v[9], col);
    }
    free(buf);
}

static int text_width(const char *s) { return stb_easy_font_width((char *)s); }

static void fmt_tick(double v, char *buf, size_t cap) {
    double a = fabs(v);
    if (a != 0 && (a < 1e-3 || a >= 1e5))
        snprintf(buf, cap, "%.1e", v);
    else
        snprintf(buf, cap, "%.4g", v);
}

dc_status dc_chart_write_png(const char *path, int width, int height, const char *title,
                             const char *xlabel, const dc_series *series, int n_series, int log_y,
                             dc_error *err) {
    if (!path || width < 100 || height < 80 || n_series < 0)
        return dc_set_error(err, DC_ERR_ARG, "chart: bad arguments for '%s'", path ? path : "(null)");
    static const unsigned char palette[4][3] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189}};
    static const unsigned char black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, white[3] = {255, 255, 255};
    canvas c = {width, height, malloc((size_t)width * height * 3)};
    if (!c.rgb) return dc_set_error(err, DC_ERR_OOM, "chart '%s': out of memory", path);
    rect(&c, 0, 0, width, height, white);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < series[s].count; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_y && y <= 0)) continue;
            if (log_y) y = log10(y);
            xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    const int L = 70, R = 20, T = 30, B = 40;
    const int pw = width - L - R, ph = height - T - B;
    if (title) text(&c, L, 10, title, black);
    if (xmin <= xmax) {
        if (xmax == xmin) xmax = xmin + 1;
        if (ymax == ymin) ymax = ymin + 1, ymin -= 1;
        double pad = 0.05 * (ymax - ymin);
        ymin -= pad, ymax += pad;
        for (int t = 0; t <= 4; t++) {
            double fy = (double)t / 4, yv = ymin + fy * (ymax - ymin);
            int py = T + ph - (int)(fy * ph);
            rect(&c, L, py, L + pw, py + 1, grid);
            char lab[32];
            fmt_tick(log_y ? pow(10, yv) : yv, lab, sizeof lab);
            text(&c, L - 6 - text_width(lab), py - 3, lab, black);
            double xv = xmin + fy * (xmax - xmin);
            int px = L + (int)(fy * pw);
            rect(&c, px, T, px + 1, T + ph, grid);
            fmt_tick(xv, lab, sizeof lab);
            text(&c, px - text_width(lab) / 2, T + ph + 6, lab, black);
        }
        for (int s = 0; s < n_series; s++) {
            int have = 0, lx = 0, ly = 0;
            for (int i = 0; i < series[s].count; i++) {
                double x = series[s].x[i], y = series[s].y[i];
                if (!isfinite(x) || !isfinite(y) || (log_y && y <= 0)) continue;
                if (log_y) y = log10(y);
                int px = L + (int)((x - xmin) / (xmax - xmin) * pw);
                int py = T + ph - (int)((y - ymin) / (ymax - ymin) * ph);
                if (have) line(&c, lx, ly, px, py, palette[s % 4]);
                else put(&c, px, py, palette[s % 4]);
                lx = px, ly = py, have = 1;
            }
            if (series[s].name) {
                int ly0 = T + 6 + 12 * s;
                rect(&c, L + pw - 110, ly0 + 2, L + pw - 96, ly0 + 5, palette[s % 4]);
                text(&c, L + pw - 90, ly0, series[s].name, black);
            }
        }
    } else {
        text(&c, L + 10, T + ph / 2, "no data yet", black);
    }
    rect(&c, L, T, L + 1, T + ph, black);
    rect(&c, L, T + ph, L + pw, T + ph + 1, black);
    if (xlabel) text(&c, L + pw / 2 - text_width(xlabel) / 2, T + ph + 22, xlabel, black);
    /* to planar [0,1] for the PNG writer */
    float *planar = malloc(sizeof(float) * 3 * width * height);
    dc_status st = DC_ERR_OOM;
    if (planar) {
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < width * height; i++)
                planar[(size_t)ch * width * height + i] = c.rgb[3 * (size_t)i + ch] / 255.0f;
        st = dc_image_write_png(path, planar, 3, height, width, DC_RANGE_01, err);
    } else {
        dc_set_error(err, st, "chart '%s': out of memory", path);
    }
    free(planar);
    free(c.rgb);
    return st;
}
