/**
 * The option, verb and key tables are the one source: --help, the man pages, the bash
 * completion and docs/options.md are generated from them or checked against them here. No root.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bashCompletion } from "../../src/cli/docs/completion.ts";
import { OPTIONS_BEGIN, OPTIONS_END, manPages, optionsMarkdown } from "../../src/cli/docs/man.ts";
import { usage, verbUsage } from "../../src/cli/machinactl/main.ts";
import { MACHINACTL_TABLE, parseMachinactlCommandLine } from "../../src/cli/machinactl/options.ts";
import { VERBS } from "../../src/cli/machinactl/verbs.ts";
import { nspawnHelp } from "../../src/cli/nspawn-help.ts";

const NSPAWN_HELP = nspawnHelp();
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { NSPAWN_KEYS } from "../../src/settings/nspawn-file.ts";
import { NSPAWN_TABLE } from "../../src/settings/nspawn-table.ts";
import { PRIVILEGED_KEYS } from "../../src/settings/trust.ts";

const ROOT = join(import.meta.dir, "../..");
const nspawnOptions = NSPAWN_TABLE.filter((r) => r.long !== undefined || r.short !== undefined);
const spellings = (r: { long?: string; short?: string }) => [...(r.long ? [`--${r.long}`] : []), ...(r.short ? [`-${r.short}`] : [])];
const man = manPages();
const completion = bashCompletion();

describe("machina-nspawn's option table", () => {
  test("docs/options.md has the generated list of every option, current", () => {
    const docs = readFileSync(join(ROOT, "docs/options.md"), "utf8");
    const begin = docs.indexOf(OPTIONS_BEGIN);
    const end = docs.indexOf(OPTIONS_END);
    expect(begin).toBeGreaterThan(0);
    expect(docs.slice(begin, end + OPTIONS_END.length)).toBe(optionsMarkdown());
  });

  test("every option is in --help, the man page, the completion and docs/options.md", () => {
    const docs = readFileSync(join(ROOT, "docs/options.md"), "utf8");
    const page = man["machina-nspawn.1"]!.replace(/\\-/g, "-");
    for (const r of nspawnOptions)
      for (const s of spellings(r)) {
        expect(`${s} in --help: ${NSPAWN_HELP.includes(s)}`).toBe(`${s} in --help: true`);
        expect(`${s} in the man page: ${page.includes(s)}`).toBe(`${s} in the man page: true`);
        expect(`${s} in the completion: ${completion.includes(` ${s}`) || completion.includes(`'${s}`)}`).toBe(`${s} in the completion: true`);
        expect(`${s} in docs/options.md: ${docs.includes(`\`${s}`)}`).toBe(`${s} in docs/options.md: true`);
      }
  });

  test("ids and names are unique; every row with a key names a flag", () => {
    const ids = NSPAWN_TABLE.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    const names = nspawnOptions.flatMap(spellings);
    expect(new Set(names).size).toBe(names.length);
    const keys = NSPAWN_KEYS.map((k) => `${k.section}.${k.key}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  test("OPTION=help lists the row's helpList and exits 0 (the options nspawn 252 answers it for); choices are real values", () => {
    const listed = nspawnOptions.filter((x) => x.helpList !== undefined);
    expect(listed.map((r) => r.id).sort()).toEqual([
      "ambient-capability",
      "capability",
      "console",
      "drop-capability",
      "kill-signal",
      "private-users-ownership",
      "resolv-conf",
      "rlimit",
      "timezone",
      "volatile",
    ]);
    for (const r of listed) expect(parseNspawnCommandLine([`--${r.long}=help`], {})).toEqual({ action: "list", lines: [...r.helpList!()] });
    for (const r of nspawnOptions.filter((x) => x.choices !== undefined && x.cli !== undefined && x.long !== undefined))
      for (const c of r.choices!) expect(parseNspawnCommandLine([`--${r.long}=${c}`], {}).action).toBe("run");
  });

  test("every key's sample parses; the privileged keys are the ones the table marks", () => {
    expect(PRIVILEGED_KEYS.map((p) => p.key).sort()).toEqual(
      NSPAWN_KEYS.filter((k) => k.privileged)
        .map((k) => k.key)
        .sort(),
    );
    expect(PRIVILEGED_KEYS.length).toBeGreaterThan(20);
  });
});

describe("machinactl's verb and option tables", () => {
  test("every verb is in --help, the man page and the completion; its options exist", () => {
    const ids = new Set(MACHINACTL_TABLE.map((r) => r.id));
    const page = man["machinactl.1"]!.replace(/\\-/g, "-");
    for (const v of VERBS) {
      expect(usage()).toContain(v.usage);
      expect(page).toContain(v.usage.replace(/\\/g, ""));
      expect(completion).toContain(` ${v.name} `.trim());
      for (const o of v.options) expect(`${v.name}: ${o} ${ids.has(o)}`).toBe(`${v.name}: ${o} true`);
    }
  });

  test("every option is used by a verb or common to all, and is in --help", () => {
    for (const r of MACHINACTL_TABLE) {
      const used = r.global === true || VERBS.some((v) => v.options.includes(r.id));
      expect(`${r.id} used: ${used}`).toBe(`${r.id} used: true`);
      for (const s of spellings(r)) expect(usage()).toContain(s);
    }
  });

  test("VERB --help: the verb's usage and exactly its options", () => {
    const p = parseMachinactlCommandLine(["clone", "--help"], {});
    expect(p.options.help).toBe(true);
    expect(p.verb).toBe("clone");
    const text = verbUsage(VERBS.find((v) => v.name === "clone")!);
    expect(text).toContain("machinactl [OPTIONS...] clone NAME NAME");
    expect(text).toContain("--read-only");
    expect(text).not.toContain("--mirror");
  });
});

describe("generated files", () => {
  test("the bash completion is valid bash and completes options, choices and verbs", () => {
    const dir = mkdtempSync(join(tmpdir(), "machina-completion-"));
    try {
      writeFileSync(`${dir}/c.bash`, completion);
      const run = (words: string[]) => {
        const script = `source ${dir}/c.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; ${words[0] === "machinactl" ? "_machinactl" : "_machina_nspawn"} 2>/dev/null; echo "\${COMPREPLY[@]}"`;
        return spawnSync(["bash", "-c", script], { stdout: "pipe" }).stdout.toString().trim();
      };
      expect(spawnSync(["bash", "-n", `${dir}/c.bash`]).exitCode).toBe(0);
      expect(run(["machina-nspawn", "--timezone=s"])).toBe("symlink");
      expect(run(["machina-nspawn", "--ephem"])).toBe("--ephemeral");
      expect(run(["machinactl", "import-"]).split(" ").sort()).toEqual(["import-fs", "import-oci", "import-raw", "import-tar"]);
      expect(run(["machinactl", "--format=x"])).toBe("xz");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(spawnSync(["sh", "-c", "command -v man"]).exitCode !== 0)("the man pages render without warnings", () => {
    const dir = mkdtempSync(join(tmpdir(), "machina-man-"));
    try {
      for (const [name, text] of Object.entries(man)) {
        writeFileSync(`${dir}/${name}`, text);
        const r = spawnSync(["man", "--warnings", "-l", `${dir}/${name}`], {
          stdout: "pipe",
          stderr: "pipe",
          env: { ...process.env, MANPAGER: "cat", MANWIDTH: "80" },
        });
        expect(`${name}: ${r.stderr.toString()}`).toBe(`${name}: `);
        expect(r.stdout.toString()).toContain("NAME");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
