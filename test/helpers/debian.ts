/**
 * Booting the Debian fixture under machina-nspawn -b, for integration tests. Always boots a
 * private copy (`cp -a --reflink=auto`), never the shared cache.
 */
import { ensureDebianImage } from "../fixtures/images.ts";
import { type Background, type MachineState, type Scratch, copyTree, nsenter, startNspawn, waitForState } from "./machina.ts";

export interface BootedDebian {
  name: string;
  root: string;
  stateDir: string;
  bg: Background;
  state: MachineState;
}

/** A private copy of the Debian fixture (removed with `scratch`). ~1-5 s: share it within a file. */
export async function debianCopy(scratch: Scratch): Promise<string> {
  const image = await ensureDebianImage();
  const root = `${scratch.dir("machina-debian-")}/debian`;
  copyTree(image, root);
  return root;
}

/** `systemctl is-system-running --wait` inside the container. */
export async function systemState(leader: number, timeoutMs = 20_000): Promise<string> {
  // Until systemd has created its socket, systemctl fails at once with no output, or says
  // "offline" (no /run/systemd/system yet): retry.
  const end = performance.now() + timeoutMs;
  for (;;) {
    const r = await nsenter(leader, ["systemctl", "is-system-running", "--wait"], timeoutMs);
    const state = r.stdout.trim();
    if ((state !== "" && state !== "offline") || performance.now() > end) return state || `(no answer: ${r.stderr.trim()})`;
    await Bun.sleep(50);
  }
}

export async function failedUnits(leader: number): Promise<string[]> {
  const r = await nsenter(leader, ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"]);
  return r.stdout.split("\n").filter((l) => l.trim().length > 0);
}

/**
 * Boot `root` with machina-nspawn -b (console read-only so the boot messages are captured), wait
 * for the registry entry and for systemd to be up, run `fn`, and make sure the container is gone
 * afterwards (SIGKILL of the supervisor if `fn` did not stop it; Scratch removes the rest).
 */
export async function withBootedDebian<T>(
  root: string,
  scratch: Scratch,
  stateDir: string,
  fn: (m: BootedDebian) => Promise<T>,
  extraArgs: string[] = [],
): Promise<T> {
  const name = scratch.name("deb");
  const bg = startNspawn(["-D", root, "-M", name, "-b", "--console=read-only", ...extraArgs], { stateDir }, scratch);
  try {
    const state = await waitForState(stateDir, name, undefined, 15_000, bg);
    return await fn({ name, root, stateDir, bg, state });
  } finally {
    if (bg.proc.exitCode === null && bg.proc.signalCode === null) {
      bg.proc.kill("SIGKILL");
      await bg.exited;
    }
  }
}
