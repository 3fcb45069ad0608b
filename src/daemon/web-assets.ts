/**
 * The dashboard's files (web/, built by scripts/build into dist/web/), served by machinad at `/`
 * and `/assets/NAME`. Read once when machinad starts: only these names can ever be answered (no
 * path from a request reaches the file system). Every answer forbids framing and inline code
 * (Content-Security-Policy), and sniffing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  svg: "image/svg+xml",
};

const HEADERS = {
  // style-src 'unsafe-inline': xterm.js sizes its terminal with <style> elements of its own; scripts stay 'self' only
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

export class WebAssets {
  private readonly files = new Map<string, { bytes: Buffer; type: string }>();

  /** dir: the built dashboard (missing: none, and / says how to build it). */
  constructor(readonly dir: string) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const type = TYPES[name.slice(name.lastIndexOf(".") + 1)];
      if (type !== undefined && /^[a-z0-9][a-z0-9.-]*$/.test(name)) this.files.set(name, { bytes: readFileSync(join(dir, name)), type });
    }
  }

  get built(): boolean {
    return this.files.has("index.html");
  }

  /** The answer for `/` (index.html) or `/assets/NAME`; undefined: no such file. */
  response(name: string): Response | undefined {
    const f = this.files.get(name);
    if (f === undefined) return undefined;
    return new Response(new Uint8Array(f.bytes), { headers: { "content-type": f.type, ...HEADERS } });
  }

  /** Bytes of every file (the size budget, test/unit/web.test.ts). */
  sizes(): Record<string, number> {
    return Object.fromEntries([...this.files].map(([n, f]) => [n, f.bytes.length]));
  }
}
