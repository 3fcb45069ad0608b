/**
 * A fake host for the spec of `-D /srv/web` (a busybox-like tree) with or without systemd as PID 1
 * and systemd-machined (cgroup2 in the hybrid layout at /sys/fs/cgroup/unified), and the RunSpec
 * machina-nspawn would build on it. Shared by the unit tests of the cgroup placement, machined's
 * registration and records, and the teardown at exit.
 */
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { type BuildOptions, buildSpec } from "../../src/spec/build.ts";
import type { RunSpec } from "../../src/spec/types.ts";

/** The fake host's cgroup2 mount (hybrid layout). */
export const V2 = "/sys/fs/cgroup/unified";

/** `own`: our own cgroup (a unit's, with --keep-unit under systemd). */
export function systemdFakeHost(opts: { systemd?: boolean; machined?: boolean; own?: string; env?: Record<string, string> } = {}): FakeHost {
  const files: Record<string, string | FakeNode> = {
    "/srv/web/usr/bin/sh": "",
    "/srv/web/sbin/init": "",
    [`${V2}/cgroup.controllers`]: "memory pids\n",
    "/srv/web/etc/os-release": "ID=busybox\nVERSION_ID=1.35\n",
    "/proc/self/cgroup": `9:name=systemd:${opts.own ?? "/"}\n4:memory:/\n0::${opts.own ?? "/"}\n`,
  };
  if (opts.systemd) files["/run/systemd/system"] = { kind: "dir" };
  if (opts.machined) {
    files["/usr/lib/systemd/systemd-machined"] = "";
    files["/usr/bin/busctl"] = "";
  }
  return new FakeHost({ files, env: { ...(opts.env ?? {}) } });
}

/** The spec of machina-nspawn ARGV on host `h` (`extra`: what prepare.ts adds, e.g. the at-exit teardown). */
export function fakeSpec(argv: string[], h: FakeHost, extra: Partial<BuildOptions> = {}): RunSpec {
  const parsed = parseNspawnCommandLine(argv, h.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const facts = gatherHostFacts(h, "/run/machina");
  const image = gatherImageFacts(h, parsed.settings.directory!, facts.timezone);
  return buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn", ...extra });
}
