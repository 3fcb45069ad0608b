/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "error.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *g_prog = "machina-helper";

static void copy(char *dst, size_t n, const char *src)
{
	if (!src)
		src = "";
	size_t l = strlen(src);
	if (l >= n)
		l = n - 1;
	memcpy(dst, src, l);
	dst[l] = 0;
}

static int vset(struct merr *e, int err, const char *syscall, const char *path, const char *fmt, va_list ap)
{
	e->err = err;
	e->exit_code = 1;
	copy(e->syscall, sizeof e->syscall, syscall);
	copy(e->path, sizeof e->path, path);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	return err > 0 ? -err : -EINVAL;
}

int merr_set(struct merr *e, int err, const char *syscall, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vset(e, err, syscall, path, fmt, ap);
	va_end(ap);
	return r;
}

int merr_sys(struct merr *e, const char *syscall, const char *path, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	va_start(ap, fmt);
	int r = vset(e, err ? err : EIO, syscall, path, fmt, ap);
	va_end(ap);
	return r;
}

const char *errno_name(int err, char buf[16])
{
	const char *n = err > 0 ? strerrorname_np(err) : NULL;
	if (n)
		return n;
	snprintf(buf, 16, "E%d", err);
	return buf;
}

void buf_printf(char *buf, size_t n, size_t *pos, const char *fmt, ...)
{
	if (*pos >= n)
		return;
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(buf + *pos, n - *pos, fmt, ap);
	va_end(ap);
	if (r < 0)
		return;
	*pos += (size_t)r;
	if (*pos >= n)
		*pos = n - 1;
}

void json_str(char *buf, size_t n, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[8];
	if (n == 0)
		return;
	buf_printf(buf, n, pos, "\"");
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		const char *out = tmp;
		switch (*p) {
		case '"': out = "\\\""; break;
		case '\\': out = "\\\\"; break;
		case '\n': out = "\\n"; break;
		case '\r': out = "\\r"; break;
		case '\t': out = "\\t"; break;
		default:
			if (*p < 0x20) {
				memcpy(tmp, "\\u00", 4);
				tmp[4] = hex[*p >> 4];
				tmp[5] = hex[*p & 15];
				tmp[6] = 0;
			} else {
				tmp[0] = (char)*p;
				tmp[1] = 0;
			}
		}
		size_t l = strlen(out);
		if (*pos + l + 2 > n) /* keep room for the closing quote */
			break;
		memcpy(buf + *pos, out, l);
		*pos += l;
		buf[*pos] = 0;
	}
	buf_printf(buf, n, pos, "\"");
}

size_t merr_format(const struct merr *e, const char *prog, char *buf, size_t n)
{
	size_t pos = 0;
	char nb[16];
	if (n == 0)
		return 0;
	buf[0] = 0;
	buf_printf(buf, n, &pos, "%s: %s", prog ? prog : g_prog, e->msg);
	if (e->err > 0)
		buf_printf(buf, n, &pos, ": %s (%s)", strerrordesc_np(e->err) ?: "Unknown error", errno_name(e->err, nb));
	return pos;
}

size_t merr_json(const struct merr *e, char *buf, size_t n)
{
	size_t pos = 0;
	char nb[16];
	char line[1024];
	if (n == 0)
		return 0;
	buf[0] = 0;
	/* the message without the program prefix */
	size_t off = strlen(g_prog) + 2;
	merr_format(e, g_prog, line, sizeof line);
	buf_printf(buf, n, &pos, "{\"error\":{\"syscall\":");
	json_str(buf, n, &pos, e->syscall);
	buf_printf(buf, n, &pos, ",\"path\":");
	json_str(buf, n, &pos, e->path);
	buf_printf(buf, n, &pos, ",\"errno\":%d,\"code\":", e->err);
	json_str(buf, n, &pos, e->err > 0 ? errno_name(e->err, nb) : "");
	buf_printf(buf, n, &pos, ",\"message\":");
	json_str(buf, n, &pos, strlen(line) >= off ? line + off : line);
	buf_printf(buf, n, &pos, "}}");
	return pos;
}

int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

void merr_print(const struct merr *e)
{
	char line[1100];
	size_t l = merr_format(e, g_prog, line, sizeof line - 1);
	/* one line, and nothing a terminal would act on: paths and messages may come from the
	 * container (a name in its tree, a failure reported over a pipe it could reach) */
	for (size_t i = 0; i < l; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[l++] = '\n';
	(void)write_all(2, line, l);
}

const char *signal_name(int sig, char buf[24])
{
	const char *a = sigabbrev_np(sig);
	if (a)
		snprintf(buf, 24, "SIG%s", a);
	else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, 24, "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, 24, "%d", sig);
	return buf;
}

void exit_line(const char *machine, int exited, int status, int shut_down, char *buf, size_t n)
{
	char sn[24];
	if (exited && status == 0)
		snprintf(buf, n, "Container %s exited successfully.\n", machine);
	else if (exited)
		snprintf(buf, n, "Container %s failed with error code %d.\n", machine, status);
	else if (shut_down)
		snprintf(buf, n, "Container %s has been shut down.\n", machine);
	else
		snprintf(buf, n, "Container %s terminated by signal %s.\n", machine, signal_name(status, sn));
}
