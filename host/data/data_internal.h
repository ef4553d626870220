/* Helpers shared by host/data/ sources. Not installed. */
#ifndef DECONV_DATA_INTERNAL_H
#define DECONV_DATA_INTERNAL_H

#include "deconv/data.h"
#include "internal.h"

/* Decode an image file to float CHW [channels, *h, *w] in [-1, 1] at its native size,
 * refusing images of more than max_pixels (<= 0: DC_IMAGE_MAX_PIXELS_DEFAULT). *out is
 * malloc'ed. Errors name the file and the reason. */
dc_status dc_image_decode_file(const char *path, int channels, int64_t max_pixels, float **out,
                               int *h, int *w, dc_error *err);
/* The checks a decode runs before it decodes pixels (the structure checks below, the
 * header's size, the pixel cap), without decoding: *h x *w is the upright image's size.
 * A file that passes may still fail to decode (corrupt compressed data). */
dc_status dc_image_check_file(const char *path, int64_t max_pixels, int *h, int *w, dc_error *err);
/* The same for the file's bytes in memory; name is used in messages. */
dc_status dc_image_decode_planes(const char *name, const unsigned char *bytes, size_t len,
                                 int channels, int64_t max_pixels, float **out, int *h, int *w,
                                 dc_error *err);

/* The structure checks (image_check.c) run before stb_image sees the bytes: identifies the
 * format (*format: "PNG", "JPEG", "BMP", "PGM", "PPM" or "TGA") and refuses other formats,
 * truncated files and malformed JPEG segments with DC_ERR_FORMAT naming `name`. */
dc_status dc_image_check_encoded(const char *name, const unsigned char *bytes, size_t len,
                                 const char **format, dc_error *err);

/* Fit src [c, h, w] into dst [c, size, size]: the larger side becomes size, the aspect
 * ratio is kept and the rest is padded with the mean of src's outermost pixel ring per
 * channel. Copies when h == w == size. DC_ERR_OOM only. */
dc_status dc_image_fit(const float *src, int c, int h, int w, float *dst, int size,
                       dc_error *err);

/* Lazy datasets (lazy.c). The pixels of an IDX images file's images `records` (ascending,
 * no repeats) into dst[k], [channels, size, size] each, exactly as a whole load converts
 * them (idx.c). */
dc_status dc_idx_decode_records(const char *path, int rows, int cols, int channels, int size,
                                const int32_t *records, int count, float *const *dst,
                                dc_error *err);
/* The lazy part of n image files dir/files[i] (relative names), none decoded; each is
 * decoded and fitted into size x size exactly as dc_dataset_load_folder does it. */
dc_status dc_lazy_create_folder(const char *dir, char *const *files, int n, int channels, int size,
                                int64_t max_pixels, dc_lazy_images **out, dc_error *err);
/* The lazy part of n images of an IDX file, none decoded; item i is record i. */
dc_status dc_lazy_create(const char *path, int rows, int cols, int n, int channels, int size,
                         dc_lazy_images **out, dc_error *err);
void dc_lazy_free(dc_lazy_images *lazy);
/* The lazy part of a subset: item i is the parent's item indices[i], none decoded. */
dc_status dc_lazy_subset(const dc_lazy_images *lazy, const int32_t *indices, int count,
                         dc_lazy_images **out, dc_error *err);

/* Record where a dataset came from (truncated to fit ds->source). */
void dc_dataset_set_source(dc_dataset *ds, const char *source);

/* Copy a string with malloc; NULL on OOM. */
char *dc_data_strdup(const char *s);

#endif
