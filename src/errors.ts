/**
 * Typed, coded errors. Library code throws these; only the CLI/daemon edge renders them.
 */
/** Every error code of the core, once: the type, the API's schema and the client derive from it. */
export const ERROR_CODES = [
  "E_USAGE", // bad command line: unknown flag, missing argument
  "E_INVALID", // a value that is not allowed
  "E_NOT_FOUND", // a file, directory, machine or image that does not exist
  "E_BUSY", // something is already running / locked
  "E_UNSUPPORTED", // known, but not available (yet, or on this host)
  "E_SYSTEM", // a system call failed
  "E_CANCELLED", // a long operation was cancelled by its caller
  "E_TOO_LARGE", // a request (API body, download) over its size limit
  "E_UNAUTHORIZED", // an API request over TCP without a valid token or session
  "E_FORBIDDEN", // an authenticated API request that is not allowed (a cross-origin state change)
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function isErrorCode(code: string): code is ErrorCode {
  return (ERROR_CODES as readonly string[]).includes(code);
}

export interface ErrorContext {
  flag?: string;
  value?: string;
  path?: string;
  file?: string;
  line?: number;
  machine?: string;
  syscall?: string;
  errno?: string;
}

export class MachinaError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, hint?: string) {
    super(message);
    this.name = "MachinaError";
    this.code = code;
    this.context = context;
    this.hint = hint;
  }
}

export const usageError = (message: string, context: ErrorContext = {}, hint?: string) => new MachinaError("E_USAGE", message, context, hint);
export const invalidError = (message: string, context: ErrorContext = {}, hint?: string) => new MachinaError("E_INVALID", message, context, hint);

/** One line (plus an optional hint line), prefixed with the program name. */
export function renderError(prog: string, error: unknown): string {
  if (error instanceof MachinaError) {
    const lines = [`${prog}: ${error.message}`];
    if (error.hint) lines.push(`${prog}: hint: ${error.hint}`);
    return lines.join("\n");
  }
  const message = error instanceof Error ? error.message : String(error);
  return `${prog}: ${message}`;
}
