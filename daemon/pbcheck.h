/* pbcheck.h - checks on protobuf messages unpacked from a peer's bytes that
 * protobuf-c itself does not make. */
#ifndef PCD_PBCHECK_H
#define PCD_PBCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* protobuf-c 1.4 accepts field number 0 when its tag is encoded in more
 * than one byte (e.g. 0x80 0x00) and keeps it as an unknown field, which
 * it then re-encodes in a form it refuses itself. Field number 0 is not
 * valid protobuf: true when m and every message inside it are free of it. */
bool pbcheck_tags(const ProtobufCMessage *m);

/* protobuf-c hands a string field over as a C string, so "a\0b" on the
 * wire arrives as "a", silently; and it does not check UTF-8, which proto3
 * requires of strings (standard parsers refuse a message that breaks it).
 * Walks the encoded message and every message inside it: true when every
 * string field is NUL-free, well-formed UTF-8; else false with err naming
 * the field ("Hello.migration_id: contains a NUL byte at offset 1"). Call
 * it on bytes protobuf_c_message_unpack accepted. */
bool pbcheck_strings(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *buf, char *err, size_t errlen);

/* protobuf_c_message_unpack, pbcheck_tags and pbcheck_strings: NULL for
 * any failure, with err (may be NULL) saying which. */
ProtobufCMessage *pbcheck_unpack_why(const ProtobufCMessageDescriptor *d,
    size_t len, const uint8_t *buf, char *err, size_t errlen);
/* The same without the reason. */
ProtobufCMessage *pbcheck_unpack(const ProtobufCMessageDescriptor *d,
    size_t len, const uint8_t *buf);

#endif
