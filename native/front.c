/*
 * The native front ends of machina-oci, machina-nspawn and machinactl (built once for each:
 * -DFRONT_NSPAWN, -DFRONT_MACHINACTL; docs/oci-runtime.md "The front end", docs/architecture.md):
 * the program a container engine runs as its OCI runtime, or a user as machina-nspawn or
 * machinactl. It decides nothing. It hands its command line, working directory and environment
 * to machinad's planner on its socket (oci.sock, nspawn.sock or machinactl.sock, next to the API
 * socket) and does what the answer says:
 *
 *   'O' / 'E' bytes   write them to stdout / stderr
 *   'W' FD BYTES      write them to that fd (machina-nspawn's MACHINA_STATUS_FD)
 *   'X' CODE          exit with CODE
 *   'F' WHY           the planner does not serve this command here: exec the full program
 *   'h' COMMAND       start the helper (its path, argv, env) now, its spec to come on a pipe
 *                     (fd 3): its start overlaps machinad's planning
 *   'H' SPAWN         run the helper (its path, argv, env; the spec on fd 3, a status pipe on fd
 *                     4) as our child, with our stdio (the announced one when it is the same
 *                     command: the spec goes down its pipe): 'P' PID, then its status bytes as
 *                     'S' frames, then 'C' CODE
 *   'x' SPAWN         become the helper (machina-nspawn, machinactl shell/exec): as 'H', the spec in a memfd whose
 *                     number ends argv; 'A' to machinad just before the exec (until then
 *                     machinad undoes what it set up for the helper if this process goes away),
 *                     'N' when the exec failed (machinad undoes it too)
 *
 * A frame is one type byte, a 32-bit little-endian length, the payload. When machinad does not
 * answer at all (or MACHINA_NO_DAEMON=1), the full program (a Bun program) runs instead: the same
 * behaviour, slower. machina-oci's helper runs as the front end's child so that the container's
 * init has the caller's stdio and becomes the caller's (the subreaper's) child, as with runc;
 * machina-nspawn's replaces the front end, as it replaces machina-nspawn.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifdef FRONT_NSPAWN
#define PROG "machina-nspawn"
#define SOCKET_ENV "MACHINA_NSPAWN_SOCKET"
#define SOCKET_NAME "nspawn.sock"
#define FALLBACK_ENV "MACHINA_NSPAWN_FALLBACK"
/* planning may copy a --template tree: as long as it takes (^C ends it, and machinad undoes) */
#define ANSWER_TIMEOUT_S 0
#define ANSWER_TIMEOUT_TEXT "any time"
#elif defined(FRONT_MACHINACTL)
#define PROG "machinactl"
#define SOCKET_ENV "MACHINA_MACHINACTL_SOCKET"
#define SOCKET_NAME "machinactl.sock"
#define FALLBACK_ENV "MACHINA_MACHINACTL_FALLBACK"
/* the served verbs read the registry or plan an entry: quick */
#define ANSWER_TIMEOUT_S 60
#define ANSWER_TIMEOUT_TEXT "60 s"
#else
#define PROG "machina-oci"
#define SOCKET_ENV "MACHINA_OCI_SOCKET"
#define SOCKET_NAME "oci.sock"
#define FALLBACK_ENV "MACHINA_OCI_FALLBACK"
/* a machinad that hangs must not hang the container engine: no command waits longer in it */
#define ANSWER_TIMEOUT_S 60
#define ANSWER_TIMEOUT_TEXT "60 s"
#endif

static int debug;
/* the connection closed before machinad took it: run the full program (never returns) */
static void not_accepted(void);
/* an announced helper ('h') still waiting for its spec: killed when the front end gives up */
static pid_t announced_pid = -1;
static const char *sock_path;

#define MAX_FRAME (64u << 20)

struct buf {
	char *p;
	size_t len, cap;
};

static void die(const char *fmt, const char *arg, int err)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	if (announced_pid > 0)
		(void)kill(announced_pid, SIGKILL);
	exit(1);
}

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			die("%s", "out of memory", 0);
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* a NUL-terminated field */
static void field(struct buf *b, const char *s)
{
	put(b, s, strlen(s) + 1);
}

static void number(struct buf *b, long n)
{
	char s[32];
	snprintf(s, sizeof s, "%ld", n);
	field(b, s);
}

static int write_all(int fd, const char *p, size_t n, int sock)
{
	while (n > 0) {
		ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = 0;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* machinad took the connection ('a', its first frame): until then it has done nothing for the command */
static int accepted;

static void send_frame(int s, char type, const char *p, size_t n)
{
	unsigned char h[5] = { (unsigned char)type, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff };
	if (write_all(s, (const char *)h, 5, 1) < 0 || write_all(s, p, n, 1) < 0) {
		if (!accepted)
			not_accepted();
		die("machinad (%s) closed the connection during the command", sock_path, 0);
	}
}

/* The next frame from machinad; its payload NUL-terminated (freed by the caller). */
static char *recv_frame(int s, char *type, uint32_t *len)
{
	unsigned char h[5];
	if (read_all(s, (char *)h, 5) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			die("machinad (%s) did not answer within " ANSWER_TIMEOUT_TEXT, sock_path, 0);
		if (!accepted)
			not_accepted();
		die("machinad (%s) closed the connection during the command", sock_path, 0);
	}
	*type = (char)h[0];
	*len = (uint32_t)h[1] | (uint32_t)h[2] << 8 | (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
	if (*len > MAX_FRAME)
		die("machinad (%s) sent a frame too large", sock_path, 0);
	char *p = malloc(*len + 1);
	if (!p)
		die("%s", "out of memory", 0);
	if (read_all(s, p, *len) < 0)
		die("machinad (%s) closed the connection during the command", sock_path, 0);
	p[*len] = 0;
	return p;
}

/* The full program: $MACHINA_{OCI,NSPAWN,MACHINACTL}_FALLBACK, else ../libexec/PROG beside this program. */
static void fallback(char **argv, const char *why)
{
	char path[PATH_MAX];
	const char *f = getenv(FALLBACK_ENV);
	if (!f || !*f) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
		if (n < 0)
			die("%s", "cannot read /proc/self/exe", errno);
		path[n] = 0;
		char *slash = strrchr(path, '/');
		strcpy(slash ? slash : path, "/../libexec/" PROG);
		f = path;
	}
	if (debug)
		fprintf(stderr, PROG ": debug: %s; running %s\n", why, f);
	execv(f, argv);
	die("cannot run the full " PROG " %s", f, errno);
}

/*
 * A socket that closes before machinad's 'a': nothing was done for the command, so the full
 * program runs it (a service manager's socket whose machinad failed to start, or one that ended
 * before it took this connection). After 'a', a closed connection is an error.
 */
static char **saved_argv;
static void not_accepted(void)
{
	char why[PATH_MAX + 128];
	snprintf(why, sizeof why, "machinad (%s) closed the connection before taking the command", sock_path);
	fallback(saved_argv, why);
}

/* Where this process lives: its namespaces and its root directory (machinad serves only its own). */
static void identity(struct buf *b)
{
	static const char *const ns[] = { "cgroup", "ipc", "mnt", "net", "pid", "user", "uts" };
	char out[1024] = "", link[128], path[64];
	size_t off = 0;
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n < 0)
			n = 0;
		link[n] = 0;
		off += (size_t)snprintf(out + off, sizeof out - off, "%s ", n ? link : "-");
	}
	struct stat st;
	if (stat("/", &st) == 0)
		snprintf(out + off, sizeof out - off, "root:%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	field(b, out);
}

/* As the full programs: the caller's stdio blocking for the container. */
static void stdio_blocking(void)
{
	for (int fd = 0; fd < 3; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK))
			(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	}
}

/* The spec in a memfd, read from its start (flags: MFD_CLOEXEC, or 0 for one the helper inherits). */
static int spec_memfd(const char *spec, size_t len, unsigned flags)
{
	int mfd = memfd_create("machina-spec", flags);
	if (mfd < 0 || write_all(mfd, spec, len, 0) < 0 || lseek(mfd, 0, SEEK_SET) < 0)
		die("%s", "cannot write the spec to a memfd", errno);
	return mfd;
}

static int moved_fd(int fd)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	if (n < 0)
		_exit(127);
	return n;
}

/* The helper: announced early ('h', started at once and waiting for its spec on a pipe while
 * machinad plans) or run when the spec comes ('H'). */
struct helper {
	pid_t pid;
	int spec_w, status_r;
	char *announced; /* the 'h' payload: the command (what 'H' must repeat) */
	size_t announced_len;
};

static struct helper pending = { .pid = -1, .spec_w = -1, .status_r = -1 };

/* The command of an 'h'/'H'/'x' payload: a count and the program's path then its argv (at least
 * argv[0]), a count and the environment; returns its length. */
static size_t parse_command(char *p, uint32_t len, char ***argvp, char ***envpp)
{
	char *end = p + len, *cur = p;
	long counts[2];
	char ***lists[2] = { argvp, envpp };
	for (int l = 0; l < 2; l++) {
		if (cur >= end)
			die("%s", "machinad sent a malformed spawn request", 0);
		counts[l] = strtol(cur, NULL, 10);
		cur += strlen(cur) + 1;
		if (counts[l] < 0 || counts[l] > 4096)
			die("%s", "machinad sent a malformed spawn request", 0);
		*lists[l] = calloc((size_t)counts[l] + 1, sizeof(char *));
		if (!*lists[l])
			die("%s", "out of memory", 0);
		for (long i = 0; i < counts[l]; i++) {
			if (cur >= end)
				die("%s", "machinad sent a malformed spawn request", 0);
			(*lists[l])[i] = cur;
			cur += strlen(cur) + 1;
		}
	}
	if (counts[0] < 2 || cur > end)
		die("%s", "machinad sent a malformed spawn request", 0);
	return (size_t)(cur - p);
}

/* Start the helper — list[0] the program's path, then its argv — with fd 3 = spec_fd (or a pipe
 * when spec_fd < 0) and fd 4 = a status pipe. */
static struct helper start_helper(char **list, char **envp, int spec_fd)
{
	struct helper h = { .pid = -1, .spec_w = -1, .status_r = -1 };
	int specp[2] = { -1, -1 }, statusp[2];
	if (spec_fd < 0) {
		if (pipe2(specp, O_CLOEXEC) < 0)
			die("%s", "pipe2", errno);
		spec_fd = specp[0];
	}
	if (pipe2(statusp, O_CLOEXEC) < 0)
		die("%s", "pipe2", errno);
	stdio_blocking();
	h.pid = fork();
	if (h.pid < 0)
		die("%s", "fork", errno);
	if (h.pid == 0) {
		int sp = moved_fd(spec_fd), st = moved_fd(statusp[1]);
		if (dup2(sp, 3) < 0 || dup2(st, 4) < 0)
			_exit(127);
		execve(list[0], list + 1, envp);
		fprintf(stderr, PROG ": cannot run %s: %s\n", list[0], strerror(errno));
		_exit(127);
	}
	close(statusp[1]);
	if (specp[0] >= 0)
		close(specp[0]);
	h.spec_w = specp[1];
	h.status_r = statusp[0];
	return h;
}

/* An announced helper that will not get its spec: gone before anything else happens. */
static void drop_pending(void)
{
	if (pending.pid < 0)
		return;
	(void)kill(pending.pid, SIGKILL);
	while (waitpid(pending.pid, NULL, 0) < 0 && errno == EINTR)
		;
	close(pending.spec_w);
	close(pending.status_r);
	free(pending.announced);
	pending = (struct helper){ .pid = -1, .spec_w = -1, .status_r = -1 };
	announced_pid = -1;
}

/* 'h': start the helper now; its spec comes with 'H'. */
static void announce(char *p, uint32_t len)
{
	char **argv, **envp;
	drop_pending();
	parse_command(p, len, &argv, &envp);
	pending = start_helper(argv, envp, -1);
	announced_pid = pending.pid;
	pending.announced = malloc(len ? len : 1);
	if (!pending.announced)
		die("%s", "out of memory", 0);
	memcpy(pending.announced, p, len);
	pending.announced_len = len;
	free(argv);
	free(envp);
}

/* 'H': the command (parse_command), then the spec bytes. The announced helper when it is the
 * same command, else a new one; then its pid, status bytes and exit code go to machinad. */
static void spawn(int s, char *p, uint32_t len)
{
	char **argv, **envp;
	size_t head = parse_command(p, len, &argv, &envp);
	char *spec = p + head;
	size_t spec_len = len - head;
	struct helper h;
	if (pending.pid >= 0 && pending.announced_len == head && !memcmp(pending.announced, p, head)) {
		h = pending;
		free(pending.announced);
		pending = (struct helper){ .pid = -1, .spec_w = -1, .status_r = -1 };
		announced_pid = -1;
		/* a helper that died early: EPIPE here, its exit status below */
		(void)write_all(h.spec_w, spec, spec_len, 0);
		close(h.spec_w);
	} else {
		drop_pending();
		int mfd = spec_memfd(spec, spec_len, MFD_CLOEXEC);
		h = start_helper(argv, envp, mfd);
		close(mfd);
	}
	char num[32];
	snprintf(num, sizeof num, "%d", (int)h.pid);
	send_frame(s, 'P', num, strlen(num));
	int pidfd = (int)syscall(SYS_pidfd_open, h.pid, 0);
	int rd = h.status_r;
	char chunk[65536];
	for (;;) {
		struct pollfd fds[2] = { { .fd = rd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
		int n = poll(fds, 2, pidfd < 0 ? 10 : -1);
		if (n < 0 && errno != EINTR)
			die("%s", "poll", errno);
		if (n > 0 && rd >= 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
			ssize_t r = read(rd, chunk, sizeof chunk);
			if (r > 0)
				send_frame(s, 'S', chunk, (size_t)r);
			else if (r == 0 || errno != EINTR) {
				close(rd);
				rd = -1;
			}
		}
		int status;
		int done = pidfd >= 0 ? (n > 0 && (fds[1].revents & POLLIN)) : waitpid(h.pid, &status, WNOHANG) == h.pid;
		if (!done)
			continue;
		if (pidfd >= 0 && waitpid(h.pid, &status, 0) != h.pid)
			die("%s", "waitpid", errno);
		/* what it wrote before it exited (a parked init may still hold the pipe open) */
		if (rd >= 0) {
			(void)fcntl(rd, F_SETFL, O_NONBLOCK);
			ssize_t r;
			while ((r = read(rd, chunk, sizeof chunk)) > 0)
				send_frame(s, 'S', chunk, (size_t)r);
			close(rd);
		}
		if (pidfd >= 0)
			close(pidfd);
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		snprintf(num, sizeof num, "%d", code);
		send_frame(s, 'C', num, strlen(num));
		break;
	}
	free(argv);
	free(envp);
}

/* 'W': FD NUL BYTES — bytes for another fd the caller gave (MACHINA_STATUS_FD) */
static void write_fd(int s, char *p, uint32_t len)
{
	size_t n = strnlen(p, len);
	char *end;
	long fd = strtol(p, &end, 10);
	if (n == len || n == 0 || end != p + n || fd < 0 || fd > 65535 || fd == s)
		die("%s", "machinad sent a malformed write", 0);
	(void)write_all((int)fd, p + n + 1, len - n - 1, 0);
}

/* 'x': argc, the program's path, argv..., envc, env..., then the spec: become the helper (argv[0]
 * as the helper names itself, not the /proc path of machinad's sealed copy), the spec on a new fd
 * whose number ends argv (as machina-nspawn's own exec). */
static void become(int s, char *p, uint32_t len)
{
	char **list, **envp;
	size_t head = parse_command(p, len, &list, &envp);
	const char *path = list[0];
	char **argv = list + 1;
	size_t argc = 0;
	while (argv[argc])
		argc++;
	int mfd = spec_memfd(p + head, len - head, 0); /* inherited by the helper */
	char **full = calloc(argc + 2, sizeof(char *));
	char num[16];
	if (!full)
		die("%s", "out of memory", 0);
	memcpy(full, argv, argc * sizeof(char *));
	snprintf(num, sizeof num, "%d", mfd);
	full[argc] = num;
	stdio_blocking();
	send_frame(s, 'A', "", 0);
	execve(path, full, envp);
	/* still here (the socket closes with a successful exec): machinad undoes the plan's setup */
	int e = errno;
	send_frame(s, 'N', "", 0);
	die("cannot run the helper %s", path, e);
}

/* machina-oci: --debug among the global flags (before the command); machina-nspawn, machinactl: MACHINA_FRONT_DEBUG=1 */
static int want_debug(int argc, char **argv)
{
#if defined(FRONT_NSPAWN) || defined(FRONT_MACHINACTL)
	(void)argc;
	(void)argv;
	const char *d = getenv("MACHINA_FRONT_DEBUG");
	return d && !strcmp(d, "1");
#endif
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-')
			return 0;
		if (!strcmp(a, "--debug") || !strcmp(a, "--debug=true"))
			return 1;
		if (!strcmp(a, "--root") || !strcmp(a, "--log") || !strcmp(a, "--log-format") || !strcmp(a, "--rootless") ||
		    !strcmp(a, "--criu"))
			i++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	debug = want_debug(argc, argv);
	saved_argv = argv;
	static char derived[PATH_MAX];
	sock_path = getenv(SOCKET_ENV);
	if (!sock_path || !*sock_path) {
		const char *api = getenv("MACHINA_API_SOCKET");
		const char *slash = api ? strrchr(api, '/') : NULL;
		if (slash && (size_t)(slash - api) < sizeof derived - 16) {
			snprintf(derived, sizeof derived, "%.*s/" SOCKET_NAME, (int)(slash - api), api);
			sock_path = derived;
		} else
			sock_path = "/run/machina/" SOCKET_NAME;
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char why[PATH_MAX + 128];
	const char *no_daemon = getenv("MACHINA_NO_DAEMON");
	if (no_daemon && !strcmp(no_daemon, "1"))
		fallback(argv, "MACHINA_NO_DAEMON=1");
	if (strlen(sock_path) >= sizeof addr.sun_path) {
		snprintf(why, sizeof why, "machinad's socket path %s is too long", sock_path);
		fallback(argv, why);
	}
	strcpy(addr.sun_path, sock_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
		snprintf(why, sizeof why, "machinad does not answer at %s (%s)", sock_path, strerror(errno));
		fallback(argv, why);
	}

	struct timeval tv = { .tv_sec = ANSWER_TIMEOUT_S };
	if (ANSWER_TIMEOUT_S > 0)
		(void)setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	struct buf req = { 0 };
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd)) {
		snprintf(why, sizeof why, "no working directory (%s)", strerror(errno));
		close(s);
		fallback(argv, why);
	}
	field(&req, "1");
	field(&req, cwd);
	identity(&req);
	/* the process machinad plans for: its /proc/PID (limits, cgroup) and which stdio are terminals */
	number(&req, (long)getpid());
	char ttys[4] = { isatty(0) ? '1' : '0', isatty(1) ? '1' : '0', isatty(2) ? '1' : '0', 0 };
	field(&req, ttys);
	number(&req, argc - 1);
	for (int i = 1; i < argc; i++)
		field(&req, argv[i]);
	long envc = 0;
	for (char **e = environ; *e; e++)
		envc++;
	number(&req, envc);
	for (char **e = environ; *e; e++)
		field(&req, *e);
	send_frame(s, 'R', req.p, req.len);
	free(req.p);

	int served = 0;
	for (;;) {
		char type;
		uint32_t len;
		char *p = recv_frame(s, &type, &len);
		switch (type) {
		case 'O':
		case 'E':
		case 'W':
		case 'x':
		case 'X':
			if (!served && debug)
				fprintf(stderr, PROG ": debug: served by machinad (%s)\n", sock_path);
			served = 1;
			break;
		}
		switch (type) {
		case 'a': accepted = 1; break;
		case 'O':
		case 'E': (void)write_all(type == 'O' ? 1 : 2, p, len, 0); break;
		case 'W': write_fd(s, p, len); break;
		case 'x': become(s, p, len); break;
		case 'X': drop_pending(); exit(atoi(p));
		case 'F':
			drop_pending();
			close(s);
			fallback(argv, p);
			break;
		case 'h': announce(p, len); break;
		case 'H': spawn(s, p, len); break;
		default: die("machinad (%s) sent an unknown frame", sock_path, 0);
		}
		free(p);
	}
}
