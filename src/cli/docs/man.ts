/**
 * Man pages, generated from the same tables as --help (options, verbs, .nspawn keys) plus
 * written prose: machina-nspawn(1), machinactl(1), machinad(8), machina.nspawn(5). roff (man
 * macros), rendered by man-db. scripts/build writes them to dist/man/, scripts/setup installs
 * them.
 */
import { NSPAWN_COMPAT_VERSION, VERSION } from "../../paths.ts";
import { MACHINAD_COMMANDS, MACHINAD_DESCRIPTION, MACHINAD_TABLE } from "../../daemon/main.ts";
import { HELP_GROUPS, NSPAWN_FILE_KEYS, NSPAWN_TABLE } from "../../settings/nspawn-table.ts";
import { optionSyntax } from "../../settings/option-help.ts";
import { MACHINACTL_TABLE } from "../machinactl/options.ts";
import { VERBS } from "../machinactl/verbs.ts";

/** Escape text for roff: backslashes, and a leading dot or quote. */
function esc(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .replace(/^([.'])/gm, "\\&$1");
}

const header = (name: string, section: number, title: string) =>
  `.TH ${name.toUpperCase()} ${section} "" "machina ${VERSION}" "${title}"\n.SH NAME\n${esc(name)} \\- ${esc(title)}\n`;

const tp = (term: string, text: string) => `.TP\n.B ${esc(term.trim())}\n${esc(text)}\n`;

const para = (...lines: string[]) => lines.map((l) => `.PP\n${esc(l)}\n`).join("");

export function nspawnMan(): string {
  let out = header("machina-nspawn", 1, "run a command in, or boot, a light-weight container");
  out += `.SH SYNOPSIS\n.B machina\\-nspawn\n[\\fIOPTIONS\\fR...] [\\fICOMMAND\\fR [\\fIARGUMENTS\\fR...]]\n`;
  out +=
    ".SH DESCRIPTION\n" +
    para(
      `machina-nspawn runs a command, or boots an init, in a container made from a directory tree, a raw disk image or an image of the pool (/var/lib/machines). It takes systemd-nspawn ${NSPAWN_COMPAT_VERSION}'s options and behaves like it, with or without systemd on the host.`,
      "Settings files (NAME.nspawn) are read as systemd-nspawn reads them: see machina.nspawn(5). Running containers are registered in /run/machina/machines and managed with machinactl(1).",
      "With -U (a user namespace) every mount the container starts with is locked: read-only mounts stay read-only and masks stay in place.",
    );
  out += ".SH OPTIONS\n";
  for (const group of HELP_GROUPS) {
    const rows = NSPAWN_TABLE.filter((r) => r.group === group && (r.long !== undefined || r.short !== undefined));
    if (rows.length === 0) continue;
    if (group !== "") out += `.SS ${esc(group)}\n`;
    for (const r of rows)
      for (const h of r.help) {
        const text = r.cli === undefined ? `${h.text} (refused: not offered by machina).` : `${h.text}.`;
        const keys = r.keys?.length ? ` Settings file: ${r.keys.map((k) => `[${k.section}] ${k.key}=`).join(", ")}.` : "";
        out += tp(h.syntax ?? optionSyntax(r), text + keys + (r.choices ? ` Takes one of: ${r.choices.join(", ")}.` : ""));
      }
  }
  out +=
    ".SH EXIT STATUS\n" +
    para(
      "The payload's exit status; 128+N when it was killed by signal N; 127 when the command does not exist, 126 when it cannot be executed; 1 for every setup failure, after one line naming what failed; 133 after a reboot with --keep-unit.",
    );
  out +=
    ".SH FILES\n" +
    tp("/var/lib/machines", "The image pool (also read: /usr/local/lib/machines, /usr/lib/machines).") +
    tp("/etc/systemd/nspawn/NAME.nspawn, /run/systemd/nspawn/NAME.nspawn", "Trusted settings files; a file next to the image is untrusted.") +
    tp("/run/machina/machines/NAME/", "The registry entry of a running machine (state.json, lock).");
  out += ".SH SEE ALSO\nmachinactl(1), machinad(8), machina.nspawn(5), systemd-nspawn(1)\n";
  return out;
}

export function machinactlMan(): string {
  let out = header("machinactl", 1, "inspect and control machina's containers and images");
  out += `.SH SYNOPSIS\n.B machinactl\n[\\fIOPTIONS\\fR...] \\fICOMMAND\\fR [\\fINAME\\fR...]\n`;
  out +=
    ".SH DESCRIPTION\n" +
    para(
      "machinactl takes machinectl's verbs and options and works on machina's registry (/run/machina) and image pool directly, without D-Bus and without systemd; when machinad(8) runs it uses its API.",
      "machinactl COMMAND --help shows a command's own options. Every verb takes --json.",
    );
  for (const section of ["Machine", "Image", "Image transfer"] as const) {
    out += `.SH ${esc(section.toUpperCase())} COMMANDS\n`;
    for (const v of VERBS.filter((x) => x.section === section)) {
      const opts = MACHINACTL_TABLE.filter((r) => v.options.includes(r.id)).map((r) => optionSyntax(r).trim());
      out += tp(v.usage, `${v.summary}.${opts.length > 0 ? ` Options: ${opts.join(", ")}.` : ""}`);
    }
  }
  out += ".SH OPTIONS\n" + MACHINACTL_TABLE.map((r) => tp(optionSyntax(r), `${r.help}.`)).join("");
  out += ".SH EXIT STATUS\n" + para("0 on success; 1 on failure, after one line naming what failed. shell and exec return the command's exit status.");
  out += ".SH SEE ALSO\nmachina-nspawn(1), machinad(8), machinectl(1)\n";
  return out;
}

export function machinadMan(): string {
  let out = header("machinad", 8, "machina's optional API daemon");
  out += `.SH SYNOPSIS\n.B machinad\n[\\fIOPTIONS\\fR...]\n.br\n.B machinad register\n\\fINAME\\fR\n`;
  out +=
    ".SH DESCRIPTION\n" +
    para(
      MACHINAD_DESCRIPTION,
      "The API (JSON over HTTP on /run/machina/api.sock, root only) is described by its OpenAPI document, served at GET /openapi.json. It logs one JSON object per line on standard error.",
      "Socket activation: started by machinad.socket (systemd) or systemd-socket-activate with the front ends' sockets (/run/machina/nspawn.sock, machinactl.sock, oci.sock) as LISTEN_FDS, it serves each on the socket it was passed, told apart by the path it is bound to, and leaves them bound when it stops; any other socket is refused. It binds its API socket itself. With NOTIFY_SOCKET set (systemd's Type=notify, start-stop-daemon --notify-await) it sends READY=1 once it serves, STOPPING=1 when it stops and ERRNO=N when it cannot start. On a sysvinit host scripts/setup installs /etc/init.d/machinad (pid file /run/machinad.pid, log /var/log/machinad.log, options in MACHINAD_OPTS of /etc/default/machinad).",
    );
  out += ".SH OPTIONS\n" + MACHINAD_TABLE.map((r) => tp(optionSyntax(r), `${r.help}.`)).join("");
  out += ".SH COMMANDS\n" + MACHINAD_COMMANDS.map((c) => tp(c.syntax, `${c.text}.`)).join("");
  out += ".SH SEE ALSO\nmachinactl(1), machina-nspawn(1), systemd.socket(5), sd_listen_fds(3)\n";
  return out;
}

export function nspawnFileMan(): string {
  let out = header("machina.nspawn", 5, "container settings files");
  out += ".SH SYNOPSIS\n/etc/systemd/nspawn/\\fINAME\\fR.nspawn, /run/systemd/nspawn/\\fINAME\\fR.nspawn, /var/lib/machines/\\fINAME\\fR.nspawn\n";
  out +=
    ".SH DESCRIPTION\n" +
    para(
      `Settings files use systemd-nspawn ${NSPAWN_COMPAT_VERSION}'s format (systemd.nspawn(5)): sections [Exec], [Files] and [Network] with Key=Value lines. List keys accumulate and an empty assignment resets them; for other keys the last assignment wins. A bad value stops the start with one line naming the file, the line and the key.`,
      "Files in /etc/systemd/nspawn and /run/systemd/nspawn are trusted. A file next to the image is not: the keys marked privileged below are ignored in it, with a warning (--settings=trusted trusts it).",
    );
  for (const section of ["Exec", "Files", "Network"] as const) {
    out += `.SH [${section}] SECTION\n`;
    for (const k of NSPAWN_FILE_KEYS.filter((x) => x.section === section)) {
      const trust =
        k.privileged === undefined
          ? ""
          : k.privileged.rule === "allow-list-only"
            ? " Privileged: an allow-list is ignored in an untrusted file (a ~ deny list applies)."
            : ` Privileged: ignored in an untrusted file (${k.privileged.why}).`;
      out += tp(`${k.key}=`, `Same as ${k.flag}. Example: ${k.key}=${k.sample}.${trust}`);
    }
  }
  out += ".SH SEE ALSO\nmachina-nspawn(1), systemd.nspawn(5)\n";
  return out;
}

/** Every page: file name -> text. */
export function manPages(): Record<string, string> {
  return {
    "machina-nspawn.1": nspawnMan(),
    "machinactl.1": machinactlMan(),
    "machinad.8": machinadMan(),
    "machina.nspawn.5": nspawnFileMan(),
  };
}

export const OPTIONS_BEGIN = "<!-- options:begin (generated from src/settings/nspawn-table.ts by `bun src/cli/docs/generate.ts --options-md`) -->";
export const OPTIONS_END = "<!-- options:end -->";

/** The generated option list of docs/options.md (between the markers). */
export function optionsMarkdown(): string {
  const rows = NSPAWN_TABLE.filter((r) => r.long !== undefined || r.short !== undefined).map((r) => {
    const names = [
      r.short !== undefined ? `\`-${r.short}\`` : "",
      r.long !== undefined ? `\`--${r.long}${r.arg === "required" ? "=" : r.arg === "optional" ? "[=]" : ""}\`` : "",
    ]
      .filter((x) => x !== "")
      .join(", ");
    const keys = (r.keys ?? []).map((k) => `\`${k.key}=\``);
    const shownKeys = keys.length > 3 ? `${keys.slice(0, 2).join(", ")}, … (${keys.length})` : keys.join(", ");
    return `| ${names} | ${r.group || "general"} | ${shownKeys || "—"} | ${r.cli === undefined ? "refused" : "yes"} | ${r.help
      .map((h) => h.text)
      .join(" / ")
      .replace(/\|/g, "\\|")} |`;
  });
  return [OPTIONS_BEGIN, "", "| option | group | .nspawn key | carried out | what it does |", "|---|---|---|---|---|", ...rows, "", OPTIONS_END].join("\n");
}
