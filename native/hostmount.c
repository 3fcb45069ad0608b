/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sys/mount.h>
#include <unistd.h>

#include "hostmount.h"

#ifndef UMOUNT_NOFOLLOW
#define UMOUNT_NOFOLLOW 8
#endif

void host_umounts(const struct spec *s)
{
	for (size_t i = s->n_host_umounts; i-- > 0;) {
		const char *p = s->host_umounts[i];
		/* a loop device set up with LO_FLAGS_AUTOCLEAR is detached once its last mount is gone */
		while (umount2(p, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			; /* stacked mounts (e.g. /usr of a raw image below the root) */
		(void)rmdir(p);
	}
	/* host_remove, in order: the records that describe those mounts, then their directories */
	for (size_t i = 0; i < s->n_host_removes; i++) {
		const char *p = s->host_removes[i];
		if (unlink(p) < 0 && errno == EISDIR)
			(void)rmdir(p);
	}
}
