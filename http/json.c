/*-------------------------------------------------------------------------
 *
 * json.c
 *	  The little JSON that jobq-http does in C.
 *
 * Request bodies go to PostgreSQL as jsonb parameters and are taken apart
 * there; responses are built there too. C only checks that a body is
 * well-formed JSON, so that a malformed body is a 400 (a bad HTTP request)
 * while PostgreSQL's own input errors stay 422 (a bad argument), and escapes
 * the message of an error body, which must be answered even while PostgreSQL
 * is unreachable.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "jobq_http.h"

#define JH_JSON_MAX_DEPTH	512

typedef struct JsonScan
{
	const char *p;
	const char *end;
} JsonScan;

static bool json_value(JsonScan *s, int depth);
static int	json_container(JsonScan *s, int depth, char close, bool object, JhMember *m,
						   int max);

static void
json_space(JsonScan *s)
{
	while (s->p < s->end &&
		   (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool
json_literal(JsonScan *s, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool
json_digits(JsonScan *s)
{
	const char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
json_number(JsonScan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (!json_digits(s))
		return false;
	if (s->p < s->end && *s->p == '.')
	{
		s->p++;
		if (!json_digits(s))
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
	{
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (!json_digits(s))
			return false;
	}
	return true;
}

static bool
json_string(JsonScan *s)
{
	s->p++;						/* the opening quote */
	while (s->p < s->end)
	{
		unsigned char c = (unsigned char) *s->p++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c == '\\')
		{
			if (s->p >= s->end)
				return false;
			c = (unsigned char) *s->p++;
			if (c == 'u')
			{
				int			i;

				for (i = 0; i < 4; i++, s->p++)
					if (s->p >= s->end || !strchr("0123456789abcdefABCDEF", *s->p) ||
						*s->p == '\0')
						return false;
			}
			else if (!strchr("\"\\/bfnrt", c) || c == '\0')
				return false;
		}
	}
	return false;
}

/*
 * One member of an object at s->p: its key (a string) and, after the colon,
 * its value. When m is not NULL, m->key and m->key_len get what is between
 * the key's quotes, m->value and m->value_len the value's text.
 */
static bool
json_member(JsonScan *s, int depth, JhMember *m)
{
	const char *key = s->p;

	if (s->p >= s->end || *s->p != '"' || !json_string(s))
		return false;
	if (m != NULL)
	{
		m->key = key + 1;
		m->key_len = (size_t) (s->p - key - 2);
	}
	json_space(s);
	if (s->p >= s->end || *s->p != ':')
		return false;
	s->p++;
	json_space(s);
	if (m != NULL)
		m->value = s->p;
	if (!json_value(s, depth + 1))
		return false;
	if (m != NULL)
		m->value_len = (size_t) (s->p - m->value);
	return true;
}

/*
 * An object or array at s->p; an object's members go to m[0..max) when m is
 * not NULL. Returns how many members, or -1 when malformed or (with m) when
 * there are more than max.
 */
static int
json_container(JsonScan *s, int depth, char close, bool object, JhMember *m, int max)
{
	int			n = 0;

	s->p++;						/* the opening bracket */
	json_space(s);
	if (s->p < s->end && *s->p == close)
	{
		s->p++;
		return 0;
	}
	for (;; n++)
	{
		if (object ? (m != NULL && n == max) || !json_member(s, depth, m ? &m[n] : NULL) :
			!json_value(s, depth + 1))
			return -1;
		json_space(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p == close)
		{
			s->p++;
			return n + 1;
		}
		if (*s->p != ',')
			return -1;
		s->p++;
		json_space(s);
	}
}

static bool
json_value(JsonScan *s, int depth)
{
	if (depth > JH_JSON_MAX_DEPTH)
		return false;
	json_space(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p)
	{
		case '{':
			return json_container(s, depth, '}', true, NULL, 0) >= 0;
		case '[':
			return json_container(s, depth, ']', false, NULL, 0) >= 0;
		case '"':
			return json_string(s);
		case 't':
			return json_literal(s, "true");
		case 'f':
			return json_literal(s, "false");
		case 'n':
			return json_literal(s, "null");
		default:
			return json_number(s);
	}
}

/*
 * jh_json_check(s, len, kind): 0 when s[0..len) is one well-formed JSON text
 * (RFC 8259; nesting up to JH_JSON_MAX_DEPTH), else -1. *kind gets the kind
 * of the top-level value: 'o' object, 'a' array, 's' string, 'n' number,
 * 'l' true/false/null. Encoding is left to PostgreSQL.
 */
int
jh_json_check(const char *s, size_t len, char *kind)
{
	JsonScan	scan;

	scan.p = s;
	scan.end = s + len;
	json_space(&scan);
	if (scan.p < scan.end)
	{
		switch (*scan.p)
		{
			case '{':
				*kind = 'o';
				break;
			case '[':
				*kind = 'a';
				break;
			case '"':
				*kind = 's';
				break;
			case 't':
			case 'f':
			case 'n':
				*kind = 'l';
				break;
			default:
				*kind = 'n';
				break;
		}
	}
	if (!json_value(&scan, 0))
		return -1;
	json_space(&scan);
	return scan.p == scan.end ? 0 : -1;
}

/*
 * jh_json_members(s, len, m, max): the members of the object s[0..len), a
 * text jh_json_check accepted, into m: each key as written between its
 * quotes (escapes left as they are), each value's text. Returns how many, or
 * -1 when s is not an object or has more than max members.
 */
int
jh_json_members(const char *s, size_t len, JhMember *m, int max)
{
	JsonScan	scan;

	scan.p = s;
	scan.end = s + len;
	json_space(&scan);
	if (scan.p >= scan.end || *scan.p != '{')
		return -1;
	return json_container(&scan, 0, '}', true, m, max);
}

/*
 * jh_json_escape(dst, cap, src): writes src as the inside of a JSON string
 * into dst (cap bytes, always NUL-terminated, truncated on a character
 * boundary of the escaping), escaped as jsonb escapes it. Returns the length
 * written.
 */
size_t
jh_json_escape(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	static const char shortform_of[] = "\b\f\n\r\t\"\\";
	static const char shortform[] = "bfnrt\"\\";
	size_t		n = 0;

	if (cap == 0)
		return 0;
	for (; *src; src++)
	{
		unsigned char c = (unsigned char) *src;
		const char *hit = strchr(shortform_of, c);	/* c is not NUL here */
		char		esc[7];
		size_t		elen;

		if (hit != NULL)
		{
			esc[0] = '\\';
			esc[1] = shortform[hit - shortform_of];
			elen = 2;
		}
		else if (c < 0x20)
		{
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		else
		{
			esc[0] = (char) c;
			elen = 1;
		}
		if (n + elen >= cap)
		{
			/* do not end inside a multibyte character */
			while (n > 0 && ((unsigned char) dst[n - 1] & 0x80))
				n--;
			break;
		}
		memcpy(dst + n, esc, elen);
		n += elen;
	}
	dst[n] = '\0';
	return n;
}
