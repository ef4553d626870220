/* Float images for restoration: create/free, load through the library's decoder (keeping
 * the size and 16-bit precision, unlike the dataset loader, which resizes), 8-bit PNG
 * output through the shared writer, finiteness check and PSNR. */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"
#include "deconv/image.h"
#include "deconv/restore.h"

dc_status dc_fimage_create(int h, int w, int c, dc_fimage **out, dc_error *err) {
    if (!out) return dc_set_error(err, DC_ERR_ARG, "dc_fimage_create: out is NULL");
    *out = NULL;
    if (h <= 0 || w <= 0 || c <= 0 || c > 4)
        return dc_set_error(err, DC_ERR_SHAPE, "image shape %d x %d x %d is not valid", h, w, c);
    size_t n = (size_t)h * (size_t)w * (size_t)c;
    if (n > ((size_t)1 << 34) / sizeof(float))
        return dc_set_error(err, DC_ERR_SHAPE, "image %d x %d x %d is too large", h, w, c);
    dc_fimage *im = calloc(1, sizeof *im);
    if (!im || !(im->data = calloc(n, sizeof(float)))) {
        free(im);
        return dc_set_error(err, DC_ERR_OOM, "out of memory for a %d x %d x %d image", h, w, c);
    }
    im->h = h;
    im->w = w;
    im->c = c;
    *out = im;
    return DC_OK;
}

void dc_fimage_free(dc_fimage *im) {
    if (!im) return;
    free(im->data);
    free(im);
}

dc_status dc_fimage_clone(const dc_fimage *src, dc_fimage **out, dc_error *err) {
    if (!src || !out) return dc_set_error(err, DC_ERR_ARG, "dc_fimage_clone: NULL argument");
    DC_TRY(dc_fimage_create(src->h, src->w, src->c, out, err));
    memcpy((*out)->data, src->data, dc_fimage_numel(src) * sizeof(float));
    return DC_OK;
}

dc_status dc_fimage_load(const char *path, dc_fimage **out, dc_error *err) {
    if (!path || !out) return dc_set_error(err, DC_ERR_ARG, "dc_fimage_load: NULL argument");
    *out = NULL;
    int w, h, comp, wide;
    void *pix = NULL;
    dc_status d = dc_image_decode_raw(path, 1, &pix, &h, &w, &comp, &wide, err);
    /* this API reports any file it cannot turn into an image as DC_ERR_IO (restore.h) */
    if (d != DC_OK) return dc_wrap_error(err, d == DC_ERR_FORMAT ? DC_ERR_IO : d, "cannot read image");
    const int ch = comp <= 2 ? 1 : 3; /* alpha is dropped */
    dc_status s = dc_fimage_create(h, w, ch, out, err);
    if (s != DC_OK) {
        dc_image_raw_free(pix);
        return dc_wrap_error(err, s, "image '%s'", path);
    }
    const size_t hw = (size_t)h * w;
    const float scale = wide ? 1.0f / 65535.0f : 1.0f / 255.0f;
    for (int c = 0; c < ch; c++) {
        float *dst = dc_fimage_plane(*out, c);
        for (size_t p = 0; p < hw; p++)
            dst[p] = scale * (wide ? (float)((const uint16_t *)pix)[p * comp + c]
                                   : (float)((const unsigned char *)pix)[p * comp + c]);
    }
    dc_image_raw_free(pix);
    return DC_OK;
}

dc_status dc_fimage_save_png(const dc_fimage *im, const char *path, dc_error *err) {
    if (!im || !path) return dc_set_error(err, DC_ERR_ARG, "dc_fimage_save_png: NULL argument");
    if (im->c != 1 && im->c != 3)
        return dc_set_error(err, DC_ERR_SHAPE, "'%s': PNG output needs 1 or 3 channels, not %d",
                            path, im->c);
    /* The planar layout is the writer's CHW; it clamps to [0, 1] (NaN to 0) and rounds. */
    return dc_image_write_png(path, im->data, im->c, im->h, im->w, DC_RANGE_01, err);
}

dc_status dc_fimage_check_finite(const dc_fimage *im, const char *what, dc_error *err) {
    if (!im || !im->data) return dc_set_error(err, DC_ERR_ARG, "%s: no image", what);
    const size_t hw = (size_t)im->h * im->w, n = dc_fimage_numel(im);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(im->data[i]))
            return dc_set_error(err, DC_ERR_NUMERIC,
                                "%s has a non-finite value (%g) at channel %d, row %d, column %d",
                                what, (double)im->data[i], (int)(i / hw),
                                (int)(i % hw / im->w), (int)(i % im->w));
    return DC_OK;
}

double dc_fimage_psnr(const dc_fimage *im, const dc_fimage *ref, double data_range, int margin) {
    if (!im || !ref || im->h != ref->h || im->w != ref->w || im->c != ref->c) return NAN;
    if (margin < 0) margin = 0;
    if (2 * margin >= im->h || 2 * margin >= im->w) return NAN;
    double sse = 0;
    size_t count = 0;
    for (int c = 0; c < im->c; c++) {
        const float *a = dc_fimage_plane(im, c), *b = dc_fimage_plane(ref, c);
        for (int y = margin; y < im->h - margin; y++)
            for (int x = margin; x < im->w - margin; x++) {
                double d = (double)a[(size_t)y * im->w + x] - (double)b[(size_t)y * im->w + x];
                sse += d * d;
                count++;
            }
    }
    if (sse == 0) return INFINITY;
    return 10.0 * log10(data_range * data_range / (sse / (double)count));
}
