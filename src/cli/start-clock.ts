/**
 * When this process's modules began to evaluate, in ms since the epoch (the clock of
 * performance.timeOrigin, and of the helper's status lines' "t"). The entry points import it
 * first, so that machina-nspawn can report its stages on MACHINA_STATUS_FD (Bun's start, module
 * loading, planning: src/cli/nspawn.ts).
 */
export const MODULES_START_MS = performance.timeOrigin + performance.now();
