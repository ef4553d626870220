/* One image file to float planes: decode (stb_image), composite alpha over white, convert
 * gray <-> RGB, scale to [-1, 1], and fit into a square (stb_image_resize). */
#include <errno.h>
#include <limits.h>
#include <math.h>

#include "data/data_internal.h"

/* stb's implementations are compiled here, once for the library (dc_image_decode_raw
 * serves the restoration images too), as static functions so that no other file of the
 * library or of a program linking it can clash with them. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
/* Declared-but-undefined static stb functions are reported at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

char *dc_data_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static dc_status read_whole_file(const char *path, unsigned char **out, size_t *len,
                                 dc_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dc_set_error(err, DC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return dc_set_error(err, DC_ERR_IO, "cannot read %s: not a seekable file", path);
    }
    if (size == 0) {
        fclose(f);
        return dc_set_error(err, DC_ERR_FORMAT, "%s: empty file", path);
    }
    if (size > INT_MAX) { /* stb_image takes an int length */
        fclose(f);
        return dc_set_error(err, DC_ERR_FORMAT, "%s: file of %ld bytes is too large", path,
                            size);
    }
    unsigned char *buf = malloc((size_t)size);
    if (!buf) {
        fclose(f);
        return dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate %ld bytes", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int read_failed = ferror(f);
    fclose(f);
    if (got != (size_t)size || read_failed) {
        free(buf);
        return dc_set_error(err, DC_ERR_IO, "cannot read %s: got %zu of %ld bytes", path,
                            got, size);
    }
    *out = buf;
    *len = (size_t)size;
    return DC_OK;
}

/* Interleaved u8 pixels with `comp` components (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to
 * `channels` float planes in [-1, 1]. Transparency is composited over white because the
 * library's images are dark shapes on a light background. */
static void pixels_to_planes(const unsigned char *px, int comp, int h, int w, int channels,
                             float *out) {
    size_t plane = (size_t)h * (size_t)w;
    for (size_t i = 0; i < plane; i++) {
        const unsigned char *p = px + i * (size_t)comp;
        float rgb[3], alpha = 1.0f;
        if (comp <= 2) {
            rgb[0] = rgb[1] = rgb[2] = (float)p[0];
        } else {
            rgb[0] = (float)p[0];
            rgb[1] = (float)p[1];
            rgb[2] = (float)p[2];
        }
        if (comp == 2 || comp == 4) alpha = (float)p[comp - 1] * (1.0f / 255.0f);
        if (alpha < 1.0f)
            for (int k = 0; k < 3; k++) rgb[k] = rgb[k] * alpha + 255.0f * (1.0f - alpha);
        if (channels == 1) {
            /* Equal components stay exact instead of going through the weighted sum. */
            float v = (rgb[0] == rgb[1] && rgb[1] == rgb[2])
                          ? rgb[0]
                          : 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
            out[i] = v / 127.5f - 1.0f;
        } else {
            for (int k = 0; k < 3; k++) out[(size_t)k * plane + i] = rgb[k] / 127.5f - 1.0f;
        }
    }
}

/* stb_image's short failure codes in plain words; NULL for the ones that only name a
 * malformed field. */
static const char *decoder_reason(const char *code) {
    static const struct {
        const char *code, *words;
    } table[] = {
        {"outofdata", "the file ends before the image data does (truncated)"},
        {"outofmem", "out of memory while decoding"},
        {"too large", "the image is too large to decode"},
        {"unknown image type", "a corrupt or unsupported header"}, /* stb gave up on it */
        {"BMP RLE", "run-length compressed BMP is not supported"},
        {"BMP JPEG/PNG", "BMP with embedded JPEG or PNG data is not supported"},
        {"only 8-bit", "JPEG with 12-bit samples is not supported"},
        {"no header height", "JPEG whose height comes after the image data is not supported"},
        {"1/2/4/8/16-bit only", "unsupported PNG bit depth"},
        {"bad bits_per_channel", "unsupported PNG bit depth"},
        {"not enough pixels", "the compressed data is shorter than the image (truncated)"},
        {"zlib corrupt", "the compressed image data is corrupt"},
        {"bad zlib header", "the compressed image data is corrupt"},
        {"bad codelengths", "the compressed image data is corrupt"},
        {"bad dist", "the compressed image data is corrupt"},
        {"bad huffman code", "the compressed image data is corrupt"},
        {"bad DC huff", "the compressed image data is corrupt"},
        {"bad AC huff", "the compressed image data is corrupt"},
        {"bad code lengths", "a Huffman table is corrupt"},
        {"bad DHT header", "a Huffman table is corrupt"},
        {"expected marker", "a marker is missing where one must be"},
        {"unknown marker", "an unknown marker"},
        {"no SOF", "no frame header"},
        {"no IDAT", "no image data"},
        {"0 width", "the image has a zero dimension"},
        {"0-pixel image", "the image has a zero dimension"},
        {"invalid width", "the image has a zero or invalid dimension"},
        {"max value > 65535", "the maximum sample value is above 65535"},
    };
    if (!code) return "unknown decoder error";
    for (size_t i = 0; i < DC_ARRAY_LEN(table); i++)
        if (!strcmp(code, table[i].code)) return table[i].words;
    /* stb's remaining codes ("bad SOF len", "bad IHDR len", "bad masks", ...) name a
     * malformed header field or table of the format */
    return NULL;
}

static dc_status decode_failed(dc_error *err, const char *name, const char *format,
                               const char *what) {
    const char *code = stbi_failure_reason();
    const char *words = decoder_reason(code);
    if (words)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: cannot %s the %s image: %s", name, what,
                            format, words);
    return dc_set_error(err, DC_ERR_FORMAT,
                        "%s: cannot %s the %s image: a malformed header field or table "
                        "(decoder: %s)",
                        name, what, format, code);
}

/* ---- EXIF orientation: phone cameras store the sensor's pixels and say in the APP1 Exif
 * segment how to turn them for display (TIFF tag 0x0112, values 1..8). */
static unsigned read_u16(const unsigned char *p, int big_endian) {
    return big_endian ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}
static uint32_t read_u32(const unsigned char *p, int big_endian) {
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The orientation tag of an Exif block (after "Exif\0\0"), 1 when absent or malformed. */
static int exif_block_orientation(const unsigned char *tiff, size_t len) {
    if (len < 8) return 1;
    int big;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        big = 0;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        big = 1;
    else
        return 1;
    if (read_u16(tiff + 2, big) != 42) return 1;
    const uint32_t ifd = read_u32(tiff + 4, big);
    if (ifd > len || len - ifd < 2) return 1;
    const unsigned entries = read_u16(tiff + ifd, big);
    for (unsigned i = 0; i < entries; i++) {
        const size_t at = (size_t)ifd + 2 + (size_t)i * 12;
        if (at + 12 > len) return 1;
        if (read_u16(tiff + at, big) != 0x0112) continue;
        /* type SHORT, one value, stored in the first two bytes of the value field */
        if (read_u16(tiff + at + 2, big) != 3 || read_u32(tiff + at + 4, big) != 1) return 1;
        const unsigned v = read_u16(tiff + at + 8, big);
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* The EXIF orientation (1..8) of a JPEG's bytes; 1 when it has none. Walks the marker
 * segments before the first scan (the structure was checked by dc_image_check_encoded). */
static int jpeg_exif_orientation(const unsigned char *b, size_t len) {
    size_t pos = 2; /* after SOI */
    while (pos + 4 <= len) {
        if (b[pos] != 0xFF) return 1;
        const unsigned char marker = b[pos + 1];
        if (marker == 0xFF) { /* fill byte */
            pos++;
            continue;
        }
        if (marker == 0xDA || marker == 0xD9) return 1; /* the scan: no Exif before it */
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
            pos += 2;
            continue;
        }
        const size_t seg = (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (seg < 2 || pos + 2 + seg > len) return 1;
        const unsigned char *body = b + pos + 4;
        const size_t body_len = seg - 2;
        if (marker == 0xE1 && body_len >= 6 && !memcmp(body, "Exif\0\0", 6))
            return exif_block_orientation(body + 6, body_len - 6);
        pos += 2 + seg;
    }
    return 1;
}

/* Turn interleaved pixels (bytes_per_pixel each) upright in place for EXIF orientation o;
 * orientations 5..8 swap width and height. DC_ERR_OOM only. */
static dc_status apply_orientation(unsigned char *px, int *h, int *w, size_t bytes_per_pixel, int o,
                                   const char *name, dc_error *err) {
    if (o <= 1 || o > 8) return DC_OK;
    const int sh = *h, sw = *w;
    const size_t total = (size_t)sh * (size_t)sw * bytes_per_pixel;
    unsigned char *src = malloc(total);
    if (!src) return dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate %zu bytes", name, total);
    memcpy(src, px, total);
    const int swap = o >= 5;
    const int oh = swap ? sw : sh, ow = swap ? sh : sw;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sx, sy; /* the stored pixel shown at (x, y) */
            switch (o) {
            case 2: sx = sw - 1 - x, sy = y; break;          /* mirrored left-right */
            case 3: sx = sw - 1 - x, sy = sh - 1 - y; break; /* turned 180 degrees */
            case 4: sx = x, sy = sh - 1 - y; break;          /* mirrored top-bottom */
            case 5: sx = y, sy = x; break;                   /* transposed */
            case 6: sx = y, sy = sh - 1 - x; break;          /* shown turned 90 cw */
            case 7: sx = sw - 1 - y, sy = sh - 1 - x; break; /* transverse */
            default: sx = sw - 1 - y, sy = x; break;         /* 8: shown turned 90 ccw */
            }
            memcpy(px + ((size_t)y * ow + x) * bytes_per_pixel,
                   src + ((size_t)sy * sw + sx) * bytes_per_pixel, bytes_per_pixel);
        }
    free(src);
    *h = oh;
    *w = ow;
    return DC_OK;
}

/* The checks before any pixel is decoded: the structure (dc_image_check_encoded), the
 * header's size, no zero side and the pixel cap. */
static dc_status check_before_decoding(const char *name, const unsigned char *bytes, size_t len,
                                       int64_t max_pixels, const char **format, int *info_h,
                                       int *info_w, dc_error *err) {
    if (max_pixels <= 0) max_pixels = DC_IMAGE_MAX_PIXELS_DEFAULT;
    if (len == 0) return dc_set_error(err, DC_ERR_FORMAT, "%s: empty file", name);
    if (len > INT_MAX) /* stb_image takes an int length */
        return dc_set_error(err, DC_ERR_FORMAT, "%s: file of %zu bytes is too large", name, len);
    DC_TRY(dc_image_check_encoded(name, bytes, len, format, err));

    /* The header's size first: nothing is allocated for an image over the cap. */
    int comp = 0;
    if (!stbi_info_from_memory(bytes, (int)len, info_w, info_h, &comp))
        return decode_failed(err, name, *format, "read the header of");
    if (*info_w <= 0 || *info_h <= 0)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: the %s image has a zero dimension (%dx%d)",
                            name, *format, *info_w, *info_h);
    int64_t pixels = (int64_t)*info_w * *info_h;
    if (pixels > max_pixels)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: the %s image is %dx%d = %lld pixels, over the limit of %lld "
                            "pixels per image",
                            name, *format, *info_w, *info_h, (long long)pixels,
                            (long long)max_pixels);
    return DC_OK;
}

dc_status dc_image_decode_memory(const char *name, const unsigned char *bytes, size_t len,
                                 int allow16, int64_t max_pixels, void **pix, int *h, int *w,
                                 int *comp, int *wide, dc_error *err) {
    *pix = NULL;
    *h = *w = *comp = *wide = 0;
    const char *format = NULL;
    int info_w = 0, info_h = 0;
    DC_TRY(check_before_decoding(name, bytes, len, max_pixels, &format, &info_h, &info_w, err));

    const int is16 = allow16 && stbi_is_16_bit_from_memory(bytes, (int)len);
    void *px = is16 ? (void *)stbi_load_16_from_memory(bytes, (int)len, w, h, comp, 0)
                    : (void *)stbi_load_from_memory(bytes, (int)len, w, h, comp, 0);
    if (!px) return decode_failed(err, name, format, "decode");
    if (*w != info_w || *h != info_h || *comp < 1 || *comp > 4) {
        stbi_image_free(px);
        int dw = *w, dh = *h;
        *h = *w = *comp = 0;
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: corrupt %s image: the header says %dx%d, the data decodes "
                            "as %dx%d",
                            name, format, info_w, info_h, dw, dh);
    }
    if (!strcmp(format, "JPEG")) {
        dc_status os = apply_orientation(px, h, w, (size_t)*comp * (is16 ? 2 : 1),
                                         jpeg_exif_orientation(bytes, len), name, err);
        if (os != DC_OK) {
            stbi_image_free(px);
            *h = *w = *comp = 0;
            return os;
        }
    }
    *pix = px;
    *wide = is16;
    return DC_OK;
}

dc_status dc_image_decode_raw(const char *path, int allow16, void **pix, int *h, int *w,
                              int *comp, int *wide, dc_error *err) {
    *pix = NULL;
    *h = *w = *comp = *wide = 0;
    unsigned char *file = NULL;
    size_t len = 0;
    DC_TRY(read_whole_file(path, &file, &len, err));
    dc_status s = dc_image_decode_memory(path, file, len, allow16, 0, pix, h, w, comp, wide, err);
    free(file);
    return s;
}

void dc_image_raw_free(void *pix) { stbi_image_free(pix); }

dc_status dc_image_decode_planes(const char *name, const unsigned char *bytes, size_t len,
                                 int channels, int64_t max_pixels, float **out, int *h, int *w,
                                 dc_error *err) {
    *out = NULL;
    *h = *w = 0;
    if (channels != 1 && channels != 3)
        return dc_set_error(err, DC_ERR_ARG, "%s: channels must be 1 or 3, got %d", name,
                            channels);
    void *px = NULL;
    int iw = 0, ih = 0, comp = 0, wide = 0;
    DC_TRY(dc_image_decode_memory(name, bytes, len, 0, max_pixels, &px, &ih, &iw, &comp, &wide,
                                  err));
    float *planes = malloc((size_t)channels * (size_t)ih * (size_t)iw * sizeof(float));
    if (!planes) {
        dc_image_raw_free(px);
        return dc_set_error(err, DC_ERR_OOM, "%s: cannot allocate a %dx%d image", name, iw,
                            ih);
    }
    pixels_to_planes(px, comp, ih, iw, channels, planes);
    dc_image_raw_free(px);
    *out = planes;
    *h = ih;
    *w = iw;
    return DC_OK;
}

dc_status dc_image_decode_file(const char *path, int channels, int64_t max_pixels, float **out,
                               int *h, int *w, dc_error *err) {
    *out = NULL;
    *h = *w = 0;
    unsigned char *file = NULL;
    size_t len = 0;
    DC_TRY(read_whole_file(path, &file, &len, err));
    dc_status s = dc_image_decode_planes(path, file, len, channels, max_pixels, out, h, w, err);
    free(file);
    return s;
}

dc_status dc_image_check_file(const char *path, int64_t max_pixels, int *h, int *w, dc_error *err) {
    *h = *w = 0;
    unsigned char *file = NULL;
    size_t len = 0;
    DC_TRY(read_whole_file(path, &file, &len, err));
    const char *format = NULL;
    dc_status s = check_before_decoding(path, file, len, max_pixels, &format, h, w, err);
    if (s == DC_OK && !strcmp(format, "JPEG")) {
        const int o = jpeg_exif_orientation(file, len);
        if (o >= 5 && o <= 8) { /* turned a quarter: the upright image is w x h */
            const int t = *h;
            *h = *w;
            *w = t;
        }
    }
    if (s != DC_OK) *h = *w = 0;
    free(file);
    return s;
}

/* Mean of the outermost pixel ring of one plane: the best guess of the background. */
static float border_mean(const float *plane, int h, int w) {
    double sum = 0;
    long count = 0;
    for (int x = 0; x < w; x++) {
        sum += plane[x];
        count++;
        if (h > 1) {
            sum += plane[(size_t)(h - 1) * (size_t)w + (size_t)x];
            count++;
        }
    }
    for (int y = 1; y < h - 1; y++) {
        sum += plane[(size_t)y * (size_t)w];
        count++;
        if (w > 1) {
            sum += plane[(size_t)y * (size_t)w + (size_t)(w - 1)];
            count++;
        }
    }
    return (float)(sum / (double)count);
}

/* Resize each plane of src [c, h, w] to [c, nh, nw]; filtered values are clamped because
 * the default cubic filters overshoot at hard edges. */
static dc_status resize_planes(const float *src, int c, int h, int w, float *dst, int nh,
                               int nw, dc_error *err) {
    for (int ch = 0; ch < c; ch++) {
        const float *in = src + (size_t)ch * (size_t)h * (size_t)w;
        float *o = dst + (size_t)ch * (size_t)nh * (size_t)nw;
        if (!stbir_resize_float_generic(in, w, h, 0, o, nw, nh, 0, 1, STBIR_ALPHA_CHANNEL_NONE,
                                        0, STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT,
                                        STBIR_COLORSPACE_LINEAR, NULL))
            return dc_set_error(err, DC_ERR_OOM, "cannot resize a %dx%d image to %dx%d", w, h,
                                nw, nh);
        for (size_t i = 0; i < (size_t)nh * (size_t)nw; i++)
            o[i] = o[i] < -1.0f ? -1.0f : (o[i] > 1.0f ? 1.0f : o[i]);
    }
    return DC_OK;
}

dc_status dc_image_fit(const float *src, int c, int h, int w, float *dst, int size,
                       dc_error *err) {
    if (h <= 0 || w <= 0 || size <= 0) /* the resize would read outside src */
        return dc_set_error(err, DC_ERR_SHAPE, "cannot fit a %dx%d image into %dx%d", w, h, size,
                            size);
    size_t out_plane = (size_t)size * (size_t)size;
    if (h == size && w == size) {
        memcpy(dst, src, (size_t)c * out_plane * sizeof(float));
        return DC_OK;
    }
    int nh = size, nw = size;
    if (h > w) nw = (int)lround((double)w * size / h);
    if (w > h) nh = (int)lround((double)h * size / w);
    if (nw < 1) nw = 1;
    if (nh < 1) nh = 1;

    const float *fitted = src;
    float *resized = NULL;
    if (nh != h || nw != w) {
        resized = malloc((size_t)c * (size_t)nh * (size_t)nw * sizeof(float));
        if (!resized)
            return dc_set_error(err, DC_ERR_OOM, "cannot allocate a %dx%d image", nw, nh);
        dc_status s = resize_planes(src, c, h, w, resized, nh, nw, err);
        if (s != DC_OK) {
            free(resized);
            return s;
        }
        fitted = resized;
    }
    int top = (size - nh) / 2, left = (size - nw) / 2;
    for (int ch = 0; ch < c; ch++) {
        float *o = dst + (size_t)ch * out_plane;
        float pad = border_mean(src + (size_t)ch * (size_t)h * (size_t)w, h, w);
        for (size_t i = 0; i < out_plane; i++) o[i] = pad;
        const float *in = fitted + (size_t)ch * (size_t)nh * (size_t)nw;
        for (int y = 0; y < nh; y++)
            memcpy(o + (size_t)(y + top) * (size_t)size + (size_t)left,
                   in + (size_t)y * (size_t)nw, (size_t)nw * sizeof(float));
    }
    free(resized);
    return DC_OK;
}

dc_status dc_image_read(const char *path, int size, int channels, float *dst, dc_error *err) {
    return dc_image_read_opts(path, size, channels, NULL, dst, err);
}

dc_status dc_image_read_opts(const char *path, int size, int channels,
                             const dc_load_options *opts, float *dst, dc_error *err) {
    if (!path || !dst) return dc_set_error(err, DC_ERR_ARG, "dc_image_read: NULL argument");
    if (size <= 0)
        return dc_set_error(err, DC_ERR_ARG, "%s: size must be > 0, got %d", path, size);
    float *planes = NULL;
    int h = 0, w = 0;
    DC_TRY(dc_image_decode_file(path, channels, opts ? opts->max_image_pixels : 0, &planes, &h,
                                 &w, err));
    dc_status s = dc_image_fit(planes, channels, h, w, dst, size, err);
    free(planes);
    if (s != DC_OK) return dc_wrap_error(err, s, "%s", path);
    return DC_OK;
}
