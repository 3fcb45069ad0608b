/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* image_lock: the locks a running container holds on the images it uses (the root image, a -x
 * or --template base), so that machinactl's image commands see it in use. See SPEC.md. */
#pragma once
#include "error.h"
#include "spec.h"

/* flock() every image_lock file (created 0644 when missing; its directory must exist),
 * exclusive or shared, without waiting. The fds stay open, close-on-exec, for the rest of the
 * supervisor's life: the kernel releases the locks when it exits, however it ends (SIGKILL
 * too). A lock held elsewhere = "image ... is in use by another container" (EBUSY). */
int image_locks_take(const struct spec *s, struct merr *e);
