/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The wire format shared by the RunSpec (`run`, spec.c) and the enter spec (`enter`, enter.c),
 * SPEC.md "Encoding": NUL-terminated strings, a header MAGIC VERSION, then records NAME COUNT
 * ARGS…, the last one `end` `0`. One reader, one record table shape, one set of number parsers.
 * The reader reports what went wrong as a status; each spec words its own messages. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "error.h"

#define REC_VAR (-1)        /* rec_def.max: no upper bound */
#define REC_MAX_ARGS 65536u /* arguments of one record */

enum rec_status {
	REC_OK = 0,
	REC_BAD_MAGIC,   /* the first string is missing or not MAGIC */
	REC_NO_VERSION,  /* nothing after MAGIC */
	REC_BAD_VERSION, /* VERSION is not the one this helper reads */
	REC_NOMEM,
	REC_NO_NAME,    /* the data ends where a record name should be */
	REC_NO_COUNT,   /* ... where the COUNT of a record should be */
	REC_BAD_COUNT,  /* COUNT is not a decimal in 0..REC_MAX_ARGS */
	REC_SHORT_ARGS, /* fewer arguments than COUNT */
};

/* One record as read. a[] is a NULL-terminated slice of the reader's pool (pointers into the buffer). */
struct rec {
	size_t idx; /* 1-based position in the spec */
	const char *name;
	const char *count; /* COUNT as written (messages) */
	size_t n;          /* COUNT */
	size_t present;    /* REC_SHORT_ARGS: arguments present */
	const char **a;
};

struct rec_reader {
	char *buf;
	size_t len, pos;
	const char **pool; /* every record's argument slice; owned by the caller after rec_open */
	size_t used;
	size_t idx;
	const char *version; /* REC_BAD_VERSION: the version found */
};

/* Check the header and allocate the argument pool (*pool, for the caller to free). */
enum rec_status rec_open(struct rec_reader *r, char *buf, size_t len, const char *magic, const char *version);
/* Read the next record's NAME and COUNT (r->n); then rec_args reads its arguments. */
enum rec_status rec_head(struct rec_reader *r, struct rec *out);
enum rec_status rec_args(struct rec_reader *r, struct rec *out);
/* Bytes left after the current position (after `end`: trailing data). */
size_t rec_left(const struct rec_reader *r);

/* A table of records: name, argument count bounds, whether it may repeat, and its handler
 * (ctx: the spec being filled). */
struct rec_def {
	const char *name;
	int min, max; /* max REC_VAR = unbounded */
	int repeat;   /* may appear more than once */
	int (*fn)(void *ctx, const struct rec *r, struct merr *e);
	const char *usage; /* arguments, for an arity message of a variadic record (enter) */
};
/* Index of name in t[0..n), or n. */
size_t rec_find(const struct rec_def *t, size_t n, const char *name);
static inline int rec_arity_ok(const struct rec_def *d, size_t n)
{
	return (long long)n >= d->min && (d->max == REC_VAR || (long long)n <= d->max);
}

/* Numbers (strict: no spaces, no "+", a "-" only before a decimal, no trailing garbage).
 * 0, or -EINVAL (not a number) / -ERANGE (outside [min, max]). */
int rec_ll(const char *s, long long min, long long max, long long *out); /* decimal */
int rec_int(const char *s, int min, int max, int *out);
int rec_octal(const char *s, unsigned max, mode_t *out); /* MODE: octal digits */
int rec_hex64(const char *s, uint64_t *out);             /* HEX: optional 0x, 1-16 digits */
int rec_bool(const char *s, int *out);                   /* 0|1 */
int rec_rlim(const char *s, rlim_t *out);                /* decimal or "infinity" */
/* FLAGS: a decimal MS_* bitmask, or (extension, hand-written specs) a comma list of names. */
int parse_mount_flags(const char *s, unsigned long *out);
