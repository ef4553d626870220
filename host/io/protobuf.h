/* A minimal protocol-buffers writer (the wire format, no schema): enough to encode ONNX
 * models by hand. Nested messages are written in place: dc_pb_begin() writes the field
 * tag, dc_pb_end() inserts the length in front of what was written since. Allocation
 * failures are sticky (b->oom) and checked once at the end. */
#ifndef DECONV_PROTOBUF_H
#define DECONV_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pb_buf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} pb_buf;

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

void dc_pb_free(pb_buf *b);
void dc_pb_raw(pb_buf *b, const void *p, size_t n);
void dc_pb_varint(pb_buf *b, uint64_t v);
void dc_pb_tag(pb_buf *b, int field, int wire);
/* int32/int64/enum/bool fields: negative values take 10 bytes (two's complement). */
void dc_pb_int(pb_buf *b, int field, int64_t v);
void dc_pb_float(pb_buf *b, int field, float v);
void dc_pb_bytes(pb_buf *b, int field, const void *p, size_t n);
void dc_pb_string(pb_buf *b, int field, const char *s);
/* Embedded message: returns the position its body starts at, for dc_pb_end. */
size_t dc_pb_begin(pb_buf *b, int field);
void dc_pb_end(pb_buf *b, size_t start);
/* Append an already-encoded buffer as-is (fields of the same message). */
void dc_pb_append(pb_buf *b, const pb_buf *other);

#endif
