/**
 * zod, evaluated on first use. Loading zod costs a few milliseconds at every start of a command,
 * and machina-nspawn's usual path parses nothing (no running machine, no network record): the
 * modules on that path build their schemas with `lazySchemas`, so zod is only loaded when a
 * record is really read. Types come from `import type { z } from "zod"` (erased).
 */
import type * as Zod from "zod";

let loaded: typeof Zod.z | undefined;

/**
 * A command whose every run parses something (machina-oci: state.json, config.json) gives zod's ES
 * build here, imported statically: `require("zod")` takes the package's CommonJS build, which costs
 * ~9 ms to evaluate in a compiled command against ~2 ms for the ES build, whose code in turn costs
 * ~1.5 ms at every start — so commands that usually parse nothing (machina-nspawn) keep the require.
 * machinad gives it too: its API schemas load the ES build anyway (no second, CommonJS, copy).
 */
export function provideZod(z: typeof Zod.z): void {
  loaded ??= z;
}

/** The `z` namespace, loaded now. */
export function zod(): typeof Zod.z {
  if (loaded === undefined) {
    loaded = (require("zod") as typeof Zod).z;
    // Loaded here: a short-lived command (machinad and machina-oci provide theirs), which parses
    // each schema about once. zod compiles an object schema into a function (new Function) on its
    // first parse — a cost a single parse never earns back (~0.5 ms per object schema).
    loaded.config({ jitless: true });
  }
  return loaded;
}

/** The schemas `make` builds, built once, on the first call. */
export function lazySchemas<T>(make: (z: typeof Zod.z) => T): () => T {
  let built: T | undefined;
  return () => {
    built ??= make(zod());
    return built;
  };
}
