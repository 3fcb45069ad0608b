/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "records.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "util.h"

/* ---- the reader ---- */

static const char *next_str(struct rec_reader *r)
{
	if (r->pos >= r->len)
		return NULL;
	char *s = r->buf + r->pos;
	char *z = memchr(s, 0, r->len - r->pos);
	if (!z)
		return NULL;
	r->pos = (size_t)(z - r->buf) + 1;
	return s;
}

enum rec_status rec_open(struct rec_reader *r, char *buf, size_t len, const char *magic, const char *version)
{
	*r = (struct rec_reader){ .buf = buf, .len = len };
	const char *m = next_str(r);
	if (!m || strcmp(m, magic) != 0)
		return REC_BAD_MAGIC;
	const char *v = next_str(r);
	if (!v)
		return REC_NO_VERSION;
	if (strcmp(v, version) != 0) {
		r->version = v;
		return REC_BAD_VERSION;
	}
	/* Every record's arguments fit in one pool of NULL-terminated slices: a record of COUNT
	 * arguments takes COUNT + 2 strings and COUNT + 1 slots. */
	size_t nstr = 0;
	for (size_t i = r->pos; i < len; i++)
		nstr += buf[i] == 0;
	r->pool = calloc(nstr + 1, sizeof(char *));
	return r->pool ? REC_OK : REC_NOMEM;
}

enum rec_status rec_head(struct rec_reader *r, struct rec *out)
{
	*out = (struct rec){ .idx = ++r->idx };
	out->name = next_str(r);
	if (!out->name)
		return REC_NO_NAME;
	out->count = next_str(r);
	if (!out->count)
		return REC_NO_COUNT;
	long long n;
	if (rec_ll(out->count, 0, REC_MAX_ARGS, &n) < 0)
		return REC_BAD_COUNT;
	out->n = (size_t)n;
	return REC_OK;
}

enum rec_status rec_args(struct rec_reader *r, struct rec *out)
{
	out->a = r->pool + r->used;
	for (size_t i = 0; i < out->n; i++) {
		const char *arg = next_str(r);
		if (!arg) {
			out->present = i;
			return REC_SHORT_ARGS;
		}
		out->a[i] = arg;
	}
	r->used += out->n + 1; /* +1 keeps each slice NULL-terminated */
	return REC_OK;
}

size_t rec_left(const struct rec_reader *r)
{
	return r->len - r->pos;
}

size_t rec_find(const struct rec_def *t, size_t n, const char *name)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			break;
	return i;
}

/* ---- numbers ---- */

int rec_ll(const char *s, long long min, long long max, long long *out)
{
	if (!*s)
		return -EINVAL;
	const char *p = s;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (!*p)
		return -EINVAL;
	unsigned long long v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (ULLONG_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > (unsigned long long)LLONG_MAX)
		return -ERANGE;
	long long r = neg ? -(long long)v : (long long)v;
	if (r < min || r > max)
		return -ERANGE;
	*out = r;
	return 0;
}

int rec_int(const char *s, int min, int max, int *out)
{
	long long v;
	int r = rec_ll(s, min, max, &v);
	if (r == 0)
		*out = (int)v;
	return r;
}

int rec_octal(const char *s, unsigned max, mode_t *out)
{
	unsigned v = 0;
	if (!*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return -EINVAL;
		v = v * 8 + (unsigned)(*p - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = v;
	return 0;
}

int rec_hex64(const char *s, uint64_t *out)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!*s || strlen(s) > 16)
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (*p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return -EINVAL;
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

int rec_bool(const char *s, int *out)
{
	if (strcmp(s, "0") == 0)
		*out = 0;
	else if (strcmp(s, "1") == 0)
		*out = 1;
	else
		return -EINVAL;
	return 0;
}

int rec_rlim(const char *s, rlim_t *out)
{
	if (strcmp(s, "infinity") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	long long v;
	int r = rec_ll(s, 0, LLONG_MAX, &v);
	if (r == 0)
		*out = (rlim_t)v;
	return r;
}

int parse_mount_flags(const char *s, unsigned long *out)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} names[] = {
		{ "ro", MS_RDONLY },
		{ "nosuid", MS_NOSUID },
		{ "nodev", MS_NODEV },
		{ "noexec", MS_NOEXEC },
		{ "sync", MS_SYNCHRONOUS },
		{ "remount", MS_REMOUNT },
		{ "mand", MS_MANDLOCK },
		{ "dirsync", MS_DIRSYNC },
		{ "noatime", MS_NOATIME },
		{ "nodiratime", MS_NODIRATIME },
		{ "bind", MS_BIND },
		{ "move", MS_MOVE },
		{ "rec", MS_REC },
		{ "silent", MS_SILENT },
		{ "unbindable", MS_UNBINDABLE },
		{ "private", MS_PRIVATE },
		{ "slave", MS_SLAVE },
		{ "shared", MS_SHARED },
		{ "relatime", MS_RELATIME },
		{ "strictatime", MS_STRICTATIME },
		{ "lazytime", MS_LAZYTIME },
	};
	if (*s >= '0' && *s <= '9') {
		long long v;
		int r = rec_ll(s, 0, 0xffffffffLL, &v);
		if (r == 0)
			*out = (unsigned long)v;
		return r;
	}
	unsigned long f = 0;
	const char *p = s;
	while (*p) {
		const char *c = strchrnul(p, ',');
		size_t l = (size_t)(c - p);
		size_t i;
		for (i = 0; i < ARRAY_SIZE(names); i++)
			if (strlen(names[i].name) == l && memcmp(names[i].name, p, l) == 0)
				break;
		if (i == ARRAY_SIZE(names))
			return -EINVAL;
		f |= names[i].flag;
		p = *c ? c + 1 : c;
	}
	*out = f;
	return 0;
}
