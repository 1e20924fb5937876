/*-------------------------------------------------------------------------
 *
 * config.c
 *	  jobq-http's configuration: defaults, then JOBQ_HTTP_* environment
 *	  variables, then command-line flags (--name VALUE or --name=VALUE), then
 *	  the tokens file. --help prints them all.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
"  --tokens FILE        bearer tokens, one \"TOKEN ROLE\" per line (# comments):\n"
"                       a request must carry \"Authorization: Bearer TOKEN\" and\n"
"                       runs with SET ROLE ROLE (a line with no ROLE keeps the\n"
"                       connection's role). Without it only loopback clients\n"
"                       are served. Env: JOBQ_HTTP_TOKENS\n"
"  --help               print this help and exit\n"
"  --version            print the version and exit\n"
"\n"
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
	if (strcmp(name, "pool") == 0 && parse_int(value, 1, 1000, &v))
		jh_config.pool = (int) v;
	else if (strcmp(name, "threads") == 0 && parse_int(value, 1, 1000, &v))
		jh_config.threads = (int) v;
	else if (strcmp(name, "max-body") == 0 && parse_int(value, 1, 1L << 30, &v))
		jh_config.max_body = v;
	else if (strcmp(name, "timeout") == 0 && parse_int(value, 1, 3600, &v))
		jh_config.timeout = (int) v;
	else
		return false;
	return true;
}

/* Reads the tokens file: "TOKEN [ROLE]" per line, blank lines and # comments. */
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
		char	   *save = NULL;
		char	   *token;
		char	   *role;
		JhToken    *grown;

		lineno++;
		if (strchr(line, '#'))
			*strchr(line, '#') = '\0';
		token = strtok_r(line, " \t\r\n", &save);
		if (token == NULL)
			continue;
		role = strtok_r(NULL, " \t\r\n", &save);
		if (strtok_r(NULL, " \t\r\n", &save) != NULL)
		{
			fprintf(stderr, "jobq-http: %s:%d: expected \"TOKEN ROLE\"\n", path, lineno);
			fclose(f);
			return false;
		}
		grown = realloc(jh_config.tokens, (jh_config.ntokens + 1) * sizeof(JhToken));
		if (grown == NULL)
		{
			fclose(f);
			return false;
		}
		jh_config.tokens = grown;
		grown[jh_config.ntokens].token = strdup(token);
		grown[jh_config.ntokens].role = role ? strdup(role) : NULL;
		jh_config.ntokens++;
	}
	fclose(f);
	if (jh_config.ntokens == 0)
	{
		fprintf(stderr, "jobq-http: tokens file %s has no token\n", path);
		return false;
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
	"timeout", "tokens", NULL};
	bool		listen_from_flag = false;
	int			i;

	jh_config.pool = 8;
	jh_config.threads = 32;
	jh_config.max_body = 1024 * 1024;
	jh_config.timeout = 30;
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
	return 0;
}

void
jh_config_free(void)
{
	int			i;

	for (i = 0; i < jh_config.ntokens; i++)
	{
		free(jh_config.tokens[i].token);
		free(jh_config.tokens[i].role);
	}
	free(jh_config.tokens);
	free(jh_config.listen);
	free(jh_config.db);
	free(jh_config.tokens_file);
	memset(&jh_config, 0, sizeof(jh_config));
}
