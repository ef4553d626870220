/* deconv — writing images: single PNGs, grids of images, and colour-mapped heatmaps.
 *
 * Images are float CHW (c = 1 gray or 3 RGB) with values in [-1, 1] (the dataset
 * convention) or [0, 1], chosen per call; values outside the range are clamped.
 * Every write goes to "<path>.tmp" first and is renamed over path only when complete, so
 * a reader never sees a half-written file. Errors name the file.
 */
#ifndef DECONV_IMAGE_H
#define DECONV_IMAGE_H

#include <stdint.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

typedef enum dc_image_range {
    DC_RANGE_PM1 = 0, /* [-1, 1]: -1 black, +1 white */
    DC_RANGE_01,      /* [0, 1] */
} dc_image_range;

/* Width of the separator (and outer border) between grid cells, and its gray level. */
#define DC_GRID_SEPARATOR 2
#define DC_GRID_SEPARATOR_GRAY 128

/* One image [c, h, w] to an 8-bit gray (c = 1) or RGB (c = 3) PNG. */
dc_status dc_image_write_png(const char *path, const float *chw, int c, int h, int w,
                             dc_image_range range, dc_error *err);

/* n images [c, h, w] laid out row-major in a rows x cols grid with a DC_GRID_SEPARATOR
 * pixel gray separator between cells and around the edge. rows/cols <= 0 are chosen
 * automatically (cols = ceil(sqrt(n)) when both are unset). n > rows * cols is an error. */
dc_status dc_image_write_grid(const char *path, const float *nchw, int n, int c, int h, int w,
                              int rows, int cols, dc_image_range range, dc_error *err);

/* Perceptual dark-to-bright colour map (black - purple - red - orange - pale yellow, in the
 * style of "inferno"): t in [0, 1] (clamped) to RGB in [0, 1]. Luminance rises with t. */
void dc_colormap(float t, float rgb[3]);

/* Heatmap overlay into rgb_out [3, h, w] with values in [0, 1]:
 *   out = (1 - alpha) * image + alpha * colormap(heat normalized to [0, 1] by its min/max).
 * image [c, h, w] in `range` (c = 1 is shown as gray), or NULL for the colour map alone
 * (alpha is then ignored). heat is [h, w]; a constant heat map maps to 0. */
dc_status dc_heatmap_overlay(const float *image, int c, int h, int w, dc_image_range range,
                             const float *heat, float alpha, float *rgb_out, dc_error *err);

/* dc_heatmap_overlay written to an RGB PNG. */
dc_status dc_image_write_heatmap(const char *path, const float *image, int c, int h, int w,
                                 dc_image_range range, const float *heat, float alpha,
                                 dc_error *err);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
