/**
 * The one undo stack of every multi-step setup (Incus's revert.Reverter): register the undo of
 * each step as soon as the step is done; on success commit() forgets them, on failure revert()
 * runs them newest first — all of them, even when one throws — and reports the undos that
 * failed instead of dropping them.
 *
 *   const r = new Reverter();
 *   try {
 *     a(); r.add("undo a", () => undoA());
 *     b(); r.add("undo b", () => undoB());
 *     r.commit();
 *   } catch (e) {
 *     throw r.fail(e); // e, or e with "undoing it failed too: …" when an undo threw
 *   }
 */
import { MachinaError } from "./errors.ts";

export type Undo = () => void | Promise<void>;

/** Undo steps that threw: `failures` lists each one ('undo "WHAT" failed: MESSAGE'). */
export class UndoError extends MachinaError {
  readonly failures: Error[];

  constructor(failures: Error[]) {
    super("E_SYSTEM", `undoing failed: ${failures.map((f) => f.message).join("; ")}`);
    this.failures = failures;
  }
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** An undo that failed: its message (a nested reverter's UndoError: the failures it lists). */
const undoFailure = (what: string, e: unknown): Error =>
  new Error(`undo "${what}" failed: ${e instanceof UndoError ? e.failures.map((f) => f.message).join("; ") : messageOf(e)}`);

/**
 * The error to throw after `cause` when undoing it failed too: the same code, context and hint
 * (a plain Error becomes E_SYSTEM), the undo failures appended to the message, `cause` kept.
 */
export function withUndoFailures(cause: unknown, undo: UndoError | undefined): unknown {
  if (undo === undefined) return cause;
  const list = undo.failures.map((f) => f.message).join("; ");
  const message = `${messageOf(cause)} (undoing it failed too: ${list})`;
  const e = cause instanceof MachinaError ? new MachinaError(cause.code, message, cause.context, cause.hint) : new MachinaError("E_SYSTEM", message);
  e.cause = cause;
  return e;
}

export class Reverter {
  private steps: Array<{ what: string; undo: Undo }> = [];
  private finals: Array<() => void> = [];

  /** Register the undo of a step just done (`what` names it in failure reports). */
  add(undo: Undo): void;
  add(what: string, undo: Undo): void;
  add(a: string | Undo, b?: Undo): void {
    if (typeof a === "string") this.steps.push({ what: a, undo: b! });
    else this.steps.push({ what: a.name || `step ${this.steps.length + 1}`, undo: a });
  }

  get size(): number {
    return this.steps.length;
  }

  /**
   * A step undone in every case (a lock): with the other undos on failure, and by commit() on
   * success — a long-running process (machinad) must not keep what a short one would drop at
   * its exit. Its errors on success are ignored (releasing a lock closes a descriptor).
   */
  always(what: string, run: () => void): void {
    this.add(what, run);
    this.finals.push(run);
  }

  /** Success: keep everything (the `always` steps are done now, newest first). */
  commit(): void {
    const finals = this.finals.reverse();
    this.steps = [];
    this.finals = [];
    for (const run of finals)
      try {
        run();
      } catch {
        // released already, or gone with its descriptor
      }
  }

  /**
   * Failure: run every undo, newest first, synchronously; one that throws does not stop the
   * others. Returns an UndoError listing the failed undos, or undefined when all succeeded. An
   * undo that returns a promise counts as failed (use revertAsync for those).
   */
  revert(): UndoError | undefined {
    const failures: Error[] = [];
    for (const step of this.take()) {
      try {
        const result = step.undo();
        if (result instanceof Promise) {
          result.catch(() => undefined);
          failures.push(new Error(`undo "${step.what}" is asynchronous: it was started but not awaited`));
        }
      } catch (e) {
        failures.push(undoFailure(step.what, e));
      }
    }
    return failures.length > 0 ? new UndoError(failures) : undefined;
  }

  /** revert(), awaiting each undo before the next. */
  async revertAsync(): Promise<UndoError | undefined> {
    const failures: Error[] = [];
    for (const step of this.take()) {
      try {
        await step.undo();
      } catch (e) {
        failures.push(undoFailure(step.what, e));
      }
    }
    return failures.length > 0 ? new UndoError(failures) : undefined;
  }

  /** The operation failed with `cause`: revert(), and return the error to throw (withUndoFailures). */
  fail(cause: unknown): unknown {
    return withUndoFailures(cause, this.revert());
  }

  /** fail() with revertAsync(). */
  async failAsync(cause: unknown): Promise<unknown> {
    return withUndoFailures(cause, await this.revertAsync());
  }

  /** Run `fn` with a fresh reverter: committed when it returns, reverted when it throws (failAsync). */
  static async run<T>(fn: (r: Reverter) => Promise<T> | T): Promise<T> {
    const r = new Reverter();
    try {
      const value = await fn(r);
      r.commit();
      return value;
    } catch (e) {
      throw await r.failAsync(e);
    }
  }

  /** Reverter.run for synchronous steps and undos. */
  static runSync<T>(fn: (r: Reverter) => T): T {
    const r = new Reverter();
    try {
      const value = fn(r);
      r.commit();
      return value;
    } catch (e) {
      throw r.fail(e);
    }
  }

  private take(): Array<{ what: string; undo: Undo }> {
    const steps = this.steps.reverse();
    this.steps = [];
    this.finals = [];
    return steps;
  }
}
