/**
 * Parsers for the compound values shared by command-line options and .nspawn keys: bind
 * mounts, tmpfs, overlays, ports, user-namespace ranges, credentials, CPU sets. Pure.
 */
import type { ErrorContext } from "../errors.ts";
import { invalid, parseAbsolutePath } from "./values.ts";

/** Split on unescaped ':' and resolve the backslash escapes systemd allows ("\:" and "\\"). */
export function splitColons(value: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === "\\" && i + 1 < value.length) {
      cur += value[++i]!;
    } else if (ch === ":") {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Mount propagation types (linux.rootfsPropagation, OCI mount options), with runc's recursive forms. */
export const PROPAGATIONS = ["shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"] as const;
export type Propagation = (typeof PROPAGATIONS)[number];

export interface BindMount {
  /** Host path; "" = a temporary directory made for this container and removed afterwards. */
  source: string;
  /** Source is relative to the image's root ('+' prefix). */
  sourceInImage: boolean;
  destination: string;
  readOnly: boolean;
  recursive: boolean;
  idmap: "noidmap" | "idmap" | "rootidmap";
  /** machina-oci: the propagation set on the new mount (an OCI mount's option); undefined: left as it is. */
  propagation?: Propagation;
  /** machina-oci: the index in config.json's mounts (mounted in that order, not by path). */
  order?: number;
  /** machina-oci: an OCI mount's nosuid/nodev/noexec options, set on the new mount (and those below it with rbind). */
  restrict?: Array<"nosuid" | "nodev" | "noexec">;
}

const BIND_ALLOWED =
  "SOURCE[:DESTINATION[:OPTIONS]] with absolute paths (SOURCE may start with '+' or be empty), OPTIONS from rbind, norbind, idmap, noidmap, rootidmap";

export function parseBind(value: string, readOnly: boolean, ctx: ErrorContext, cwd: string): BindMount {
  const parts = splitColons(value);
  if (parts.length > 3 || value === "") throw invalid(ctx, value, BIND_ALLOWED);
  let [source = "", destination, options] = parts;
  let sourceInImage = false;
  if (source.startsWith("+")) {
    sourceInImage = true;
    source = source.slice(1);
  }
  if (source !== "" && !source.startsWith("/")) {
    if (sourceInImage) throw invalid(ctx, value, BIND_ALLOWED);
    source = `${cwd.replace(/\/$/, "")}/${source}`;
  }
  if (source !== "") source = parseAbsolutePath(source, ctx);
  if (destination === undefined || destination === "") {
    if (source === "") throw invalid(ctx, value, "a destination when the source is empty (e.g. :/scratch)");
    destination = source;
  }
  destination = parseAbsolutePath(destination, ctx);
  let recursive = true;
  let idmap: BindMount["idmap"] = "noidmap";
  for (const opt of (options ?? "").split(",").filter((o) => o.length > 0)) {
    if (opt === "rbind") recursive = true;
    else if (opt === "norbind") recursive = false;
    else if (opt === "idmap" || opt === "noidmap" || opt === "rootidmap") idmap = opt;
    else throw invalid(ctx, value, BIND_ALLOWED);
  }
  return { source, sourceInImage, destination, readOnly, recursive, idmap };
}

export interface TmpfsMount {
  destination: string;
  options: string;
  /** machina-oci: the propagation set on the new mount (an OCI mount's option); undefined: left as it is. */
  propagation?: Propagation;
  /** machina-oci: the index in config.json's mounts (mounted in that order, not by path). */
  order?: number;
  /** machina-oci: an OCI mount's nosuid/nodev/noexec options, set on the new mount (and those below it with rbind). */
  restrict?: Array<"nosuid" | "nodev" | "noexec">;
  /** machina-oci (runc's tmpcopyup): the new tmpfs starts with a copy of what the image has at the destination. */
  copyUp?: boolean;
}

/** `PATH[:OPTIONS]`; default options mode=0755. */
export function parseTmpfs(value: string, ctx: ErrorContext): TmpfsMount {
  const colon = value.search(/(?<!\\):/);
  const rawPath = colon === -1 ? value : value.slice(0, colon);
  const options = colon === -1 ? "mode=0755" : value.slice(colon + 1);
  const destination = parseAbsolutePath(rawPath.replaceAll("\\:", ":"), ctx);
  if (/[\0\n]/.test(options)) throw invalid(ctx, value, "PATH[:OPTIONS] with tmpfs mount options");
  return { destination, options };
}

export interface OverlayMount {
  /** Lower layers, bottom first ("+" = relative to the image). */
  lower: Array<{ path: string; inImage: boolean }>;
  /** Upper (writable) layer; undefined for read-only overlays; "" = temporary directory. */
  upper: { path: string; inImage: boolean } | undefined;
  destination: string;
  readOnly: boolean;
}

/** `LOWER[:LOWER…]:UPPER:DEST` (writable) or `LOWER[:LOWER…]:DEST` (read-only). */
export function parseOverlay(value: string, readOnly: boolean, ctx: ErrorContext): OverlayMount {
  const allowed = readOnly
    ? "LOWER[:LOWER...]:DESTINATION with absolute paths (a layer may start with '+')"
    : "LOWER[:LOWER...]:UPPER:DESTINATION with absolute paths (a layer may start with '+'; UPPER may be empty)";
  const parts = splitColons(value);
  if (parts.length < 2) throw invalid(ctx, value, allowed);
  const layer = (p: string) => {
    const inImage = p.startsWith("+");
    const raw = inImage ? p.slice(1) : p;
    return { path: parseAbsolutePath(raw, ctx), inImage };
  };
  if (readOnly) {
    // A single path means "this path is the lower layer and the destination".
    const dest = parts.pop()!;
    const lowerParts = parts.length === 0 ? [dest] : parts;
    return { lower: lowerParts.map(layer), upper: undefined, destination: parseAbsolutePath(dest, ctx), readOnly };
  }
  let dest: string;
  let upperRaw: string;
  let lowerParts: string[];
  if (parts.length === 2) {
    // LOWER:UPPER: the upper directory is also the destination (man systemd-nspawn, --overlay=)
    lowerParts = [parts[0]!];
    upperRaw = parts[1]!;
    dest = parts[1]!.replace(/^\+/, "");
  } else {
    dest = parts.pop()!;
    upperRaw = parts.pop()!;
    lowerParts = parts;
  }
  if (lowerParts.some((p) => p === "" || p === "+")) throw invalid(ctx, value, allowed);
  const upper = upperRaw === "" ? { path: "", inImage: false } : layer(upperRaw);
  return { lower: lowerParts.map(layer), upper, destination: parseAbsolutePath(dest, ctx), readOnly };
}

export interface PortForward {
  protocol: "tcp" | "udp";
  hostPort: number;
  containerPort: number;
}

/** `[tcp|udp:]HOSTPORT[:CONTAINERPORT]`. */
export function parsePort(value: string, ctx: ErrorContext): PortForward {
  const allowed = "[tcp|udp:]HOSTPORT[:CONTAINERPORT] with ports 1-65535";
  const parts = value.split(":");
  let protocol: PortForward["protocol"] = "tcp";
  if (parts[0] === "tcp" || parts[0] === "udp") protocol = parts.shift() as PortForward["protocol"];
  if (parts.length < 1 || parts.length > 2) throw invalid(ctx, value, allowed);
  const num = (s: string) => {
    if (!/^[0-9]{1,5}$/.test(s)) throw invalid(ctx, value, allowed);
    const n = Number(s);
    if (n < 1 || n > 65535) throw invalid(ctx, value, allowed);
    return n;
  };
  const hostPort = num(parts[0]!);
  return { protocol, hostPort, containerPort: parts[1] === undefined ? hostPort : num(parts[1]) };
}

/** One line of /proc/PID/uid_map or gid_map: container ids INSIDE.. are host ids OUTSIDE.. */
export interface IdMapLine {
  inside: number;
  outside: number;
  count: number;
}

export type PrivateUsers =
  | { mode: "no" }
  | { mode: "pick" }
  | { mode: "identity" }
  /** Range from the owner of the root directory ("yes"). */
  | { mode: "yes" }
  | { mode: "range"; base: number; count: number }
  /** machina-oci (linux.uidMappings/gidMappings): these exact maps, the tree's ownership untouched, as runc. */
  | { mode: "maps"; uid: IdMapLine[]; gid: IdMapLine[] };

const UID_MAX = 0xfffffffe;

export function parsePrivateUsers(value: string, ctx: ErrorContext): PrivateUsers {
  const v = value.toLowerCase();
  // A number is a UID base, checked before booleans: "0" is the range 0:65536 (as systemd-nspawn 252).
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(value);
  if (!m && ["no", "false", "off", "n", "f"].includes(v)) return { mode: "no" };
  if (!m && ["yes", "true", "on", "y", "t"].includes(v)) return { mode: "yes" };
  if (v === "pick" || v === "identity") return { mode: v };
  if (m) {
    const base = Number(m[1]);
    const count = m[2] === undefined ? 65536 : Number(m[2]);
    if (count >= 1 && base + count - 1 <= UID_MAX && base <= UID_MAX) return { mode: "range", base, count };
  }
  throw invalid(ctx, value, "no, yes, pick, identity, or UIDBASE[:NUIDS] within 0..4294967294");
}

export interface Credential {
  id: string;
  /** Literal value (--set-credential) or a host path to read (--load-credential). */
  value: { kind: "literal"; data: string } | { kind: "path"; path: string };
}

const CREDENTIAL_ID = /^[A-Za-z0-9_.@-]{1,255}$/;

/** `ID:VALUE` (literal, C escapes resolved) or `ID:PATH` (load). */
export function parseCredential(value: string, load: boolean, ctx: ErrorContext): Credential {
  const colon = value.indexOf(":");
  const id = colon === -1 ? "" : value.slice(0, colon);
  const rest = colon === -1 ? "" : value.slice(colon + 1);
  if (!CREDENTIAL_ID.test(id) || id === "." || id === "..")
    throw invalid(ctx, value, "ID:VALUE where ID is a credential name (letters, digits, '_', '.', '@', '-')");
  if (load) {
    if (rest === "" || rest.includes("\0")) throw invalid(ctx, value, "ID:PATH with a path to a file or AF_UNIX socket");
    return { id, value: { kind: "path", path: rest } };
  }
  return { id, value: { kind: "literal", data: unescapeC(rest) } };
}

/** C-style escapes as systemd's cunescape: \n \t \\ \xHH \0NN (octal). */
export function unescapeC(s: string): string {
  return s.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{3}|.)/g, (_, e: string) => {
    if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]{3}$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", f: "\f", v: "\v", s: " ", "\\": "\\", '"': '"', "'": "'" };
    return map[e] ?? e;
  });
}

/** `0-3,5,7-8` (or spaces as separators). */
export function parseCpuSet(value: string, ctx: ErrorContext): number[] {
  const cpus = new Set<number>();
  const items = value.split(/[\s,]+/).filter((s) => s.length > 0);
  if (items.length === 0) throw invalid(ctx, value, "a CPU list such as 0-3,6");
  for (const item of items) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(item);
    if (!m) throw invalid(ctx, value, "a CPU list such as 0-3,6");
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 8191) throw invalid(ctx, value, "a CPU list such as 0-3,6 (CPUs 0..8191)");
    for (let c = a; c <= b; c++) cpus.add(c);
  }
  return [...cpus].sort((x, y) => x - y);
}
