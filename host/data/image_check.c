/* Structure checks of an encoded image before stb_image sees it. stb_image fills a file
 * that ends early with zero pixels instead of failing, and the 2.27 snapshot Debian ships
 * writes out of bounds on a JPEG Huffman table with more than 256 codes; so each accepted
 * format is walked here first: its header is read, the size the pixel data needs is
 * compared with the file's size, and JPEG marker segments (DHT tables included) are
 * checked. Formats that cannot be checked this way (GIF, PSD, HDR, PIC, RLE BMP) are
 * refused. */
#include "data/data_internal.h"

#define MAX_SIDE (1u << 24) /* stb_image's own limit (STBI_MAX_DIMENSIONS) */

static uint32_t be16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static uint32_t le16(const unsigned char *p) { return p[0] | ((uint32_t)p[1] << 8); }
static uint32_t le32(const unsigned char *p) {
    return p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static dc_status truncated(dc_error *err, const char *name, const char *format, size_t len,
                           uint64_t need) {
    return dc_set_error(err, DC_ERR_FORMAT,
                        "%s: truncated %s file: its header needs at least %llu bytes but the "
                        "file has %zu",
                        name, format, (unsigned long long)need, len);
}

/* ------------------------------------------------------------------------ PNG */

/* Every chunk (length, type, data, CRC) must lie inside the file, up to IEND. */
static dc_status check_png(const char *name, const unsigned char *b, size_t len,
                           dc_error *err) {
    size_t pos = 8;
    for (int index = 0;; index++) {
        if (len - pos < 12)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: truncated PNG file: it ends after %zu bytes, before its "
                                "end chunk (IEND)",
                                name, len);
        uint32_t n = be32(b + pos);
        const unsigned char *type = b + pos + 4;
        if (n > 0x7fffffffu)
            return dc_set_error(err, DC_ERR_FORMAT, "%s: corrupt PNG file: chunk %d has length %u",
                                name, index, (unsigned)n);
        if (len - pos - 12 < n)
            return truncated(err, name, "PNG", len, (uint64_t)pos + 12 + n);
        if (index == 0 && memcmp(type, "IHDR", 4) != 0)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt PNG file: the first chunk is not the header (IHDR)",
                                name);
        pos += 12 + (size_t)n;
        if (!memcmp(type, "IEND", 4)) return DC_OK;
    }
}

/* ----------------------------------------------------------------------- JPEG */

/* A DHT segment: tables of a class/id byte, 16 code counts and the code values. A table
 * with more than 256 codes overflows stb_image 2.27's table (stbi__build_huffman). Each
 * table read sets bit class * 4 + id of *defined. */
static dc_status check_dht(const char *name, const unsigned char *seg, size_t n, size_t at,
                           unsigned *defined, dc_error *err) {
    while (n > 0) {
        if (n < 17)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: Huffman table segment at byte %zu is "
                                "cut short",
                                name, at);
        unsigned table_class = seg[0] >> 4, table_id = seg[0] & 15;
        if (table_class > 1 || table_id > 3)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: Huffman table at byte %zu has class %u "
                                "and id %u (at most 1 and 3)",
                                name, at, table_class, table_id);
        size_t codes = 0;
        for (int i = 1; i <= 16; i++) codes += seg[i];
        if (codes > 256)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: Huffman table at byte %zu declares %zu "
                                "codes (at most 256)",
                                name, at, codes);
        if (n - 17 < codes)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: Huffman table at byte %zu declares %zu "
                                "codes but its segment holds %zu",
                                name, at, codes, n - 17);
        *defined |= 1u << (table_class * 4 + table_id);
        seg += 17 + codes;
        n -= 17 + codes;
    }
    return DC_OK;
}

/* A SOS segment: every Huffman table the scan decodes with must have been defined by an
 * earlier DHT. stb_image 2.27 does not zero its tables, so an undefined one is read from
 * uninitialised memory (its decoder then fails an assertion or reads out of bounds). DC
 * tables decode scans that start at coefficient 0, AC tables scans that reach past it. */
static dc_status check_sos(const char *name, const unsigned char *seg, size_t n, size_t at,
                           unsigned defined, dc_error *err) {
    if (n < 1 || n < 1 + 2 * (size_t)seg[0] + 3)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: corrupt JPEG file: start-of-scan segment at byte %zu is cut "
                            "short",
                            name, at);
    const unsigned components = seg[0];
    const unsigned first = seg[1 + 2 * components], last = seg[2 + 2 * components];
    for (unsigned k = 0; k < components; k++) {
        const unsigned dc = seg[2 + 2 * k] >> 4, ac = seg[2 + 2 * k] & 15;
        if (dc > 3 || ac > 3)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: scan at byte %zu names Huffman tables "
                                "DC %u / AC %u (at most 3)",
                                name, at, dc, ac);
        if (first == 0 && !(defined & (1u << dc)))
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: scan at byte %zu decodes with DC Huffman "
                                "table %u, which no table segment defined",
                                name, at, dc);
        if (last > 0 && !(defined & (1u << (4 + ac))))
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: scan at byte %zu decodes with AC Huffman "
                                "table %u, which no table segment defined",
                                name, at, ac);
    }
    return DC_OK;
}

/* After a start-of-scan segment: the entropy-coded data runs to the first 0xFF that is
 * neither a stuffed 0xFF00, a restart marker nor a fill byte. Returns its offset, or len
 * when the file ends first. */
static size_t skip_entropy_data(const unsigned char *b, size_t len, size_t pos) {
    while (pos < len) {
        const unsigned char *ff = memchr(b + pos, 0xFF, len - pos);
        if (!ff) return len;
        pos = (size_t)(ff - b);
        if (pos + 1 >= len) return len;
        unsigned next = b[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
            pos += 2;
        } else if (next == 0xFF) {
            pos += 1;
        } else {
            return pos;
        }
    }
    return len;
}

/* Walks the marker segments from SOI to EOI the way stb_image reads them (bytes before a
 * 0xFF are skipped, fill bytes 0xFF too); each segment's length must fit in the file,
 * every DHT is checked, and a file without its end-of-image marker is truncated. */
static dc_status check_jpeg(const char *name, const unsigned char *b, size_t len,
                            dc_error *err) {
    size_t pos = 0;
    unsigned tables = 0; /* Huffman tables defined so far: bit class * 4 + id */
    while (pos < len && b[pos] == 0xFF) pos++;
    pos++; /* the SOI marker (identified by the caller) */
    for (;;) {
        while (pos < len && b[pos] != 0xFF) pos++;
        while (pos < len && b[pos] == 0xFF) pos++;
        if (pos >= len)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: truncated JPEG file: it ends after %zu bytes without its "
                                "end-of-image marker",
                                name, len);
        size_t at = pos - 1;
        unsigned marker = b[pos++];
        if (marker == 0xD9) return DC_OK;
        if ((marker >= 0xD0 && marker <= 0xD8) || marker == 0x01 || marker == 0x00)
            continue; /* no length field; stb rejects what does not belong here */
        if (len - pos < 2) return truncated(err, name, "JPEG", len, (uint64_t)pos + 2);
        size_t seg_len = be16(b + pos);
        if (seg_len < 2)
            return dc_set_error(err, DC_ERR_FORMAT,
                                "%s: corrupt JPEG file: segment 0xFF%02X at byte %zu has length "
                                "%zu (at least 2)",
                                name, marker, at, seg_len);
        if (len - pos < seg_len) return truncated(err, name, "JPEG", len, (uint64_t)pos + seg_len);
        if (marker == 0xC4) DC_TRY(check_dht(name, b + pos + 2, seg_len - 2, at, &tables, err));
        if (marker == 0xDA) DC_TRY(check_sos(name, b + pos + 2, seg_len - 2, at, tables, err));
        pos += seg_len;
        if (marker == 0xDA) {
            pos = skip_entropy_data(b, len, pos);
            if (pos >= len)
                return dc_set_error(err, DC_ERR_FORMAT,
                                    "%s: truncated JPEG file: it ends after %zu bytes inside "
                                    "the compressed image data",
                                    name, len);
        }
    }
}

/* ------------------------------------------------------------------------ BMP */

static dc_status check_bmp(const char *name, const unsigned char *b, size_t len,
                           dc_error *err) {
    if (len < 18) return truncated(err, name, "BMP", len, 18);
    uint32_t offset = le32(b + 10), header = le32(b + 14);
    int64_t w, h;
    uint32_t bpp, compression = 0;
    if (header == 12) {
        if (len < 26) return truncated(err, name, "BMP", len, 26);
        w = le16(b + 18);
        h = le16(b + 20);
        bpp = le16(b + 24);
    } else if (header == 40 || header == 56 || header == 108 || header == 124) {
        if (len < 14 + (size_t)header) return truncated(err, name, "BMP", len, 14 + header);
        w = (int32_t)le32(b + 18);
        h = (int32_t)le32(b + 22);
        bpp = le16(b + 28);
        compression = le32(b + 30);
    } else {
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: unsupported BMP file: header of %u bytes (12, 40, 56, 108 or "
                            "124 are read)",
                            name, (unsigned)header);
    }
    if (compression == 1 || compression == 2)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: unsupported BMP file: run-length compressed (only "
                            "uncompressed BMP is accepted)",
                            name);
    if (compression != 0 && compression != 3)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: unsupported BMP file: compression type %u (only uncompressed "
                            "BMP is accepted)",
                            name, (unsigned)compression);
    if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: corrupt BMP file: %u bits per pixel", name,
                            (unsigned)bpp);
    if (h < 0) h = -h; /* top-down rows */
    if (w <= 0 || h == 0)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: BMP image has a zero dimension (%lldx%lld)",
                            name, (long long)w, (long long)h);
    if ((uint64_t)w > MAX_SIDE || (uint64_t)h > MAX_SIDE)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: BMP image of %lldx%lld pixels is too large",
                            name, (long long)w, (long long)h);
    if (offset < 14 + header)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: corrupt BMP file: pixel data offset %u lies inside the header",
                            name, (unsigned)offset);
    uint64_t row_bits = (uint64_t)w * bpp;
    uint64_t row_bytes = (row_bits + 31) / 32 * 4, last_row = (row_bits + 7) / 8;
    uint64_t need = offset + ((uint64_t)h - 1) * row_bytes + last_row;
    if (need > len) return truncated(err, name, "BMP", len, need);
    return DC_OK;
}

/* ------------------------------------------------------------------- PGM/PPM */

static int pnm_space(unsigned c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Whitespace and '#' comments, as stb_image skips them. */
static size_t pnm_skip(const unsigned char *b, size_t len, size_t pos) {
    for (;;) {
        while (pos < len && pnm_space(b[pos])) pos++;
        if (pos >= len || b[pos] != '#') return pos;
        while (pos < len && b[pos] != '\n' && b[pos] != '\r') pos++;
    }
}

/* A decimal number; UINT32_MAX when absent or above 2^24. */
static uint32_t pnm_number(const unsigned char *b, size_t len, size_t *pos) {
    uint64_t v = 0;
    size_t start = *pos;
    while (*pos < len && b[*pos] >= '0' && b[*pos] <= '9') {
        v = v * 10 + (uint64_t)(b[*pos] - '0');
        if (v > MAX_SIDE) v = MAX_SIDE + 1;
        (*pos)++;
    }
    return *pos == start || v > MAX_SIDE ? UINT32_MAX : (uint32_t)v;
}

/* Binary P5 (gray) and P6 (RGB), 8 or 16 bits per sample. */
static dc_status check_pnm(const char *name, const unsigned char *b, size_t len,
                           dc_error *err) {
    const unsigned channels = b[1] == '6' ? 3 : 1;
    const char *format = channels == 3 ? "PPM" : "PGM";
    size_t pos = pnm_skip(b, len, 2);
    uint32_t w = pnm_number(b, len, &pos);
    pos = pnm_skip(b, len, pos);
    uint32_t h = pnm_number(b, len, &pos);
    pos = pnm_skip(b, len, pos);
    uint32_t maxval = pnm_number(b, len, &pos);
    if (w == UINT32_MAX || h == UINT32_MAX || maxval == UINT32_MAX || pos >= len)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: corrupt or truncated %s header (width, height and maximum "
                            "value, each at most %u)",
                            name, format, MAX_SIDE);
    if (w == 0 || h == 0)
        return dc_set_error(err, DC_ERR_FORMAT, "%s: %s image has a zero dimension (%ux%u)", name,
                            format, (unsigned)w, (unsigned)h);
    if (maxval > 65535)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: unsupported %s file: maximum sample value %u (at most 65535)",
                            name, format, (unsigned)maxval);
    pos++; /* the one whitespace byte after the maximum value */
    uint64_t need = pos + (uint64_t)w * h * channels * (maxval > 255 ? 2 : 1);
    if (need > len) return truncated(err, name, format, len, need);
    return DC_OK;
}

/* ------------------------------------------------------------------------ TGA */

/* TGA has no signature: this is stb_image's own test (stbi__tga_test). */
static int looks_like_tga(const unsigned char *b, size_t len) {
    if (len < 18) return 0;
    unsigned colormap = b[1], type = b[2], bpp = b[16];
    if (colormap > 1) return 0;
    if (colormap == 1) {
        if (type != 1 && type != 9) return 0;
        unsigned pal_bits = b[7];
        if (pal_bits != 8 && pal_bits != 15 && pal_bits != 16 && pal_bits != 24 && pal_bits != 32)
            return 0;
        if (bpp != 8 && bpp != 16) return 0;
    } else {
        if (type != 2 && type != 3 && type != 10 && type != 11) return 0;
        if (bpp != 8 && bpp != 15 && bpp != 16 && bpp != 24 && bpp != 32) return 0;
    }
    return le16(b + 12) >= 1 && le16(b + 14) >= 1;
}

/* Uncompressed or run-length: the pixel data (after the id field and palette, which stb
 * reads after skipping `first entry` bytes) must hold width x height pixels. */
static dc_status check_tga(const char *name, const unsigned char *b, size_t len,
                           dc_error *err) {
    unsigned indexed = b[1], type = b[2], bpp = b[16];
    uint64_t w = le16(b + 12), h = le16(b + 14);
    uint64_t pos = 18 + (uint64_t)b[0];
    if (indexed) pos += le16(b + 3) + (uint64_t)le16(b + 5) * ((b[7] + 7u) / 8u);
    uint64_t pixel_bytes = indexed ? (bpp == 8 ? 1 : 2) : (bpp + 7u) / 8u;
    uint64_t pixels = w * h;
    if (type < 8) {
        uint64_t need = pos + pixels * pixel_bytes;
        return need > len ? truncated(err, name, "TGA", len, need) : DC_OK;
    }
    /* Run-length packets: a header byte, then one pixel (repeat) or 1..128 pixels (raw). */
    for (uint64_t done = 0; done < pixels;) {
        if (pos >= len) return truncated(err, name, "TGA", len, pos + 1);
        unsigned head = b[pos++];
        uint64_t count = (head & 127u) + 1;
        pos += (head & 128u) ? pixel_bytes : count * pixel_bytes;
        done += count;
    }
    return pos > len ? truncated(err, name, "TGA", len, pos) : DC_OK;
}

/* ---------------------------------------------------------------- dispatch */

static int starts_with(const unsigned char *b, size_t len, const char *magic, size_t n) {
    return len >= n && !memcmp(b, magic, n);
}

dc_status dc_image_check_encoded(const char *name, const unsigned char *bytes, size_t len,
                                 const char **format, dc_error *err) {
    *format = "";
    const unsigned char *b = bytes;
    size_t ff = 0;
    while (ff < len && b[ff] == 0xFF) ff++;
    if (ff > 0 && ff < len && b[ff] == 0xD8) {
        *format = "JPEG";
        return check_jpeg(name, b, len, err);
    }
    if (starts_with(b, len, "\x89PNG\r\n\x1a\n", 8)) {
        *format = "PNG";
        return check_png(name, b, len, err);
    }
    if (starts_with(b, len, "BM", 2)) {
        *format = "BMP";
        return check_bmp(name, b, len, err);
    }
    if (starts_with(b, len, "P5", 2) || starts_with(b, len, "P6", 2)) {
        *format = b[1] == '5' ? "PGM" : "PPM";
        return check_pnm(name, b, len, err);
    }
    const char *refused = NULL;
    if (starts_with(b, len, "GIF8", 4)) refused = "GIF";
    if (starts_with(b, len, "8BPS", 4)) refused = "PSD";
    if (starts_with(b, len, "\x53\x80\xF6\x34", 4)) refused = "PIC";
    if (starts_with(b, len, "#?RADIANCE\n", 11) || starts_with(b, len, "#?RGBE\n", 7))
        refused = "HDR";
    if (starts_with(b, len, "P1", 2) || starts_with(b, len, "P2", 2) ||
        starts_with(b, len, "P3", 2) || starts_with(b, len, "P4", 2))
        refused = "text or 1-bit PNM";
    if (!refused && looks_like_tga(b, len)) {
        *format = "TGA";
        return check_tga(name, b, len, err);
    }
    if (refused)
        return dc_set_error(err, DC_ERR_FORMAT,
                            "%s: %s images are not accepted (" DC_IMAGE_FORMATS_ACCEPTED ")",
                            name, refused);
    return dc_set_error(err, DC_ERR_FORMAT,
                        "%s: not an image file the loader reads (" DC_IMAGE_FORMATS_ACCEPTED ")",
                        name);
}
