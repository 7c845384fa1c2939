/* bench_json.c - just enough JSON reading for postcopy-bench: find a value
 * by a dotted path ("pages.verified", "runs.0.mode") in the output of
 * postcopyctl --json and postcopy-guest's summary. The text is read, never
 * modified; anything malformed is "not found".
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char *
bench_json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Past a string starting at its opening quote; NULL if unterminated. */
static const char *
bench_json_skip_str(const char *p)
{
	for (p++; *p != '\0'; p++) {
		if (*p == '\\') {
			if (*++p == '\0')
				return NULL;
		} else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past one value; NULL if malformed. depth caps nesting. */
static const char *
bench_json_skip(const char *p, int depth)
{
	p = bench_json_ws(p);
	if (depth > 64)
		return NULL;
	if (*p == '"')
		return bench_json_skip_str(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = bench_json_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (*p != '"' || (p = bench_json_skip_str(p)) == NULL)
					return NULL;
				p = bench_json_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if ((p = bench_json_skip(p, depth + 1)) == NULL)
				return NULL;
			p = bench_json_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
			p = bench_json_ws(p);
		}
	}
	if (*p == '-' || *p == '+' || isalnum((unsigned char)*p)) {
		while (*p == '-' || *p == '+' || *p == '.' ||
		    isalnum((unsigned char)*p))
			p++;
		return p;
	}
	return NULL;
}

/* The value of member name (length len) of the object at p, or NULL. */
static const char *
bench_json_member(const char *p, const char *name, size_t len)
{
	p = bench_json_ws(p);
	if (*p != '{')
		return NULL;
	p = bench_json_ws(p + 1);
	while (*p == '"') {
		const char *k = p + 1, *e = bench_json_skip_str(p);

		if (e == NULL)
			return NULL;
		p = bench_json_ws(e);
		if (*p++ != ':')
			return NULL;
		p = bench_json_ws(p);
		if ((size_t)(e - 1 - k) == len && memcmp(k, name, len) == 0)
			return p;
		if ((p = bench_json_skip(p, 0)) == NULL)
			return NULL;
		p = bench_json_ws(p);
		if (*p == ',')
			p = bench_json_ws(p + 1);
	}
	return NULL;
}

static const char *
bench_json_element(const char *p, unsigned long idx)
{
	p = bench_json_ws(p);
	if (*p != '[')
		return NULL;
	p = bench_json_ws(p + 1);
	if (*p == ']')
		return NULL;
	while (idx-- > 0) {
		if ((p = bench_json_skip(p, 0)) == NULL)
			return NULL;
		p = bench_json_ws(p);
		if (*p++ != ',')
			return NULL;
	}
	return bench_json_ws(p);
}

const char *
bench_json_find(const char *json, const char *path)
{
	const char *p = json;

	while (p != NULL && *path != '\0') {
		size_t len = strcspn(path, ".");

		if (isdigit((unsigned char)*path) && *bench_json_ws(p) == '[')
			p = bench_json_element(p, strtoul(path, NULL, 10));
		else
			p = bench_json_member(p, path, len);
		path += len;
		if (*path == '.')
			path++;
	}
	return p ? bench_json_ws(p) : NULL;
}

int
bench_json_num(const char *json, const char *path, double *out)
{
	const char *p = bench_json_find(json, path);
	char *end;

	if (p == NULL)
		return -ENOENT;
	if (*p == '"')		/* 64-bit integers are sometimes quoted */
		p++;
	if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
		*out = *p == 't';
		return 0;
	}
	errno = 0;
	*out = strtod(p, &end);
	if (end == p || errno != 0)
		return -EINVAL;
	return 0;
}

int
bench_json_u64(const char *json, const char *path, uint64_t *out)
{
	double d;
	int rc = bench_json_num(json, path, &d);

	if (rc == 0) {
		if (d < 0)
			return -ERANGE;
		*out = (uint64_t)d;
	}
	return rc;
}
