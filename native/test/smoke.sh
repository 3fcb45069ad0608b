#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Integration smoke test of machina-helper on a busybox rootfs (needs root and busybox-static).
#   sh native/test/smoke.sh            (after make -C native)
# Prints "ok N - name" / "not ok N - name" and "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
H=$here/../build/machina-helper
M="python3 $here/mkspec.py"
root=${BBROOT:-/tmp/machina-smoke-root}
work=$(mktemp -d /tmp/machina-smoke.XXXXXX)
pass=0 fail=0 n=0
ok() { n=$((n+1)); if [ "$1" = 0 ]; then pass=$((pass+1)); echo "ok $n - $2"; else fail=$((fail+1)); echo "not ok $n - $2"; fi; }
cleanup() { rm -rf "$work"; [ -z "${BBROOT:-}" ] && rm -rf --one-file-system "$root"; }
trap cleanup EXIT

if [ ! -x "$root/bin/busybox" ]; then
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/proc" "$root/sys" \
		"$root/dev" "$root/run" "$root/tmp"
	cp /bin/busybox "$root/bin/" && chroot "$root" /bin/busybox --install -s
fi

spec() { $M --root "$root" "$@" > "$work/spec"; }
run() { "$H" run --spec "$work/spec" "$@"; }

spec -- /bin/sh -c 'echo $$; exit 7'
out=$(run 2>&1); rc=$?
ok $([ $rc = 7 ] && [ "$out" = 1 ] && echo 0 || echo 1) "payload is PID 1, exit status 7 passed through"

spec -- /bin/sh -c 'grep -c " /proc/kallsyms " /proc/self/mountinfo; grep -c " /sys ro," /proc/self/mountinfo; ls /dev/null /dev/pts/ptmx >/dev/null && echo dev'
out=$(run 2>&1 | tr '\n' ' ')
ok $([ "$out" = "1 1 dev " ] && echo 0 || echo 1) "masks, read-only /sys, /dev nodes ($out)"

spec -- /nonexistent
run 2>"$work/err"; rc=$?
ok $([ $rc = 127 ] && grep -q 'failed to execute "/nonexistent": No such file or directory (ENOENT)' "$work/err" && echo 0 || echo 1) "missing payload: 127 and one message"

spec -- /etc
run 2>/dev/null; rc=$?
ok $([ $rc = 126 ] && echo 0 || echo 1) "non-executable payload: 126"

spec --status-fd 3 -- /bin/sleep 100
"$H" run --spec "$work/spec" 3>"$work/status" & pid=$!
sleep 0.5; kill -TERM $pid; wait $pid; rc=$?
ok $([ $rc = 137 ] && grep -q '"event":"exited","status":137' "$work/status" && echo 0 || echo 1) "SIGTERM to the supervisor: kill_signal 9, exit 137"

spec --status-fd 3 -- /bin/sh -c 'sleep 100'
run 3>"$work/status" & pid=$!
sleep 0.5; leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$work/status"); kill -KILL "$leader"; wait $pid; rc=$?
ok $([ $rc = 137 ] && echo 0 || echo 1) "payload killed from outside: 128+9"

spec --console read-only --opost 0 -- /bin/sh -c 'tty; printf "a\nb\n"'
out=$(run | od -An -c | tr -s ' ' | tr -d '\n')
ok $(printf '%s\n' "$out" | grep -qF '/ d e v / p t s / 0 \n a \n b \n' && echo 0 || echo 1) "read-only console: pty, byte-exact output without OPOST"

spec --as-pid2 -- /bin/sh -c '(sleep 0.1 &); sleep 0.4; ps -o stat | grep -c Z; exit 5'
out=$(run 2>&1); rc=$?
ok $([ $rc = 5 ] && [ "$out" = 0 ] && echo 0 || echo 1) "as_pid2: stub reaps orphans, exit status passed through"

spec --as-pid2 --status-fd 3 -- /bin/sh -c 'trap "exit 3" TERM; while :; do sleep 0.1; done'
run 3>"$work/status" & pid=$!
sleep 0.5; leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$work/status"); kill -s RTMIN+4 "$leader"; wait $pid; rc=$?
ok $([ $rc = 0 ] && echo 0 || echo 1) "as_pid2: SIGRTMIN+4 to the stub = poweroff, exit 0"

spec --as-pid2 --on-reboot exit133 --status-fd 3 -- /bin/sh -c 'trap "exit 3" TERM; while :; do sleep 0.1; done'
run 3>"$work/status" & pid=$!
sleep 0.5; leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$work/status"); kill -INT "$leader"; wait $pid; rc=$?
ok $([ $rc = 133 ] && grep -q '"event":"reboot"' "$work/status" && echo 0 || echo 1) "as_pid2: SIGINT = reboot, on_reboot exit133"

spec --registry "$work/reg/m" -- /bin/sleep 1
run & pid=$!
sleep 0.3
grep -q '"leader":' "$work/reg/m/state.json"; st=$?
run 2>"$work/err"; rc=$?
wait $pid
ok $([ $st = 0 ] && [ $rc = 1 ] && grep -q 'is already running' "$work/err" && [ ! -e "$work/reg/m" ] && echo 0 || echo 1) "registry: state.json, lock, removed at exit"

head -c 65536 /bin/busybox > "$work/blob"; printf '\000\377\000end' >> "$work/blob"; chmod 600 "$work/blob"
ln -s blob "$work/bloblink"
want=$(md5sum < "$work/blob" | cut -d' ' -f1)
spec --raw-record symlink /nowhere /run/localtime --raw-record remove /run/localtime \
	--raw-record copy "$work/bloblink" /run/localtime 0644 --raw-record copy "$work/blob" /run/new/dir/blob 0640 \
	--raw-record remove /run/missing/x -- /bin/sh -c 'md5sum < /run/localtime; md5sum < /run/new/dir/blob; stat -c "%a %F" /run/localtime /run/new/dir/blob /run/new/dir'
out=$(run 2>&1 | tr '\n' ' '); rc=$?
ok $([ "$out" = "$want  - $want  - 644 regular file 640 regular file 755 directory " ] && echo 0 || echo 1) "copy (binary, via host symlink) after remove of a symlink; parents 0755, MODE ($out)"

spec --raw-record symlink /nowhere /run/l --raw-record copy "$work/blob" /run/l 0644 -- /bin/true
run 2>"$work/err"; rc=$?
ok $([ $rc = 1 ] && [ "$(wc -l < "$work/err")" = 1 ] && grep -q 'failed to copy to "/run/l": Too many levels of symbolic links (ELOOP)' "$work/err" && echo 0 || echo 1) "copy refuses a symlink as last component: exit 1, one ELOOP line"

spec --raw-record mkdir /run/d 0755 --raw-record remove /run/d -- /bin/true
run 2>"$work/err"; rc=$?
ok $([ $rc = 1 ] && grep -q 'failed to remove "/run/d": Is a directory (EISDIR)' "$work/err" && echo 0 || echo 1) "remove of a directory: exit 1, EISDIR"

spec --quiet 0 -- /bin/true
out=$(run 2>&1); rc=$?
ok $([ $rc = 0 ] && [ "$out" = "Container bbtest exited successfully." ] && echo 0 || echo 1) "quiet 0: exited successfully ($out)"

spec --quiet 0 -- /bin/sh -c 'exit 3'
out=$(run 2>&1); rc=$?
ok $([ $rc = 3 ] && [ "$out" = "Container bbtest failed with error code 3." ] && echo 0 || echo 1) "quiet 0: failed with error code ($out)"

spec --quiet 0 --status-fd 3 -- /bin/sleep 100
run 3>"$work/status" 2>"$work/err" & pid=$!
sleep 0.5; leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$work/status"); kill -KILL "$leader"; wait $pid; rc=$?
ok $([ $rc = 137 ] && [ "$(cat "$work/err")" = "Container bbtest terminated by signal SIGKILL." ] && echo 0 || echo 1) "quiet 0: terminated by signal SIGKILL"

spec --quiet 0 --as-pid2 --status-fd 3 -- /bin/sh -c 'trap "exit 3" TERM; while :; do sleep 0.1; done'
run 3>"$work/status" 2>"$work/err" & pid=$!
sleep 0.5; leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' "$work/status"); kill -s RTMIN+4 "$leader"; wait $pid; rc=$?
ok $([ $rc = 0 ] && [ "$(cat "$work/err")" = "Container bbtest has been shut down." ] && echo 0 || echo 1) "quiet 0: powered off = has been shut down"

spec --quiet 0 -- /nonexistent
out=$(run 2>&1); rc=$?
ok $([ $rc = 127 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && ! printf '%s' "$out" | grep -q Container && echo 0 || echo 1) "quiet 0: setup failure prints only its error line"

spec -- /bin/sh -c 'exit 3'
out=$(run 2>&1); rc=$?
ok $([ $rc = 3 ] && [ -z "$out" ] && echo 0 || echo 1) "no quiet record: no exit line"

spec --console interactive -- /bin/sh -c 'trap "stty size" WINCH; while :; do sleep 0.1; done'
python3 "$here/console_test.py" "$H" "$work/spec" > "$work/console.out"; rc=$?
sed 's/^/#   /' "$work/console.out"
ok $rc "interactive console: raw mode, SIGWINCH, ^]^]^], terminal restored"

# ---- user namespaces (on a copy of the root: chown changes it) ----
ucopy=$work/uroot
cp -a "$root" "$ucopy"
uspec() { $M --root "$ucopy" "$@" > "$work/spec"; }
uspec --userns 1048576 --cgroup /sys/fs/cgroup/unified/machina-smoke-userns -- /bin/sh -c 'cat /proc/self/uid_map; id -u; touch /tmp/t; stat -c %u /tmp/t; ls /dev/null >/dev/null && echo dev; grep -c " /sys ro," /proc/self/mountinfo'
out=$(run 2>&1 | tr -s ' ' | tr '\n' ' ')
ok $([ "$out" = " 0 1048576 65536 0 0 dev 1 " ] && echo 0 || echo 1) "userns: uid_map 0 BASE 65536, uid 0 inside, tmpfs files owned by root inside, host /dev nodes, sysfs ro ($out)"
uspec --userns 1048576 --idmap-root -- /bin/sh -c 'touch /etc/idm; grep -c " / .*idmapped" /proc/self/mountinfo'
out=$(run 2>&1)
ok $([ "$out" = 1 ] && [ "$(stat -c %u:%g "$ucopy/etc/idm")" = 0:0 ] && [ "$(stat -c %u "$ucopy")" = 0 ] && echo 0 || echo 1) "userns: idmap_root: idmapped root, a file made inside is 0:0 on disk ($out)"
uspec --userns 2097152 --chown-root --userns-lock "$work/range.lock" -- /bin/sh -c 'touch /etc/chw; stat -c %u /bin/busybox'
out=$(run 2>&1)
ok $([ "$out" = 0 ] && [ "$(stat -c %u:%g "$ucopy" "$ucopy/etc/chw" | sort -u)" = 2097152:2097152 ] && [ ! -e "$work/range.lock" ] && echo 0 || echo 1) "userns: chown_root shifts the tree to BASE, the range lock is removed at exit ($out)"
exec 9>"$work/range.lock"; flock -n 9
run 2>"$work/err"; rc=$?
exec 9>&-
ok $([ $rc = 1 ] && grep -q 'is held by another container' "$work/err" && echo 0 || echo 1) "userns: a held range lock refuses the start"
rm -rf --one-file-system "$ucopy"

# ---- security records: seccomp, personality, OOM score, CPU affinity ----
spec --raw-record seccomp_filter allow --raw-record seccomp_deny 1 sethostname --raw-record seccomp_deny 0 sync \
  --raw-record personality 8 --raw-record oom_score_adjust 300 --raw-record cpu_affinity 0 \
  -- /bin/sh -c 'hostname x 2>&1 | grep -c "not permitted"; sync && echo synced; uname -m; cat /proc/self/oom_score_adj; grep Cpus_allowed_list /proc/self/status | tr -d "\t"; grep Seccomp: /proc/self/status | tr -d "\t"'
out=$(run 2>&1 | tr '\n' ' ')
ok $([ "$out" = "1 synced i686 300 Cpus_allowed_list:0 Seccomp:2 " ] && echo 0 || echo 1) "security: seccomp deny (EPERM, errno 0), personality, oom_score_adjust, cpu_affinity ($out)"
spec --raw-record seccomp_filter allow --raw-record seccomp_rule 1 nosuch a0==1 -- /bin/true
run 2>"$work/err"; rc=$?
ok $rc "security: an unknown system call name is skipped"
c=$work/state/seccomp
spec --raw-record seccomp_filter allow --raw-record seccomp_deny 1 sethostname --raw-record seccomp_filter allow \
  --raw-record seccomp_deny 0 sync --raw-record seccomp_cache "$c" \
  -- /bin/sh -c 'hostname x 2>&1 | grep -c "not permitted"; grep Seccomp_filters: /proc/self/status | tr -d "\t"'
out1=$(run 2>&1 | tr '\n' ' ')
n1=$(ls "$c" 2>/dev/null | wc -l); mode=$(stat -c %a "$c" 2>/dev/null)
out2=$(run 2>&1 | tr '\n' ' ')
ok $([ "$out1" = "1 Seccomp_filters:6 " ] && [ "$out2" = "$out1" ] && [ "$n1" = 1 ] && [ "$mode" = 700 ] && echo 0 || echo 1) "seccomp_cache: compiled once into a 0700 dir, same filters from the cache ($out1/$out2 files=$n1 mode=$mode)"
spec --status-fd 3 --raw-record seccomp_filter allow --raw-record seccomp_deny 1 sethostname --raw-record seccomp_filter allow \
  --raw-record seccomp_deny 0 sync --raw-record seccomp_cache "$c" -- /bin/sleep 1
"$H" run --spec "$work/spec" 3>"$work/status" & pid=$!
sleep 0.5; hit=$(grep -c libseccomp "/proc/$pid/maps"); wait $pid
spec --status-fd 3 --raw-record seccomp_filter allow --raw-record seccomp_deny 1 sethostname -- /bin/sleep 1
"$H" run --spec "$work/spec" 3>"$work/status" & pid=$!
sleep 0.5; nocache=$(grep -c libseccomp "/proc/$pid/maps"); wait $pid
ok $([ "$hit" = 0 ] && [ "$nocache" -gt 0 ] && echo 0 || echo 1) "seccomp_cache: a hit never maps libseccomp in the supervisor, no cache does (dlopen) ($hit/$nocache)"

# binds.c: root_overlay, scratch dirs (+ stale ones), overlay op with a "+" layer, pivot_root_dir
spec --raw-record root_overlay mode=755 -- /bin/sh -c 'echo x > /etc/smoke-eph && cat /etc/smoke-eph'
out=$(run 2>&1); rc=$?
ok $([ $rc = 0 ] && [ "$out" = x ] && [ ! -e "$root/etc/smoke-eph" ] && echo 0 || echo 1) "root_overlay: writes land in the tmpfs upper, never in the image ($out)"

t=$work/scr; mkdir -p "$work/stale-parent/stale"
printf '%s\n' "$work/stale-parent/stale" > "$work/list"
spec --raw-record scratch_list "$work/list" --raw-record scratch_dir "$t" 0700 --raw-record scratch_dir "$t/src" 0755 \
	--raw-record scratch_dir "$t/.#w" 0700 --raw-record mount "$t/src" /s "" bind,rec "" auto \
	--raw-record overlay /o 0 "$t/src" "$t/.#w" +/sbin -- /bin/sh -c 'touch /s/f; stat -c %a /s; echo y > /o/new; test -e /o/init && echo merged'
out=$(run 2>&1 | tr '\n' ' '); rc=$?
ok $([ "$out" = "755 merged " ] && [ ! -e "$t" ] && [ ! -e "$work/list" ] && [ ! -e "$work/stale-parent/stale" ] && echo 0 || echo 1) "scratch_dir created and removed, stale list entry removed, overlay with a + layer ($out)"

mkdir -p "$root/deploy/a/bin" && cp /bin/busybox "$root/deploy/a/bin/" && echo inner > "$root/deploy/a/which"
spec --raw-record pivot_root_dir /deploy/a /old -- /bin/busybox sh -c 'cat /which; test -d /old/deploy && echo old'
out=$(run 2>&1 | tr '\n' ' '); rc=$?
rm -rf "$root/deploy"
ok $([ "$out" = "inner old " ] && echo 0 || echo 1) "pivot_root_dir: /deploy/a is /, the old root at /old ($out)"

# console_log: the payload's output (a pipe) and the supervisor's messages, bounded and rotated
spec --quiet 0 --raw-record console_log "$work/c.log" 10000 3 -- /bin/sh -c 'i=0; while [ $i -lt 3000 ]; do echo "line $i of the console log test output"; i=$((i+1)); done; echo last >&2; exit 3'
out=$(run 2>&1); rc=$?
sz() { stat -c %s "$1" 2>/dev/null || echo -1; }
ok $([ $rc = 3 ] && [ -z "$out" ] && [ "$(sz "$work/c.log")" -le 10000 ] && [ "$(sz "$work/c.log.1")" -gt 9000 ] && [ "$(sz "$work/c.log.1")" -le 10000 ] \
	&& [ "$(sz "$work/c.log.2")" -le 10000 ] && [ ! -e "$work/c.log.3" ] && [ "$(tail -n 1 "$work/c.log")" = "Container bbtest failed with error code 3." ] \
	&& [ "$(tail -n 2 "$work/c.log" | head -n 1)" = last ] && grep -q '^line 2999 of' "$work/c.log" && head -n 1 "$work/c.log.1" | grep -q '^line ' \
	&& echo 0 || echo 1) "console_log: output and exit line in the log, 3 files of at most 10000 bytes, lines whole (rc $rc, $(sz "$work/c.log") $(sz "$work/c.log.1") $(sz "$work/c.log.2"))"
spec --raw-record console_log "$work/e.log" 10000 3 -- /nonexistent
out=$(run 2>&1); rc=$?
ok $([ $rc = 127 ] && [ -z "$out" ] && grep -q 'failed to execute "/nonexistent"' "$work/e.log" && [ "$(stat -c %a "$work/e.log")" = 600 ] && echo 0 || echo 1) "console_log: the child's setup failure lands in the log (0600)"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
