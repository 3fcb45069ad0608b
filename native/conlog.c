/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console log: append + size-bounded rotation (see conlog.h and SPEC.md "console_log"). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conlog.h"

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
}

static void attach(struct conlog *c)
{
	if (c->redirect && c->fd >= 0) {
		(void)dup2(c->fd, 1);
		(void)dup2(c->fd, 2);
	}
}

int conlog_open(struct conlog *c, const char *path, uint64_t max, int keep, int redirect, int want_pipe, struct merr *e)
{
	*c = (struct conlog){
		.path = path, .max = max ? max : 1, .keep = keep < 1 ? 1 : keep, .redirect = redirect, .fd = -1, .rfd = -1, .wfd = -1
	};
	c->fd = open_log(path);
	if (c->fd < 0)
		return merr_sys(e, "open", path, "failed to open the console log \"%s\"", path);
	if (want_pipe) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			merr_sys(e, "pipe2", "", "failed to create the console pipe");
			conlog_close(c);
			return -1;
		}
		(void)fcntl(p[0], F_SETFL, O_NONBLOCK);
		c->rfd = p[0];
		c->wfd = p[1];
	}
	attach(c);
	return 0;
}

void conlog_rotate(struct conlog *c)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];
	if (c->keep <= 1) {
		if (c->fd >= 0 && ftruncate(c->fd, 0) == 0)
			return;
	} else {
		for (int i = c->keep - 1; i >= 1; i--) {
			if (i == 1)
				snprintf(from, sizeof from, "%s", c->path);
			else
				snprintf(from, sizeof from, "%s.%d", c->path, i - 1);
			snprintf(to, sizeof to, "%s.%d", c->path, i);
			(void)rename(from, to); /* over the oldest; a missing one is skipped */
		}
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = open_log(c->path);
	attach(c);
}

static int write_some(struct conlog *c, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(c->fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

void conlog_write(struct conlog *c, const char *buf, size_t n)
{
	int rotated = 0; /* rotated and nothing written since: rename failed? no endless loop */
	while (n > 0) {
		struct stat st;
		if (c->fd < 0) {
			conlog_rotate(c); /* try to reopen */
			if (c->fd < 0)
				break;
		}
		/* fstat, not a counter: the supervisor's own messages go to the file directly */
		uint64_t size = fstat(c->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
		uint64_t room = size < c->max ? c->max - size : 0;
		if (n <= room) {
			if (write_some(c, buf, n) < 0)
				break;
			return;
		}
		size_t cut = 0;
		for (size_t i = (size_t)room; i > 0; i--)
			if (buf[i - 1] == '\n') {
				cut = i;
				break;
			}
		if (cut == 0 && (size == 0 || rotated))
			cut = (size_t)room; /* a line longer than the whole file */
		if (cut == 0 && rotated)
			break; /* the file did not get smaller: drop */
		if (cut > 0 && write_some(c, buf, cut) < 0)
			break;
		buf += cut;
		n -= cut;
		rotated = cut == 0;
		conlog_rotate(c);
	}
	c->dropped += n;
}

void conlog_pump(struct conlog *c, int rounds)
{
	static char buf[16384];
	if (c->rfd < 0)
		return;
	for (int i = 0; rounds <= 0 || i < rounds; i++) {
		ssize_t r = read(c->rfd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		conlog_write(c, buf, (size_t)r);
	}
}

void conlog_close(struct conlog *c)
{
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0)
		close(c->wfd);
	if (c->fd >= 0)
		close(c->fd);
	c->rfd = c->wfd = c->fd = -1;
}
