/*-------------------------------------------------------------------------
 *
 * config.c
 *	  jobq-http's configuration: defaults, then JOBQ_HTTP_* environment
 *	  variables, then command-line flags (--name VALUE or --name=VALUE), then
 *	  the tokens file. --help prints them all. Refuses to serve a non-loopback
 *	  address without tokens, or over plain HTTP unless --insecure.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "jobq_http.h"

JhConfig	jh_config;

static const char usage[] =
"jobq-http " JH_VERSION ": the REST sidecar of jobq (PostgreSQL as a job queue).\n"
"\n"
"Usage: jobq-http [OPTION]...\n"
"\n"
"Each option can also be given as an environment variable JOBQ_HTTP_<NAME>\n"
"(e.g. JOBQ_HTTP_POOL=8); a flag wins over the variable.\n"
"\n"
"  --listen HOST:PORT   address to listen on (default 127.0.0.1:8080); repeat the\n"
"                       flag, or separate with commas, for several; a bare PORT\n"
"                       means 127.0.0.1:PORT. Env: JOBQ_HTTP_LISTEN\n"
"  --db CONNINFO        libpq connection string or URI (default: libpq's own\n"
"                       environment, PGHOST, PGPORT, PGDATABASE, PGUSER...).\n"
"                       Env: JOBQ_HTTP_DB\n"
"  --pool N             PostgreSQL connections in the pool (default 8).\n"
"                       Env: JOBQ_HTTP_POOL\n"
"  --threads N          HTTP worker threads, i.e. requests served at once,\n"
"                       long-polls included (default 32). Env: JOBQ_HTTP_THREADS\n"
"  --max-body BYTES     largest request body; larger ones get 413 (default\n"
"                       1048576; suffixes k, M). Env: JOBQ_HTTP_MAX_BODY\n"
"  --timeout SECONDS    request timeout: network reads and writes, waiting for a\n"
"                       pooled connection (then 429), and statement_timeout of\n"
"                       each statement (then 504) (default 30).\n"
"                       Env: JOBQ_HTTP_TIMEOUT\n"
"  --enqueue-streams N  while more plain enqueues (POST /v1/enqueue with only\n"
"                       queue and payload) are in flight than --pool, they go\n"
"                       in groups, one statement and transaction each, N groups\n"
"                       at a time (default 1; 0: never); a request waits for\n"
"                       a group at most --timeout (then 429). Env:\n"
"                       JOBQ_HTTP_ENQUEUE_STREAMS\n"
"  --tokens FILE        bearer tokens, one \"TOKEN ROLE\" per line (# comments):\n"
"                       a request must carry \"Authorization: Bearer TOKEN\" and\n"
"                       runs with SET ROLE ROLE (a line with no ROLE keeps the\n"
"                       connection's role). TOKEN may be stored hashed as\n"
"                       sha256:HEX (HEX = sha256sum of the token, 64 digits):\n"
"                         printf %s \"$TOKEN\" | sha256sum\n"
"                       Tokens are compared in constant time. Without --tokens\n"
"                       only loopback clients are served. Env: JOBQ_HTTP_TOKENS\n"
"  --rate N             requests per second per token (all loopback clients\n"
"                       share one budget without --tokens), bursts up to N;\n"
"                       past it 429 with Retry-After (default 0: no limit).\n"
"                       Env: JOBQ_HTTP_RATE\n"
"  --tls-cert FILE      serve HTTPS with this PEM file (certificate, then its\n"
"                       private key; a chain may follow), TLS 1.2 or later.\n"
"                       Env: JOBQ_HTTP_TLS_CERT\n"
"  --insecure           allow plain HTTP on a non-loopback address. Without it\n"
"                       a non-loopback --listen needs --tls-cert; it always\n"
"                       needs --tokens. Env: JOBQ_HTTP_INSECURE=1\n"
"  --help               print this help and exit\n"
"  --version            print the version and exit\n"
"\n"
"Requests: the request line is limited to 8 KiB (414), the header section to\n"
"16 KiB (431); a Content-Length with Transfer-Encoding, twice or signed is 400.\n"
"No files, CGI or websockets are served.\n"
"Access log on stderr, one line per request: METHOD PATH STATUS MICROSECONDS.\n"
"SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0.\n"
"Routes: GET /v1/openapi.yaml.\n";

static bool
set_string(char **dst, const char *value)
{
	free(*dst);
	*dst = strdup(value);
	return *dst != NULL;
}

/* Appends a listen address, making a bare port a loopback address. */
static bool
add_listen(char **list, const char *value)
{
	const char *p = value;

	while (*p)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);
		size_t		old = *list ? strlen(*list) : 0;
		bool		bare = len > 0 && strspn(p, "0123456789") == len;
		char	   *grown;

		if (len == 0)
			return false;
		grown = realloc(*list, old + len + 16);
		if (grown == NULL)
			return false;
		*list = grown;
		snprintf(grown + old, len + 16, "%s%s%.*s", old ? "," : "",
				 bare ? "127.0.0.1:" : "", (int) len, p);
		p = end ? end + 1 : p + len;
	}
	return true;
}

static bool
parse_int(const char *s, long min, long max, long *out)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || errno || v < min || v > max)
		return false;
	if (*end == 'k' || *end == 'K')
	{
		v *= 1024;
		end++;
	}
	else if (*end == 'M')
	{
		v *= 1024 * 1024;
		end++;
	}
	if (*end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Applies option name (without "--") = value; false when invalid. */
static bool
apply(const char *name, const char *value, bool *listen_from_flag)
{
	long		v;

	if (strcmp(name, "listen") == 0)
	{
		if (!*listen_from_flag)
		{
			free(jh_config.listen);
			jh_config.listen = NULL;
			*listen_from_flag = true;
		}
		return add_listen(&jh_config.listen, value);
	}
	if (strcmp(name, "db") == 0)
		return set_string(&jh_config.db, value);
	if (strcmp(name, "tokens") == 0)
		return set_string(&jh_config.tokens_file, value);
	if (strcmp(name, "tls-cert") == 0)
		return set_string(&jh_config.tls_cert, value);
	if (strcmp(name, "insecure") == 0)
	{
		if (strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
			strcasecmp(value, "yes") == 0)
			jh_config.insecure = true;
		else if (strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0 ||
				 strcasecmp(value, "no") == 0)
			jh_config.insecure = false;
		else
			return false;
		return true;
	}
	if (strcmp(name, "rate") == 0)
	{
		char	   *end;
		double		d = strtod(value, &end);

		if (*value == '\0' || *end != '\0' || !(d >= 0 && d <= 1e6))
			return false;
		jh_config.rate = d;
		return true;
	}
	if (strcmp(name, "pool") == 0 && parse_int(value, 1, 1000, &v))
		jh_config.pool = (int) v;
	else if (strcmp(name, "threads") == 0 && parse_int(value, 1, 1000, &v))
		jh_config.threads = (int) v;
	else if (strcmp(name, "max-body") == 0 && parse_int(value, 1, 1L << 30, &v))
		jh_config.max_body = v;
	else if (strcmp(name, "timeout") == 0 && parse_int(value, 1, 3600, &v))
		jh_config.timeout = (int) v;
	else if (strcmp(name, "enqueue-streams") == 0 && parse_int(value, 0, 1000, &v))
		jh_config.enqueue_streams = (int) v;
	else
		return false;
	return true;
}

/* jh_sha256: digest = SHA-256 of len bytes at data (OpenSSL's libcrypto). */
void
jh_sha256(const void *data, size_t len, unsigned char *digest)
{
	SHA256(data, len, digest);
}

/*
 * Reads the tokens file: "TOKEN [ROLE]" per line, blank lines and #
 * comments. Only each token's SHA-256 is kept: a "sha256:HEX" token is that
 * digest already.
 */
static bool
load_tokens(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[1024];
	int			lineno = 0;

	if (f == NULL)
	{
		fprintf(stderr, "jobq-http: cannot open tokens file %s: %s\n", path, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof(line), f))
	{
		char	   *token;
		char	   *role;
		const char *bad;
		JhToken    *grown;
		JhToken    *t;

		lineno++;
		bad = jh_token_line(line, &token, &role);
		if (bad != NULL)
		{
			fprintf(stderr, "jobq-http: %s:%d: %s\n", path, lineno, bad);
			OPENSSL_cleanse(line, sizeof(line));
			fclose(f);
			return false;
		}
		if (token == NULL)
			continue;
		grown = realloc(jh_config.tokens, (jh_config.ntokens + 1) * sizeof(JhToken));
		if (grown == NULL)
		{
			fclose(f);
			return false;
		}
		jh_config.tokens = grown;
		t = &grown[jh_config.ntokens];
		if (strncmp(token, "sha256:", 7) == 0)
		{
			if (!jh_token_hex(token + 7, t->digest))
			{
				fprintf(stderr, "jobq-http: %s:%d: sha256: needs 64 hexadecimal digits\n",
						path, lineno);
				fclose(f);
				return false;
			}
		}
		else
			jh_sha256(token, strlen(token), t->digest);
		t->role = role ? strdup(role) : NULL;
		jh_config.ntokens++;
		OPENSSL_cleanse(line, sizeof(line));
	}
	fclose(f);
	if (jh_config.ntokens == 0)
	{
		fprintf(stderr, "jobq-http: tokens file %s has no token\n", path);
		return false;
	}
	return true;
}

/* Is the host of listen entry s ("HOST:PORT", "[V6]:PORT", "PORT") loopback? */
static bool
loopback_listen(const char *s, size_t len)
{
	const char *colon;
	size_t		hostlen;

	if (strspn(s, "0123456789") >= len)
		return false;			/* a bare port binds every address */
	colon = NULL;
	for (const char *p = s; p < s + len; p++)
		if (*p == ':')
			colon = p;
	if (colon == NULL)
		return false;
	hostlen = (size_t) (colon - s);
	if (hostlen >= 4 && strncmp(s, "127.", 4) == 0)
		return true;
	if ((hostlen == 9 && strncmp(s, "localhost", 9) == 0) ||
		(hostlen == 5 && strncmp(s, "[::1]", 5) == 0))
		return true;
	return false;
}

/*
 * check_exposure: a non-loopback listen address needs tokens, and TLS
 * unless --insecure. With --tls-cert every port gets civetweb's "s" suffix.
 */
static bool
check_exposure(void)
{
	const char *p = jh_config.listen;
	bool		exposed = false;

	while (*p)
	{
		const char *end = strchr(p, ',');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		if (!loopback_listen(p, len))
			exposed = true;
		p += len;
		if (*p == ',')
			p++;
	}
	if (exposed && jh_config.ntokens == 0)
	{
		fprintf(stderr, "jobq-http: refusing to listen on a non-loopback address (%s) "
				"without --tokens\n", jh_config.listen);
		return false;
	}
	if (exposed && jh_config.tls_cert == NULL && !jh_config.insecure)
	{
		fprintf(stderr, "jobq-http: refusing to serve plain HTTP on a non-loopback address "
				"(%s): give --tls-cert FILE, or --insecure\n", jh_config.listen);
		return false;
	}
	if (jh_config.tls_cert)
	{
		char	   *with_s = malloc(2 * strlen(jh_config.listen) + 2);
		char	   *o = with_s;

		if (with_s == NULL)
			return false;
		for (p = jh_config.listen; *p; p++)
		{
			if (*p == ',')
				*o++ = 's';
			*o++ = *p;
		}
		*o++ = 's';
		*o = '\0';
		free(jh_config.listen);
		jh_config.listen = with_s;
	}
	return true;
}

/*
 * jh_config_load: fills jh_config. Returns 0 to run, 1 to exit with status 0
 * (--help, --version), -1 to exit with status 2 (an error, already printed).
 */
int
jh_config_load(int argc, char **argv)
{
	static const char *const names[] = {"listen", "db", "pool", "threads", "max-body",
	"timeout", "enqueue-streams", "tokens", "rate", "tls-cert", "insecure", NULL};
	bool		listen_from_flag = false;
	int			i;

	jh_config.pool = 8;
	jh_config.threads = 32;
	jh_config.max_body = 1024 * 1024;
	jh_config.timeout = 30;
	jh_config.enqueue_streams = 1;
	jh_config.db = strdup("");
	jh_config.listen = strdup("127.0.0.1:8080");

	/* the environment: JOBQ_HTTP_MAX_BODY for --max-body */
	for (i = 0; names[i]; i++)
	{
		char		var[64];
		const char *value;
		char	   *c;
		bool		dummy = false;

		snprintf(var, sizeof(var), "JOBQ_HTTP_%s", names[i]);
		for (c = var; *c; c++)
			*c = *c == '-' ? '_' : (char) toupper((unsigned char) *c);
		value = getenv(var);
		if (value == NULL || *value == '\0')
			continue;
		if (!apply(names[i], value, &dummy))
		{
			fprintf(stderr, "jobq-http: invalid value for %s: \"%s\"\n", var, value);
			return -1;
		}
	}

	for (i = 1; i < argc; i++)
	{
		const char *arg = argv[i];
		char		name[32];
		const char *value;
		const char *eq;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
		{
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(arg, "--version") == 0)
		{
			printf("jobq-http %s (civetweb %s, libpq %d)\n", JH_VERSION, mg_version(),
				   PQlibVersion());
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0)
		{
			fprintf(stderr, "jobq-http: unexpected argument \"%s\" (see --help)\n", arg);
			return -1;
		}
		arg += 2;
		if (strcmp(arg, "insecure") == 0)
		{
			jh_config.insecure = true;
			continue;
		}
		eq = strchr(arg, '=');
		if (eq)
		{
			snprintf(name, sizeof(name), "%.*s", (int) (eq - arg), arg);
			value = eq + 1;
		}
		else
		{
			snprintf(name, sizeof(name), "%s", arg);
			if (i + 1 >= argc)
			{
				fprintf(stderr, "jobq-http: --%s needs a value (see --help)\n", name);
				return -1;
			}
			value = argv[++i];
		}
		if (!apply(name, value, &listen_from_flag))
		{
			fprintf(stderr, "jobq-http: invalid option --%s \"%s\" (see --help)\n", name, value);
			return -1;
		}
	}

	if (jh_config.tokens_file && !load_tokens(jh_config.tokens_file))
		return -1;
	if (jh_config.tls_cert && access(jh_config.tls_cert, R_OK) != 0)
	{
		fprintf(stderr, "jobq-http: cannot read --tls-cert %s: %s\n", jh_config.tls_cert,
				strerror(errno));
		return -1;
	}
	if (!check_exposure())
		return -1;
	return 0;
}

void
jh_config_free(void)
{
	int			i;

	for (i = 0; i < jh_config.ntokens; i++)
		free(jh_config.tokens[i].role);
	free(jh_config.tokens);
	free(jh_config.listen);
	free(jh_config.db);
	free(jh_config.tokens_file);
	free(jh_config.tls_cert);
	memset(&jh_config, 0, sizeof(jh_config));
}
