/**
 * machina's own environment variables (MACHINA_*), read in one place: each is declared once with
 * what it does and how its value is parsed; code asks `machinaEnv(env, NAME)` for the typed
 * value. Tests point the commands at temporary roots with them; an administrator rarely needs
 * them. (systemd-nspawn's SYSTEMD_NSPAWN_* variables are settings/nspawn-env.ts.) Pure.
 * docs/options.md's list is generated from this table (test/unit/config.test.ts checks it and
 * that no code reads a MACHINA_* variable that is not declared here).
 */
import { MachinaError } from "./errors.ts";

type Env = Readonly<Record<string, string | undefined>>;

const text = (v: string | undefined): string | undefined => v;
const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === "" ? undefined : v);
const pathList = (v: string | undefined): string[] | undefined => (v === undefined || v === "" ? undefined : v.split(":").filter((p) => p.length > 0));
const flag = (v: string | undefined): boolean => v === "1";
const tristate = (v: string | undefined): boolean | undefined => (v === "1" ? true : v === "0" ? false : undefined);

/** A count or byte size; a malformed value is refused (it names the variable). */
const strictNumber =
  (name: string) =>
  (v: string | undefined): number | undefined => {
    if (v === undefined || v === "") return undefined;
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new MachinaError("E_INVALID", `invalid ${name}=${JSON.stringify(v)}: expected a number`);
    return Number(v);
  };

/** A number within bounds; anything else is as if unset (the default applies). */
const boundedNumber =
  (min: number, max: number) =>
  (v: string | undefined): number | undefined => {
    const n = v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : Number.NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  };

interface Variable<T> {
  doc: string;
  parse(v: string | undefined): T;
}
const v = <T>(doc: string, parse: (v: string | undefined) => T): Variable<T> => ({ doc, parse });

/** Every MACHINA_* variable. */
export const MACHINA_VARIABLES = {
  MACHINA_POOL: v(
    "image pool directories, colon-separated, the writable one first (default /var/lib/machines:/usr/local/lib/machines:/usr/lib/machines)",
    pathList,
  ),
  MACHINA_STATE_DIR: v("the state directory: registry, networks, locks (default /run/machina)", text),
  MACHINA_HELPER: v("the native helper to run (default native/build/machina-helper of the checkout)", text),
  MACHINA_SETTINGS_DIRS: v("trusted .nspawn directories, colon-separated (default /etc/systemd/nspawn:/run/systemd/nspawn)", pathList),
  MACHINA_ENABLE_DIR: v("where `machinactl enable` links machines on hosts without systemd (default /etc/machina/machines.target.wants)", text),
  MACHINA_UNIT_DIR: v("where the unit template is installed on systemd hosts (default /etc/systemd/system)", text),
  MACHINA_SYSTEMD: v("1/0: treat the host as booted with systemd, or not (default: /run/systemd/system decides)", tristate),
  MACHINA_QEMU_DIR: v("the directory of the qemu-NAME-static interpreters registered for images of another architecture (default: $PATH)", nonEmpty),
  MACHINA_NETWORK_CONF: v("the networking configuration file (default /etc/machina/network.conf)", text),
  MACHINA_NET_POOL4: v("the IPv4 address pool for containers (overrides network.conf's Pool4=)", nonEmpty),
  MACHINA_NET_POOL6: v("the IPv6 address pool (overrides Pool6=; empty: no IPv6)", text),
  MACHINA_CONSOLE_LOG_MAX_BYTES: v("size of one console log file of a background machine, 4096…2^40 (default 1 MiB)", boundedNumber(4096, 2 ** 40)),
  MACHINA_CONSOLE_LOG_KEEP: v("console log files kept, 1…100 (default 3)", boundedNumber(1, 100)),
  MACHINA_IMPORT_MAX_BYTES: v("the size limit of an imported image, uncompressed (default 64 GiB)", strictNumber("MACHINA_IMPORT_MAX_BYTES")),
  MACHINA_IMPORT_MAX_ENTRIES: v("the number of archive entries an import accepts", strictNumber("MACHINA_IMPORT_MAX_ENTRIES")),
  MACHINA_IMPORT_MAX_DEPTH: v("the directory depth an import accepts", strictNumber("MACHINA_IMPORT_MAX_DEPTH")),
  MACHINA_PULL_MAX_BYTES: v("the size limit of a download (default 64 GiB)", strictNumber("MACHINA_PULL_MAX_BYTES")),
  MACHINA_OCI_ROOT: v("machina-oci's state directory (default /run/machina-oci; its --root), also where machinactl lists OCI containers", nonEmpty),
  MACHINA_OCI_CACHE: v("the blob cache of pull-oci, keyed by digest (default /var/cache/machina/oci)", nonEmpty),
  MACHINA_IMPORT_PUBRING: v("the GnuPG keyring pulls are verified with (default systemd's import-pubring.gpg)", nonEmpty),
  MACHINA_IMPORT_STREAM: v("1: extract uncompressed archives through a pipe too (tests)", flag),
  MACHINA_STATUS_FD: v(
    'machina-nspawn: its own stages and the helper\'s JSON status lines, each with its time ("t"), go to this fd (machinactl start, machinad, bench/whole.ts)',
    strictNumber("MACHINA_STATUS_FD"),
  ),
  MACHINA_PRINT_SPEC: v("1: machina-nspawn prints the planned RunSpec instead of running it", flag),
  MACHINA_NO_DAEMON: v(
    "1: machinactl works on the registry directly even when machinad answers; the front ends of machina-nspawn, machina-oci and machinactl run their full program",
    flag,
  ),
  MACHINA_API_SOCKET: v("machinad's socket (default /run/machina/api.sock)", nonEmpty),
  MACHINA_OCI_SOCKET: v("machinad's socket for machina-oci's native front end (default oci.sock beside MACHINA_API_SOCKET: /run/machina/oci.sock)", nonEmpty),
  MACHINA_OCI_FALLBACK: v(
    "the full machina-oci the front end runs when machinad does not serve a command (default ../libexec/machina-oci beside the front end)",
    nonEmpty,
  ),
  MACHINA_NSPAWN_SOCKET: v(
    "machinad's socket for machina-nspawn's native front end (default nspawn.sock beside MACHINA_API_SOCKET: /run/machina/nspawn.sock)",
    nonEmpty,
  ),
  MACHINA_NSPAWN_FALLBACK: v(
    "the full machina-nspawn the front end runs when machinad does not serve it (default ../libexec/machina-nspawn beside the front end)",
    nonEmpty,
  ),
  MACHINA_MACHINACTL_SOCKET: v(
    "machinad's socket for machinactl's native front end (default machinactl.sock beside MACHINA_API_SOCKET: /run/machina/machinactl.sock)",
    nonEmpty,
  ),
  MACHINA_MACHINACTL_FALLBACK: v(
    "the full machinactl the front end runs for what machinad does not serve (default ../libexec/machinactl beside the front end)",
    nonEmpty,
  ),
  MACHINA_FRONT_DEBUG: v("1: the front ends of machina-nspawn and machinactl say on stderr whether machinad served them, or why the full program runs", flag),
  MACHINA_RESTART: v("machinad's restart policy: no, on-failure, always (as --restart=)", nonEmpty),
  MACHINA_HOST_JOURNAL_DIR: v("the host's journal directory for --link-journal (default /var/log/journal)", nonEmpty),
} as const;

export type MachinaVariable = keyof typeof MACHINA_VARIABLES;
type ValueOf<K extends MachinaVariable> = ReturnType<(typeof MACHINA_VARIABLES)[K]["parse"]>;

/** The typed value of one variable in env (undefined/false when unset). */
export function machinaEnv<K extends MachinaVariable>(env: Env, name: K): ValueOf<K> {
  return MACHINA_VARIABLES[name].parse(env[name]) as ValueOf<K>;
}

/** docs/options.md's table of the variables (between its markers). */
export function variablesMarkdown(): string {
  const rows = Object.entries(MACHINA_VARIABLES).map(([name, d]) => `| \`${name}\` | ${d.doc.replace(/\|/g, "\\|")} |`);
  return ["| variable | what it does |", "|---|---|", ...rows].join("\n");
}
