/*-------------------------------------------------------------------------
 *
 * ssl-shim.c
 *	  jobq-http-libssl.so: lets Debian 12's civetweb speak TLS with OpenSSL 3.
 *
 * libcivetweb 1.15 opens "libssl.so" at run time and looks up, by name, the
 * OpenSSL 1.1 functions it uses. OpenSSL 3 has all of them but one:
 * SSL_get_peer_certificate became SSL_get1_peer_certificate (same meaning:
 * the caller gets a reference it frees). This library has the soname
 * "libssl.so", depends on libssl.so.3, and adds the old name. jobq-http
 * loads it before civetweb initialises TLS; civetweb's dlopen("libssl.so")
 * then finds it already loaded, and every other function through its
 * dependency on libssl.so.3.
 *
 *-------------------------------------------------------------------------
 */

/* declared here: OpenSSL 3's ssl.h turns the old name into a macro */
typedef struct ssl_st SSL;
typedef struct x509_st X509;
extern X509 *SSL_get1_peer_certificate(const SSL *s);
X509	   *SSL_get_peer_certificate(const SSL *s);

X509 *
SSL_get_peer_certificate(const SSL *s)
{
	return SSL_get1_peer_certificate(s);
}
