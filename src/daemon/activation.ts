/**
 * Socket activation (sd_listen_fds(3)): a service manager — systemd with machinad.socket
 * (src/machine/systemd.ts daemonUnits), or `systemd-socket-activate` — binds the front ends' sockets
 * itself and starts machinad at the first connection, passing the listening sockets as fds 3,
 * 4, … with LISTEN_PID (machinad's pid: the variables are for it, not for a child that inherited
 * them) and LISTEN_FDS (how many). machinad tells them apart by the path each is bound to, as
 * systemd-journald does with its sockets, so the unit's order and FileDescriptorName= do not
 * matter; a socket that is not one of the three front ends' is refused with one line. Pure: the
 * paths come from src/host/listen-fds.ts. Also the errno machinad tells a service manager that
 * waits for its READY=1 when it cannot start (startupErrno).
 */
import { type ErrorCode, MachinaError } from "../errors.ts";

/** The first passed fd (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** The variables a service manager sets; machinad removes them from its environment once read. */
export const LISTEN_VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

type Env = Readonly<Record<string, string | undefined>>;

/** The fds passed to process `pid`: none when LISTEN_PID is unset or names another process (sd_listen_fds' rule). */
export function listenFds(env: Env, pid: number): number[] {
  const forPid = env.LISTEN_PID;
  if (forPid === undefined || forPid === "") return [];
  if (!/^[1-9][0-9]*$/.test(forPid)) throw new MachinaError("E_INVALID", `LISTEN_PID="${forPid}": not a process id`, { value: forPid });
  if (Number(forPid) !== pid) return [];
  const count = env.LISTEN_FDS ?? "";
  if (!/^[0-9]+$/.test(count) || Number(count) > 64)
    throw new MachinaError("E_INVALID", `LISTEN_FDS="${count}": the number of sockets passed (0-64) is needed with LISTEN_PID`, { value: count });
  return Array.from({ length: Number(count) }, (_, i) => LISTEN_FDS_START + i);
}

/**
 * The front ends' sockets among the passed ones: path → fd. `bound` is the path each passed fd
 * listens on (undefined: not a listening Unix stream socket); `doors` the paths machinad serves
 * front ends on; `api` its API socket (which it always binds itself).
 */
export function activatedDoors(bound: ReadonlyMap<number, string | undefined>, doors: readonly string[], api: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [fd, path] of bound) {
    if (path === undefined) throw new MachinaError("E_INVALID", `socket activation: fd ${fd} is not a listening Unix stream socket bound to a path`);
    if (path === api)
      throw new MachinaError(
        "E_INVALID",
        `socket activation: ${path} (fd ${fd}) is the API socket, which machinad binds itself; pass only the front ends' sockets: ${doors.join(", ")}`,
        { path },
      );
    if (!doors.includes(path))
      throw new MachinaError("E_INVALID", `socket activation: ${path} (fd ${fd}) is not one of machinad's front-end sockets: ${doors.join(", ")}`, { path });
    if (out.has(path)) throw new MachinaError("E_INVALID", `socket activation: ${path} was passed twice (fds ${out.get(path)} and ${fd})`, { path });
    out.set(path, fd);
  }
  return out;
}

/** errno numbers for ERRNO= (sd_notify(3)) by machina's error codes; any other failure is EIO. */
const ERRNO_OF: Partial<Record<ErrorCode, number>> = {
  E_USAGE: 22, // EINVAL
  E_INVALID: 22, // EINVAL
  E_NOT_FOUND: 2, // ENOENT
  E_BUSY: 16, // EBUSY
  E_UNSUPPORTED: 95, // EOPNOTSUPP
};

/**
 * What machinad tells a service manager waiting for its READY=1 when it cannot start (`ERRNO=`):
 * start-stop-daemon --notify-await fails at once on it instead of waiting out its timeout, and
 * systemd records it as the service's errno. A system call's own errno when the error has one.
 */
export function startupErrno(error: unknown): number {
  if (error instanceof MachinaError) return ERRNO_OF[error.code] ?? 5;
  if (error instanceof Error && "errno" in error && typeof error.errno === "number" && error.errno !== 0) return Math.abs(error.errno);
  return 5;
}
