/** Socket activation: LISTEN_PID/LISTEN_FDS (src/daemon/activation.ts), the sockets told apart by path (src/host/listen-fds.ts), machinad's units and init script, its ERRNO= when it cannot start. */
import { describe, expect, test } from "bun:test";
import { activatedDoors, listenFds, startupErrno } from "../../src/daemon/activation.ts";
import { MachinaError } from "../../src/errors.ts";
import { listeningUnixPaths } from "../../src/host/listen-fds.ts";
import { daemonUnits } from "../../src/machine/systemd.ts";
import { daemonInitScript, daemonLogrotate, installDaemonInitScript } from "../../src/machine/sysv.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";

describe("LISTEN_PID and LISTEN_FDS", () => {
  test("fds 3… for this process; none without LISTEN_PID or for another process (a child that inherited them)", () => {
    expect(listenFds({ LISTEN_PID: "42", LISTEN_FDS: "3" }, 42)).toEqual([3, 4, 5]);
    expect(listenFds({ LISTEN_PID: "42", LISTEN_FDS: "0" }, 42)).toEqual([]);
    expect(listenFds({ LISTEN_FDS: "3" }, 42)).toEqual([]);
    expect(listenFds({ LISTEN_PID: "41", LISTEN_FDS: "3" }, 42)).toEqual([]);
  });

  test("values that are not numbers: one line naming the variable", () => {
    expect(() => listenFds({ LISTEN_PID: "x", LISTEN_FDS: "3" }, 42)).toThrow('LISTEN_PID="x": not a process id');
    expect(() => listenFds({ LISTEN_PID: "42", LISTEN_FDS: "three" }, 42)).toThrow(
      'LISTEN_FDS="three": the number of sockets passed (0-64) is needed with LISTEN_PID',
    );
    expect(() => listenFds({ LISTEN_PID: "42" }, 42)).toThrow('LISTEN_FDS=""');
    expect(() => listenFds({ LISTEN_PID: "42", LISTEN_FDS: "1000" }, 42)).toThrow("(0-64)");
  });
});

describe("which door each passed socket is", () => {
  const doors = ["/run/machina/oci.sock", "/run/machina/nspawn.sock", "/run/machina/machinactl.sock"];
  const api = "/run/machina/api.sock";

  test("by the path it is bound to, in any order, any subset", () => {
    const got = activatedDoors(
      new Map([
        [3, "/run/machina/nspawn.sock"],
        [4, "/run/machina/oci.sock"],
      ]),
      doors,
      api,
    );
    expect([...got]).toEqual([
      ["/run/machina/nspawn.sock", 3],
      ["/run/machina/oci.sock", 4],
    ]);
    expect(activatedDoors(new Map(), doors, api).size).toBe(0);
  });

  test("the API socket, another path, a socket passed twice, or not a listening one: refused with one line", () => {
    expect(() => activatedDoors(new Map([[3, api]]), doors, api)).toThrow(
      "socket activation: /run/machina/api.sock (fd 3) is the API socket, which machinad binds itself; pass only the front ends' sockets: /run/machina/oci.sock, /run/machina/nspawn.sock, /run/machina/machinactl.sock",
    );
    expect(() => activatedDoors(new Map([[4, "/run/other.sock"]]), doors, api)).toThrow(
      "socket activation: /run/other.sock (fd 4) is not one of machinad's front-end sockets: /run/machina/oci.sock, ",
    );
    expect(() =>
      activatedDoors(
        new Map([
          [3, doors[0]],
          [4, doors[0]],
        ]),
        doors,
        api,
      ),
    ).toThrow("socket activation: /run/machina/oci.sock was passed twice (fds 3 and 4)");
    expect(() => activatedDoors(new Map([[5, undefined]]), doors, api)).toThrow(
      "socket activation: fd 5 is not a listening Unix stream socket bound to a path",
    );
  });

  test("/proc/net/unix: only listening stream sockets bound to a path", () => {
    const table = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      "0000000000000000: 00000002 00000000 00010000 0001 01 1001 /run/machina/nspawn.sock", // listening stream
      "0000000000000000: 00000003 00000000 00000000 0001 03 1002 /run/machina/nspawn.sock", // a connection
      "0000000000000000: 00000002 00000000 00010000 0002 01 1003 /run/dgram.sock", // datagram
      "0000000000000000: 00000002 00000000 00010000 0001 01 1004 @abstract", // abstract
      "0000000000000000: 00000002 00000000 00010000 0001 01 1005", // unnamed
      "0000000000000000: 00000002 00000000 00010000 0005 01 1006 /run/seqpacket.sock", // seqpacket
      "0000000000000000: 00000002 00000000 00010000 0001 01 1007 /run/with space.sock",
    ].join("\n");
    expect([...listeningUnixPaths(table)]).toEqual([
      ["1001", "/run/machina/nspawn.sock"],
      ["1007", "/run/with space.sock"],
    ]);
  });
});

test("machinad.socket listens on the three front ends' default paths, root only; machinad.service needs it and leaves containers running when stopped", () => {
  const units = daemonUnits("/usr/local/bin");
  const socket = units["machinad.socket"].split("\n");
  for (const l of [
    "ListenStream=/run/machina/oci.sock",
    "ListenStream=/run/machina/nspawn.sock",
    "ListenStream=/run/machina/machinactl.sock",
    "SocketMode=0600",
    "DirectoryMode=0755",
    "WantedBy=sockets.target",
  ])
    expect(socket).toContain(l);
  expect(units["machinad.socket"]).not.toContain("api.sock"); // machinad binds it itself
  const service = units["machinad.service"].split("\n");
  for (const l of ["Type=notify", "ExecStart=/usr/local/bin/machinad", "Requires=machinad.socket", "KillMode=process", "Also=machinad.socket"])
    expect(service).toContain(l);
});

test("machinad's init script: the daemon's path, waits for READY=1, stops machinad alone", () => {
  const text = daemonInitScript({ daemon: "/usr/local/bin/machinad" });
  const lines = text.split("\n");
  for (const l of [
    "DAEMON=/usr/local/bin/machinad",
    "PIDFILE=/run/machinad.pid",
    "LOGFILE=/var/log/machinad.log",
    "[ -r /etc/default/machinad ] && . /etc/default/machinad",
  ])
    expect(lines).toContain(l);
  expect(text).toContain("--notify-await");
  expect(text).toMatch(/--stop [^\n]*--pidfile "\$PIDFILE" --remove-pidfile --name machinad\n/); // the pid file's process, whichever binary it runs
  expect(text).toMatch(/# Default-Start: +2 3 4 5\n# Default-Stop: +0 1 6\n/);
});

test("ERRNO= for a machinad that cannot start: by error code, a system call's own errno, else EIO", () => {
  expect(startupErrno(new MachinaError("E_USAGE", "unrecognized option"))).toBe(22);
  expect(startupErrno(new MachinaError("E_BUSY", "another machinad is already serving"))).toBe(16);
  expect(startupErrno(new MachinaError("E_SYSTEM", "x"))).toBe(5);
  expect(startupErrno(Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE", errno: -98 }))).toBe(98);
  expect(startupErrno(new Error("plain"))).toBe(5);
  expect(startupErrno("not an error")).toBe(5);
});

test("installDaemonInitScript: the script 0755, and logrotate's entry only where logrotate's directory is", () => {
  const d = mkdtempSync(`${tmpdir()}/machina-sysv-`);
  try {
    const dirs = { initd: `${d}/init.d`, logrotate: `${d}/logrotate.d` };
    expect(installDaemonInitScript(new LinuxHost(), "/usr/local/bin/machinad", dirs)).toEqual([`${d}/init.d/machinad`]);
    expect(statSync(`${d}/init.d/machinad`).mode & 0o777).toBe(0o755);
    mkdirSync(dirs.logrotate);
    expect(installDaemonInitScript(new LinuxHost(), "/usr/local/bin/machinad", dirs)).toEqual([`${d}/init.d/machinad`, `${d}/logrotate.d/machinad`]);
    const entry = readFileSync(`${d}/logrotate.d/machinad`, "utf8");
    expect(entry).toBe(daemonLogrotate());
    expect(entry).toContain("/var/log/machinad.log {");
    expect(entry).toContain("\tcopytruncate\n"); // machinad keeps its fd (O_APPEND): no restart
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
