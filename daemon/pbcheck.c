/* pbcheck.c - see pbcheck.h. */
#include "pbcheck.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define PBCHECK_DEPTH	16	/* our messages nest 3 deep at most */

static bool
pbcheck_msg(const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d;

	if (m == NULL)
		return true;
	if (depth > PBCHECK_DEPTH)
		return false;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return false;
	d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v =
			    *(ProtobufCMessage *const *const *)(base + f->offset);

			for (size_t k = 0; k < n; k++)
				if (!pbcheck_msg(v[k], depth + 1))
					return false;
			continue;
		}
		/* A oneof member is only there when its case says so (the
		 * members share their storage). */
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (!pbcheck_msg(*(ProtobufCMessage *const *)(base + f->offset),
		    depth + 1))
			return false;
	}
	return true;
}

bool
pbcheck_tags(const ProtobufCMessage *m)
{
	return pbcheck_msg(m, 0);
}

/* Reads a varint at *pos; false when it runs past len or over 10 bytes. */
static bool
pbcheck_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (*pos >= len)
			return false;
		*v |= (uint64_t)(buf[*pos] & 0x7f) << (shift < 64 ? shift : 0);
		if ((buf[(*pos)++] & 0x80) == 0)
			return true;
	}
	return false;
}

static bool
pbcheck_string(const ProtobufCMessageDescriptor *d,
    const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t n,
    char *err, size_t errlen)
{
	const uint8_t *nul = memchr(p, 0, n);

	if (nul != NULL) {
		if (err != NULL)
			snprintf(err, errlen, "%s.%s: contains a NUL byte at "
			    "offset %zu", d->short_name, f->name,
			    (size_t)(nul - p));
		return false;
	}
	if (!utf8_valid(p, n)) {
		if (err != NULL)
			snprintf(err, errlen, "%s.%s: is not valid UTF-8",
			    d->short_name, f->name);
		return false;
	}
	return true;
}

static bool
pbcheck_walk(const ProtobufCMessageDescriptor *d, const uint8_t *buf,
    size_t len, int depth, char *err, size_t errlen)
{
	size_t pos = 0;
	uint64_t tag, n;

	if (depth > PBCHECK_DEPTH)
		goto malformed;
	while (pos < len) {
		const ProtobufCFieldDescriptor *f;

		if (!pbcheck_varint(buf, len, &pos, &tag))
			goto malformed;
		switch (tag & 7) {
		case 0:
			if (!pbcheck_varint(buf, len, &pos, &n))
				goto malformed;
			continue;
		case 1:
		case 5:
			n = (tag & 7) == 1 ? 8 : 4;
			if (len - pos < n)
				goto malformed;
			pos += n;
			continue;
		case 2:
			break;
		default:
			goto malformed;		/* groups: not in proto3 */
		}
		if (!pbcheck_varint(buf, len, &pos, &n) || n > len - pos)
			goto malformed;
		f = tag >> 3 <= UINT32_MAX ?
		    protobuf_c_message_descriptor_get_field(d,
		    (unsigned)(tag >> 3)) : NULL;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
		    !pbcheck_string(d, f, buf + pos, n, err, errlen))
			return false;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    !pbcheck_walk(f->descriptor, buf + pos, n, depth + 1, err,
		    errlen))
			return false;
		pos += n;
	}
	return true;
malformed:
	if (err != NULL)
		snprintf(err, errlen, "%s: malformed encoding", d->short_name);
	return false;
}

bool
pbcheck_strings(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *buf, char *err, size_t errlen)
{
	return pbcheck_walk(d, buf, len, 0, err, errlen);
}

ProtobufCMessage *
pbcheck_unpack_why(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *buf, char *err, size_t errlen)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);

	if (m == NULL) {
		if (err != NULL)
			snprintf(err, errlen, "not a valid %s", d->name);
		return NULL;
	}
	if (!pbcheck_tags(m)) {
		if (err != NULL)
			snprintf(err, errlen, "%s: field number 0", d->name);
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	if (!pbcheck_strings(d, len, buf, err, errlen)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

ProtobufCMessage *
pbcheck_unpack(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *buf)
{
	return pbcheck_unpack_why(d, len, buf, NULL, 0);
}
