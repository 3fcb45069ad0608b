/**
 * Fuzz target for the .nspawn parser: `bun test/fuzz/nspawn-file.fuzz.ts [--minutes N] [--seed S]`.
 *
 * Inputs are random strings and mutations of the corpus in test/fuzz/corpus/nspawn-file/
 * (byte/line edits, splices between seeds, systemd syntax tokens). For each input:
 *   - parseUnitFile() must not throw at all;
 *   - parseNspawnFile() (trusted and untrusted) may only throw MachinaError (a bad value);
 *   - splitQuoted() may only throw SplitError;
 *   - each input must be parsed within TIME_BOUND_MS (no super-linear blow-up).
 * The fuzzing loop runs in a worker; the main thread is a watchdog that reports an input
 * that hangs (no progress for HANG_MS). Failing inputs are written to test/fuzz/crashes/.
 * Exit status 0 = no finding; 1 = a finding (printed, and saved).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { MachinaError } from "../../src/errors.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import { SplitError, parseUnitFile, splitQuoted } from "../../src/settings/unit-file.ts";

const CORPUS = join(import.meta.dir, "corpus/nspawn-file");
const CRASHES = join(import.meta.dir, "crashes");
const TIME_BOUND_MS = 250;
const HANG_MS = 10_000;
const MAX_LEN = 256 * 1024;

type Finding = { kind: "crash" | "slow" | "hang"; input: string; detail: string };
type Msg = { t: "beat"; n: number } | { t: "current"; input: string } | { t: "finding"; f: Finding } | { t: "done"; n: number };

/** xorshift32: reproducible from --seed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const TOKENS = [
  "[Exec]",
  "[Files]",
  "[Network]",
  "[",
  "]",
  "=",
  "\\",
  "\\\n",
  "\n",
  "\r\n",
  "#",
  ";",
  '"',
  "'",
  " ",
  "\t",
  "\uFEFF",
  "\0",
  "~",
  ":",
  "+",
  "all",
  "yes",
  "no",
  "Bind=",
  "Parameters=",
  "Environment=",
  "Capability=",
  "LimitNOFILE=",
  "SystemCallFilter=",
  "PrivateUsers=",
  "Port=",
  "Overlay=",
  "PivotRoot=",
  "\\x41",
  "\\u00e9",
  "\\\\",
  "é",
  "中",
  "X-",
  "infinity",
  "/",
  "//",
  "..",
  "-1",
  "4294967295",
  "18446744073709551616",
  "%",
  "$",
  "\x7f",
];

function randomString(r: ReturnType<typeof rng>, max: number): string {
  const len = r.int(max);
  let s = "";
  for (let i = 0; i < len; i++) {
    const k = r.next();
    if (k < 0.3) s += r.pick(TOKENS);
    else if (k < 0.8) s += String.fromCharCode(32 + r.int(95));
    else s += String.fromCharCode(r.int(0x3000));
  }
  return s;
}

function mutate(r: ReturnType<typeof rng>, input: string, corpus: string[]): string {
  let s = input;
  const rounds = 1 + r.int(6);
  for (let i = 0; i < rounds; i++) {
    const pos = r.int(s.length + 1);
    switch (r.int(9)) {
      case 0:
        s = s.slice(0, pos) + r.pick(TOKENS) + s.slice(pos);
        break;
      case 1:
        s = s.slice(0, pos) + s.slice(pos + 1 + r.int(16));
        break;
      case 2:
        s = s.slice(0, pos) + String.fromCharCode(r.int(256)) + s.slice(pos + 1);
        break;
      case 3: {
        const ls = s.split("\n");
        const j = r.int(ls.length);
        ls.splice(j, 0, ls[r.int(ls.length)] ?? "");
        s = ls.join("\n");
        break;
      }
      case 4: {
        const ls = s.split("\n");
        ls.splice(r.int(ls.length), 1);
        s = ls.join("\n");
        break;
      }
      case 5: {
        const other = r.pick(corpus);
        const a = r.int(other.length + 1);
        s = s.slice(0, pos) + other.slice(a, a + r.int(200));
        break;
      }
      case 6:
        s = s.slice(0, pos) + randomString(r, 16) + s.slice(pos);
        break;
      case 7: {
        const t = r.pick(TOKENS);
        s = s.slice(0, pos) + t.repeat(1 + r.int(2000)) + s.slice(pos);
        break;
      }
      default: {
        const ls = s.split("\n");
        const j = r.int(ls.length);
        ls[j] = (ls[j] ?? "") + "\\";
        s = ls.join("\n");
      }
    }
  }
  return s.length > MAX_LEN ? s.slice(0, MAX_LEN) : s;
}

/** Run every check on one input; undefined = fine. */
export function check(input: string): Finding | undefined {
  const t0 = performance.now();
  try {
    parseUnitFile(input, "/fuzz/m.nspawn");
  } catch (e) {
    return { kind: "crash", input, detail: `parseUnitFile threw: ${(e as Error)?.stack ?? e}` };
  }
  for (const trusted of [true, false]) {
    try {
      parseNspawnFile(input, "/fuzz/m.nspawn", trusted);
    } catch (e) {
      if (!(e instanceof MachinaError)) return { kind: "crash", input, detail: `parseNspawnFile threw a non-MachinaError: ${(e as Error)?.stack ?? e}` };
      if (!/^\/fuzz\/m\.nspawn:\d+: /.test(e.message)) return { kind: "crash", input, detail: `error without FILE:LINE: ${e.message}` };
    }
  }
  for (const line of input.split("\n").slice(0, 50)) {
    for (const opts of [undefined, { cunescape: true }]) {
      try {
        splitQuoted(line, opts);
      } catch (e) {
        if (!(e instanceof SplitError)) return { kind: "crash", input, detail: `splitQuoted threw a non-SplitError: ${(e as Error)?.stack ?? e}` };
      }
    }
  }
  const ms = performance.now() - t0;
  if (ms > TIME_BOUND_MS) return { kind: "slow", input, detail: `took ${ms.toFixed(0)} ms (bound ${TIME_BOUND_MS} ms) for ${input.length} characters` };
  return undefined;
}

function loadCorpus(): string[] {
  return readdirSync(CORPUS)
    .sort()
    .map((f) => readFileSync(join(CORPUS, f), "utf8"));
}

function save(f: Finding): string {
  mkdirSync(CRASHES, { recursive: true });
  const name = join(CRASHES, `${f.kind}-${Date.now()}.nspawn`);
  writeFileSync(name, f.input);
  return name;
}

function workerMain(): void {
  const { seed, deadline } = workerData as { seed: number; deadline: number };
  const post = (m: Msg) => parentPort!.postMessage(m);
  const corpus = loadCorpus();
  const r = rng(seed);
  let n = 0;
  // Every seed as it is first.
  const queue = [...corpus];
  while (Date.now() < deadline) {
    const input = queue.length > 0 ? queue.shift()! : r.next() < 0.2 ? randomString(r, 400) : mutate(r, r.pick(corpus), corpus);
    if (n % 64 === 0) post({ t: "current", input });
    const f = check(input);
    n++;
    // A slow input is re-checked once, to rule out a GC pause.
    const confirmed = f?.kind === "slow" ? check(input) : f;
    if (confirmed !== undefined) {
      post({ t: "finding", f: confirmed });
      post({ t: "done", n });
      return;
    }
    if (n % 256 === 0) post({ t: "beat", n });
  }
  post({ t: "done", n });
}

function main(): void {
  const args = process.argv.slice(2);
  const minutes = Number(args[args.indexOf("--minutes") + 1] ?? "1") || 1;
  const seedArg = args.indexOf("--seed");
  const seed = seedArg >= 0 ? Number(args[seedArg + 1]) : Math.floor(Math.random() * 0xffffffff);
  const started = Date.now();
  const deadline = started + minutes * 60_000;
  console.log(`nspawn-file fuzz: ${minutes} min, seed ${seed}, corpus ${readdirSync(CORPUS).length} files`);
  const worker = new Worker(new URL(import.meta.url), { workerData: { seed, deadline } });
  let lastBeat = Date.now();
  let count = 0;
  let current = "";
  let failed = false;
  const watchdog = setInterval(() => {
    if (Date.now() - lastBeat > HANG_MS) {
      const name = save({ kind: "hang", input: current, detail: "" });
      console.log(`HANG: no progress for ${HANG_MS} ms; last input (one of the next 64 after it) saved to ${name}`);
      void worker.terminate();
      clearInterval(watchdog);
      process.exit(1);
    }
  }, 1000);
  worker.on("message", (m: Msg) => {
    lastBeat = Date.now();
    if (m.t === "beat") count = m.n;
    else if (m.t === "current") current = m.input;
    else if (m.t === "finding") {
      failed = true;
      console.log(`${m.f.kind.toUpperCase()}: ${m.f.detail}\ninput saved to ${save(m.f)}`);
    } else if (m.t === "done") {
      count = m.n;
      clearInterval(watchdog);
      void worker.terminate();
      const rate = (count / ((Date.now() - started) / 1000)).toFixed(0);
      console.log(failed ? `FAILED after ${count} inputs` : `OK: ${count} inputs (${rate}/s), no crash, hang or input slower than ${TIME_BOUND_MS} ms`);
      process.exit(failed ? 1 : 0);
    }
  });
  worker.on("error", (e) => {
    console.log(`worker error: ${e}`);
    process.exit(1);
  });
}

if (isMainThread) {
  if (import.meta.main) main();
} else workerMain();
