/**
 * `machinactl shell [USER@].host [COMMAND...]`: a shell (or a command) on the host itself, as
 * machinectl's `.host` does — the user's login shell from the host's /etc/passwd (root by
 * default), HOME/USER/LOGNAME/SHELL/TERM/PATH set, in the home directory, through util-linux's
 * setpriv for the user switch. machinactl is replaced by it, so its exit status is returned.
 * A separate path from entering containers (src/machine/enter.ts).
 */
import { MachinaError } from "../../errors.ts";
import { parsePasswd } from "../../host/facts.ts";
import type { Host } from "../../host/host.ts";
import { DEFAULT_PATH } from "../../spec/default-path.ts";

export interface HostShellPlan {
  path: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
}

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"];

export function hostShellPlan(host: Host, user: string | undefined, command: string[], setenv: string[], term: string | undefined): HostShellPlan {
  const wanted = user ?? "root";
  const users = parsePasswd(host.readFile("/etc/passwd"));
  let entry = users.find((u) => u.name === wanted) ?? (/^[0-9]+$/.test(wanted) ? users.find((u) => u.uid === Number(wanted)) : undefined);
  if (entry === undefined && (wanted === "root" || wanted === "0")) entry = { name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh" };
  else if (entry === undefined && /^[0-9]+$/.test(wanted)) entry = { name: wanted, uid: Number(wanted), gid: Number(wanted), home: "/", shell: "/bin/sh" };
  if (entry === undefined) throw new MachinaError("E_NOT_FOUND", `no user "${wanted}" in the host's /etc/passwd`, { value: wanted });
  const setpriv = SETPRIV.find((p) => host.lstat(p) !== undefined);
  if (setpriv === undefined) throw new MachinaError("E_NOT_FOUND", "setpriv (util-linux) not found: it runs the host shell as the user", { path: SETPRIV[0] });
  const shell = entry.shell || "/bin/sh";
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: entry.home || "/", USER: entry.name, LOGNAME: entry.name, SHELL: shell };
  if (term !== undefined && term !== "") env["TERM"] = term;
  for (const kv of setenv) {
    const eq = kv.indexOf("=");
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const cmd = command.length > 0 ? command : [shell, "-l"];
  const groups = users.some((u) => u.uid === entry.uid) ? "--init-groups" : "--clear-groups";
  return { path: setpriv, argv: ["setpriv", `--reuid=${entry.uid}`, `--regid=${entry.gid}`, groups, "--", ...cmd], env, cwd: entry.home || "/" };
}
