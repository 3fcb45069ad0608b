/**
 * machinad's side of the native front ends (native/front.c: machina-oci and machina-nspawn; the
 * wire is src/oci-runtime/front-door.ts): a root-only socket per program, a request per
 * connection, the program's own code run here for the caller's process (FrontEndHost: its
 * environment, pid, terminals and /proc/self), its output sent back as frames. A front end in
 * other namespaces or another root gets 'F' (run the full program itself). The planners are
 * src/daemon/oci-door.ts and src/daemon/nspawn-door.ts.
 *
 * The sockets are root-only (0600, in a directory only root may write), as the API socket.
 */
import { createServer, type Server, type Socket } from "node:net";
import type { DetachedChild } from "../host/host.ts";
import { HandOver } from "../host/hand-over.ts";
import { processIdentity } from "../host/identity.ts";
import { LinuxHost } from "../host/linux.ts";
import { SealedExecutables } from "../host/sealed-executables.ts";
import { decodeRequest, encodeFrame, encodeSpawn, type Frame, FrameReader, type FrontRequest } from "../oci-runtime/front-door.ts";

export type Log = (event: string, fields: Record<string, unknown>) => void;

/** The helper the planner asks the front end to run: frames 'P', 'S', 'C' come back. */
export class RemoteChild implements DetachedChild {
  pid = 0;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private resolveExit!: (code: number) => void;
  readonly status = new ReadableStream<Uint8Array>({ start: (c) => void (this.controller = c) });
  readonly exited = new Promise<number>((r) => (this.resolveExit = r));
  private open = true;

  closeStatus(): void {
    this.end();
  }

  private end(): void {
    if (!this.open) return;
    this.open = false;
    try {
      this.controller.close();
    } catch {
      // cancelled by its reader
    }
  }

  /** true when the frame was this child's */
  take(f: Frame): boolean {
    const text = () => new TextDecoder().decode(f.payload);
    if (f.type === "P") this.pid = Number(text());
    else if (f.type === "S") {
      if (this.open) this.controller.enqueue(f.payload);
    } else if (f.type === "C") {
      this.end();
      this.resolveExit(Number(text()));
    } else return false;
    return true;
  }

  /** the front end went away: as if the helper was killed */
  lost(): void {
    this.end();
    this.resolveExit(137);
  }
}

/** LinuxHost with the front end's environment; the helper is spawned by the front end. */
export class FrontEndHost extends LinuxHost {
  child: RemoteChild | undefined;

  constructor(
    private readonly request: FrontRequest,
    private readonly send: (frame: Uint8Array) => void,
    private readonly sealed: SealedExecutables,
  ) {
    super();
  }

  override env(): Readonly<Record<string, string | undefined>> {
    return this.request.env;
  }

  // The process planned for is the front end: its pid, its terminals, its /proc/self (limits,
  // cgroup), as when machina-oci plans in its own process.
  override pid(): number {
    return this.request.pid;
  }

  override isatty(fd: number): boolean {
    return fd >= 0 && fd <= 2 ? this.request.ttys[fd]! : false;
  }

  private self(path: string): string {
    return path === "/proc/self" || path.startsWith("/proc/self/") ? `/proc/${this.request.pid}${path.slice("/proc/self".length)}` : path;
  }

  override readFile(path: string): string | undefined {
    return super.readFile(this.self(path));
  }

  override lstat(path: string): ReturnType<LinuxHost["lstat"]> {
    return super.lstat(this.self(path));
  }

  override readlink(path: string): string {
    return super.readlink(this.self(path));
  }

  override realpath(path: string): string | undefined {
    return super.realpath(this.self(path));
  }

  // Never machinad's own process: the front end becomes the helper ('x'); another program is the
  // full program's to run, in the front end's process ('F').
  override execWithSpec(path: string, argv: string[], spec: Uint8Array): number {
    throw new HandOver({ kind: "helper", path, argv, spec });
  }

  override execProgram(path: string): number {
    throw new HandOver({ kind: "full-program", reason: `machinad does not run ${path} for a front end` });
  }

  /**
   * What the front end runs: the sealed copy's path, then argv as without machinad (argv[0] the
   * program's own path, not /proc/MACHINAD/fd/N: `ps` shows the same either way), the spec's fd
   * number last.
   */
  private helperArgv([program, ...args]: string[]): string[] {
    return [this.sealed.pathFor(program!), program!, ...args, "3"];
  }

  announceSpawn(argv: string[], env: Record<string, string>): void {
    // the same bytes as the spawn's head: the front end starts this command now, and gives it
    // the spec when spawnWithStatus repeats it
    this.send(encodeFrame("h", encodeSpawn(this.helperArgv(argv), env, new Uint8Array(0))));
  }

  override spawnWithStatus(argv: string[], options: { spec: Uint8Array; env: Record<string, string> }): DetachedChild {
    if (this.child !== undefined) throw new Error("internal: one helper per machina-oci command");
    this.child = new RemoteChild();
    // the helper from its sealed copy (no second exec); LinuxHost passes the spec's fd number
    // last, and the front end puts it on fd 3 too. Announced: the front end started it already.
    this.send(encodeFrame("H", encodeSpawn(this.helperArgv(argv), options.env, options.spec)));
    return this.child;
  }
}

/** One front end's connection, its request decoded and its identity checked. */
export interface FrontConnection {
  request: FrontRequest;
  host: FrontEndHost;
  sealed: SealedExecutables;
  send(frame: Uint8Array): void;
  /** The next frame that is not the spawned helper's ('P', 'S', 'C'); undefined once the front end is gone. */
  nextFrame(): Promise<Frame | undefined>;
}

async function serveConnection(
  sock: Socket,
  prog: string,
  identity: string,
  sealed: SealedExecutables,
  handle: (c: FrontConnection) => Promise<void>,
): Promise<void> {
  const reader = new FrameReader();
  const send = (frame: Uint8Array) => {
    if (!sock.destroyed) sock.write(frame);
  };
  // taken: before this frame nothing is done for the command (the front end runs it itself if the socket closes)
  send(encodeFrame("a", ""));
  let host: FrontEndHost | undefined;
  // the frames that are not the spawned helper's, the request first, in order
  let closed = false;
  const queued: Frame[] = [];
  let waiter: ((f: Frame | undefined) => void) | undefined;
  const deliver = (f: Frame | undefined) => {
    const w = waiter;
    waiter = undefined;
    if (w !== undefined) w(f);
    else if (f !== undefined) queued.push(f);
  };
  const nextFrame = (): Promise<Frame | undefined> => {
    const q = queued.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (waiter = resolve));
  };
  sock.on("data", (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch {
      sock.destroy();
      return;
    }
    for (const f of frames) if (host?.child?.take(f) !== true) deliver(f);
  });
  sock.on("close", () => {
    closed = true;
    host?.child?.lost();
    deliver(undefined);
  });
  sock.on("error", () => undefined);

  const f = await nextFrame();
  const request = f?.type === "R" ? decodeRequest(f.payload) : undefined;
  if (request === undefined) {
    sock.destroy();
    return;
  }
  if (request.identity !== identity) {
    send(encodeFrame("F", `${prog} runs in other namespaces or another root than machinad`));
    sock.end();
    return;
  }
  host = new FrontEndHost(request, send, sealed);
  await handle({ request, host, sealed, send, nextFrame });
  sock.end();
}

/**
 * A planner's unexpected error (the program reports the errors it expects itself): logged as
 * `event`, one line to the caller, exit status 1.
 */
export function reportInternalError(c: Pick<FrontConnection, "request" | "send">, log: Log, event: string, prog: string, e: unknown): void {
  const message = e instanceof Error ? e.message : String(e);
  log(event, { argv: c.request.argv, error: message });
  c.send(encodeFrame("E", `${prog}: internal error in machinad: ${message}\n`));
  c.send(encodeFrame("X", "1"));
}

/**
 * The front end becomes the helper ('x'): machinad's sealed copy of `path` (no copy per start, no
 * second exec) with `argv` and an empty environment, as the program's own exec, the spec in a
 * memfd. Resolves with what kept it from running — the front end went away before its 'A', or
 * said 'N' (the exec failed) — or undefined once it ran (the socket closes with its exec).
 */
export async function becomeHelper(c: FrontConnection, path: string, argv: string[], spec: Uint8Array): Promise<"went away" | "exec failed" | undefined> {
  c.send(encodeFrame("x", encodeSpawn([c.sealed.pathFor(path), ...argv], {}, spec)));
  if ((await c.nextFrame())?.type !== "A") return "went away";
  return (await c.nextFrame())?.type === "N" ? "exec failed" : undefined;
}

/**
 * Listen on PATH (created 0600) for `prog`'s front ends — or, socket-activated, on the listening
 * socket `fd` a service manager bound to PATH (src/daemon/activation.ts); returns the server,
 * closed by machinad's shutdown.
 */
export async function serveFrontDoor(path: string, prog: string, handle: (c: FrontConnection) => Promise<void>, fd?: number): Promise<Server> {
  const identity = processIdentity();
  const sealed = new SealedExecutables();
  const server = createServer({ allowHalfOpen: false }, (sock) => void serveConnection(sock, prog, identity, sealed, handle));
  server.on("close", () => sealed.close());
  const oldUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (fd !== undefined) server.listen({ fd }, () => resolve());
      else server.listen(path, () => resolve());
    });
  } finally {
    process.umask(oldUmask);
  }
  return server;
}
