/* .npz export: a zip archive (entries stored, no compression) holding one NPY 1.0 file
 * per parameter, "<name>.npy", float32 little-endian in C order with the parameter's
 * PyTorch layout. numpy.load(path)["enc1.weight"] gives the array.
 *
 * NPY 1.0: "\x93NUMPY", version 1.0, little-endian uint16 header length, then a Python
 * dict literal padded with spaces and ended by '\n' so the data starts at a multiple of
 * 64 bytes. Zip: local file header + data per entry, then the central directory and the
 * end-of-central-directory record (no zip64: the archive must stay under 4 GiB). */
#include <zlib.h>

#include "deconv/io.h"
#include "internal.h"
#include "io/io_internal.h"

#define ZIP_LIMIT 0xFFFFFFFFull
#define DOS_DATE_1980 0x0021 /* 1980-01-01: fixed, so the same weights give the same bytes */

/* The NPY header for a float32 array of this shape; returns its length (a multiple of 64). */
static size_t npy_header(const dc_param *q, char *out, size_t cap) {
    char shape[128];
    size_t u = 0;
    u += (size_t)snprintf(shape + u, sizeof shape - u, "(");
    for (int d = 0; d < q->ndim; d++)
        u += (size_t)snprintf(shape + u, sizeof shape - u, d ? ", %d" : "%d", q->shape[d]);
    snprintf(shape + u, sizeof shape - u, q->ndim == 1 ? ",)" : ")");
    char dict[256];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = 10 + (size_t)dl + 1; /* magic+version+len, dict, '\n' */
    total = (total + 63) & ~(size_t)63;
    if (total > cap) return 0;
    size_t hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    dc_put_le16((uint8_t *)out + 8, (uint16_t)hl);
    memcpy(out + 10, dict, (size_t)dl);
    memset(out + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    out[total - 1] = '\n';
    return total;
}

typedef struct zip_entry {
    uint32_t crc, size, offset;
} zip_entry;

static void local_header(uint8_t *h, uint32_t crc, uint32_t size, uint16_t name_len) {
    dc_put_le32(h + 0, 0x04034b50);
    dc_put_le16(h + 4, 20);  /* version needed: 2.0 */
    dc_put_le16(h + 6, 0);   /* flags */
    dc_put_le16(h + 8, 0);   /* stored */
    dc_put_le16(h + 10, 0);  /* time */
    dc_put_le16(h + 12, DOS_DATE_1980);
    dc_put_le32(h + 14, crc);
    dc_put_le32(h + 18, size); /* compressed = uncompressed */
    dc_put_le32(h + 22, size);
    dc_put_le16(h + 26, name_len);
    dc_put_le16(h + 28, 0); /* extra */
}

static void central_header(uint8_t *h, const zip_entry *e, uint16_t name_len) {
    dc_put_le32(h + 0, 0x02014b50);
    dc_put_le16(h + 4, 0x0314); /* made by: unix, 2.0 */
    dc_put_le16(h + 6, 20);
    dc_put_le16(h + 8, 0);
    dc_put_le16(h + 10, 0);
    dc_put_le16(h + 12, 0);
    dc_put_le16(h + 14, DOS_DATE_1980);
    dc_put_le32(h + 16, e->crc);
    dc_put_le32(h + 20, e->size);
    dc_put_le32(h + 24, e->size);
    dc_put_le16(h + 28, name_len);
    dc_put_le16(h + 30, 0); /* extra */
    dc_put_le16(h + 32, 0); /* comment */
    dc_put_le16(h + 34, 0); /* disk */
    dc_put_le16(h + 36, 0); /* internal attributes */
    dc_put_le32(h + 38, 0100644u << 16); /* external: regular file, rw-r--r-- */
    dc_put_le32(h + 42, e->offset);
}

dc_status dc_export_npz(const char *path, dc_params *params, dc_error *err) {
    if (!path || !params) return dc_set_error(err, DC_ERR_ARG, "dc_export_npz: NULL argument");
    const int np = dc_params_count(params);
    if (np > 0 && !dc_params_allocated(params))
        return dc_set_error(err, DC_ERR_STATE, "exporting '%s': the parameters are not allocated yet", path);
    if (np > 0xFFFF)
        return dc_set_error(err, DC_ERR_UNSUPPORTED, "exporting '%s': %d arrays, a zip without zip64 holds 65535",
                            path, np);
    /* sizes first: refuse archives past the zip32 limits before writing anything */
    uint64_t total = 0, cd = 0;
    size_t maxn = 1;
    char hdr[512];
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        size_t nl = strlen(q->name) + 4, hl = npy_header(q, hdr, sizeof hdr);
        total += 30 + nl + hl + 4 * (uint64_t)q->numel;
        cd += 46 + nl;
        if (q->numel > maxn) maxn = q->numel;
    }
    if (total + cd + 22 > ZIP_LIMIT)
        return dc_set_error(err, DC_ERR_UNSUPPORTED,
                            "exporting '%s': %.1f GiB of weights is past the 4 GiB limit of a zip "
                            "without zip64 (use safetensors)",
                            path, (double)total / (1 << 30));
    zip_entry *ents = calloc((size_t)np + 1, sizeof *ents);
    float *buf = malloc(maxn * sizeof(float));
    dc_atomic_file af = {0};
    dc_status s = DC_OK;
    if (!ents || !buf) {
        s = dc_set_error(err, DC_ERR_OOM, "exporting '%s': out of memory", path);
        goto out;
    }
    if ((s = dc_atomic_open(&af, path, err)) != DC_OK) goto out;
    uint32_t off = 0;
    uint8_t h[46];
    char fname[80];
    for (int i = 0; i < np; i++) {
        const dc_param *q = dc_params_get(params, i);
        size_t hl = npy_header(q, hdr, sizeof hdr);
        int nl = snprintf(fname, sizeof fname, "%s.npy", q->name);
        if ((s = dc_params_read(params, i, buf)) != DC_OK) {
            s = dc_set_error(err, s, "exporting '%s': reading '%s': %s", path, q->name, dc_params_error(params)->msg);
            goto out;
        }
        dc_f32_to_le(buf, q->numel);
        const size_t bytes = q->numel * sizeof(float);
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, (const Bytef *)hdr, (uInt)hl);
        crc = crc32(crc, (const Bytef *)buf, (uInt)bytes);
        ents[i].crc = (uint32_t)crc;
        ents[i].size = (uint32_t)(hl + bytes);
        ents[i].offset = off;
        local_header(h, ents[i].crc, ents[i].size, (uint16_t)nl);
        if ((s = dc_atomic_write(&af, h, 30, err)) || (s = dc_atomic_write(&af, fname, (size_t)nl, err)) ||
            (s = dc_atomic_write(&af, hdr, hl, err)) || (s = dc_atomic_write(&af, buf, bytes, err)))
            goto out;
        off += (uint32_t)(30 + (size_t)nl + hl + bytes);
    }
    const uint32_t cd_start = off;
    for (int i = 0; i < np; i++) {
        int nl = snprintf(fname, sizeof fname, "%s.npy", dc_params_get(params, i)->name);
        central_header(h, &ents[i], (uint16_t)nl);
        if ((s = dc_atomic_write(&af, h, 46, err)) || (s = dc_atomic_write(&af, fname, (size_t)nl, err)))
            goto out;
        off += (uint32_t)(46 + nl);
    }
    uint8_t eocd[22];
    dc_put_le32(eocd + 0, 0x06054b50);
    dc_put_le16(eocd + 4, 0);
    dc_put_le16(eocd + 6, 0);
    dc_put_le16(eocd + 8, (uint16_t)np);
    dc_put_le16(eocd + 10, (uint16_t)np);
    dc_put_le32(eocd + 12, off - cd_start);
    dc_put_le32(eocd + 16, cd_start);
    dc_put_le16(eocd + 20, 0);
    if ((s = dc_atomic_write(&af, eocd, sizeof eocd, err)) != DC_OK) goto out;
    s = dc_atomic_commit(&af, err);
out:
    dc_atomic_abort(&af);
    free(ents);
    free(buf);
    return s;
}
