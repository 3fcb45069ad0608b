/**
 * The image pool through machinad, for real (root): list, status, properties, pool, clone,
 * rename, read-only, remove and clean through the typed client give what the in-process core
 * (LocalImageService, machinactl's) gives; an image held by a running machine is refused with
 * E_BUSY and left as it was; a traversal name is refused before anything is touched. Root only.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalImageService } from "../../src/api/image-service.ts";
import { MachinaClient } from "../../src/client/client.ts";
import type { MachinaError } from "../../src/errors.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { paths } from "../../src/paths.ts";
import { addImage, daemonSuite, initUp, machinactl, startDaemon } from "../helpers/daemon.ts";

const T = 60_000;
const { t, scratch } = daemonSuite();

const local = () => new LocalImageService(new LinuxHost(), paths(t.env), t.env);
const poolEntries = () => readdirSync(t.pool).sort();
const code = async (p: Promise<unknown>) => ((await p.then(() => undefined).catch((e: unknown) => e)) as MachinaError | undefined)?.code;

describe("images through machinad", () => {
  test("archives over the API: an image downloaded as tar.gz and as an OCI archive, uploaded again as new images; raw of a directory refused; no temporaries left", async () => {
    await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const a = scratch.name("ma");
    addImage(t, a);
    const tar = await client.exportArchive(a, "tar", "gzip");
    const tarBytes = new Uint8Array(await new Response(tar.stream).arrayBuffer());
    expect(tarBytes.length).toBe(tar.size);
    expect([tarBytes[0], tarBytes[1]]).toEqual([0x1f, 0x8b]); // gzip
    const b = `${a}-up`;
    expect(await client.importArchive(b, "tar", tarBytes)).toEqual({ image: b, from: "upload" });
    expect(readFileSync(join(t.pool, b, "sbin/init"), "utf8")).toBe(readFileSync(join(t.pool, a, "sbin/init"), "utf8"));
    expect((await client.imageStatus(b)).origin).toMatchObject({ how: "import-tar", source: "upload" });
    expect(await code(client.importArchive(b, "tar", tarBytes))).toBe("E_BUSY"); // exists
    const oci = await client.exportArchive(a, "oci");
    const c = `${a}-oci`;
    expect(await client.importArchive(c, "oci", new Uint8Array(await new Response(oci.stream).arrayBuffer()))).toEqual({ image: c, from: "upload" });
    expect(existsSync(join(t.pool, c, "bin/busybox"))).toBe(true);
    expect(await code(client.exportArchive(a, "raw"))).toBe("E_UNSUPPORTED");
    expect(await code(client.importArchive(`${a}-bad`, "tar", new TextEncoder().encode("not a tar")))).toBe("E_INVALID");
    expect(existsSync(join(t.pool, `${a}-bad`))).toBe(false);
    expect(readdirSync(join(t.stateDir, "tmp"))).toEqual([]);
  }, 120_000);

  test(
    "list, status, properties, pool, clone, rename, read-only, remove, clean: the core's results",
    async () => {
      await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const core = local();
      const a = scratch.name("mi");
      addImage(t, a);
      mkdirSync(join(t.pool, `.${a}-hidden`)); // a hidden image: clean's
      scratch.defer(() => void Bun.spawnSync(["sh", "-c", `chattr -i "$1"/* 2>/dev/null; rm -rf "$1"/*`, "sh", t.pool]));

      expect(await client.listImages()).toEqual(await core.listImages());
      expect(await client.listImages({ all: true })).toEqual(await core.listImages({ all: true }));
      expect((await client.listImages({ all: true })).map((i) => i.name)).toContain(`.${a}-hidden`);
      expect(await client.imageStatus(a)).toEqual(await core.imageStatus(a));
      expect(await client.showImage(a)).toEqual(await core.showImage(a));
      expect(await client.pool()).toEqual(await core.pool());
      expect(await client.settings(a)).toEqual({ file: null, text: null });
      writeFileSync(join(t.pool, `${a}.nspawn`), "[Exec]\nBoot=yes\n");
      expect(await client.settings(a)).toEqual({ file: join(t.pool, `${a}.nspawn`), text: "[Exec]\nBoot=yes\n" });
      expect(await client.settings(a)).toEqual(await core.settings(a));
      rmSync(join(t.pool, `${a}.nspawn`));

      const b = `${a}-clone`;
      const cloned = await client.clone(a, b);
      expect(cloned).toMatchObject({ name: b, from: a, type: "directory", readOnly: false, path: join(t.pool, b) });
      expect(existsSync(join(t.pool, b, "sbin/init"))).toBe(true);
      expect(await client.showImage(b)).toEqual(await core.showImage(b));
      expect(await code(client.clone(a, b))).toBe("E_INVALID"); // exists: the core's code

      const c = `${a}-renamed`;
      expect(await client.rename(b, c)).toEqual({ name: c, from: b, path: join(t.pool, c) });
      expect(existsSync(join(t.pool, b))).toBe(false);
      expect(await code(client.showImage(b))).toBe("E_NOT_FOUND");

      expect(await client.setReadOnly(c, true)).toEqual({ name: c, readOnly: true });
      expect((await core.showImage(c)).readOnly).toBe(true);
      expect(await client.setReadOnly(c, false)).toEqual({ name: c, readOnly: false });
      expect((await core.showImage(c)).readOnly).toBe(false);

      // set-limit needs btrfs quotas: the core's E_UNSUPPORTED comes through (on btrfs: it is set)
      const limit = await client.setLimit(c, 1 << 30).then(
        (r) => r,
        (e: MachinaError) => e.code,
      );
      expect(limit === "E_UNSUPPORTED" || (typeof limit === "object" && limit.limit === 1 << 30)).toBe(true);

      expect(await client.remove(c)).toEqual({ removed: [c] });
      expect(existsSync(join(t.pool, c))).toBe(false);
      expect(await code(client.remove(c))).toBe("E_NOT_FOUND");

      const cleaned = await client.clean();
      expect(cleaned.removed.map((r) => r.name)).toEqual([`.${a}-hidden`]);
      expect(poolEntries()).toContain(a);
      expect(poolEntries()).not.toContain(`.${a}-hidden`);
      expect(await client.clean()).toEqual(await core.clean());
    },
    T,
  );

  test(
    "an image held by a running machine: E_BUSY (409) for rename, read-only, remove, and left as it was",
    async () => {
      await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const a = scratch.name("mb");
      addImage(t, a);
      scratch.defer(() => void Bun.spawnSync(["rm", "-rf", join(t.pool, a)]));
      await client.start(a);
      scratch.defer(async () => {
        await client.terminate(a, { timeoutMs: 2000 }).catch(() => undefined);
      });
      await initUp(t, a);
      const before = await client.showImage(a);
      expect(await code(client.rename(a, `${a}-x`))).toBe("E_BUSY");
      expect(await code(client.setReadOnly(a, true))).toBe("E_BUSY");
      expect(await code(client.remove(a))).toBe("E_BUSY");
      const res = await fetch(`http://localhost/v1/images/${a}`, { method: "DELETE", unix: t.socket });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { code: string; details: { machine: string } }).details.machine).toBe(a);
      expect(await client.showImage(a)).toEqual(before);
      expect(existsSync(join(t.pool, `${a}-x`))).toBe(false);
      // clean -a skips it with the same reason
      const cleaned = await client.clean({ all: true });
      expect(cleaned.skipped.find((s) => s.name === a)?.reason).toContain("in use by the running machine");
      expect(existsSync(join(t.pool, a, "sbin/init"))).toBe(true);
      // a clone (it only reads) is allowed
      expect((await client.clone(a, `${a}-copy`)).name).toBe(`${a}-copy`);
      expect(await client.remove(`${a}-copy`)).toEqual({ removed: [`${a}-copy`] });
      expect(await client.terminate(a)).toBe("stopped");
      expect(await client.remove(a)).toEqual({ removed: [a] });
    },
    T,
  );

  test(
    "machinactl's image verbs through the daemon and without it: the same JSON, text and errors",
    async () => {
      const a = scratch.name("mc");
      addImage(t, a);
      mkdirSync(join(t.pool, `.${a}-hidden`));
      scratch.defer(() => void Bun.spawnSync(["sh", "-c", `chattr -i "$1"/* 2>/dev/null; rm -rf "$1"/*`, "sh", t.pool]));
      const daemon = await startDaemon(t, scratch);
      /** Run a verb both ways (the daemon: its log shows the request came to it); answer the daemon's result. */
      const both = async (args: string[], expectSame = true) => {
        const via = await machinactl(t, args);
        const direct = await machinactl(t, args, { MACHINA_NO_DAEMON: "1" });
        if (expectSame) expect([via.code, via.stdout, via.stderr]).toEqual([direct.code, direct.stdout, direct.stderr]);
        return via;
      };
      // reads: the same output both ways
      for (const args of [
        ["list-images", "--json=short"],
        ["list-images", "-a", "--json=short"],
        ["list-images"],
        ["image-status", a, "--json=short"],
        ["image-status", "-a", "--json=short"],
        ["show-image", a, "--json=short"],
        ["show-image", a],
        ["show-image", "--json=short"],
        ["show-image", "nope"],
        ["remove", "nope"],
        ["set-limit", a, "lots"],
      ])
        await both(args);
      expect(JSON.parse((await both(["list-images", "-a", "--json=short"])).stdout).map((i: { name: string }) => i.name)).toContain(`.${a}-hidden`);
      expect((await both(["remove", "nope"])).stderr).toContain('no image "nope"');

      // changes: through the daemon, each answered with the JSON the core gives for the same change
      const b = `${a}-b`;
      const viaClone = JSON.parse((await machinactl(t, ["clone", a, b, "--json=short"])).stdout);
      const directClone = JSON.parse((await machinactl(t, ["clone", a, `${b}2`, "--json=short"], { MACHINA_NO_DAEMON: "1" })).stdout);
      expect({ ...viaClone, name: "", path: "" }).toEqual({ ...directClone, name: "", path: "" });
      expect(JSON.parse((await machinactl(t, ["rename", b, `${b}r`, "--json=short"])).stdout)).toEqual({ name: `${b}r`, from: b, path: join(t.pool, `${b}r`) });
      expect(JSON.parse((await machinactl(t, ["read-only", `${b}r`, "--json=short"])).stdout)).toEqual({ name: `${b}r`, readOnly: true });
      expect(JSON.parse((await machinactl(t, ["read-only", `${b}r`, "no", "--json=short"])).stdout)).toEqual({ name: `${b}r`, readOnly: false });
      expect(JSON.parse((await machinactl(t, ["remove", `${b}r`, `${b}2`, "--json=short"])).stdout)).toEqual({ removed: [`${b}r`, `${b}2`] });
      const clean = await machinactl(t, ["clean"]);
      expect([clean.code, clean.stdout]).toEqual([0, `Removed image '.${a}-hidden'.\n`]);
      expect(poolEntries()).toEqual([a]);
      // the verbs go to the daemon when it answers: its pool, not the one machinactl's own environment names
      const elsewhere = { MACHINA_POOL: join(t.stateDir, "no-pool") };
      expect(JSON.parse((await machinactl(t, ["list-images", "--json=short"], elsewhere)).stdout).map((i: { name: string }) => i.name)).toEqual([a]);
      expect(JSON.parse((await machinactl(t, ["list-images", "--json=short"], { ...elsewhere, MACHINA_NO_DAEMON: "1" })).stdout)).toEqual([]);
      expect(daemon.proc.exitCode).toBe(null);
      expect(existsSync(join(t.pool, a, "sbin/init"))).toBe(true);
    },
    T,
  );

  test(
    "traversal and invalid names: 400 E_INVALID, nothing touched",
    async () => {
      await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const a = scratch.name("mt");
      addImage(t, a);
      scratch.defer(() => void Bun.spawnSync(["rm", "-rf", join(t.pool, a)]));
      const before = poolEntries();
      for (const bad of ["../state", "..", "/etc", `${a}/sbin`, ".#x", "x.raw"]) {
        expect(await code(client.remove(bad))).toBe("E_INVALID");
        expect(await code(client.showImage(bad))).toBe("E_INVALID");
        expect(await code(client.clone(a, bad))).toBe("E_INVALID");
        expect(await code(client.rename(a, bad))).toBe("E_INVALID");
      }
      const res = await fetch(`http://localhost/v1/images/${a}/clone`, {
        method: "POST",
        unix: t.socket,
        body: JSON.stringify({ to: "ok", force: true }),
        headers: { "content-type": "application/json" },
      });
      expect(res.status).toBe(400);
      expect(poolEntries()).toEqual(before);
      expect(existsSync(t.stateDir)).toBe(true);
    },
    T,
  );
});
