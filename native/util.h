/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers: cleanup attributes, array growth, the signal reset before an execve. */
#pragma once
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_close_ __attribute__((cleanup(closep)))
#define _cleanup_free_ __attribute__((cleanup(freep)))

/* Give up ownership of a cleanup-managed fd. */
static inline int take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Growth of the spec's arrays: capacity is implicit, the next power of two >= 4. */
static inline size_t grow_cap_for(size_t n)
{
	size_t cap = 4;
	while (cap < n)
		cap *= 2;
	return n ? cap : 0;
}

/* Append one zeroed element to *arrp (an array of *n elements of elsz bytes); -ENOMEM on failure. */
static inline int grow_arr(void *arrp, size_t *n, size_t elsz)
{
	void **arr = arrp;
	if (grow_cap_for(*n + 1) != grow_cap_for(*n)) {
		void *p = realloc(*arr, grow_cap_for(*n + 1) * elsz);
		if (!p)
			return -ENOMEM;
		*arr = p;
	}
	memset((char *)*arr + *n * elsz, 0, elsz);
	(*n)++;
	return 0;
}

/* Before an execve: every signal back to its default action, none blocked. */
static inline void reset_signals(void)
{
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
/* CLOCK_MONOTONIC in milliseconds: deadlines and intervals. */
static inline long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_REALTIME in microseconds: the "t" of the status lines (one clock with machina-nspawn's
 * own stamps, which Bun takes from performance.timeOrigin). */
static inline long long realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
