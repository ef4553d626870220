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
