/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console log (`console_log HPATH MAXBYTES KEEP`): the supervisor appends the payload's output
 * (a pipe) and its own messages to HPATH, rotating HPATH -> HPATH.1 -> ... -> HPATH.(KEEP-1)
 * before HPATH would grow past MAXBYTES. Fixed buffer; output is dropped, never stalled, when
 * the file cannot be written. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct conlog {
	const char *path;
	uint64_t max;
	int keep;     /* files in all, HPATH included (>= 1) */
	int redirect; /* dup2 the log file onto fds 1 and 2 (the supervisor's own messages) */
	int fd;       /* the log file, or -1 (reopen failed: output is dropped) */
	int rfd, wfd; /* the payload's pipe (read end non-blocking), or -1 */
	uint64_t dropped;
};

/* Open HPATH (O_APPEND, 0600); with want_pipe create the pipe (both ends close-on-exec). */
int conlog_open(struct conlog *c, const char *path, uint64_t max, int keep, int redirect, int want_pipe, struct merr *e);
/* Append, rotating first when the file would exceed max (split after the last newline that
 * fits; a line longer than max is split). Bytes that cannot be written are dropped. */
void conlog_write(struct conlog *c, const char *buf, size_t n);
/* Read what the pipe holds (at most `rounds` buffers; 0 = until empty) and append it. */
void conlog_pump(struct conlog *c, int rounds);
/* Rotate now. */
void conlog_rotate(struct conlog *c);
void conlog_close(struct conlog *c);
