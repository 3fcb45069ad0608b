/**
 * Bash completion for machina-nspawn and machinactl, generated from their option and verb
 * tables (settings/nspawn-table.ts, cli/machinactl/options.ts and verbs.ts): options, the
 * choices of enumerated options, verbs, and — at completion time — machine names from the
 * registry and image names from the pool (asked from machinactl itself).
 */
import { CAPABILITIES } from "../../settings/capabilities.ts";
import { NSPAWN_TABLE, type NspawnOption } from "../../settings/nspawn-table.ts";
import { MACHINACTL_TABLE } from "../machinactl/options.ts";
import { VERBS } from "../machinactl/verbs.ts";

const quote = (words: readonly string[]) => words.join(" ");

/** Verbs whose first argument is a running machine, or an image of the pool. */
const MACHINE_VERBS = ["status", "show", "ps", "kill", "poweroff", "reboot", "terminate", "copy-to", "copy-from", "shell", "login", "exec", "bind", "logs"];
const IMAGE_VERBS = [
  "start",
  "enable",
  "disable",
  "image-status",
  "show-image",
  "clone",
  "rename",
  "read-only",
  "remove",
  "set-limit",
  "export-tar",
  "export-raw",
];

function nspawnCase(r: NspawnOption): string | undefined {
  const names = [r.long !== undefined ? `--${r.long}` : undefined, r.short !== undefined ? `-${r.short}` : undefined].filter((n) => n !== undefined);
  if (r.arg === "none" || names.length === 0) return undefined;
  let action: string;
  if (r.choices !== undefined) action = `COMPREPLY=($(compgen -W '${quote(r.choices)}' -- "$cur"))`;
  else if (r.complete === "directory") action = `COMPREPLY=($(compgen -d -- "$cur"))`;
  else if (r.complete === "file") action = `COMPREPLY=($(compgen -f -- "$cur"))`;
  else if (r.complete === "image") action = `COMPREPLY=($(compgen -W "$(_machina_images)" -- "$cur"))`;
  else if (r.complete === "user") action = `COMPREPLY=($(compgen -u -- "$cur"))`;
  else if (r.complete === "interface") action = `COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))`;
  else if (r.complete === "capability") action = `COMPREPLY=($(compgen -W 'help ${quote(capabilityWords())}' -- "$cur"))`;
  else if (r.complete === "signal") action = `COMPREPLY=($(compgen -W "$(kill -l | tr -s ' \\t' '\\n' | grep -E '^[A-Z]' | sed 's/^/SIG/')" -- "$cur"))`;
  else action = "COMPREPLY=()";
  return `    ${names.join("|")}) ${action}; return ;;`;
}

/** The options of a table as completion words: `--long` (`--long=` when it takes a value) and `-s`. */
function optionWords(table: readonly { long?: string; short?: string; arg: string }[]): string[] {
  return table.flatMap((r) => [
    ...(r.long !== undefined ? [`--${r.long}${r.arg === "required" ? "=" : ""}`] : []),
    ...(r.short !== undefined ? [`-${r.short}`] : []),
  ]);
}

/** Shell lines: the word being completed and the one before it (`--opt=VALUE` split into the two). */
const CUR_AND_PREV = `  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  if [[ $cur == --*=* ]]; then
    prev=\${cur%%=*}
    cur=\${cur#*=}
  fi`;

/** Shell lines: complete an option from `words` (no space after one that ends in "="). */
const completeOptions = (words: string[]) => `    COMPREPLY=($(compgen -W '${quote(words)}' -- "$cur"))
    [[ \${COMPREPLY[0]} == *= ]] && compopt -o nospace`;

function capabilityWords(): string[] {
  return CAPABILITIES.map((c) => c.toLowerCase());
}

export function bashCompletion(): string {
  const ctlChoices = MACHINACTL_TABLE.filter((r) => r.choices !== undefined && r.long !== undefined).map(
    (r) => `    --${r.long}) COMPREPLY=($(compgen -W '${quote(r.choices!)}' -- "$cur")); return ;;`,
  );
  return `# bash completion for machina-nspawn and machinactl (generated from their option tables)

_machina_images() { machinactl list-images --no-legend 2>/dev/null | awk '{print $1}'; }
_machina_machines() { machinactl list --no-legend 2>/dev/null | awk '{print $1}'; }

_machina_nspawn() {
  local cur prev
${CUR_AND_PREV}
  case $prev in
${NSPAWN_TABLE.map(nspawnCase)
  .filter((c) => c !== undefined)
  .join("\n")}
  esac
  if [[ $cur == -* ]]; then
${completeOptions(optionWords(NSPAWN_TABLE))}
  fi
}
complete -F _machina_nspawn machina-nspawn

_machinactl() {
  local cur prev verb i
${CUR_AND_PREV}
  case $prev in
${ctlChoices.join("\n")}
  esac
  if [[ $cur == -* ]]; then
${completeOptions(optionWords(MACHINACTL_TABLE))}
    return
  fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    [[ \${COMP_WORDS[i]} != -* ]] && { verb=\${COMP_WORDS[i]}; break; }
  done
  if [[ -z $verb ]]; then
    COMPREPLY=($(compgen -W '${quote(VERBS.map((v) => v.name))}' -- "$cur"))
  elif [[ " ${quote(MACHINE_VERBS)} " == *" $verb "* ]]; then
    COMPREPLY=($(compgen -W "$(_machina_machines)" -- "$cur"))
  elif [[ " ${quote(IMAGE_VERBS)} " == *" $verb "* ]]; then
    COMPREPLY=($(compgen -W "$(_machina_images)" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _machinactl machinactl
`;
}
