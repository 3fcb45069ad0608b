/**
 * The wire between the native front ends (native/front.c: machina-oci, machina-nspawn) and
 * machinad's planners (src/daemon/oci-door.ts, src/daemon/nspawn-door.ts). Pure: frames and the
 * request, no I/O.
 *
 * A frame is one type byte, a 32-bit little-endian payload length, the payload. The front end
 * sends one 'R' request (fields separated by NUL: version "1", working directory, its identity
 * (namespaces and root directory), its pid, which of its stdin/stdout/stderr are terminals ("010"),
 * argc, argv…, envc, env…); machinad's first frame, as it takes the connection and before
 * it reads the request, is 'a' (a connection that closes before it is the front end's to run
 * itself: nothing was done); then the planner answers with 'O'/'E' output, 'X' exit code, 'F' fall back to the full program, 'h' start the helper ahead (its
 * spec follows), or 'H' spawn the helper (the announced one when the command is the same), after
 * which the front end reports 'P' pid, 'S' status bytes and 'C' exit code. A helper's command
 * (encodeSpawn) is the program's path to execute (machinad's sealed copy), then its argv, then its
 * environment. machina-nspawn's planner also sends 'W' (bytes for another of the front end's fds:
 * MACHINA_STATUS_FD) and 'x' (become the helper: as 'H', the spec on a new fd whose number the
 * front end appends to argv), which the front end acknowledges with 'A' just before it executes
 * it, and with 'N' after it if that failed.
 */

export type FrameType = "a" | "R" | "O" | "E" | "X" | "F" | "h" | "H" | "P" | "S" | "C" | "W" | "x" | "A" | "N";

export interface Frame {
  type: string;
  payload: Uint8Array;
}

/** Frames larger than this are refused (the front end's limit too). */
export const MAX_FRAME = 64 * 1024 * 1024;

export function encodeFrame(type: FrameType, payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const out = new Uint8Array(5 + body.length);
  out[0] = type.charCodeAt(0);
  new DataView(out.buffer).setUint32(1, body.length, true);
  out.set(body, 5);
  return out;
}

/** Splits a byte stream into frames; throws on a frame larger than MAX_FRAME. */
export class FrameReader {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Frame[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const frames: Frame[] = [];
    let off = 0;
    while (joined.length - off >= 5) {
      const len = new DataView(joined.buffer, joined.byteOffset + off + 1, 4).getUint32(0, true);
      if (len > MAX_FRAME) throw new Error(`a frame of ${len} bytes (at most ${MAX_FRAME})`);
      if (joined.length - off - 5 < len) break;
      frames.push({ type: String.fromCharCode(joined[off]!), payload: joined.slice(off + 5, off + 5 + len) });
      off += 5 + len;
    }
    this.buf = joined.slice(off);
    return frames;
  }
}

export interface FrontRequest {
  cwd: string;
  identity: string;
  /** the front end's pid (in machinad's PID namespace: the identity says so) */
  pid: number;
  /** isatty(0), isatty(1), isatty(2) of the front end */
  ttys: [boolean, boolean, boolean];
  argv: string[];
  env: Record<string, string>;
}

/** The 'R' payload; undefined when it is not one. */
export function decodeRequest(payload: Uint8Array): FrontRequest | undefined {
  const f = new TextDecoder().decode(payload).split("\0");
  let i = 0;
  const next = () => f[i++];
  const count = (): number | undefined => {
    const s = next();
    return s !== undefined && /^[0-9]{1,9}$/.test(s) ? Number(s) : undefined;
  };
  if (next() !== "1") return undefined;
  const cwd = next();
  const identity = next();
  if (cwd === undefined || !cwd.startsWith("/") || identity === undefined) return undefined;
  const pid = count();
  const ttys = next();
  if (pid === undefined || pid < 1 || ttys === undefined || !/^[01]{3}$/.test(ttys)) return undefined;
  const argc = count();
  if (argc === undefined || i + argc > f.length) return undefined;
  const argv = f.slice(i, i + argc);
  i += argc;
  const envc = count();
  if (envc === undefined || i + envc > f.length) return undefined;
  const env: Record<string, string> = {};
  for (const e of f.slice(i, i + envc)) {
    const eq = e.indexOf("=");
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return { cwd, identity, pid, ttys: [ttys[0] === "1", ttys[1] === "1", ttys[2] === "1"], argv, env };
}

/** The 'h'/'H'/'x' payload: argc, the program's path and argv…, envc, env… (NUL-terminated fields), then the spec. */
export function encodeSpawn(argv: readonly string[], env: Readonly<Record<string, string>>, spec: Uint8Array): Uint8Array {
  const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const head = new TextEncoder().encode([String(argv.length), ...argv, String(envList.length), ...envList].map((s) => `${s}\0`).join(""));
  const out = new Uint8Array(head.length + spec.length);
  out.set(head);
  out.set(spec, head.length);
  return out;
}

/** The request of a front end (tests; the real one is native/front.c). */
export function encodeRequest(r: FrontRequest): Uint8Array {
  const envList = Object.entries(r.env).map(([k, v]) => `${k}=${v}`);
  const ttys = r.ttys.map((t) => (t ? "1" : "0")).join("");
  return encodeFrame(
    "R",
    ["1", r.cwd, r.identity, String(r.pid), ttys, String(r.argv.length), ...r.argv, String(envList.length), ...envList].map((s) => `${s}\0`).join(""),
  );
}

/** The 'W' payload: the fd's number, NUL, the bytes. */
export function encodeFdWrite(fd: number, text: string): Uint8Array {
  const head = new TextEncoder().encode(`${fd}\0`);
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}
