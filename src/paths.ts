/** Where machina finds its own files and keeps its state; each overridable for tests. */
import { machinaEnv } from "./config.ts";
import { resolve } from "node:path";

/**
 * A `bun build --compile` executable (dist/bin/NAME, what scripts/setup installs) has its
 * modules at a virtual /$bunfs path: its checkout is found from the executable instead.
 */
export const COMPILED = (process.argv[1] ?? "").startsWith("/$bunfs") || import.meta.dir.startsWith("/$bunfs");
export const REPO_ROOT = COMPILED ? resolve(process.execPath, "../../..") : resolve(import.meta.dir, "..");

/** Commands scripts/build also compiles for the compiled form to run (dist/libexec/NAME). */
const COMPILED_HELPERS = new Set(["machina-net"]);

/**
 * argv that runs one of machina's own Bun commands: from the compiled form, its compiled helper
 * (dist/libexec/NAME) or bin/NAME (the compiled form has no `bun` inside); from the sources,
 * bin/NAME with this Bun.
 */
/**
 * Bun's flags for running machina from the sources: no `.env` and no `bunfig.toml` from the
 * working directory (root runs machina in directories others control; a `.env` would set
 * MACHINA_* variables, a bunfig.toml's `preload` would run code). The bin/ scripts' shebangs carry
 * the same (checked by test/unit/paths.test.ts); compiled commands are built without either
 * (scripts/build).
 */
export const BUN_NO_AUTOLOAD = ["--no-env-file", "--config=/dev/null"] as const;

export function ownCommand(name: string): string[] {
  if (!COMPILED) return [process.execPath, ...BUN_NO_AUTOLOAD, `${REPO_ROOT}/bin/${name}`];
  return [COMPILED_HELPERS.has(name) ? `${REPO_ROOT}/dist/libexec/${name}` : `${REPO_ROOT}/bin/${name}`];
}
export const VERSION = "0.1.0";
export const NSPAWN_COMPAT_VERSION = "252";

export interface Paths {
  helper: string;
  stateDir: string;
  /** Writable image pool first, then the read-only ones. */
  pool: string[];
}

export function paths(env: Readonly<Record<string, string | undefined>>): Paths {
  const pool = machinaEnv(env, "MACHINA_POOL") ?? ["/var/lib/machines", "/usr/local/lib/machines", "/usr/lib/machines"];
  return {
    helper: machinaEnv(env, "MACHINA_HELPER") ?? `${REPO_ROOT}/native/build/machina-helper`,
    stateDir: machinaEnv(env, "MACHINA_STATE_DIR") ?? "/run/machina",
    pool,
  };
}
