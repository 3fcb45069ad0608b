/**
 * Docker credential helpers (`docker-credential-NAME get`): the program named by an auth file's
 * `credsStore` or `credHelpers`, given the registry's server URL on stdin, prints
 * `{"ServerURL":…,"Username":…,"Secret":…}`. Run from $PATH with a time limit; what it prints is
 * read by src/oci/auth.ts.
 */

export interface HelperResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `docker-credential-HELPER get` with SERVER on stdin; "missing" when no such program is on $PATH. */
export type CredentialHelperRunner = (helper: string, server: string) => HelperResult | "missing";

export const HELPER_TIMEOUT_MS = 30_000;

export const runCredentialHelper: CredentialHelperRunner = (helper, server) => {
  const program = Bun.which(`docker-credential-${helper}`);
  if (program === null) return "missing";
  const r = Bun.spawnSync([program, "get"], {
    stdin: new TextEncoder().encode(server),
    stdout: "pipe",
    stderr: "pipe",
    timeout: HELPER_TIMEOUT_MS,
  });
  return { code: r.exitCode ?? 128, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
};
