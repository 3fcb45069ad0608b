/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* image_lock records (see imagelock.h, SPEC.md). */
#include "imagelock.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int image_locks_take(const struct spec *s, struct merr *e)
{
	for (size_t i = 0; i < s->n_image_locks; i++) {
		const struct image_lock *l = &s->image_locks[i];
		int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return merr_sys(e, "open", l->path, "failed to open the lock of image \"%s\" (\"%s\")", l->image, l->path);
		if (flock(fd, (l->exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
			int err = errno;
			close(fd);
			if (err == EWOULDBLOCK)
				return merr_set(e, EBUSY, "flock", l->image, "image \"%s\" is in use by another container", l->image);
			return merr_set(e, err, "flock", l->path, "failed to lock image \"%s\" (\"%s\")", l->image, l->path);
		}
		/* held: the fd is left open (close-on-exec) until the supervisor exits */
	}
	return 0;
}
