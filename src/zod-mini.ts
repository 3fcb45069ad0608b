/**
 * The part of zod's functional API ("zod/mini", the same library's tree-shakable form) that the
 * records read on every `machinactl shell/exec/list/status` use: the machine's state.json and its
 * recorded confinement (src/machine/registry.ts, src/spec/confinement.ts). Required on first use
 * through src/lazy-zod.ts `lazyMiniSchemas`; named here, so the bundle keeps only these: ~0.8 ms
 * to evaluate in a compiled command, against ~4 ms for the full API's CommonJS build
 * (`machinactl list` 13.1 → 10.4 ms, `shell NAME /bin/true` 15.1 → 12.6; BENCHMARKS.md §enter).
 */
export {
  array,
  boolean,
  catch,
  config,
  gte,
  int,
  literal,
  lte,
  number,
  object,
  optional,
  pipe,
  regex,
  strictObject,
  string,
  transform,
  tuple,
  unknown,
} from "zod/mini";
