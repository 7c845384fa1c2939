/* pbcheck.h - checks on protobuf messages unpacked from a peer's bytes that
 * protobuf-c itself does not make. */
#ifndef PCD_PBCHECK_H
#define PCD_PBCHECK_H

#include <stdbool.h>

#include <protobuf-c/protobuf-c.h>

/* protobuf-c 1.4 accepts field number 0 when its tag is encoded in more
 * than one byte (e.g. 0x80 0x00) and keeps it as an unknown field, which
 * it then re-encodes in a form it refuses itself. Field number 0 is not
 * valid protobuf: true when m and every message inside it are free of it. */
bool pbcheck_tags(const ProtobufCMessage *m);

/* protobuf_c_message_unpack, then pbcheck_tags: NULL for either failure. */
ProtobufCMessage *pbcheck_unpack(const ProtobufCMessageDescriptor *d,
    size_t len, const uint8_t *buf);

#endif
