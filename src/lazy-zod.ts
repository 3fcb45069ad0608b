/**
 * zod, evaluated on first use. Loading zod costs a few milliseconds at every start of a command,
 * and machina-nspawn's usual path parses nothing (no running machine, no network record): the
 * modules on that path build their schemas with `lazySchemas`, so zod is only loaded when a
 * record is really read. Types come from `import type { z } from "zod"` (erased).
 */
import type * as Zod from "zod";

let loaded: typeof Zod.z | undefined;
/** Given by a long-lived command (provideZod): parsers are JIT-compiled, zod's default. */
let longLived = false;

/**
 * A command whose every run parses something (machina-oci: state.json, config.json) gives zod's ES
 * build here, imported statically, and so does machinad (its API schemas load it anyway); given,
 * zod keeps its defaults (JIT-compiled parsers). Otherwise `require("zod")` takes the package's
 * CommonJS build, evaluated only when a record is read (~4 ms in a compiled command). Not the ES
 * build through a lazily required ES module: the bundler hoists an ES module's functions to the
 * bundle's top level, and zod's are created at every start, used or not (+0.6 ms to
 * machina-nspawn's /bin/true). zod/mini's few (src/zod-mini.ts) cost nothing until used.
 */
export function provideZod(z: typeof Zod.z): void {
  loaded ??= z;
  longLived = true;
}

/**
 * Short-lived: each schema is parsed about once. zod compiles an object schema into a function
 * (new Function) on its first parse — a cost a single parse never earns back (~0.5 ms per object
 * schema). The setting belongs to a build of zod's core: the CommonJS build's and the ES build's
 * (zod/mini's, and machinad's full API) are set each when loaded.
 */
function configure(config: (c: { jitless: boolean }) => unknown): void {
  if (!longLived) config({ jitless: true });
}

/** The `z` namespace, loaded now. */
export function zod(): typeof Zod.z {
  if (loaded === undefined) {
    loaded = (require("zod") as typeof Zod).z;
    configure(loaded.config);
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

/** zod/mini's functions that src/zod-mini.ts names. */
export type ZodMini = typeof import("./zod-mini.ts");

let mini: ZodMini | undefined;

/** Like lazySchemas, with zod/mini (src/zod-mini.ts): for the records every enter and list reads. */
export function lazyMiniSchemas<T>(make: (z: ZodMini) => T): () => T {
  let built: T | undefined;
  return () => {
    if (built === undefined) {
      if (mini === undefined) {
        mini = require("./zod-mini.ts") as ZodMini;
        configure(mini.config);
      }
      built = make(mini);
    }
    return built;
  };
}
