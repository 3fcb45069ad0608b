/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tiny static sd_notify(3) for test containers: notify "READY=1" ["STATUS=..."] ...
 * Sends its arguments, newline-separated, as one datagram to $NOTIFY_SOCKET. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv)
{
	const char *path = getenv("NOTIFY_SOCKET");
	char msg[4096] = "";
	size_t pos = 0;
	if (!path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "notify: NOTIFY_SOCKET not set\n");
		return 1;
	}
	for (int i = 1; i < argc; i++)
		pos += (size_t)snprintf(msg + pos, sizeof msg - pos, "%s%s", i > 1 ? "\n" : "", argv[i]);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))) < 0) {
		perror("notify");
		return 1;
	}
	return 0;
}
