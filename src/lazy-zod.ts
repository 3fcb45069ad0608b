/**
 * zod, evaluated on first use. Loading zod costs a few milliseconds at every start of a command,
 * and machina-nspawn's usual path parses nothing (no running machine, no network record): the
 * modules on that path build their schemas with `lazySchemas`, so zod is only loaded when a
 * record is really read. Types come from `import type { z } from "zod"` (erased).
 */
import type * as Zod from "zod";

let loaded: typeof Zod.z | undefined;

/** The `z` namespace, loaded now. */
export function zod(): typeof Zod.z {
  loaded ??= (require("./zod-module.ts") as typeof Zod).z; // the ES build: see zod-module.ts
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
