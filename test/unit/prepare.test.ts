import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { prepareContainer } from "../../src/runtime/prepare.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";

const ID = "3d1219c7c4c5404aaa1f6d2a48adfda4";
const MNT = "/run/m/raw-mounts/web-abababab/root";

/** A bare ext4 file system image (superblock magic at 1080) whose mount shows a tiny OS tree. */
function rawHost(onRun: (argv: string[]) => { status: number; stdout: string; stderr: string } | undefined): FakeHost {
  const h = new FakeHost({
    files: {
      "/etc/machine-id": `${ID}\n`,
      "/helper": "",
      "/pool/web.raw": "",
    },
    onRun,
  });
  h.onMount = (target) => {
    if (target !== MNT) return;
    h.add(`${MNT}/usr/bin/true`, "");
    h.add(`${MNT}/etc/os-release`, "ID=busybox\n");
  };
  h.mtimes.set("/run/m/raw-mounts/web-abababab", Date.now()); // a young mount: not swept as stale
  const image = Buffer.alloc(4096);
  image.writeUInt16LE(0xef53, 1080);
  h.bytes.set("/pool/web.raw", image);
  return h;
}

describe("prepareContainer undoes what it set up when a later step fails (src/reverter.ts)", () => {
  test("-i IMAGE with a veth: the network fails halfway, the raw image is released, the undo failure reported", () => {
    // nft fails: the network's setup fails, and its own teardown (the table) fails too.
    const h = rawHost((argv) => (argv[0] === "nft" ? { status: 1, stdout: "", stderr: "no nf_tables" } : undefined));
    h.onUmount = (target) => {
      if (target === MNT) throw new Error("EBUSY: umount");
    };
    const parsed = parseNspawnCommandLine(["-i", "/pool/web.raw", "-M", "web", "--network-veth", "/usr/bin/true"], {}, "/");
    if (parsed.action !== "run") throw new Error("not a run");
    let error: unknown;
    try {
      prepareContainer(h, { helper: "/helper", stateDir: "/run/m", pool: ["/pool"] }, parsed.settings, "/", { prog: "machina-nspawn" });
    } catch (e) {
      error = e;
    }
    const message = (error as Error).message;
    expect(message).toStartWith("nft -f failed: no nf_tables (undoing it failed too: ");
    expect(message).toContain('undo "unmount "/run/m/raw-mounts/web-abababab/root"" failed: EBUSY: umount');
    // Every undo ran: the network's record, the loop device, the raw image's directory are gone.
    expect(h.lstat("/run/m/net/web.json")).toBeUndefined();
    expect(h.closedFds).toEqual([101]);
    expect(h.lstat("/run/m/raw-mounts/web-abababab")).toBeUndefined();
  });
});
