/* Line charts rasterised in memory: axes, ticks, labels (stb_easy_font quads), legend. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
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
        /* round ticks (1-2-5 steps) that frame the data, as in the SVG charts */
        double xt[64], yt[64];
        int xdec = 0, ydec = 0;
        const int nx = dc_chart_ticks(xmin, xmax, 6, 0, xt, 64, &xdec);
        int ny;
        if (log_y) {
            ny = dc_chart_log_ticks(pow(10, ymin), pow(10, ymax), yt, 64);
            ydec = -1;
        } else {
            ny = dc_chart_ticks(ymin, ymax, 5, 0, yt, 64, &ydec);
        }
        xmin = xt[0], xmax = xt[nx - 1] > xt[0] ? xt[nx - 1] : xt[0] + 1;
        ymin = log_y ? log10(yt[0]) : yt[0];
        ymax = log_y ? log10(yt[ny - 1]) : yt[ny - 1];
        if (!(ymax > ymin)) ymax = ymin + 1;
        char lab[48];
        for (int t = 0; t < ny; t++) {
            const double yv = log_y ? log10(yt[t]) : yt[t];
            const int py = T + ph - (int)((yv - ymin) / (ymax - ymin) * ph);
            rect(&c, L, py, L + pw, py + 1, grid);
            dc_chart_tick_label(yt[t], ydec, lab, sizeof lab);
            text(&c, L - 6 - text_width(lab), py - 3, lab, black);
        }
        for (int t = 0; t < nx; t++) {
            const int px = L + (int)((xt[t] - xmin) / (xmax - xmin) * pw);
            rect(&c, px, T, px + 1, T + ph, grid);
            dc_chart_tick_label(xt[t], xdec, lab, sizeof lab);
            text(&c, px - text_width(lab) / 2, T + ph + 6, lab, black);
        }
        if (log_y) text(&c, L + pw - 80, T - 12, "(log scale)", black);
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

/* ---- round ticks ---- */

/* The smallest of 1, 2, 5 x 10^k that is >= x (x > 0). */
static double nice_step(double x) {
    const double p = pow(10.0, floor(log10(x)));
    const double f = x / p;
    /* a hair of slack: 0.2 / 0.1 lands on 1.9999999 or 2.0000001 */
    return (f <= 1.0 + 1e-9 ? 1.0 : f <= 2.0 + 1e-9 ? 2.0 : f <= 5.0 + 1e-9 ? 5.0 : 10.0) * p;
}

int dc_chart_ticks(double lo, double hi, int max_ticks, int integer, double *ticks, int cap,
                   int *decimals) {
    if (decimals) *decimals = 0;
    if (!isfinite(lo) || !isfinite(hi) || cap < 1) return 0;
    if (hi < lo) {
        const double t = lo;
        lo = hi, hi = t;
    }
    if (max_ticks < 2) max_ticks = 2;
    if (hi == lo) {
        const double pad = integer ? 1.0 : lo != 0.0 ? 0.1 * fabs(lo) : 1.0;
        lo -= pad, hi += pad;
    }
    double step = nice_step((hi - lo) / (max_ticks - 1));
    if (integer && step < 1.0) step = 1.0;
    /* whole steps as integers times the step, so 0.1 * 3 prints as 0.3, not 0.30000000000000004 */
    const double k0 = floor(lo / step + 1e-9), k1 = ceil(hi / step - 1e-9);
    int n = 0;
    for (double k = k0; k <= k1 && n < cap; k += 1.0)
        ticks[n++] = k * step;
    if (decimals) {
        const int d = (int)-floor(log10(step) + 1e-9);
        *decimals = d > 0 ? d : 0;
    }
    return n;
}

int dc_chart_log_ticks(double lo, double hi, double *ticks, int cap) {
    if (!(lo > 0) || !(hi > 0) || !isfinite(lo) || !isfinite(hi) || cap < 1) return 0;
    if (hi < lo) {
        const double t = lo;
        lo = hi, hi = t;
    }
    const int e0 = (int)floor(log10(lo) + 1e-9), e1 = (int)ceil(log10(hi) - 1e-9);
    int n = 0;
    if (e1 - e0 <= 2) {
        /* 1, 2, 5 per decade: the largest such value <= lo up to the smallest >= hi */
        static const double m[3] = {1, 2, 5};
        double first = 0, last = 0;
        for (int e = e0; e <= e1; e++)
            for (int i = 0; i < 3; i++) {
                const double v = m[i] * pow(10.0, e);
                if (v <= lo * (1 + 1e-9)) first = v;
                if (v >= hi * (1 - 1e-9) && last == 0) last = v;
            }
        if (last == 0) last = pow(10.0, e1 + 1);
        for (int e = e0; e <= e1 + 1; e++)
            for (int i = 0; i < 3 && n < cap; i++) {
                const double v = m[i] * pow(10.0, e);
                if (v >= first * (1 - 1e-9) && v <= last * (1 + 1e-9)) ticks[n++] = v;
            }
        if (n >= 4) return n;
        /* a narrow range (0.2 to 0.5 gives only 0.2, 0.5): the linear axis's round ticks,
         * the first kept above zero */
        double lin[64];
        int dec;
        const int k = dc_chart_ticks(lo, hi, 6, 0, lin, 64, &dec);
        if (k < 2 || k > cap) return n;
        if (!(lin[0] > 0)) lin[0] = first;
        memcpy(ticks, lin, sizeof(double) * (size_t)k);
        return k;
    }
    const int every = (e1 - e0 + 5) / 6; /* at most about seven labels */
    const int start = (int)(floor((double)e0 / every) * every);
    for (int e = start; n < cap; e += every) {
        ticks[n++] = pow(10.0, e);
        if (e >= e1) break;
    }
    return n;
}

void dc_chart_tick_label(double v, int decimals, char *buf, size_t cap) {
    const double a = fabs(v);
    if (decimals < 0 || (a != 0 && (a < 1e-4 || a >= 1e6)))
        snprintf(buf, cap, "%g", v);
    else
        snprintf(buf, cap, "%.*f", decimals, v == 0 ? 0.0 : v); /* no "-0.0" */
}

/* ---- SVG ---- */

void dc_text_printf(dc_text *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

void dc_text_escaped(dc_text *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': dc_text_printf(b, "&lt;"); break;
        case '>': dc_text_printf(b, "&gt;"); break;
        case '&': dc_text_printf(b, "&amp;"); break;
        case '"': dc_text_printf(b, "&quot;"); break;
        default: dc_text_printf(b, "%c", *s);
        }
    }
}

char *dc_chart_svg(const dc_chart *ch, dc_error *err) {
    if (!ch || ch->width < 200 || ch->height < 120 || ch->n_series < 0 ||
        (ch->n_series > 0 && !ch->series)) {
        dc_set_error(err, DC_ERR_ARG, "chart '%s': bad arguments (at least 200 x 120 pixels)",
                     ch && ch->title ? ch->title : "(untitled)");
        return NULL;
    }
    static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
    const int npal = (int)(sizeof palette / sizeof palette[0]);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < ch->n_series; s++)
        for (int i = 0; i < ch->series[s].count; i++) {
            const double x = ch->series[s].x[i], y = ch->series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (ch->log_y && y <= 0)) continue;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    const int W = ch->width, H = ch->height;
    /* above the plot: the title, then a line for the marker's label */
    const int L = 72, R = 16, T = ch->title ? 40 : 22, B = 46;
    const int pw = W - L - R, ph = H - T - B;
    dc_text b = {0};
    dc_text_printf(&b,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
               W, H, W, H, W, H);
    if (ch->title) {
        dc_text_printf(&b, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">", L);
        dc_text_escaped(&b, ch->title);
        dc_text_printf(&b, "</text>\n");
    }
    if (xmin <= xmax) {
        double xt[64], yt[64];
        int xdec = 0, ydec = 0;
        const int nx = dc_chart_ticks(xmin, xmax, 8, ch->integer_x, xt, 64, &xdec);
        int ny;
        if (ch->log_y) {
            ny = dc_chart_log_ticks(ymin, ymax, yt, 64);
            ydec = -1;
        } else {
            ny = dc_chart_ticks(ymin, ymax, 6, 0, yt, 64, &ydec);
        }
        const double x0 = xt[0], x1 = xt[nx - 1] > xt[0] ? xt[nx - 1] : xt[0] + 1;
        const double y0 = ch->log_y ? log10(yt[0]) : yt[0];
        double y1 = ch->log_y ? log10(yt[ny - 1]) : yt[ny - 1];
        if (!(y1 > y0)) y1 = y0 + 1;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((ch->log_y ? log10(y) : (y)) - y0) / (y1 - y0) * ph)
        char lab[48];
        for (int i = 0; i < ny; i++) {
            const double py = PY(yt[i]);
            dc_text_printf(&b,
                       "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e4e4e4\"/>\n",
                       L, py, L + pw, py);
            dc_chart_tick_label(yt[i], ydec, lab, sizeof lab);
            dc_text_printf(&b,
                       "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\" "
                       "dominant-baseline=\"middle\">%s</text>\n",
                       L - 6, py, lab);
        }
        for (int i = 0; i < nx; i++) {
            const double px = PX(xt[i]);
            dc_text_printf(&b,
                       "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#e4e4e4\"/>\n",
                       px, T, px, T + ph);
            dc_chart_tick_label(xt[i], xdec, lab, sizeof lab);
            dc_text_printf(&b, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px,
                       T + ph + 16, lab);
        }
        if (isfinite(ch->mark_x) && ch->mark_x >= x0 && ch->mark_x <= x1) {
            const double px = PX(ch->mark_x);
            dc_text_printf(&b,
                       "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#2ca02c\" "
                       "stroke-width=\"1.5\" stroke-dasharray=\"5 4\"/>\n",
                       px, T, px, T + ph);
            if (ch->mark_label) {
                const int right = px > L + pw * 0.6;
                dc_text_printf(&b, "<text x=\"%.2f\" y=\"%d\" fill=\"#2ca02c\" text-anchor=\"%s\">",
                           px + (right ? 0 : 4), T - 5, right ? "end" : "start");
                dc_text_escaped(&b, ch->mark_label);
                dc_text_printf(&b, "</text>\n");
            }
        }
        for (int s = 0; s < ch->n_series; s++) {
            const dc_series *se = &ch->series[s];
            const char *col = palette[s % npal];
            int open = 0, points = 0;
            double lx = 0, ly = 0;
            for (int i = 0; i < se->count; i++) {
                const double x = se->x[i], y = se->y[i];
                if (!isfinite(x) || !isfinite(y) || (ch->log_y && y <= 0)) {
                    /* a gap in the data is a gap in the line */
                    if (open) dc_text_printf(&b, "\"/>\n");
                    open = 0;
                    continue;
                }
                if (!open)
                    dc_text_printf(&b,
                               "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                               "stroke-linejoin=\"round\" points=\"",
                               col);
                lx = PX(x), ly = PY(y);
                dc_text_printf(&b, "%s%.2f,%.2f", open ? " " : "", lx, ly);
                open = 1;
                points++;
            }
            if (open) dc_text_printf(&b, "\"/>\n");
            if (points == 1) /* a single point is invisible as a line */
                dc_text_printf(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", lx, ly,
                           col);
            if (se->name) {
                const int ly0 = T + 10 + 16 * s;
                dc_text_printf(&b,
                           "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                           "stroke-width=\"3\"/>\n<text x=\"%d\" y=\"%d\" "
                           "dominant-baseline=\"middle\">",
                           L + pw - 130, ly0, L + pw - 110, ly0, col, L + pw - 104, ly0);
                dc_text_escaped(&b, se->name);
                dc_text_printf(&b, "</text>\n");
            }
        }
#undef PX
#undef PY
    } else {
        dc_text_printf(&b, "<text x=\"%d\" y=\"%d\">no data yet</text>\n", L + 10, T + ph / 2);
    }
    dc_text_printf(&b,
               "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n"
               "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n",
               L, T, L, T + ph, L, T + ph, L + pw, T + ph);
    if (ch->xlabel) {
        dc_text_printf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", L + pw / 2, H - 8);
        dc_text_escaped(&b, ch->xlabel);
        dc_text_printf(&b, "</text>\n");
    }
    if (ch->ylabel || ch->log_y) {
        dc_text_printf(&b, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">",
                   T + ph / 2);
        dc_text_escaped(&b, ch->ylabel ? ch->ylabel : "");
        if (ch->log_y) dc_text_printf(&b, "%s(log scale)", ch->ylabel ? " " : "");
        dc_text_printf(&b, "</text>\n");
    }
    dc_text_printf(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        dc_set_error(err, DC_ERR_OOM, "chart '%s': out of memory",
                     ch->title ? ch->title : "(untitled)");
        return NULL;
    }
    return b.p;
}
