/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* machina-helper: executes one RunSpec (see SPEC.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enter.h"
#include "error.h"
#include "hostmount.h"
#include "spec.h"
#include "supervisor.h"
#include "util.h"

#define VERSION "0.1.0"
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

extern char **environ;

/* CVE-2019-5736 class: a container process must never be able to open our binary through
 * /proc/PID/exe and overwrite it. Run from a sealed, anonymous copy instead. */
static int reexec_sealed(char **argv, struct merr *e)
{
	_cleanup_close_ int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return merr_sys(e, "open", "/proc/self/exe", "failed to open \"/proc/self/exe\"");
	int seals = fcntl(self, F_GET_SEALS);
	if (seals >= 0 && (seals & SEALS) == SEALS)
		return 0; /* already running from a sealed memfd */
	struct stat st;
	if (fstat(self, &st) < 0)
		return merr_sys(e, "fstat", "/proc/self/exe", "failed to stat \"/proc/self/exe\"");
	_cleanup_close_ int mfd = memfd_create("machina-helper", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return merr_sys(e, "memfd_create", "", "failed to create a sealed copy of the helper");
	off_t off = 0;
	while (off < st.st_size) {
		ssize_t n = sendfile(mfd, self, &off, (size_t)(st.st_size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return merr_sys(e, "sendfile", "/proc/self/exe", "failed to copy the helper into a memfd");
	}
	if (fcntl(mfd, F_ADD_SEALS, SEALS) < 0)
		return merr_sys(e, "fcntl", "", "failed to seal the helper's memfd");
	fexecve(mfd, argv, environ);
	return merr_sys(e, "execveat", "/proc/self/exe", "failed to re-execute the helper from a sealed memfd");
}

static int usage(void)
{
	static const char u[] = "usage: machina-helper run --spec-fd N | --spec FILE\n"
				"       machina-helper enter --spec-fd N | --spec FILE\n"
				"       machina-helper --version\n";
	(void)write_all(2, u, sizeof u - 1);
	return 1;
}

int main(int argc, char **argv)
{
	struct merr e = { 0 };
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		static const char v[] = "machina-helper " VERSION " (spec version " SPEC_VERSION ")\n";
		return write_all(1, v, sizeof v - 1) < 0;
	}
	if (argc != 4 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "enter") != 0))
		return usage();
	int enter = !strcmp(argv[1], "enter");

	int fd;
	const char *what = argv[3];
	if (!strcmp(argv[2], "--spec-fd")) {
		char *end;
		errno = 0;
		long v = strtol(argv[3], &end, 10);
		if (errno || *end || end == argv[3] || v < 0 || v > 1 << 20)
			return usage();
		fd = (int)v;
		if (fcntl(fd, F_GETFD) < 0) {
			merr_sys(&e, "fcntl", "", "spec fd %d is not open", fd);
			merr_print(&e);
			return 1;
		}
	} else if (!strcmp(argv[2], "--spec")) {
		fd = -1;
	} else {
		return usage();
	}

	if (reexec_sealed(argv, &e) < 0) {
		merr_print(&e);
		return 1;
	}

	if (fd < 0) {
		fd = open(what, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			merr_sys(&e, "open", what, "failed to open spec file \"%s\"", what);
			merr_print(&e);
			return 1;
		}
	} else {
		what = "the spec fd";
		/* the spec can be read from the start even when the caller left the offset at the end */
		(void)lseek(fd, 0, SEEK_SET);
	}
	char *buf;
	size_t len;
	int r = spec_read_fd(fd, what, &buf, &len, &e);
	close(fd);
	if (r < 0) {
		merr_print(&e);
		return 1;
	}
	if (enter) {
		struct enter_spec es;
		if (enter_parse(&es, buf, len, &e) < 0) {
			merr_print(&e);
			enter_free(&es);
			return 1;
		}
		int erc = enter_run(&es);
		enter_free(&es);
		return erc;
	}
	struct spec s;
	if (spec_parse(&s, buf, len, &e) < 0) {
		merr_print(&e);
		return 1;
	}
	pid_t sup = getpid();
	int rc = supervisor_run(&s);
	if (getpid() == sup)
		host_umounts(&s); /* on every exit path of the supervisor, after the container is gone */
	spec_free(&s);
	return rc;
}
