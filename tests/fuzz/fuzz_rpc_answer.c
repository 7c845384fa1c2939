/* fuzz_rpc_answer.c - what postcopyctl reads from a daemon (over TLS for
 * a remote one): a stream of RPC frames through rpc_hdr_decode and
 * rpc_answer_decode, each answer then written by pbjson_write (what
 * `postcopyctl --json` prints), which must be valid JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.pb-c.h"
#include "fuzz.h"
#include "pbjson.h"
#include "rpc_client.h"

/* A strict JSON syntax check (RFC 8259), enough to judge pbjson's output:
 * returns the position after one value, or NULL. */
static const char *json_value(const char *s, int depth);

static const char *
json_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static const char *
json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*s++;

		if (c == '"')
			return s;
		if (c < 0x20)
			return NULL;	/* includes the terminating NUL */
		if (c != '\\')
			continue;
		c = (unsigned char)*s++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, s++)
				if (!((*s >= '0' && *s <= '9') ||
				    (*s >= 'a' && *s <= 'f') ||
				    (*s >= 'A' && *s <= 'F')))
					return NULL;
		} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
			return NULL;
	}
}

static const char *
json_number(const char *s)
{
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		while (*s >= '0' && *s <= '9')
			s++;
	else
		return NULL;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return NULL;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return NULL;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return s;
}

static const char *
json_value(const char *s, int depth)
{
	if (depth > 64)
		return NULL;
	s = json_ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';
		int obj = *s == '{';

		s = json_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (obj) {
				if ((s = json_string(json_ws(s))) == NULL)
					return NULL;
				s = json_ws(s);
				if (*s++ != ':')
					return NULL;
			}
			if ((s = json_value(s, depth + 1)) == NULL)
				return NULL;
			s = json_ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (*s == '"')
		return json_string(s);
	if (strncmp(s, "true", 4) == 0)
		return s + 4;
	if (strncmp(s, "false", 5) == 0)
		return s + 5;
	if (strncmp(s, "null", 4) == 0)
		return s + 4;
	return json_number(s);
}

static void
check_json(const ProtobufCMessage *m)
{
	char *buf = NULL;
	size_t len = 0;
	const char *e;
	FILE *f;

	f = open_memstream(&buf, &len);
	FUZZ_CHECK(f != NULL);
	pbjson_write(f, m);
	FUZZ_CHECK(fclose(f) == 0);
	FUZZ_CHECK(strlen(buf) == len);		/* no NUL inside */
	e = json_value(buf, 0);
	FUZZ_CHECK(e != NULL && *json_ws(e) == '\0');
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	while ((size_t)(end - p) >= RPC_HDR_SIZE) {
		struct rpc_answer a;
		struct rpc_hdr h;
		char err[256];
		size_t n;
		int r;

		if (rpc_hdr_decode(p, RPC_MAX_FRAME_LIMIT, &h) < 0)
			break;
		n = rpc_payload_len(&h);
		p += RPC_HDR_SIZE;
		if ((size_t)(end - p) < n)
			break;
		err[0] = '\0';
		r = rpc_answer_decode(&h, p, n, &a, err, sizeof(err));
		p += n;
		if (r < 0) {
			FUZZ_CHECK(r == -EPROTO && a.msg == NULL);
			FUZZ_CHECK_ERR(err, sizeof(err));
			break;
		}
		FUZZ_CHECK(a.msg != NULL && a.message != NULL);
		FUZZ_CHECK(memcmp(&a.hdr, &h, sizeof(h)) == 0);
		if (h.kind == RPC_ERROR)
			FUZZ_CHECK(a.msg->descriptor == &pcd__status__descriptor);
		else
			FUZZ_CHECK((h.kind == RPC_REPLY || h.kind == RPC_EVENT) &&
			    a.msg->descriptor ==
			    rpc_method_get(h.method)->output);
		check_json(a.msg);
		rpc_answer_clear(&a);
	}
	return 0;
}
