/**
 * zod as an ES module, for src/lazy-zod.ts's synchronous require(): `require("zod")` resolves the
 * package's CommonJS build, which takes ~9 ms to evaluate in the compiled commands; requiring this
 * module loads zod's ES build instead (~2 ms).
 */
export { z } from "zod";
