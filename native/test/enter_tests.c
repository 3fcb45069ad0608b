/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests of `machina-helper enter`: the enter spec parser, and (as root) entering a process
 * with namespaces of its own: exit statuses, namespaces, the bounding set, binds. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "copy.h"
#include "enter.h"

static int n_pass, n_fail;

static void check(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", cond ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (cond)
		n_pass++;
	else
		n_fail++;
}

/* Build a spec from NULL-terminated string lists: "name", "arg"..., NULL, ..., NULL NULL. */
static char *mk(size_t *len, const char *const *items)
{
	size_t cap = 8192, n = 0;
	char *buf = malloc(cap);
	const char *hdr[] = { ENTER_MAGIC, ENTER_VERSION };
	for (int i = 0; i < 2; i++) {
		size_t l = strlen(hdr[i]) + 1;
		memcpy(buf + n, hdr[i], l);
		n += l;
	}
	for (const char *const *p = items; *p;) {
		const char *name = *p++;
		const char *const *args = p;
		size_t k = 0;
		while (args[k])
			k++;
		n += (size_t)sprintf(buf + n, "%s", name) + 1;
		n += (size_t)sprintf(buf + n, "%zu", k) + 1;
		for (size_t i = 0; i < k; i++)
			n += (size_t)sprintf(buf + n, "%s", args[i]) + 1;
		p = args + k + 1;
	}
	n += (size_t)sprintf(buf + n, "end") + 1;
	n += (size_t)sprintf(buf + n, "0") + 1;
	*len = n;
	return buf;
}

static int parse(const char *const *items, struct enter_spec *s, struct merr *e)
{
	size_t len;
	char *buf = mk(&len, items);
	memset(e, 0, sizeof *e);
	return enter_parse(s, buf, len, e);
}

static void test_parse(void)
{
	struct enter_spec s;
	struct merr e;
	const char *good[] = { "target",
			       "123",
			       "456",
			       NULL,
			       "namespaces",
			       "mnt",
			       "pid",
			       "uts",
			       NULL,
			       "cgroup",
			       "/sys/fs/cgroup/x",
			       NULL,
			       "caps_bounding",
			       "fcecafff",
			       NULL,
			       "no_new_privs",
			       "1",
			       NULL,
			       "user",
			       "1000",
			       "100",
			       "27",
			       "100",
			       NULL,
			       "env",
			       "A=1",
			       "B=2",
			       NULL,
			       "chdir",
			       "/root",
			       NULL,
			       "console",
			       "pty",
			       NULL,
			       "exec",
			       "/bin/bash",
			       "-bash",
			       NULL,
			       "exec",
			       "/bin/sh",
			       "-sh",
			       NULL,
			       "args",
			       "-c",
			       "true",
			       NULL,
			       NULL };
	check(parse(good, &s, &e) == 0, "a full enter spec parses (%s)", e.msg);
	check(s.pid == 123 && !strcmp(s.starttime, "456"), "target");
	check(s.ns_flags == (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS), "namespaces");
	check(s.n_cgroups == 1 && s.has_caps && s.caps_bounding == 0xfcecafffULL && s.no_new_privs, "cgroup, caps, nnp");
	check(s.has_user && s.uid == 1000 && s.gid == 100 && s.n_groups == 2 && s.groups[0] == 27, "user");
	check(s.n_env == 2 && s.env[2] == NULL && !strcmp(s.env[1], "B=2"), "env is NULL-terminated");
	check(s.pty && !strcmp(s.chdir, "/root"), "console, chdir");
	check(s.n_exec == 2 && !strcmp(s.exec_path[1], "/bin/sh") && !strcmp(s.exec_argv0[0], "-bash"), "exec candidates");
	check(s.n_args == 2 && !strcmp(s.args[1], "true"), "args");
	enter_free(&s);

	const char *bind[] = { "target", "1", "2", NULL, "namespaces", "mnt", NULL, "bind", "/srv", "/mnt", "1", "0", NULL, NULL };
	check(parse(bind, &s, &e) == 0 && s.n_binds == 1 && s.binds[0].read_only && !s.binds[0].mkdir, "bind only");
	enter_free(&s);

	struct {
		const char *what;
		const char *items[20];
	} bad[] = {
		{ "no target", { "exec", "/bin/sh", "sh", NULL, NULL } },
		{ "nothing to do", { "target", "1", "2", NULL, NULL } },
		{ "unknown record", { "target", "1", "2", NULL, "frobnicate", NULL, NULL } },
		{ "unknown namespace", { "target", "1", "2", NULL, "namespaces", "time", NULL, NULL } },
		{ "bind without mnt", { "target", "1", "2", NULL, "bind", "/a", "/b", "0", "0", NULL, NULL } },
		{ "relative bind", { "target", "1", "2", NULL, "namespaces", "mnt", NULL, "bind", "a", "/b", "0", "0", NULL, NULL } },
		{ "bad console", { "target", "1", "2", NULL, "console", "tty", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "bad pid", { "target", "0", "2", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "relative chdir", { "target", "1", "2", NULL, "chdir", "tmp", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "target arity", { "target", "1", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "copy direction", { "target", "1", "2", NULL, "copy", "in", "/a", "/b", "0", NULL, NULL } },
		{ "relative copy", { "target", "1", "2", NULL, "copy", "to", "a", "/b", "0", NULL, NULL } },
		{ "copy with exec", { "target", "1", "2", NULL, "copy", "to", "/a", "/b", "0", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "copy_uids arity", { "target", "1", "2", NULL, "copy", "to", "/a", "/b", "0", NULL, "copy_uids", "1", "2", NULL, NULL } },
		{ "copy_uids zero count",
		  { "target", "1", "2", NULL, "copy", "to", "/a", "/b", "0", NULL, "copy_uids", "9", "0", "5", "0", NULL, NULL } },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = parse(bad[i].items, &s, &e);
		check(r < 0, "rejected: %s (%s)", bad[i].what, e.msg);
		enter_free(&s);
	}
	const char *copy[] = { "target",    "1",     "2", NULL,     "copy",  "from", "/host/x",   "/c/y", "1",  NULL,
			       "copy_uids", "65534", "0", "100000", "65536", NULL,   "copy_gids", "7",    NULL, NULL };
	check(parse(copy, &s, &e) == 0 && s.has_copy && s.copy_from && s.copy_force && !strcmp(s.copy_hpath, "/host/x") &&
		      !strcmp(s.copy_cpath, "/c/y"),
	      "copy only, without mnt (%s)", e.msg);
	check(s.copy_uids.n == 1 && s.copy_uids.fallback == 65534 && s.copy_uids.r[0].to == 100000 && s.copy_gids.n == 0 &&
		      s.copy_gids.fallback == 7,
	      "copy_uids, copy_gids");
	check(copy_map_id(&s.copy_uids, 0) == 100000 && copy_map_id(&s.copy_uids, 65535) == 165535 &&
		      copy_map_id(&s.copy_uids, 65536) == 65534 && copy_map_id(NULL, 42) == 42,
	      "copy_map_id: in range, last, outside (fallback), identity");
	enter_free(&s);
	/* the container's confinement: rlimits, ambient set, seccomp records (parsed by security.c) */
	const char *conf[] = { "target",
			       "1",
			       "2",
			       NULL,
			       "rlimit",
			       "7",
			       "1024",
			       "524288",
			       NULL,
			       "rlimit",
			       "4",
			       "0",
			       "infinity",
			       NULL,
			       "caps_ambient",
			       "0",
			       NULL,
			       "seccomp_filter",
			       "allow",
			       NULL,
			       "seccomp_rule",
			       "97",
			       "socket",
			       "a0==16",
			       "a2==9",
			       NULL,
			       "seccomp_filter",
			       "38",
			       NULL,
			       "seccomp_allow",
			       "read",
			       "write",
			       "exit_group",
			       NULL,
			       "seccomp_deny",
			       "1",
			       "bpf",
			       "keyctl",
			       NULL,
			       "seccomp_cache",
			       "/run/machina/seccomp",
			       NULL,
			       "exec",
			       "/x",
			       "x",
			       NULL,
			       NULL };
	check(parse(conf, &s, &e) == 0, "confinement records parse (%s)", e.msg);
	check(s.n_rlimits == 2 && s.rlimits[0].res == 7 && s.rlimits[0].soft == 1024 && s.rlimits[0].hard == 524288 &&
		      s.rlimits[1].res == 4 && s.rlimits[1].soft == 0 && s.rlimits[1].hard == (unsigned long long)RLIM_INFINITY,
	      "rlimit records (infinity)");
	check(s.has_ambient && s.caps_ambient == 0, "caps_ambient");
	check(s.sec.n_filters == 2 && s.sec.filters[0].default_act == SEC_ACT_ALLOW && s.sec.filters[0].n_entries == 1 &&
		      s.sec.filters[0].entries[0].n_conds == 2 && s.sec.filters[1].default_errno == 38 && s.sec.filters[1].n_entries == 5 &&
		      !strcmp(s.sec.filters[1].entries[4].name, "keyctl") && s.sec.filters[1].entries[4].err == 1 &&
		      !strcmp(s.sec.cache_dir, "/run/machina/seccomp"),
	      "seccomp records, in order, with the cache directory");
	enter_free(&s);
	struct {
		const char *what;
		const char *items[24];
	} badconf[] = {
		{ "rlimit soft > hard", { "target", "1", "2", NULL, "rlimit", "7", "10", "5", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "rlimit resource", { "target", "1", "2", NULL, "rlimit", "99", "1", "1", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "rlimit value", { "target", "1", "2", NULL, "rlimit", "7", "-1", "1", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "caps_ambient hex", { "target", "1", "2", NULL, "caps_ambient", "xyz", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "seccomp_allow before a filter",
		  { "target", "1", "2", NULL, "seccomp_allow", "read", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "unknown seccomp_ record", { "target", "1", "2", NULL, "seccomp_frob", "1", NULL, "exec", "/x", "x", NULL, NULL } },
		{ "seccomp without exec",
		  { "target", "1", "2", NULL, "namespaces", "mnt", NULL, "seccomp_filter", "allow", NULL, "bind", "/a", "/b", "0", "0",
		    NULL, NULL } },
		{ "personality is not an enter record",
		  { "target", "1", "2", NULL, "personality", "8", NULL, "exec", "/x", "x", NULL, NULL } },
	};
	for (size_t i = 0; i < sizeof badconf / sizeof badconf[0]; i++) {
		int r = parse(badconf[i].items, &s, &e);
		check(r < 0, "rejected: %s (%s)", badconf[i].what, e.msg);
		enter_free(&s);
	}
	/* bad header, trailing data */
	char hdr[] = "MACHINA-SPEC\0"
		     "1\0"
		     "end\0"
		     "0\0";
	char *b = malloc(sizeof hdr);
	memcpy(b, hdr, sizeof hdr);
	check(enter_parse(&s, b, sizeof hdr - 1, &e) < 0, "rejected: a run spec's header");
	enter_free(&s);
	size_t len;
	const char *ok[] = { "target", "1", "2", NULL, "exec", "/x", "x", NULL, NULL };
	char *t = mk(&len, ok);
	t = realloc(t, len + 2);
	memcpy(t + len, "x", 2);
	check(enter_parse(&s, t, len + 2, &e) < 0, "rejected: data after end");
	enter_free(&s);
}

/* selinux_context: the label of the container's payload (-Z), given to the entered command */
static void test_selinux_parse(void)
{
	struct enter_spec s;
	struct merr e;
	const char *with[] = { "target", "1", "2",  NULL, "selinux_context", "system_u:system_r:container_t:s0", NULL, "exec",
			       "/x",     "x", NULL, NULL };
	check(parse(with, &s, &e) == 0 && s.selinux_context && !strcmp(s.selinux_context, "system_u:system_r:container_t:s0"),
	      "selinux_context parsed (%s)", e.msg);
	enter_free(&s);
	const char *empty[] = { "target", "1", "2", NULL, "selinux_context", "", NULL, "exec", "/x", "x", NULL, NULL };
	check(parse(empty, &s, &e) < 0 && strstr(e.msg, "selinux_context"), "rejected: empty selinux_context (%s)", e.msg);
	enter_free(&s);
}

/* ---------------------------------------------------------------- as root */

static char *starttime(pid_t pid)
{
	static char out[32];
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	char *p = strrchr(buf, ')');
	for (int i = 0; p && i < 20; i++)
		p = strchr(p + 1, ' ');
	snprintf(out, sizeof out, "%.*s", p ? (int)strcspn(p + 1, " ") : 0, p ? p + 1 : "");
	return out;
}

/* A target: own uts + mnt namespaces, hostname "enter-test", CapBnd as the parent's. */
static pid_t spawn_target(int *ready_fd)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(CLONE_NEWUTS | CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    sethostname("enter-test", 10) < 0)
			_exit(1);
		(void)!write(p[1], "x", 1);
		for (;;)
			pause();
	}
	close(p[1]);
	*ready_fd = p[0];
	char c;
	(void)!read(p[0], &c, 1);
	return pid;
}

/* Run enter_run for the items in a child (it changes namespaces); returns its exit status. */
static int run_enter(const char *const *items, int quiet_stderr)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (quiet_stderr) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 2);
		}
		struct enter_spec s;
		struct merr e;
		if (parse(items, &s, &e) < 0) {
			fprintf(stderr, "parse: %s\n", e.msg);
			_exit(99);
		}
		_exit(enter_run(&s));
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_enter(const char *tmp)
{
	int rfd = -1;
	pid_t t = spawn_target(&rfd);
	char pid[16], st[32];
	snprintf(pid, sizeof pid, "%d", (int)t);
	snprintf(st, sizeof st, "%s", starttime(t));

	const char *hn[] = { "target",
			     pid,
			     st,
			     NULL,
			     "namespaces",
			     "uts",
			     "mnt",
			     NULL,
			     "console",
			     "pipe",
			     NULL,
			     "env",
			     "PATH=/usr/bin:/bin",
			     NULL,
			     "exec",
			     "sh",
			     "sh",
			     NULL,
			     "args",
			     "-c",
			     "test \"$(hostname)\" = enter-test && exit 7",
			     NULL,
			     NULL };
	check(run_enter(hn, 0) == 7, "enter: runs in the target's uts namespace and returns the command's status");

	const char *sig[] = { "target",  pid,  st,   NULL,   "namespaces", "uts",           NULL, "exec",
			      "/bin/sh", "sh", NULL, "args", "-c",         "kill -TERM $$", NULL, NULL };
	check(run_enter(sig, 0) == 128 + SIGTERM, "enter: killed by a signal = 128+N");

	const char *missing[] = { "target", pid, st, NULL, "namespaces", "uts", NULL, "exec", "/nonexistent", "x", NULL, NULL };
	check(run_enter(missing, 1) == 127, "enter: no such command = 127");

	const char *noexec[] = { "target", pid, st, NULL, "namespaces", "uts", NULL, "exec", "/etc/hostname", "x", NULL, NULL };
	check(run_enter(noexec, 1) == 126, "enter: not executable = 126");

	const char *stale[] = { "target", pid, "1", NULL, "namespaces", "uts", NULL, "exec", "/bin/true", "true", NULL, NULL };
	check(run_enter(stale, 1) == 1, "enter: a start time that does not match (pid reused) = setup failure 1");

	const char *caps[] = {
		"target",
		pid,
		st,
		NULL,
		"namespaces",
		"uts",
		NULL,
		"caps_bounding",
		"1",
		NULL,
		"no_new_privs",
		"1",
		NULL,
		"exec",
		"/bin/sh",
		"sh",
		NULL,
		"args",
		"-c",
		"grep -q '^CapBnd:.*0000000000000001$' /proc/self/status && grep -q '^NoNewPrivs:.*1' /proc/self/status && exit 3",
		NULL,
		NULL
	};
	check(run_enter(caps, 0) == 3, "enter: bounding set and no_new_privs applied");

	/* the container's seccomp filter, loaded before the fork: the command is born with it */
	const char *sc[] = {
		"target",
		pid,
		st,
		NULL,
		"namespaces",
		"uts",
		NULL,
		"caps_bounding",
		"3fffffffff",
		NULL,
		"seccomp_filter",
		"allow",
		NULL,
		"seccomp_deny",
		"38",
		"keyctl",
		"add_key",
		NULL,
		"rlimit",
		"7",
		"77",
		"88",
		NULL,
		"exec",
		"/bin/sh",
		"sh",
		NULL,
		"args",
		"-c",
		"grep -q '^Seccomp:.*2$' /proc/self/status && grep -q '^Max open files  *77  *88 ' /proc/self/limits && exit 6",
		NULL,
		NULL
	};
	check(run_enter(sc, 0) == 6, "enter: seccomp filter (Seccomp 2) and rlimits applied");
	/* a user change with the filter loaded first (no no_new_privs, CAP_SYS_ADMIN gone afterwards) */
	const char *scu[] = { "target",
			      pid,
			      st,
			      NULL,
			      "namespaces",
			      "uts",
			      NULL,
			      "caps_bounding",
			      "3fffffffff",
			      NULL,
			      "seccomp_filter",
			      "allow",
			      NULL,
			      "seccomp_deny",
			      "38",
			      "keyctl",
			      NULL,
			      "user",
			      "65534",
			      "65534",
			      NULL,
			      "exec",
			      "/bin/sh",
			      "sh",
			      NULL,
			      "args",
			      "-c",
			      "test $(id -u) = 65534 && grep -q '^Seccomp:.*2$' /proc/self/status && grep -q '^CapEff:.*0000000000000000$' "
			      "/proc/self/status && test \"$(sed -n 's/^CapInh:.//p' /proc/self/status)\" = \"$(sed -n 's/^CapBnd:.//p' "
			      "/proc/self/status)\" && exit 8",
			      NULL,
			      NULL };
	check(run_enter(scu, 0) == 8, "enter: another user: filter loaded early, no effective caps, inheritable = bounding");
	const char *fds[] = { "target", pid,       st,   NULL, "namespaces", "uts", NULL,
			      "exec",   "/bin/sh", "sh", NULL, "args",       "-c",  "test $(ls /proc/self/fd | wc -l) -le 4 && exit 4",
			      NULL,     NULL };
	int keep = open("/dev/null", O_RDONLY); /* an fd that must not be carried in */
	check(run_enter(fds, 0) == 4, "enter: only stdio is carried in (fd %d closed)", keep);
	close(keep);

	/* bind: a host directory appears in the target's mount namespace only */
	char src[512], dst[512], file[600], seen[700];
	snprintf(src, sizeof src, "%s/src", tmp);
	snprintf(dst, sizeof dst, "%s/dst", tmp);
	mkdir(src, 0755);
	snprintf(file, sizeof file, "%s/hello", src);
	close(open(file, O_CREAT | O_WRONLY, 0644));
	const char *bind[] = { "target", pid, st, NULL, "namespaces", "mnt", NULL, "bind", src, dst, "1", "1", NULL, NULL };
	check(run_enter(bind, 0) == 0, "bind: exit 0");
	snprintf(seen, sizeof seen, "/proc/%d/root%s/hello", (int)t, dst);
	check(access(seen, F_OK) == 0, "bind: visible in the target (%s)", seen);
	snprintf(seen, sizeof seen, "%s/hello", dst);
	check(access(seen, F_OK) < 0, "bind: not on the host");
	const char *ro[] = { "target", pid,       st,   NULL, "namespaces", "mnt", NULL,
			     "exec",   "/bin/sh", "sh", NULL, "args",       "-c",  "touch \"$0\"/x 2>/dev/null || exit 5",
			     dst,      NULL,      NULL };
	check(run_enter(ro, 0) == 5, "bind: read-only");
	const char *nodst[] = { "target", pid, st,   NULL, "namespaces", "mnt", NULL, "bind", src, "/nonexistent-dir-xyz",
				"0",      "0", NULL, NULL };
	check(run_enter(nodst, 1) == 1, "bind: a missing target without mkdir fails");

	kill(t, SIGKILL);
	waitpid(t, NULL, 0);
	close(rfd);
	rmdir(dst);
	unlink(file);
	rmdir(src);
}

/* ---------------------------------------------------------------- copy.c */

static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *slurp(const char *p)
{
	static char buf[256];
	int fd = open(p, O_RDONLY | O_NOFOLLOW);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = 0;
	return buf;
}

/* copy_tree / copy_replace between two directories: fidelity, --force, symlinks never followed. */
static void test_copy(const char *tmp)
{
	char src[256], dst[256], p[512];
	snprintf(src, sizeof src, "%s/src", tmp);
	snprintf(dst, sizeof dst, "%s/dst", tmp);
	sh("mkdir -p %s/tree/sub %s && cd %s/tree && echo data > f && chmod 4751 f && ln -s /etc/passwd abs && "
	   "ln -s ../../../x sub/rel && mkfifo sub/p && chmod 0700 sub && touch -h -d @1000000000 abs f sub/p sub . && "
	   "(setfattr -n user.k -v v f 2>/dev/null || true)",
	   src, dst, src);
	if (geteuid() == 0)
		sh("chown 12:34 %s/tree/f && chmod 4751 %s/tree/f && touch -d @1000000000 %s/tree/f", src, src, src);
	int sd = open(src, O_PATH | O_DIRECTORY), dd = open(dst, O_PATH | O_DIRECTORY);
	struct merr e = { 0 };
	check(copy_replace(sd, "tree", dd, "tree", 0, NULL, NULL, "src/tree", "dst/tree", &e) == 0, "copy a tree (%s)", e.msg);
	check(sh("cd %s && find tree -printf '%%p %%y %%m %%U:%%G %%T@ %%l\n' | sort > ../a && cd %s && "
		 "find tree -printf '%%p %%y %%m %%U:%%G %%T@ %%l\n' | sort > ../b && cmp -s ../a ../b",
		 src, dst) == 0,
	      "the copy has the same names, types, modes, owners, mtimes, link targets");
	snprintf(p, sizeof p, "%s/tree/f", dst);
	check(!strcmp(slurp(p), "data\n"), "content");
	char v[8] = "";
	check(getxattr(p, "user.k", v, sizeof v) < 0 || !strcmp(v, "v"), "xattr (where the file system has them)");
	snprintf(p, sizeof p, "%s/tree/abs", dst);
	struct stat st;
	check(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "a symlink is copied as a symlink");

	memset(&e, 0, sizeof e);
	check(copy_replace(sd, "tree", dd, "tree", 0, NULL, NULL, "src/tree", "dst/tree", &e) == -EEXIST && strstr(e.msg, "dst/tree"),
	      "existing target without force: EEXIST naming it (%s)", e.msg);
	sh("echo new > %s/file", src);
	memset(&e, 0, sizeof e);
	check(copy_replace(sd, "file", dd, "tree", 1, NULL, NULL, "src/file", "dst/tree", &e) == 0, "force: a file replaces a tree");
	snprintf(p, sizeof p, "%s/tree", dst);
	check(!strcmp(slurp(p), "new\n"), "the tree is gone, the file is there");
	check(sh("test -z \"$(ls -A %s | grep -v '^tree$')\"", dst) == 0, "no temporary left behind");

	/* a symlink at the destination pointing at a canary: replaced, never written through */
	sh("echo canary > %s/canary && ln -s %s/canary %s/link", tmp, tmp, dst);
	memset(&e, 0, sizeof e);
	check(copy_replace(sd, "file", dd, "link", 0, NULL, NULL, "src/file", "dst/link", &e) == -EEXIST, "a symlink target exists");
	check(copy_replace(sd, "file", dd, "link", 1, NULL, NULL, "src/file", "dst/link", &e) == 0, "force replaces the symlink");
	snprintf(p, sizeof p, "%s/canary", tmp);
	check(!strcmp(slurp(p), "canary\n"), "the symlink's target is untouched");
	snprintf(p, sizeof p, "%s/link", dst);
	check(lstat(p, &st) == 0 && S_ISREG(st.st_mode), "the symlink became the file");

	if (geteuid() == 0) {
		struct copy_ids ids = { .r = { { 0, 100000, 65536 } }, .n = 1, .fallback = 165534 };
		memset(&e, 0, sizeof e);
		check(copy_replace(sd, "tree", dd, "shifted", 0, &ids, &ids, "src/tree", "dst/shifted", &e) == 0, "copy with an id map");
		snprintf(p, sizeof p, "%s/shifted/f", dst);
		check(lstat(p, &st) == 0 && st.st_uid == 100012 && st.st_gid == 100034 && (st.st_mode & 07777) == 04751,
		      "owners shifted, set-uid kept after the chown (%u:%u %o)", st.st_uid, st.st_gid, st.st_mode & 07777);
		snprintf(p, sizeof p, "%s/shifted/abs", dst);
		check(lstat(p, &st) == 0 && st.st_uid == 100000, "a symlink's owner shifted (lchown)");
	}
	close(sd);
	close(dd);
	sh("rm -rf %s/src %s/dst %s/canary", tmp, tmp, tmp);
}

int main(void)
{
	test_parse();
	test_selinux_parse();
	{
		char tmp[] = "/tmp/machina-copy-test.XXXXXX";
		if (mkdtemp(tmp)) {
			test_copy(tmp);
			rmdir(tmp);
		}
	}
	if (geteuid() == 0) {
		char tmp[] = "/tmp/machina-enter-test.XXXXXX";
		if (mkdtemp(tmp)) {
			test_enter(tmp);
			rmdir(tmp);
		}
	} else {
		printf("# skipping enter tests: they need root\n");
	}
	printf("%d passed, %d failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
