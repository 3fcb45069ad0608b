/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* host_umount: mounts made on the host by the TypeScript side for this container (the file
 * system of a raw image, -i), detached by the supervisor when it exits. See SPEC.md. */
#pragma once
#include "spec.h"

/* umount2(MNT_DETACH|UMOUNT_NOFOLLOW) every host_umount path, last first, then rmdir it.
 * Missing or already unmounted paths are fine. Called once, on every exit path. */
void host_umounts(const struct spec *s);
