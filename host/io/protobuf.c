/* Protocol-buffers wire format writer: varints, fixed32, length-delimited fields. */
#include <stdlib.h>
#include <string.h>

#include "io/protobuf.h"

static int reserve(pb_buf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->len + extra <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->oom = 1;
        return 0;
    }
    b->data = d;
    b->cap = cap;
    return 1;
}

void dc_pb_free(pb_buf *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

void dc_pb_raw(pb_buf *b, const void *p, size_t n) {
    if (!n || !reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static size_t varint_encode(uint8_t *out, uint64_t v) {
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        out[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    return n;
}

void dc_pb_varint(pb_buf *b, uint64_t v) {
    uint8_t tmp[10];
    dc_pb_raw(b, tmp, varint_encode(tmp, v));
}

void dc_pb_tag(pb_buf *b, int field, int wire) { dc_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

void dc_pb_int(pb_buf *b, int field, int64_t v) {
    dc_pb_tag(b, field, PB_VARINT);
    dc_pb_varint(b, (uint64_t)v);
}

void dc_pb_float(pb_buf *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    dc_pb_tag(b, field, PB_FIXED32);
    dc_pb_raw(b, le, 4);
}

void dc_pb_bytes(pb_buf *b, int field, const void *p, size_t n) {
    dc_pb_tag(b, field, PB_LEN);
    dc_pb_varint(b, n);
    dc_pb_raw(b, p, n);
}

void dc_pb_string(pb_buf *b, int field, const char *s) { dc_pb_bytes(b, field, s, strlen(s)); }

size_t dc_pb_begin(pb_buf *b, int field) {
    dc_pb_tag(b, field, PB_LEN);
    return b->len;
}

void dc_pb_end(pb_buf *b, size_t start) {
    if (b->oom || start > b->len) return;
    uint8_t tmp[10];
    size_t body = b->len - start, n = varint_encode(tmp, body);
    if (!reserve(b, n)) return;
    memmove(b->data + start + n, b->data + start, body);
    memcpy(b->data + start, tmp, n);
    b->len += n;
}

void dc_pb_append(pb_buf *b, const pb_buf *other) {
    if (other->oom) {
        b->oom = 1;
        return;
    }
    dc_pb_raw(b, other->data, other->len);
}
