/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int console_open_pty(int opost, const struct winsize *ws, int *master, int *slave, struct merr *e)
{
	_cleanup_close_ int m = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return merr_sys(e, "open", "/dev/pts/ptmx", "failed to open \"/dev/pts/ptmx\" in the container");
	if (unlockpt(m) < 0)
		return merr_sys(e, "ioctl", "/dev/pts/ptmx", "failed to unlock the console pty");
	unsigned n;
	if (ioctl(m, TIOCGPTN, &n) < 0)
		return merr_sys(e, "ioctl", "/dev/pts/ptmx", "failed to get the console pty number");
	_cleanup_close_ int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return merr_sys(e, "ioctl", "/dev/pts/ptmx", "failed to open the console pty peer");
	char target[32];
	snprintf(target, sizeof target, "pts/%u", n);
	if (unlink("/dev/console") < 0 && errno != ENOENT)
		return merr_sys(e, "unlink", "/dev/console", "failed to remove \"/dev/console\"");
	if (symlink(target, "/dev/console") < 0)
		return merr_sys(e, "symlink", "/dev/console", "failed to create \"/dev/console\" -> \"%s\"", target);
	if (!opost) {
		struct termios t;
		if (tcgetattr(s, &t) < 0)
			return merr_sys(e, "tcgetattr", "/dev/console", "failed to get the console attributes");
		t.c_oflag &= ~(tcflag_t)OPOST;
		if (tcsetattr(s, TCSANOW, &t) < 0)
			return merr_sys(e, "tcsetattr", "/dev/console", "failed to set the console attributes");
	}
	if (ws && ws->ws_row && ws->ws_col)
		(void)ioctl(s, TIOCSWINSZ, ws);
	*master = take_fd(&m);
	*slave = take_fd(&s);
	return 0;
}

/* ---- supervisor side ---- */

static struct termios saved_tio;
static int saved_tio_fd = -1;

void console_restore(void)
{
	if (saved_tio_fd >= 0) {
		(void)tcsetattr(saved_tio_fd, TCSANOW, &saved_tio);
		saved_tio_fd = -1;
	}
}

int host_winsize(struct winsize *ws)
{
	memset(ws, 0, sizeof *ws);
	if (ioctl(0, TIOCGWINSZ, ws) == 0 && ws->ws_col)
		return 1;
	if (ioctl(1, TIOCGWINSZ, ws) == 0 && ws->ws_col)
		return 1;
	return 0;
}

void relay_init(struct relay *r)
{
	memset(r, 0, sizeof *r);
	r->master = r->peer = r->in_fd = -1;
	r->out_fd = 1;
}

int relay_start(struct relay *r, int master, int interactive, struct merr *e)
{
	r->master = master;
	r->interactive = interactive;
	int fl = fcntl(master, F_GETFL);
	if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0)
		return merr_sys(e, "fcntl", "/dev/console", "failed to make the console non-blocking");
	r->peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (interactive) {
		r->in_fd = 0;
		struct termios t;
		if (saved_tio_fd < 0 && isatty(0) && tcgetattr(0, &saved_tio) == 0) {
			saved_tio_fd = 0;
			atexit(console_restore);
			t = saved_tio;
			cfmakeraw(&t);
			t.c_cc[VMIN] = 1;
			t.c_cc[VTIME] = 0;
			if (tcsetattr(0, TCSANOW, &t) < 0)
				return merr_sys(e, "tcsetattr", "/dev/stdin", "failed to put the terminal in raw mode");
		}
	}
	relay_winch(r);
	return 0;
}

void relay_winch(struct relay *r)
{
	struct winsize ws;
	if (r->master >= 0 && host_winsize(&ws))
		(void)ioctl(r->master, TIOCSWINSZ, &ws);
}

int relay_pollfds(struct relay *r, struct pollfd *p)
{
	int n = 0;
	if (r->master >= 0) {
		p[n].fd = r->master;
		p[n].events = POLLIN | (r->inlen > r->inoff ? POLLOUT : 0);
		p[n++].revents = 0;
	}
	if (r->in_fd >= 0 && r->master >= 0 && r->inlen == r->inoff) {
		p[n].fd = r->in_fd;
		p[n].events = POLLIN;
		p[n++].revents = 0;
	}
	return n;
}

/* Copy up to max_rounds reads from the master to the output; returns bytes copied. */
static size_t pump_out(struct relay *r, int max_rounds)
{
	static char buf[8192];
	size_t total = 0;
	for (int i = 0; i < max_rounds; i++) {
		ssize_t n = read(r->master, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (size_t)n;
		if (r->out_fd >= 0 && write_all(r->out_fd, buf, (size_t)n) < 0)
			r->out_fd = -1; /* the caller's output went away: keep draining the pty */
	}
	return total;
}

static int look_for_escape(struct relay *r, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != 0x1d) {
			r->esc_count = 0;
			continue;
		}
		uint64_t t = (uint64_t)monotonic_ms();
		if (r->esc_count == 0 || t - r->esc_first_ms > 1000) {
			r->esc_count = 1;
			r->esc_first_ms = t;
		} else if (++r->esc_count >= 3) {
			return 1;
		}
	}
	return 0;
}

int relay_handle(struct relay *r, struct pollfd *p, int n)
{
	int killreq = 0;
	for (int i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == r->master) {
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
				(void)pump_out(r, 16);
			if ((p[i].revents & POLLOUT) && r->inlen > r->inoff) {
				ssize_t w = write(r->master, r->inbuf + r->inoff, r->inlen - r->inoff);
				if (w > 0)
					r->inoff += (size_t)w;
				if (r->inoff == r->inlen)
					r->inoff = r->inlen = 0;
			}
		} else if (p[i].fd == r->in_fd) {
			ssize_t k = read(r->in_fd, r->inbuf, sizeof r->inbuf);
			if (k < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (k <= 0) {
				r->in_fd = -1; /* EOF on the caller's input: stop forwarding */
				continue;
			}
			r->inlen = (size_t)k;
			r->inoff = 0;
			if (look_for_escape(r, r->inbuf, r->inlen))
				killreq = 1;
		}
	}
	return killreq;
}

void relay_drain(struct relay *r)
{
	if (r->master >= 0)
		while (pump_out(r, 16) > 0)
			;
}

void relay_close(struct relay *r)
{
	if (r->master >= 0)
		close(r->master);
	if (r->peer >= 0)
		close(r->peer);
	r->master = r->peer = r->in_fd = -1;
	console_restore();
}

/* console_socket: the pty master to the caller's socket (SCM_RIGHTS, as runc's --console-socket;
 * the data is the pty's name). */
int console_send_socket(const char *path, int master, struct merr *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return merr_set(e, ENAMETOOLONG, "connect", path, "the console socket path \"%s\" is too long", path);
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return merr_sys(e, "socket", path, "failed to create a socket for the console socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return merr_sys(e, "connect", path, "failed to connect to the console socket \"%s\"", path);
	char name[] = "/dev/ptmx";
	struct iovec iov = { .iov_base = name, .iov_len = sizeof name - 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return merr_sys(e, "sendmsg", path, "failed to send the console to \"%s\"", path);
	return 0;
}
