/* fuzz_hostport.c - the "host:port" and size parsers, which read
 * orchestrator and config input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[256], host[64];
	uint16_t port;
	uint64_t v;

	if (size >= sizeof(s))
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (parse_hostport(s, host, sizeof(host), &port) == 0 &&
	    strlen(host) >= sizeof(host))
		__builtin_trap();
	(void)parse_size(s, &v);
	return 0;
}
