/* bench_certs.c - a throwaway CA and two certificates for the benchmark.
 *
 * Keys are ECDSA P-256 (fast to make); the bulk cipher the benchmark
 * measures does not depend on them. Files follow QEMU's tls-creds-x509
 * directory layout, which is what postcopyd reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bench.h"

static void
bench_certs_ssl_err(char *err, size_t errlen, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown OpenSSL error");
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

static int
bench_certs_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -EINVAL;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EINVAL;
}

/* A certificate for key, named cn, signed by (issuer, ikey) or self-signed
 * when issuer is NULL. role: 0 CA, 1 server, 2 client. */
static X509 *
bench_certs_make(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey,
    int role, long serial)
{
	X509 *x = X509_new();
	X509_NAME *name;
	int rc = 0;

	if (x == NULL)
		return NULL;
	if (!X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7L * 24 * 3600) == NULL ||
	    !X509_set_pubkey(x, key))
		goto fail;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"postcopy-bench", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0))
		goto fail;
	if (!X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) :
	    name))
		goto fail;
	if (issuer == NULL)
		issuer = x;
	rc |= bench_certs_ext(x, issuer, NID_subject_key_identifier, "hash");
	rc |= bench_certs_ext(x, issuer, NID_authority_key_identifier,
	    "keyid:always");
	if (role == 0) {
		rc |= bench_certs_ext(x, issuer, NID_basic_constraints,
		    "critical,CA:TRUE");
		rc |= bench_certs_ext(x, issuer, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
	} else {
		rc |= bench_certs_ext(x, issuer, NID_basic_constraints,
		    "critical,CA:FALSE");
		rc |= bench_certs_ext(x, issuer, NID_key_usage,
		    "critical,digitalSignature,keyAgreement");
		rc |= bench_certs_ext(x, issuer, NID_ext_key_usage,
		    role == 1 ? "serverAuth" : "clientAuth");
		rc |= bench_certs_ext(x, issuer, NID_subject_alt_name,
		    "DNS:localhost,IP:127.0.0.1");
	}
	if (rc != 0)
		goto fail;
	if (!X509_sign(x, ikey, EVP_sha256()))
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static int
bench_certs_write(const char *dir, const char *file, X509 *cert,
    EVP_PKEY *key, char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *f;
	int fd, ok;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    (int)sizeof(path)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, file);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    key ? 0600 : 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
		return -e;
	}
	if (key)
		ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_X509(f, cert);
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		bench_certs_ssl_err(err, errlen, path);
		return -EIO;
	}
	return 0;
}

int
bench_certs_generate(const char *dir, char *err, size_t errlen)
{
	EVP_PKEY *cakey = NULL, *skey = NULL, *ckey = NULL;
	X509 *ca = NULL, *scert = NULL, *ccert = NULL;
	int rc = -EIO;

	cakey = EVP_EC_gen("P-256");
	skey = EVP_EC_gen("P-256");
	ckey = EVP_EC_gen("P-256");
	if (cakey == NULL || skey == NULL || ckey == NULL) {
		bench_certs_ssl_err(err, errlen, "cannot generate P-256 keys");
		goto out;
	}
	ca = bench_certs_make(cakey, "postcopy-bench CA", NULL, cakey, 0, 1);
	if (ca == NULL) {
		bench_certs_ssl_err(err, errlen, "cannot make the CA certificate");
		goto out;
	}
	scert = bench_certs_make(skey, "localhost", ca, cakey, 1, 2);
	ccert = bench_certs_make(ckey, "localhost", ca, cakey, 2, 3);
	if (scert == NULL || ccert == NULL) {
		bench_certs_ssl_err(err, errlen, "cannot make the peer certificates");
		goto out;
	}
	if ((rc = bench_certs_write(dir, "ca-cert.pem", ca, NULL, err, errlen)) ||
	    (rc = bench_certs_write(dir, "server-cert.pem", scert, NULL, err,
	    errlen)) ||
	    (rc = bench_certs_write(dir, "server-key.pem", NULL, skey, err,
	    errlen)) ||
	    (rc = bench_certs_write(dir, "client-cert.pem", ccert, NULL, err,
	    errlen)) ||
	    (rc = bench_certs_write(dir, "client-key.pem", NULL, ckey, err,
	    errlen)))
		goto out;
	rc = 0;
out:
	X509_free(ca);
	X509_free(scert);
	X509_free(ccert);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(skey);
	EVP_PKEY_free(ckey);
	return rc;
}
