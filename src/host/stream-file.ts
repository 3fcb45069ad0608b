/**
 * Files as streams, for machinad's file routes (PUT/GET /v1/machines/{name}/files): an upload
 * written to a private temporary (with a size cap, counted as it arrives), and a temporary read
 * back as a stream after it was unlinked (nothing is left when the client goes away).
 */
import * as fs from "node:fs";
import type { Readable as NodeReadable } from "node:stream";
import { MachinaError } from "../errors.ts";
import type { Host } from "./host.ts";
import { mkdirPrivate } from "./state-dir.ts";

/** A new path for a private temporary of machinad's (STATE/tmp, root only): BASE-RANDOM SUFFIX. */
export function stateTemp(host: Host, stateDir: string, base: string, suffix = ""): string {
  const dir = `${stateDir}/tmp`;
  mkdirPrivate(host, stateDir, dir);
  return `${dir}/${base}-${host.randomHex(8)}${suffix}`;
}

/** Write `stream` to `path` (created 0600, must not exist); more than maxBytes: E_TOO_LARGE, the file removed. */
export async function writeStreamToFile(stream: ReadableStream<Uint8Array>, path: string, maxBytes: number): Promise<number> {
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > maxBytes) throw new MachinaError("E_TOO_LARGE", `the upload is larger than ${maxBytes} bytes`);
      for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off);
    }
    return size;
  } catch (e) {
    fs.rmSync(path, { force: true });
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** A regular file's bytes as a stream; the file is unlinked at once (the stream keeps it until it ends). */
export function streamAndUnlink(path: string): { stream: ReadableStream<Uint8Array>; size: number } {
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  const size = fs.fstatSync(fd).size;
  fs.unlinkSync(path);
  const node = fs.createReadStream("", { fd, autoClose: true });
  // node:stream is loaded here, by the one caller that streams (~1.5 ms at every start of a short-lived command otherwise)
  const { Readable } = require("node:stream") as { Readable: typeof NodeReadable };
  return { stream: Readable.toWeb(node) as unknown as ReadableStream<Uint8Array>, size };
}
