/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers: cleanup attributes, array growth. */
#pragma once
#include <errno.h>
#include <stdlib.h>
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
