/* deconv — training charts and the self-contained HTML report of a run. */
#ifndef DECONV_REPORT_H
#define DECONV_REPORT_H

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef struct dc_series {
    const char *name;
    const double *x, *y;
    int count;
} dc_series;

/* Line chart (white background, axes with tick labels, legend) written atomically as PNG.
 * log_y: logarithmic y axis (values <= 0 are skipped). */
dc_status dc_chart_write_png(const char *path, int width, int height, const char *title,
                             const char *xlabel, const dc_series *series, int n_series, int log_y,
                             dc_error *err);

/* Round tick values for an axis over [lo, hi]: a step of 1, 2 or 5 times a power of ten
 * giving at most about max_ticks ticks (integer: a step of at least 1), and the axis
 * widened to whole steps, so the first and last tick frame the data. ticks gets the
 * values (at most cap); returns their count and *decimals the digits after the point
 * that print them exactly (0 for steps >= 1). lo == hi is widened around the value. */
int dc_chart_ticks(double lo, double hi, int max_ticks, int integer, double *ticks, int cap,
                   int *decimals);
/* Ticks of a logarithmic axis over [lo, hi] (both > 0): powers of ten, with 2 and 5 times
 * them when the range spans less than two decades (every k-th power over a wide range).
 * The first and last tick frame the data. Returns the count (at most cap). */
int dc_chart_log_ticks(double lo, double hi, double *ticks, int cap);
/* A tick value as a label: fixed with `decimals` digits, or %g for log ticks (decimals
 * < 0). */
void dc_chart_tick_label(double v, int decimals, char *buf, size_t cap);

/* A growing string for generated text (SVG, HTML): printf appends, escaped appends with
 * <, >, & and " as XML entities. oom is set (and later appends do nothing) when memory or
 * formatting fails; the caller frees p. */
typedef struct dc_text {
    char *p;
    size_t n, cap;
    int oom;
} dc_text;
void dc_text_printf(dc_text *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void dc_text_escaped(dc_text *b, const char *s);

/* A line chart as SVG (vector: crisp at any zoom), for inline use in HTML. */
typedef struct dc_chart {
    int width, height;
    const char *title, *xlabel, *ylabel; /* may be NULL */
    const dc_series *series;
    int n_series;
    int log_y;     /* logarithmic y axis, labelled so; values <= 0 are left out */
    int integer_x; /* x ticks on whole numbers (epochs) */
    double mark_x; /* a vertical marker (e.g. the best epoch); NaN: none */
    const char *mark_label;
} dc_chart;
/* The chart's <svg> element (caller frees), or NULL with err set. */
char *dc_chart_svg(const dc_chart *chart, dc_error *err);

typedef struct dc_report_image {
    const char *caption;
    const char *path; /* PNG embedded as a data: URI */
} dc_report_image;

/* A page that needs nothing but itself: title, a preformatted summary, images inline.
 * Written atomically. */
dc_status dc_report_write_html(const char *path, const char *title, const char *summary,
                               const dc_report_image *images, int n_images, dc_error *err);

/* A rows x cols grid of images [c, h, w] (row-major, range PM1) with a label left of each
 * row, one above each column (NULL: none) and a title line (may be NULL), written as an RGB
 * PNG. Labels wider than their column are cut at its edge. */
dc_status dc_report_write_labelled_grid(const char *path, const float *nchw, int c, int h, int w,
                                        int rows, int cols, const char *title,
                                        const char *const *row_labels,
                                        const char *const *col_labels, dc_error *err);

/* Write `len` bytes to path atomically: temp file in the same folder, fsync, rename. */
dc_status dc_write_file_atomic(const char *path, const void *data, size_t len, dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
