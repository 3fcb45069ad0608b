/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Errors as -errno plus a message naming the syscall and the path (crun style). */
#pragma once
#include <stddef.h>

struct merr {
	int err;          /* positive errno; 0 = no errno (e.g. spec syntax errors) */
	int exit_code;    /* exit status the failing process should use (1, 126, 127) */
	char syscall[32]; /* "mount", "openat2", ... ; "" for non-syscall errors */
	char path[256];   /* the main path involved, "" if none */
	char msg[512];    /* "failed to mount \"proc\" on \"/proc\"" (no errno text) */
};

/* Program name used as prefix of every message (the spec's `prog`). */
extern const char *g_prog;

/* Fill *e and return -err (or -EINVAL when err is 0). */
int merr_set(struct merr *e, int err, const char *syscall, const char *path, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Same, with err = errno. */
int merr_sys(struct merr *e, const char *syscall, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "EPERM" (strerrorname_np), or "E<n>" for unknown numbers. */
const char *errno_name(int err, char buf[16]);

/* "PROG: failed to ...: Operation not permitted (EPERM)" without newline. */
size_t merr_format(const struct merr *e, const char *prog, char *buf, size_t n);
/* {"error":{"syscall":...,"path":...,"errno":N,"code":"E..","message":"..."}} */
size_t merr_json(const struct merr *e, char *buf, size_t n);
/* Write the formatted line plus newline to fd 2. */
void merr_print(const struct merr *e);

/* Append a JSON-escaped, quoted string to buf at *pos (bounded, always NUL-terminated). */
void json_str(char *buf, size_t n, size_t *pos, const char *s);
/* printf-like append (bounded). */
void buf_printf(char *buf, size_t n, size_t *pos, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Write everything, retrying on EINTR/short writes; returns 0 or -errno. */
int write_all(int fd, const void *p, size_t n);

/* "SIGKILL", "SIGRTMIN+3", or the number as text. */
const char *signal_name(int sig, char buf[24]);
/* The line systemd-nspawn prints when the container is gone, with newline: exited (status) or
 * killed (signal); shut_down = a boot container powered off. */
void exit_line(const char *machine, int exited, int status, int shut_down, char *buf, size_t n);
