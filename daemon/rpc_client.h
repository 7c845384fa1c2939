/* rpc_client.h - a small blocking client of the control RPC over a Unix
 * socket or mutual TLS (postcopyctl, postcopy-bench, tests). Not linked
 * into postcopyd (library pcdclient).
 */
#ifndef PCD_RPC_CLIENT_H
#define PCD_RPC_CLIENT_H

#include "rpc.h"

/* One received answer. For REPLY/EVENT msg is the method's output message,
 * for ERROR a Pcd__Status. */
struct rpc_answer {
	struct rpc_hdr		 hdr;
	ProtobufCMessage	*msg;
	uint32_t		 code;		/* status.code of msg */
	const char		*message;	/* status.message of msg */
};

/* rpc_answer_decode (client): a REPLY/EVENT carrying the method's output
 * message, or an ERROR carrying a pcd.Status. 0 and *a filled (a->hdr = *h;
 * release with rpc_answer_clear), or -EPROTO with err naming the problem. */
int rpc_answer_decode(const struct rpc_hdr *h, const uint8_t *p, size_t n,
    struct rpc_answer *a, char *err, size_t errlen);

/* Blocking client. */
struct rpc_client;

/* Connects to a Unix socket path, or, when tls_dir is not NULL, to
 * "host:port" with mutual TLS 1.3 (ca-cert.pem, client-cert.pem,
 * client-key.pem in tls_dir). */
int rpc_client_connect(const char *target, const char *tls_dir,
    struct rpc_client **out, char *err, size_t errlen);
void rpc_client_close(struct rpc_client *c);
/* Sends a request; returns the call id it used in *call_id. */
int rpc_client_send(struct rpc_client *c, unsigned method,
    const ProtobufCMessage *req, uint32_t *call_id, char *err, size_t errlen);

/* Waits up to timeout_ms (-1 = forever) for the next frame. 0, -ETIMEDOUT,
 * -ECONNRESET (peer closed), -EPROTO/-EMSGSIZE (malformed answer). */
int rpc_client_recv(struct rpc_client *c, int timeout_ms,
    struct rpc_answer *a, char *err, size_t errlen);
void rpc_answer_clear(struct rpc_answer *a);

/* After rpc_client_send failed with r: a daemon that turned the connection
 * away (e.g. too many open) sent an ERROR frame with call id 0 before it
 * closed. 0 and *a when that frame is there, else r. */
#define RPC_REFUSAL_WAIT_MS	1000
int rpc_client_refusal(struct rpc_client *c, int r, struct rpc_answer *a,
    char *err, size_t errlen);

/* send + recv of a unary call (and rpc_client_refusal). */
int rpc_client_call(struct rpc_client *c, unsigned method,
    const ProtobufCMessage *req, int timeout_ms, struct rpc_answer *a,
    char *err, size_t errlen);

#endif
