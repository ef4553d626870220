/* deconv — datasets in host memory: image folders, IDX files (MNIST / Fashion-MNIST),
 * train/validation splits, batches and seeded augmentation.
 *
 * A dataset is N images in one contiguous float array, NCHW, with pixel values scaled to
 * [-1, 1] (value = pixel / 127.5 - 1, so black = -1 and white = +1), plus optional int32
 * labels and class names. Loading never prints except one warning line on stderr per
 * image file that is skipped (unreadable or corrupt), naming the file and the reason.
 *
 * Ownership: every dc_dataset **out pairs with a NULL-safe dc_dataset_free().
 * Randomness: splits, epoch orders and augmentation take an explicit seed or dc_rng;
 * the same seed gives the same result on every machine.
 */
#ifndef DECONV_DATA_H
#define DECONV_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "deconv/deconv.h"

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

/* Pixels decoded on demand (dc_load_options.lazy): opaque, owned by its dataset. */
typedef struct dc_lazy_images dc_lazy_images;

/* Plain data: read the fields directly. Images of item i start at
 * images + i * c * h * w, or for a lazily loaded dataset (lazy != NULL, images NULL) at
 * dc_dataset_image(ds, i): read pixels through dc_dataset_image. */
typedef struct dc_dataset {
    int n, c, h, w;
    float *images;      /* n*c*h*w floats in [-1, 1]; NULL when n == 0 */
    int32_t *labels;    /* n labels in [0, n_classes), or NULL when unlabelled */
    int n_classes;      /* 0 when unlabelled */
    char **class_names; /* n_classes strings, or NULL when the source names none */
    char **names;       /* per-item source name ("ak47.png", "coat/12.png"), or NULL */
    char source[512];   /* where it came from, for messages */
    dc_lazy_images *lazy; /* non-NULL: the pixels of the items dc_dataset_decode_only
                             named, decoded from the file when asked */
} dc_dataset;

/* Fashion-MNIST as installed by Debian's dataset-fashion-mnist package. */
#define DC_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------ creation */
/* Empty dataset of n zero images [c, h, w]; labels (zeroed) when with_labels. n may be 0. */
dc_status dc_dataset_create(int n, int c, int h, int w, int with_labels, dc_dataset **out,
                            dc_error *err);
void dc_dataset_free(dc_dataset *ds);
/* Copy class names into the dataset (replacing any) and set n_classes = count. */
dc_status dc_dataset_set_class_names(dc_dataset *ds, int count, const char *const *names,
                                     dc_error *err);
/* A lazily loaded dataset's item i, NULL when it is not decoded (use dc_dataset_image). */
float *dc_dataset_lazy_image(const dc_dataset *ds, int i);
/* Pointer to item i's first value; for a lazily loaded dataset NULL when item i is not
 * decoded, and valid until the next dc_dataset_decode_only. */
static inline float *dc_dataset_image(const dc_dataset *ds, int i) {
    if (ds->lazy) return dc_dataset_lazy_image(ds, i);
    return ds->images + (size_t)i * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}
static inline size_t dc_dataset_image_numel(const dc_dataset *ds) {
    return (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

/* ------------------------------------------------------------------- loading
 * size: every image becomes size x size; size <= 0 keeps the native size (IDX: 28; a
 * folder: the larger side of its first readable image).
 * channels: 1 (gray; RGB becomes luminance 0.299 R + 0.587 G + 0.114 B) or 3 (RGB; gray
 * is copied into three equal planes).
 *
 * Resizing preserves the aspect ratio: the larger side is scaled to `size` (linear-light
 * filtering with stb_image_resize, clamped to [-1, 1]) and the image is centred on a
 * size x size canvas padded with the mean colour of the image's outermost pixel ring, so a
 * silhouette on white is padded white and a digit on black is padded black. Transparent
 * pixels are composited over white. */

/* Image files are decoded with stb_image, but only in the formats whose structure the
 * loader checks first, so that a cut or crafted file is refused instead of decoding into
 * zero-filled or garbage pixels:
 *   PNG (every chunk inside the file, up to IEND), JPEG (baseline or progressive; every
 *   marker segment inside the file, Huffman tables of at most 256 codes, an end-of-image
 *   marker), BMP (uncompressed or bit-field, not RLE; the pixel rows inside the file),
 *   binary PGM/PPM (P5/P6, 8 or 16 bits; all samples inside the file) and TGA
 *   (uncompressed or run-length; all pixels inside the file).
 * GIF, PSD, HDR, PIC, RLE BMP and text PNM are refused. A decoded image must have both
 * sides > 0, and width x height is capped before anything is decoded (max_image_pixels)
 * because a small compressed file can claim gigabytes. A refused file is DC_ERR_FORMAT
 * with a message that names it, its size and the reason in plain words. */
#define DC_IMAGE_FORMATS_ACCEPTED                                                           \
    "accepted: PNG, JPEG, uncompressed BMP, binary PGM/PPM, TGA"
#define DC_IMAGE_MAX_PIXELS_DEFAULT ((int64_t)64 * 1024 * 1024) /* 64 Mpx, e.g. 8192x8192 */

/* Options of the image loaders. A zero-initialised struct (or a NULL pointer) gives the
 * defaults. */
typedef struct dc_load_options {
    int64_t max_image_pixels; /* width x height cap per image file; <= 0: the default */
    int lazy; /* decode no pixels until dc_dataset_decode_only names the items wanted
                 (each rank of data-parallel training: its share). IDX files (Fashion-MNIST):
                 the labels are read and the file is checked. Image folders: the files are
                 listed, labelled and each read and checked as a decode checks it (structure,
                 header size, pixel cap: a refused file is skipped with the same warning);
                 a file that passes but then fails to decode, or turns unreadable, is an
                 error naming it when its item is decoded. */
} dc_load_options;

/* Decode one image file into dst, which holds channels * size * size floats. size must be
 * > 0. Errors name the file and say why it cannot be read. dc_image_read uses the default
 * options. */
dc_status dc_image_read(const char *path, int size, int channels, float *dst, dc_error *err);
dc_status dc_image_read_opts(const char *path, int size, int channels,
                             const dc_load_options *opts, float *dst, dc_error *err);

/* Every image file (by extension: png jpg jpeg bmp gif tga pgm ppm pnm, any case; a GIF is
 * listed only to be skipped with its warning) in dir,
 * in byte-wise sorted file-name order. If dir has sub-folders that hold images (at any
 * depth), it is a labelled dataset instead: one class per such top-level sub-folder (label
 * = index in sorted order, class name = folder name), each class with every image in its
 * folder and the folders below it (up to 8 levels; deeper ones are named in a warning), and
 * loose files at the top level are ignored with a warning. Hidden entries (".name") are
 * ignored. JPEG files are turned upright by their EXIF orientation (all 8 values). Errors: a
 * missing folder, or one with no readable image, is DC_ERR_NOT_FOUND naming the folder. */
dc_status dc_dataset_load_folder(const char *dir, int size, int channels, dc_dataset **out,
                                 dc_error *err);
/* The same with options (NULL: the defaults). A file that cannot be read, is refused (see
 * above: a format that is not accepted, truncated, a zero side, over the pixel cap) or is
 * corrupt costs one warning on stderr naming it and the reason, and is skipped. */
dc_status dc_dataset_load_folder_opts(const char *dir, int size, int channels,
                                      const dc_load_options *opts, dc_dataset **out,
                                      dc_error *err);

/* IDX files (images: magic 0x00000803, [n, rows, cols] u8; labels: 0x00000801, [n] u8),
 * gzipped or plain. labels_path may be NULL. Errors name the file: a wrong magic or
 * dimension is DC_ERR_FORMAT, a file shorter than its header promises (truncated .gz
 * included) is DC_ERR_FORMAT, so is gzip data that fails zlib's checks (a bad CRC), a label count that differs from the image count is
 * DC_ERR_SHAPE. n_classes is the largest label + 1. */
dc_status dc_dataset_load_idx(const char *images_path, const char *labels_path, int size,
                              int channels, dc_dataset **out, dc_error *err);

/* One entry point for the CLI. spec is one of:
 *   "fashion-mnist", "fashion-mnist:train", "fashion-mnist:test"  (from DC_FASHION_MNIST_DIR,
 *       with the ten class names)
 *   a path to "...-images-idx3-ubyte" or "...-images-idx3-ubyte.gz" (the labels file
 *       "...-labels-idx1-ubyte[.gz]" next to it is used when present)
 *   a folder (dc_dataset_load_folder). */
dc_status dc_dataset_load_path(const char *spec, int size, int channels, dc_dataset **out,
                               dc_error *err);
/* The same with options (NULL: the defaults; they apply to image folders). */
dc_status dc_dataset_load_path_opts(const char *spec, int size, int channels,
                                    const dc_load_options *opts, dc_dataset **out,
                                    dc_error *err);

/* The number of channels spec's images call for: 3 when any of up to 16 image files spread
 * over a folder (its class sub-folders included) has colour (more than 0.5% of its pixels
 * with R, G and B more than 12/255 apart), else 1; IDX files and Fashion-MNIST are grey.
 * why (may be NULL) gets a short reason, e.g. "colour (3 of the 16 image(s) looked at
 * have colour)". Files that do not decode are passed over (the load names them). */
dc_status dc_dataset_detect_channels(const char *spec, int *channels, char *why, size_t cap,
                                     dc_error *err);

/* The ten Fashion-MNIST class names, "T-shirt/top" ... "Ankle boot". */
const char *const *dc_fashion_mnist_class_names(void);

/* ------------------------------------------------------------ lazy datasets
 * A lazily loaded dataset (dc_load_options.lazy) keeps its labels, names and where each
 * image lies in its file; only the items last named by dc_dataset_decode_only hold
 * pixels. Its subsets (dc_dataset_subset, dc_dataset_split) are lazy too. The decoded
 * pixels are the ones an ordinary load gives, bit for bit. */

/* Decode the pixels of items[0..count) (repeats allowed) and free those of every other
 * item, so memory holds these items only. Items already decoded are kept as they are.
 * Nothing to do for an ordinary dataset. Errors name the file (a damaged one is found
 * here). */
dc_status dc_dataset_decode_only(const dc_dataset *ds, const int32_t *items, int count,
                                 dc_error *err);
/* Decode every item: a lazily loaded dataset becomes an ordinary one (lazy NULL). */
dc_status dc_dataset_decode_all(dc_dataset *ds, dc_error *err);
/* How many items hold decoded pixels now (n for an ordinary dataset). */
int dc_dataset_decoded_count(const dc_dataset *ds);

/* values[i] for i = first, first + stride, ... < n: the mean of item i's four corner
 * pixels of its first channel, ((top-left + top-right + bottom-left + bottom-right) in
 * float) / 4 in double; the other entries are left as they are. A lazily loaded dataset
 * decodes those items a part at a time. */
dc_status dc_dataset_corner_means(const dc_dataset *ds, int first, int stride, double *values,
                                  dc_error *err);
/* The same walk for a content hash: hashes[i] for i = first, first + stride, ... < n is a
 * 64-bit FNV-1a hash of item i's pixels (the float bytes), so that a fingerprint of the
 * whole set can be made from shares decoded on different ranks. */
dc_status dc_dataset_item_hashes(const dc_dataset *ds, int first, int stride, uint64_t *hashes,
                                 dc_error *err);
/* The same walk: how many pixel values of items first, first + stride, ... lie within 0.1
 * of -1 or +1 (dc_near_binary_share's test), added to *near. */
dc_status dc_dataset_near_binary_count(const dc_dataset *ds, int first, int stride, double *near,
                                       dc_error *err);

/* ------------------------------------------------------- subsets and batches */
/* New dataset of the listed items, in the given order (labels, names, classes copied). */
dc_status dc_dataset_subset(const dc_dataset *ds, const int32_t *indices, int count,
                            dc_dataset **out, dc_error *err);
/* Reproducible split: a seeded shuffle picks round(n * val_fraction) items for validation
 * (at least 1 when val_fraction > 0 and n >= 2, and never all of them); both parts keep
 * the original order. val_fraction in [0, 1). *val may hold 0 items. */
dc_status dc_dataset_split(const dc_dataset *ds, float val_fraction, uint64_t seed,
                           dc_dataset **train, dc_dataset **val, dc_error *err);
/* Fisher-Yates shuffle of idx[0..n) with rng. */
void dc_shuffle_indices(int32_t *idx, int n, dc_rng *rng);
/* perm = a permutation of 0..n-1 that depends only on (seed, epoch). */
void dc_epoch_permutation(int32_t *perm, int n, uint64_t seed, long epoch);
/* Gather items indices[0..count) into dst_images (count * c*h*w floats) and, when
 * dst_labels is not NULL, their labels (the dataset must then have labels). */
dc_status dc_dataset_batch(const dc_dataset *ds, const int32_t *indices, int count,
                           float *dst_images, int32_t *dst_labels, dc_error *err);

/* -------------------------------------------------------------- augmentation
 * A random similarity transform per image: optional horizontal flip, rotation by
 * U(-max_rotate_deg, max_rotate_deg) and scaling by U(scale_min, scale_max) about the image
 * centre, then translation by U(-max_translate, max_translate) pixels on each axis
 * (sub-pixel). Each output pixel is inverse-mapped into the source and sampled bilinearly;
 * positions outside the source read `fill`. Every call draws the same number of values
 * from rng whatever the config, so streams stay aligned when a config changes. */
typedef struct dc_augment_config {
    float hflip_prob;     /* probability of a horizontal flip, [0, 1] */
    float max_translate;  /* pixels */
    float scale_min, scale_max;
    float max_rotate_deg;
    float fill;           /* value outside the source: +1 = white (guns), -1 = black */
    float geometric_prob; /* probability that shift, scale and rotation apply at all (the
                           * flip draws on its own); 1: always. Below 1 some images stay
                           * pixel-exact, which a model conditioned on the augmentation
                           * needs to learn sharp edges for "no augmentation" */
    const struct dc_dataset *fine; /* NULL: transform the image at its own size. Else the
                           * same items at an integer multiple k of that size (the data
                           * loaded again at k x size): the transform is applied there, with
                           * shifts scaled by k, and the result filtered down to the size as
                           * the loader filters. Bilinear resampling at the training size
                           * blurs every edge it moves (guns at 32x32: edge sharpness 0.51
                           * -> 0.38); at 2x and filtered down, 0.47 */
} dc_augment_config;
#define DC_AUGMENT_OVERSAMPLE_MAX 4

/* Identity transform (no flip, no move, scale 1), fill = +1 (white). */
void dc_augment_config_identity(dc_augment_config *cfg);
/* DC_ERR_ARG naming the field when a value is out of range. */
dc_status dc_augment_config_check(const dc_augment_config *cfg, dc_error *err);
/* dst must not overlap src. An identity draw copies src exactly. */
void dc_augment_image(const float *src, float *dst, int c, int h, int w,
                      const dc_augment_config *cfg, dc_rng *rng);
/* The same draw and image, and the transform it applied as DC_AUGMENT_PARAMS numbers that
 * are all 0 for the identity: flip (0/1), shift x / w, shift y / h, log(scale), angle in
 * radians (what a model conditioned on the augmentation reads, Karras et al. 2022). */
#define DC_AUGMENT_PARAMS 5
void dc_augment_image_params(const float *src, float *dst, int c, int h, int w,
                             const dc_augment_config *cfg, dc_rng *rng, float *params);
/* dc_augment_image_params when cfg->fine is set: src is the item's image [c, size, size],
 * fine_src the same item in cfg->fine. The same draws and params; an identity draw copies
 * src. DC_ERR_SHAPE when cfg->fine's images are not a square multiple of size, DC_ERR_OOM. */
dc_status dc_augment_image_fine(const float *src, const float *fine_src, float *dst, int c,
                                int size, const dc_augment_config *cfg, dc_rng *rng,
                                float *params, dc_error *err);
/* n images [c, h, w], one draw each, in order. */
void dc_augment_batch(const float *src, float *dst, int n, int c, int h, int w,
                      const dc_augment_config *cfg, dc_rng *rng);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
