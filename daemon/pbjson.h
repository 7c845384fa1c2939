/* pbjson.h - any protobuf-c message as one line of JSON, driven by its
 * descriptor (field names as in the .proto). Used by `postcopyctl --json`.
 */
#ifndef PCD_PBJSON_H
#define PCD_PBJSON_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

/* Writes m as a JSON object (no newline). Every field is written, zero
 * values included, so consumers need no defaults; a oneof writes only the
 * member that is set; bytes are written as hex strings. */
void pbjson_write(FILE *f, const ProtobufCMessage *m);
/* A JSON string literal, escaped. */
void pbjson_string(FILE *f, const char *s);

#endif
