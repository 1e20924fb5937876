/*-------------------------------------------------------------------------
 *
 * main.c
 *	  jobq-http: the REST sidecar of jobq (civetweb + libpq).
 *
 * Start-up follows civetweb's embedded_c example: mg_init_library, an
 * options array, mg_start; every request is answered by the begin_request
 * callback (router.c), so civetweb itself serves nothing: no document root,
 * no CGI, no websockets, no forms. civetweb's max_request_size bounds the
 * request line and headers together (JH_MAX_REQUEST_LINE +
 * JH_MAX_HEADER_BYTES; router.c checks each), request_timeout_ms bounds
 * reading them (slow clients) and each body read. With --tls-cert civetweb
 * speaks TLS through OpenSSL: Debian's libcivetweb loads libssl.so at run
 * time and needs one function OpenSSL 3 renamed, which jobq-http-libssl.so
 * (ssl-shim.c) adds; load_ssl_shim loads it first. SIGTERM and
 * SIGINT are blocked in every thread and taken here with sigwait: then
 * long-polls are woken, the requests in flight are waited for while new ones
 * get 503 (the drain, at most JH_DRAIN_SECONDS), mg_stop closes the
 * listeners and connections, the LISTEN thread and the pool are closed, and
 * the process exits 0.
 *
 *-------------------------------------------------------------------------
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobq_http.h"

/* How long SIGTERM waits for the requests in flight (a /run may wait long). */
#define JH_DRAIN_SECONDS(timeout)	(2 * (timeout) + 5)

volatile sig_atomic_t jh_stopping;
time_t		jh_started_at;

/*
 * load_ssl_shim: loads jobq-http-libssl.so (ssl-shim.c) from beside the
 * executable (a build tree), else from where make install puts it, so that
 * civetweb's dlopen("libssl.so") finds it. Without it (or with an OpenSSL
 * that does not need it) civetweb loads libssl.so itself.
 */
static void
load_ssl_shim(void)
{
	char		exe[PATH_MAX];
	char		path[PATH_MAX + 32];
	ssize_t		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0)
	{
		exe[n] = '\0';
		snprintf(path, sizeof(path), "%s/jobq-http-libssl.so", dirname(exe));
		if (dlopen(path, RTLD_NOW | RTLD_GLOBAL) != NULL)
			return;
	}
#ifdef JH_SSL_SHIM
	(void) dlopen(JH_SSL_SHIM, RTLD_NOW | RTLD_GLOBAL);
#endif
}

/* Microseconds on the monotonic clock. */
int64_t
jh_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* *ts = now + from_now_us on the monotonic clock (for pthread_cond_timedwait). */
void
jh_deadline(struct timespec *ts, int64_t from_now_us)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += from_now_us / 1000000;
	ts->tv_nsec += (from_now_us % 1000000) * 1000;
	if (ts->tv_nsec >= 1000000000)
	{
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* jh_cond_init: a condition variable whose timed waits take jh_deadline's clock. */
void
jh_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* civetweb's own messages (bind failures and the like) go to stderr. */
static int
log_message(const struct mg_connection *conn, const char *message)
{
	(void) conn;
	fprintf(stderr, "jobq-http: civetweb: %s\n", message);
	return 1;
}

int
main(int argc, char **argv)
{
	struct mg_callbacks callbacks;
	struct mg_context *ctx;
	sigset_t	signals;
	int			sig;
	int			rc;
	char		threads[16];
	char		timeout_ms[16];
	char		max_request[16];
	const char *options[32];
	int			n = 0;

	rc = jh_config_load(argc, argv);
	if (rc != 0)
	{
		jh_config_free();
		return rc > 0 ? 0 : 2;
	}
	jh_started_at = time(NULL);
	setvbuf(stderr, NULL, _IOLBF, 0);

	/* every thread started from here on inherits the blocked signals */
	sigemptyset(&signals);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);

	if (jh_config.tls_cert)
		load_ssl_shim();
	if ((mg_init_library(jh_config.tls_cert ? MG_FEATURES_TLS : 0) & MG_FEATURES_TLS) == 0 &&
		jh_config.tls_cert)
	{
		fprintf(stderr, "jobq-http: civetweb cannot use TLS here (its libssl.so did not "
				"load: is jobq-http-libssl.so installed beside jobq-http or in %s?): "
				"terminate TLS in a proxy and give --insecure\n",
#ifdef JH_SSL_SHIM
				JH_SSL_SHIM
#else
				"the library directory"
#endif
			);
		jh_config_free();
		return 1;
	}
	jh_router_init();
	jh_pool_init();
	jh_listen_start();

	snprintf(threads, sizeof(threads), "%d", jh_config.threads);
	snprintf(timeout_ms, sizeof(timeout_ms), "%d", jh_config.timeout * 1000);
	snprintf(max_request, sizeof(max_request), "%d",
			 JH_MAX_REQUEST_LINE + JH_MAX_HEADER_BYTES + 1024);
	options[n++] = "listening_ports";
	options[n++] = jh_config.listen;
	options[n++] = "num_threads";
	options[n++] = threads;
	options[n++] = "request_timeout_ms";
	options[n++] = timeout_ms;
	options[n++] = "enable_keep_alive";
	options[n++] = "yes";
	options[n++] = "tcp_nodelay";	/* each answer is one write (reply.c): send it at once */
	options[n++] = "1";
	options[n++] = "keep_alive_timeout_ms";
	options[n++] = "5000";
	options[n++] = "decode_url";	/* router.c decodes each path segment */
	options[n++] = "no";
	options[n++] = "access_control_allow_origin";	/* no CORS: no browser calls */
	options[n++] = "";
	options[n++] = "enable_directory_listing";
	options[n++] = "no";
	options[n++] = "max_request_size";	/* request line and headers */
	options[n++] = max_request;
	options[n++] = "cgi_pattern";	/* no document root anyway: never CGI */
	options[n++] = "";
	options[n++] = "ssi_pattern";
	options[n++] = "";
	options[n++] = "index_files";
	options[n++] = "";
	if (jh_config.tls_cert)
	{
		options[n++] = "ssl_certificate";
		options[n++] = jh_config.tls_cert;
		options[n++] = "ssl_protocol_version";	/* TLS 1.2 and later */
		options[n++] = "4";
	}
	options[n++] = NULL;

	memset(&callbacks, 0, sizeof(callbacks));
	callbacks.log_message = log_message;
	callbacks.begin_request = jh_begin_request;
	ctx = mg_start(&callbacks, NULL, options);
	if (ctx == NULL)
	{
		fprintf(stderr, "jobq-http: cannot listen on %s\n", jh_config.listen);
		jh_stopping = 1;
		jh_listen_stop();
		jh_pool_close();
		mg_exit_library();
		jh_config_free();
		return 1;
	}
	fprintf(stderr, "jobq-http %s: listening on %s%s, pool %d, threads %d%s\n", JH_VERSION,
			jh_config.listen, jh_config.tls_cert ? " (TLS)" : "", jh_config.pool,
			jh_config.threads,
			jh_config.ntokens ? ", bearer tokens required" : ", loopback clients only");

	while (sigwait(&signals, &sig) != 0)
		;
	fprintf(stderr, "jobq-http: %s: finishing the requests in flight\n",
			sig == SIGTERM ? "SIGTERM" : "SIGINT");
	__atomic_store_n(&jh_stopping, 1, __ATOMIC_SEQ_CST);
	jh_wait_wake_all();
	rc = jh_router_drain(JH_DRAIN_SECONDS(jh_config.timeout) * 1000);
	if (rc > 0)
		fprintf(stderr, "jobq-http: %d requests still in flight after the drain\n", rc);
	mg_stop(ctx);
	jh_listen_stop();
	jh_pool_close();
	mg_exit_library();
	jh_config_free();
	fprintf(stderr, "jobq-http: stopped\n");
	return 0;
}
