/* pbcheck.c - see pbcheck.h. */
#include "pbcheck.h"

#include <stddef.h>
#include <stdint.h>

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

ProtobufCMessage *
pbcheck_unpack(const ProtobufCMessageDescriptor *d, size_t len,
    const uint8_t *buf)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);

	if (m != NULL && !pbcheck_tags(m)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}
