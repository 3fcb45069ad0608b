/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SELinux exec label (see selinux.h). No libselinux: the kernel interface is one write. */
#include "selinux.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int selinux_set_exec_label(const char *attr, const char *label, struct merr *e)
{
	_cleanup_close_ int fd = open(attr, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return merr_sys(e, "open", attr, "failed to open \"%s\" to set the SELinux exec label \"%s\"", attr, label);
	return selinux_write_exec_label(fd, attr, label, e);
}

int selinux_write_exec_label(int fd, const char *attr, const char *label, struct merr *e)
{
	/* One write: the kernel takes the label from a single call (a split one would set a prefix). */
	size_t n = strlen(label) + 1;
	ssize_t w;
	do
		w = write(fd, label, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return merr_sys(e, "write", attr, "failed to write the SELinux exec label \"%s\" to \"%s\"", label, attr);
	if ((size_t)w != n)
		return merr_set(e, EIO, "write", attr, "short write of the SELinux exec label \"%s\" to \"%s\"", label, attr);
	return 0;
}
