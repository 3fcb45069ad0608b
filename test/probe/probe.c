/* SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * probe: a static binary that runs inside a container and reports, as ONE JSON
 * object on stdout, what it sees. Used by machina's integration tests to assert
 * facts (pid, mounts, devices, caps, env, ...) instead of parsing shell output.
 *
 *   probe                 everything (see docs/FIXTURES.md for the schema)
 *   probe exit N          exit with status N, print nothing
 *   probe kill SIG        raise(SIG) (number, TERM or SIGTERM); if still alive
 *                         (PID 1 ignores default-action signals) print
 *                         {"raised":N,"survived":true,"pid":P} and exit 125
 *   probe sleep SECS      sleep (fractions allowed), print nothing, exit 0
 *   probe orphans N       double-fork N children that exit while their parent
 *                         is gone (reparented to PID 1 / the subreaper), wait
 *                         0.5 s, print {"orphans":[pids],"zombies":K,"zombiesAll":M}
 *                         K = how many of those pids are still zombies
 *   probe touch PATH      try to create PATH, print {"ok":bool,"errno":N,"error":S}
 *   probe syscall NAME [ARG...]  make the raw system call NAME (personality, socket,
 *                         getpid, kexec_load, ...; see cmd_syscall) with integer ARGs
 *                         (0x hex allowed), print {"ret":R,"errno":N}
 *   probe syscall32 NR    x86-64 only: the 32-bit (x86) system call NR without arguments
 *                         through int $0x80 (20 = getpid), print {"ret":R}
 *
 * Build: cc -static -O2 -Wall -Werror -o probe probe.c   (test/probe/build.sh)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------- JSON output ---------- */

static FILE *out;
static int need_comma[64];
static int depth;

static void sep(void)
{
	if (depth > 0) {
		if (need_comma[depth])
			fputc(',', out);
		need_comma[depth] = 1;
	}
}

static void jstr_raw(const char *s, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\b': fputs("\\b", out); break;
		case '\f': fputs("\\f", out); break;
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(out, "\\u%04x", c);
			} else if (c < 0x80) {
				fputc(c, out);
			} else {
				/* pass valid UTF-8 through; escape stray bytes as U+00XX */
				size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
				int ok = len > 0 && i + len <= n;
				for (size_t k = 1; ok && k < len; k++)
					if (((unsigned char)s[i + k] & 0xc0) != 0x80)
						ok = 0;
				if (ok) {
					fwrite(s + i, 1, len, out);
					i += len - 1;
				} else {
					fprintf(out, "\\u%04x", c);
				}
			}
		}
	}
	fputc('"', out);
}

static int after_key; /* the next value belongs to a key just written */

static void jkey(const char *k)
{
	sep();
	jstr_raw(k, strlen(k));
	fputc(':', out);
	after_key = 1;
}

static void vsep(void)
{
	if (after_key)
		after_key = 0;
	else
		sep();
}

static void jstring(const char *s)
{
	vsep();
	if (!s)
		fputs("null", out);
	else
		jstr_raw(s, strlen(s));
}
static void jstrn(const char *s, size_t n)
{
	vsep();
	jstr_raw(s, n);
}
static void jint(long long v)
{
	vsep();
	fprintf(out, "%lld", v);
}
static void juint(unsigned long long v)
{
	vsep();
	fprintf(out, "%llu", v);
}
static void jbool(int v)
{
	vsep();
	fputs(v ? "true" : "false", out);
}
static void jnull(void)
{
	vsep();
	fputs("null", out);
}
static void jopen(char c)
{
	vsep();
	fputc(c, out);
	depth++;
	need_comma[depth] = 0;
}
static void jclose(char c)
{
	depth--;
	fputc(c, out);
}

static void kstring(const char *k, const char *v)
{
	jkey(k);
	jstring(v);
}
static void kint(const char *k, long long v)
{
	jkey(k);
	jint(v);
}
static void kbool(const char *k, int v)
{
	jkey(k);
	jbool(v);
}

/* ---------- helpers ---------- */

static char *read_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	if (len_out)
		*len_out = len;
	return buf;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape_octal(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = 0;
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---------- sections ---------- */

static void emit_mountinfo(void)
{
	jkey("mountinfo");
	char *buf = read_file("/proc/self/mountinfo", NULL);
	if (!buf) {
		jnull();
		return;
	}
	jopen('[');
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		/* id parent maj:min root mountpoint options [optional...] - fstype source superopts */
		char *f[64];
		int n = 0;
		char *s2 = NULL;
		for (char *t = strtok_r(line, " ", &s2); t && n < 64; t = strtok_r(NULL, " ", &s2))
			f[n++] = t;
		if (n < 6)
			continue;
		int dash = -1;
		for (int i = 6; i < n; i++)
			if (strcmp(f[i], "-") == 0) {
				dash = i;
				break;
			}
		jopen('{');
		kint("mountId", atoll(f[0]));
		kint("parentId", atoll(f[1]));
		kstring("device", f[2]);
		unescape_octal(f[3]);
		kstring("root", f[3]);
		unescape_octal(f[4]);
		kstring("mountPoint", f[4]);
		kstring("options", f[5]);
		jkey("optional");
		jopen('[');
		for (int i = 6; i < (dash < 0 ? n : dash); i++)
			jstring(f[i]);
		jclose(']');
		if (dash >= 0 && dash + 3 < n + 1) {
			kstring("fsType", dash + 1 < n ? f[dash + 1] : "");
			if (dash + 2 < n)
				unescape_octal(f[dash + 2]);
			kstring("source", dash + 2 < n ? f[dash + 2] : "");
			kstring("superOptions", dash + 3 < n ? f[dash + 3] : "");
		}
		jclose('}');
	}
	jclose(']');
	free(buf);
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFCHR: return "char";
	case S_IFBLK: return "block";
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFREG: return "file";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	default: return "unknown";
	}
}

/* array of {name,type,mode,uid,gid,major,minor,target}, sorted by name; null if unreadable */
static void emit_listing(const char *key, const char *dir)
{
	jkey(key);
	DIR *d = opendir(dir);
	if (!d) {
		jnull();
		return;
	}
	size_t n = 0, cap = 64;
	char **names = malloc(cap * sizeof(char *));
	struct dirent *de;
	while (names && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap *= 2;
			char **nn = realloc(names, cap * sizeof(char *));
			if (!nn)
				break;
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	if (names)
		qsort(names, n, sizeof(char *), cmpstr);
	jopen('[');
	for (size_t i = 0; names && i < n; i++) {
		struct stat st;
		jopen('{');
		kstring("name", names[i]);
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			kint("errno", errno);
			jclose('}');
			free(names[i]);
			continue;
		}
		kstring("type", type_name(st.st_mode));
		kint("mode", st.st_mode & 07777);
		kint("uid", st.st_uid);
		kint("gid", st.st_gid);
		if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
			kint("major", major(st.st_rdev));
			kint("minor", minor(st.st_rdev));
		} else {
			jkey("major");
			jnull();
			jkey("minor");
			jnull();
		}
		if (S_ISLNK(st.st_mode)) {
			char t[PATH_MAX];
			ssize_t r = readlinkat(dirfd(d), names[i], t, sizeof t - 1);
			jkey("target");
			if (r >= 0)
				jstrn(t, (size_t)r);
			else
				jnull();
		}
		jclose('}');
		free(names[i]);
	}
	jclose(']');
	free(names);
	closedir(d);
}

static void emit_status(void)
{
	char *buf = read_file("/proc/self/status", NULL);
	const char *caps[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
	jkey("caps");
	jopen('{');
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		jkey(caps[i]);
		char *p = NULL;
		char pat[32];
		snprintf(pat, sizeof pat, "\n%s:", caps[i]);
		if (buf)
			p = strstr(buf, pat);
		if (!p) {
			jnull();
			continue;
		}
		p += strlen(pat);
		while (*p == ' ' || *p == '\t')
			p++;
		size_t l = strcspn(p, "\n");
		jstrn(p, l);
	}
	jclose('}');
	const char *ints[][2] = { { "NoNewPrivs", "noNewPrivs" }, { "Seccomp", "seccomp" } };
	for (size_t i = 0; i < 2; i++) {
		jkey(ints[i][1]);
		char pat[32];
		snprintf(pat, sizeof pat, "\n%s:", ints[i][0]);
		char *p = buf ? strstr(buf, pat) : NULL;
		if (p)
			jint(atoll(p + strlen(pat)));
		else
			jnull();
	}
	free(buf);
}

static void emit_fds(void)
{
	jkey("fds");
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		jnull();
		return;
	}
	int self = dirfd(d);
	jopen('{');
	struct dirent *de;
	/* collect and sort numerically */
	int fds[1024];
	size_t n = 0;
	while ((de = readdir(d)) && n < 1024) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int fd = atoi(de->d_name);
		if (fd == self)
			continue;
		fds[n++] = fd;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
			int t = fds[j];
			fds[j] = fds[j - 1];
			fds[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		char name[32], t[PATH_MAX];
		snprintf(name, sizeof name, "%d", fds[i]);
		ssize_t r = readlinkat(self, name, t, sizeof t - 1);
		jkey(name);
		if (r >= 0)
			jstrn(t, (size_t)r);
		else
			jnull();
	}
	jclose('}');
	closedir(d);
}

static void emit_lines(const char *key, const char *path)
{
	jkey(key);
	char *buf = read_file(path, NULL);
	if (!buf) {
		jnull();
		return;
	}
	jopen('[');
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		jstring(l);
	jclose(']');
	free(buf);
}

static void emit_rlimits(void)
{
	static const struct {
		const char *name;
		int res;
	} lim[] = {
		{ "CPU", RLIMIT_CPU },           { "FSIZE", RLIMIT_FSIZE },
		{ "DATA", RLIMIT_DATA },         { "STACK", RLIMIT_STACK },
		{ "CORE", RLIMIT_CORE },         { "RSS", RLIMIT_RSS },
		{ "NPROC", RLIMIT_NPROC },       { "NOFILE", RLIMIT_NOFILE },
		{ "MEMLOCK", RLIMIT_MEMLOCK },   { "AS", RLIMIT_AS },
		{ "LOCKS", RLIMIT_LOCKS },       { "SIGPENDING", RLIMIT_SIGPENDING },
		{ "MSGQUEUE", RLIMIT_MSGQUEUE }, { "NICE", RLIMIT_NICE },
		{ "RTPRIO", RLIMIT_RTPRIO },     { "RTTIME", RLIMIT_RTTIME },
	};
	jkey("rlimits");
	jopen('{');
	for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
		struct rlimit rl;
		jkey(lim[i].name);
		if (getrlimit(lim[i].res, &rl) < 0) {
			jnull();
			continue;
		}
		jopen('{');
		jkey("soft");
		if (rl.rlim_cur == RLIM_INFINITY)
			jstring("infinity");
		else
			juint((unsigned long long)rl.rlim_cur);
		jkey("hard");
		if (rl.rlim_max == RLIM_INFINITY)
			jstring("infinity");
		else
			juint((unsigned long long)rl.rlim_max);
		jclose('}');
	}
	jclose('}');
}

static void emit_namespaces(void)
{
	static const char *ns[] = { "cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "user", "uts" };
	jkey("namespaces");
	jopen('{');
	for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
		char p[64], t[256];
		snprintf(p, sizeof p, "/proc/self/ns/%s", ns[i]);
		ssize_t r = readlink(p, t, sizeof t - 1);
		jkey(ns[i]);
		if (r >= 0)
			jstrn(t, (size_t)r);
		else
			jnull();
	}
	jclose('}');
}

static void emit_trimmed_file(const char *key, const char *path)
{
	jkey(key);
	size_t len = 0;
	char *buf = read_file(path, &len);
	if (!buf) {
		jnull();
		return;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	jstrn(buf, len);
	free(buf);
}

static int probe_all(int argc, char **argv)
{
	char buf[PATH_MAX];
	jopen('{');
	kint("pid", getpid());
	kint("ppid", getppid());
	kint("uid", getuid());
	kint("euid", geteuid());
	kint("gid", getgid());
	kint("egid", getegid());
	{
		gid_t g[256];
		int n = getgroups(256, g);
		jkey("groups");
		jopen('[');
		for (int i = 0; i < n; i++)
			jint(g[i]);
		jclose(']');
	}
	kint("pgid", getpgrp());
	kint("sid", getsid(0));
	kint("umask", ({
		     mode_t m = umask(0);
		     umask(m);
		     (long long)m;
	     }));
	jkey("hostname");
	if (gethostname(buf, sizeof buf) == 0) {
		buf[sizeof buf - 1] = 0;
		jstring(buf);
	} else {
		jnull();
	}
	{
		struct utsname u;
		jkey("uname");
		if (uname(&u) == 0) {
			jopen('{');
			kstring("sysname", u.sysname);
			kstring("nodename", u.nodename);
			kstring("release", u.release);
			kstring("machine", u.machine);
			kstring("domainname", u.domainname);
			jclose('}');
		} else {
			jnull();
		}
	}
	jkey("cwd");
	jstring(getcwd(buf, sizeof buf));
	jkey("argv");
	jopen('[');
	for (int i = 0; i < argc; i++)
		jstring(argv[i]);
	jclose(']');
	jkey("env");
	jopen('{');
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		char *k = strndup(*e, (size_t)(eq - *e));
		jkey(k ? k : "");
		jstring(eq + 1);
		free(k);
	}
	jclose('}');
	emit_mountinfo();
	emit_listing("dev", "/dev");
	emit_listing("devPts", "/dev/pts");
	emit_listing("runHost", "/run/host");
	emit_status();
	emit_fds();
	emit_lines("cgroup", "/proc/self/cgroup");
	emit_rlimits();
	emit_namespaces();
	{
		char *o = read_file("/proc/self/oom_score_adj", NULL);
		jkey("oomScoreAdj");
		if (o)
			jint(atoll(o));
		else
			jnull();
		free(o);
	}
	jkey("tty");
	jopen('{');
	kbool("stdin", isatty(0));
	kbool("stdout", isatty(1));
	kbool("stderr", isatty(2));
	jkey("stdinName");
	jstring(isatty(0) ? ttyname(0) : NULL);
	jkey("foregroundPgid");
	{
		pid_t fg = tcgetpgrp(0);
		if (fg >= 0)
			jint(fg);
		else
			jnull();
	}
	jclose('}');
	emit_trimmed_file("machineId", "/etc/machine-id");
	jclose('}');
	fputc('\n', out);
	return 0;
}

/* ---------- commands ---------- */

static int parse_signal(const char *s)
{
	static const struct {
		const char *n;
		int v;
	} sigs[] = {
		{ "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT }, { "ILL", SIGILL },   { "TRAP", SIGTRAP },
		{ "ABRT", SIGABRT }, { "BUS", SIGBUS },     { "FPE", SIGFPE },   { "KILL", SIGKILL }, { "USR1", SIGUSR1 },
		{ "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },   { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
		{ "CHLD", SIGCHLD }, { "CONT", SIGCONT },   { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
		{ "TTOU", SIGTTOU }, { "URG", SIGURG },     { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
		{ "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },     { "PWR", SIGPWR },   { "SYS", SIGSYS },
	};
	if (isdigit((unsigned char)s[0]))
		return atoi(s);
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	if (strncasecmp(s, "RTMIN+", 6) == 0)
		return SIGRTMIN + atoi(s + 6);
	if (strcasecmp(s, "RTMIN") == 0)
		return SIGRTMIN;
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (strcasecmp(s, sigs[i].n) == 0)
			return sigs[i].v;
	return -1;
}

static void sleep_secs(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* is pid a zombie? 1 yes, 0 no (running or gone) */
static int is_zombie(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	char *buf = read_file(p, NULL);
	if (!buf)
		return 0;
	char *rp = strrchr(buf, ')');
	int z = rp && rp[1] == ' ' && rp[2] == 'Z';
	free(buf);
	return z;
}

static int count_all_zombies(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (isdigit((unsigned char)de->d_name[0]) && is_zombie(atoi(de->d_name)))
			n++;
	closedir(d);
	return n;
}

static int cmd_orphans(int n)
{
	if (n < 0 || n > 1000) {
		fprintf(stderr, "probe: orphans: N must be 0..1000\n");
		return 2;
	}
	int p[2];
	if (pipe(p) < 0) {
		perror("probe: pipe");
		return 1;
	}
	fflush(out);
	pid_t mid = fork();
	if (mid < 0) {
		perror("probe: fork");
		return 1;
	}
	if (mid == 0) {
		close(p[0]);
		for (int i = 0; i < n; i++) {
			pid_t c = fork();
			if (c == 0) {
				/* outlive the middle process, then exit: we are reparented
				 * to PID 1 (or a subreaper) which must reap us */
				sleep_secs(0.05);
				_exit(0);
			}
			if (c > 0) {
				int v = (int)c;
				if (write(p[1], &v, sizeof v) != sizeof v)
					_exit(1);
			}
		}
		_exit(0);
	}
	close(p[1]);
	int pids[1000], k = 0, v;
	while (k < 1000 && read(p[0], &v, sizeof v) == sizeof v)
		pids[k++] = v;
	close(p[0]);
	waitpid(mid, NULL, 0);
	sleep_secs(0.5);
	int z = 0;
	for (int i = 0; i < k; i++)
		z += is_zombie(pids[i]);
	jopen('{');
	jkey("orphans");
	jopen('[');
	for (int i = 0; i < k; i++)
		jint(pids[i]);
	jclose(']');
	kint("zombies", z);
	kint("zombiesAll", count_all_zombies());
	kint("pid", getpid());
	jclose('}');
	fputc('\n', out);
	return 0;
}

static int cmd_touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	jopen('{');
	kbool("ok", fd >= 0);
	kint("errno", e);
	jkey("error");
	jstring(e ? strerror(e) : NULL);
	jclose('}');
	fputc('\n', out);
	return 0;
}

static int cmd_syscall(int argc, char **argv)
{
	static const struct {
		const char *name;
		long nr;
	} calls[] = {
		{ "personality", SYS_personality }, { "socket", SYS_socket },           { "getpid", SYS_getpid },
		{ "kexec_load", SYS_kexec_load },   { "getpriority", SYS_getpriority }, { "unshare", SYS_unshare },
	};
	long a[6] = { 0 };
	long nr = -1;
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		if (strcmp(argv[0], calls[i].name) == 0)
			nr = calls[i].nr;
	if (nr < 0 || argc > 7) {
		fprintf(stderr, "probe: unknown system call %s (or more than 6 arguments)\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		a[i - 1] = (long)strtoull(argv[i], NULL, 0);
	errno = 0;
	long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	int e = r < 0 ? errno : 0;
	jopen('{');
	kint("ret", r);
	kint("errno", e);
	jclose('}');
	fputc('\n', out);
	return 0;
}

static int cmd_syscall32(const char *nr)
{
#if defined(__x86_64__)
	long r = strtol(nr, NULL, 0);
	__asm__ volatile("int $0x80" : "+a"(r) : : "memory");
	jopen('{');
	kint("ret", r);
	jclose('}');
	fputc('\n', out);
	return 0;
#else
	(void)nr;
	fprintf(stderr, "probe: syscall32 is for x86-64 only\n");
	return 2;
#endif
}

static int usage(void)
{
	fprintf(stderr, "usage: probe [exit N | kill SIG | sleep SECS | orphans N | touch PATH | syscall NAME [ARG...] | syscall32 NR]\n");
	return 2;
}

int main(int argc, char **argv)
{
	out = stdout;
	int rc;
	if (argc < 2) {
		rc = probe_all(argc, argv);
	} else if (strcmp(argv[1], "exit") == 0 && argc == 3) {
		return atoi(argv[2]);
	} else if (strcmp(argv[1], "kill") == 0 && argc == 3) {
		int sig = parse_signal(argv[2]);
		if (sig <= 0 || sig > SIGRTMAX) {
			fprintf(stderr, "probe: unknown signal %s\n", argv[2]);
			return 2;
		}
		raise(sig);
		sleep_secs(0.05);
		jopen('{');
		kint("raised", sig);
		kbool("survived", 1);
		kint("pid", getpid());
		jclose('}');
		fputc('\n', out);
		fflush(out);
		return 125;
	} else if (strcmp(argv[1], "sleep") == 0 && argc == 3) {
		sleep_secs(atof(argv[2]));
		return 0;
	} else if (strcmp(argv[1], "orphans") == 0 && argc == 3) {
		rc = cmd_orphans(atoi(argv[2]));
	} else if (strcmp(argv[1], "touch") == 0 && argc == 3) {
		rc = cmd_touch(argv[2]);
	} else if (strcmp(argv[1], "syscall") == 0 && argc >= 3) {
		rc = cmd_syscall(argc - 2, argv + 2);
	} else if (strcmp(argv[1], "syscall32") == 0 && argc == 3) {
		rc = cmd_syscall32(argv[2]);
	} else {
		return usage();
	}
	if (fflush(out) != 0 || ferror(out))
		return 1;
	return rc;
}
