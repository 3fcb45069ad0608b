/**
 * machina's dashboard (served by machinad at /, docs/dashboard.md): the running machines and the
 * image pool, live, with their actions, through machinad's API only (the session cookie the login
 * link set; every state change is a same-origin POST). No framework, no third-party code.
 * Built by scripts/build into dist/web/app.js.
 */
import type * as S from "../src/api/schemas.ts";
import type { z } from "zod";

type MachineList = z.infer<typeof S.MachineList>;
type MachineStatus = z.infer<typeof S.MachineStatus>;
type ImageList = z.infer<typeof S.ImageList>;
type ApiError = z.infer<typeof S.ApiError>;
type Sample = z.infer<typeof S.Sample>;
type LatestSamples = z.infer<typeof S.LatestSamples>;
type SampleHistory = z.infer<typeof S.SampleHistory>;
type NetworkOverview = z.infer<typeof S.NetworkOverview>;
type Job = z.infer<typeof S.Job>;
type ImageStatus = z.infer<typeof S.ImageStatus>;
type ImageSettings = z.infer<typeof S.ImageSettings>;
type JobList = z.infer<typeof S.JobList>;
type TransferList = z.infer<typeof S.TransferList>;
type JobEvent = z.infer<typeof S.JobEvent>;

/** The API paths the dashboard uses, by route id: test/unit/web.test.ts checks each against src/api/routes.ts. */
export const PATHS = {
  version: "/v1/version",
  listMachines: "/v1/machines",
  machineStatus: "/v1/machines/{name}",
  machineLogs: "/v1/machines/{name}/logs",
  machineSamples: "/v1/machines/{name}/samples",
  latestSamples: "/v1/samples",
  startMachine: "/v1/machines/{name}/start",
  stopMachine: "/v1/machines/{name}/stop",
  poweroffMachine: "/v1/machines/{name}/poweroff",
  rebootMachine: "/v1/machines/{name}/reboot",
  networks: "/v1/networks",
  listImages: "/v1/images",
  removeImage: "/v1/images/{image}",
  imageStatus: "/v1/images/{image}",
  imageSettings: "/v1/images/{image}/settings",
  cloneImage: "/v1/images/{image}/clone",
  renameImage: "/v1/images/{image}/rename",
  setImageReadOnly: "/v1/images/{image}/read-only",
  importImage: "/v1/images/{image}/archive",
  exportImage: "/v1/images/{image}/archive",
  pullImage: "/v1/images/pull",
  jobEvents: "/v1/jobs/{id}/events",
  bootstrapImage: "/v1/images/bootstrap",
  listJobs: "/v1/jobs",
  cancelJob: "/v1/jobs/{id}",
  listTransfers: "/v1/transfers",
  cancelTransfer: "/v1/transfers/{transfer}",
  machineShell: "/v1/machines/{name}/shell",
  putMachineFile: "/v1/machines/{name}/files",
  getMachineFile: "/v1/machines/{name}/files",
} as const;

const REFRESH_MS = 2000;

function url(path: string, params: Record<string, string> = {}, query = ""): string {
  return path.replace(/\{(\w+)\}/g, (_, k: string) => encodeURIComponent(params[k] ?? "")) + query;
}

class HttpError extends Error {}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (r.status === 401) {
    show("Not logged in: open the login link (machinad's web.token) again.", true);
    throw new HttpError("unauthorized");
  }
  const data = (await r.json()) as T | ApiError;
  if (!r.ok) throw new HttpError((data as ApiError).message ?? `HTTP ${r.status}`);
  return data as T;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function show(text: string, error = false): void {
  const s = $("status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> & { label?: string } = {}, ...kids: (Node | string)[]) {
  const { label, ...rest } = props;
  const e = Object.assign(document.createElement(tag), rest);
  if (label !== undefined) e.dataset.label = label;
  e.append(...kids);
  return e;
}

function button(text: string, name: string, action: () => Promise<unknown>, danger = false): HTMLButtonElement {
  const b = el("button", { type: "button", textContent: text, className: danger ? "danger" : "" });
  b.setAttribute("aria-label", `${text} ${name}`);
  b.addEventListener("click", async () => {
    b.disabled = true;
    show(`${text}: ${name}…`);
    try {
      await action();
      show(`${text}: ${name}: done`);
    } catch (e) {
      show(`${text}: ${name}: ${(e as Error).message}`, true);
    } finally {
      b.disabled = false;
      void refresh();
    }
  });
  return b;
}

export function formatBytes(n: number | null): string {
  if (n === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function percentText(p: number | undefined): string {
  return p === undefined ? "-" : `${p < 10 ? p.toFixed(1) : Math.round(p)} %`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86400)} d ${Math.floor((seconds % 86400) / 3600)} h`;
}

/** CPU use in % of one CPU between two samples (undefined without both). */
export function cpuPercent(a: Sample | undefined, b: Sample | undefined): number | undefined {
  if (a?.cpuUsec === undefined || b?.cpuUsec === undefined || b.t <= a.t) return undefined;
  return Math.max(0, ((b.cpuUsec - a.cpuUsec) / ((b.t - a.t) * 1000)) * 100);
}

/** Bytes per second between two counters (undefined without both). */
export function rate(a: Sample | undefined, b: Sample | undefined, key: "rxBytes" | "txBytes"): number | undefined {
  const x = a?.[key];
  const y = b?.[key];
  if (x === undefined || y === undefined || a === undefined || b === undefined || b.t <= a.t) return undefined;
  return Math.max(0, (y - x) / ((b.t - a.t) / 1000));
}

let previous: Record<string, Sample> = {};
let current: Record<string, Sample> = {};

async function renderMachines(): Promise<void> {
  const [{ machines }, latest] = await Promise.all([
    api<MachineList>("GET", url(PATHS.listMachines, {}, "?all=1")),
    api<LatestSamples>("GET", PATHS.latestSamples).catch(() => undefined),
  ]);
  if (latest !== undefined) {
    // a new sample per machine: the one before it gives the CPU use
    for (const [name, s] of Object.entries(latest.machines)) if (current[name]?.t !== s.t) previous[name] = current[name]!;
    current = latest.machines;
    previous = Object.fromEntries(Object.entries(previous).filter(([name, s]) => s !== undefined && name in current));
  }
  const body = $("machines").querySelector("tbody")!;
  const rows = machines.map((m) => {
    const name = m.machine;
    const since = m.timestampUsec > 0 ? m.timestampUsec : undefined;
    const link = el("a", { href: `#machine/${encodeURIComponent(name)}`, textContent: name });
    return el(
      "tr",
      { id: `machine-${name}` },
      el("td", { label: "Name" }, link),
      el("td", { label: "State", className: `state-${m.state}`, textContent: m.state }),
      el("td", { label: "OS", textContent: [m.os, m.version].filter((x) => x !== "").join(" ") || "-" }),
      el("td", { label: "Addresses", textContent: m.addresses.join(", ") || "-" }),
      el("td", { label: "Uptime", textContent: since === undefined ? "-" : formatDuration(Date.now() / 1000 - since / 1e6) }),
      el("td", { label: "CPU", className: "num", textContent: percentText(cpuPercent(previous[name], current[name])) }),
      el("td", { label: "Memory", className: "num", textContent: formatBytes(current[name]?.memoryBytes ?? null) }),
      el("td", { label: "Tasks", className: "num", textContent: current[name] === undefined ? "-" : String(current[name]!.tasks) }),
      el(
        "td",
        { className: "actions" },
        button("Power off", name, () => api("POST", url(PATHS.poweroffMachine, { name }), {})),
        button("Reboot", name, () => api("POST", url(PATHS.rebootMachine, { name }), {})),
        button("Terminate", name, () => api("POST", url(PATHS.stopMachine, { name }), { wait: true }), true),
      ),
    );
  });
  body.replaceChildren(...rows);
  $("machines").hidden = machines.length === 0;
  $("machines-empty").hidden = machines.length > 0;
}

/** A description list of name–value pairs into the element `id`. */
function showFacts(id: string, facts: [string, string][]): void {
  $(id).replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
}

/** Where an image came from, in words (its status's origin record). */
function originText(origin: ImageStatus["origin"] | undefined): string {
  if (origin === null || origin === undefined) return "made here";
  if (origin === "unknown") return "unknown";
  return `${origin.how} ${origin.reference ?? origin.source}${origin.digest !== undefined ? ` (${origin.digest})` : ""}`;
}

/** Each image's origin, asked once per image and modification (an origin does not change on its own). */
const origins = new Map<string, { modified: number | null; text: string }>();
const asking = new Set<string>();
/** The first refresh is done (the page shows everything once) */
let rendered = false;

async function fetchOrigins(list: ImageList["images"]): Promise<void> {
  for (const i of list) asking.add(i.name);
  const queue = [...list];
  const worker = async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
      const st = await api<ImageStatus>("GET", url(PATHS.imageStatus, { image: i.name })).catch(() => undefined);
      origins.set(i.name, { modified: i.modified, text: st === undefined ? "-" : originText(st.origin) });
      asking.delete(i.name);
      const cell = document.getElementById(`image-${i.name}`)?.querySelector("td.origin");
      if (cell) cell.textContent = origins.get(i.name)!.text;
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, queue.length) }, worker));
}

async function renderImages(): Promise<void> {
  const { images } = await api<ImageList>("GET", PATHS.listImages);
  // origins are asked in the background, a few at a time: the table does not wait for them
  // (after the first whole render: the first page load waits for nothing of theirs)
  if (rendered) void fetchOrigins(images.filter((i) => origins.get(i.name)?.modified !== i.modified && !asking.has(i.name)));
  for (const name of origins.keys()) if (!images.some((i) => i.name === name)) origins.delete(name);
  const body = $("images").querySelector("tbody")!;
  body.replaceChildren(
    ...images.map((i) =>
      el(
        "tr",
        { id: `image-${i.name}` },
        el("td", { label: "Name" }, el("a", { href: `#image/${encodeURIComponent(i.name)}`, textContent: i.name })),
        el("td", { label: "Type", textContent: i.type }),
        el("td", { label: "Read-only", textContent: i.ro ? "yes" : "no" }),
        el("td", { label: "Usage", textContent: formatBytes(i.usage) }),
        el("td", { label: "Modified", textContent: i.modified === null ? "-" : new Date(i.modified / 1000).toLocaleString() }),
        el("td", { label: "Origin", className: "origin", textContent: origins.get(i.name)?.text ?? "-" }),
        el(
          "td",
          { className: "actions" },
          button("Start", i.name, () => api("POST", url(PATHS.startMachine, { name: i.name }), { wait: true })),
          button(
            "Remove",
            i.name,
            async () => {
              if (confirm(`Remove the image ${i.name}?`)) await api("DELETE", url(PATHS.removeImage, { image: i.name }));
            },
            true,
          ),
        ),
      ),
    ),
  );
  $("images").hidden = images.length === 0;
  $("images-empty").hidden = images.length > 0;
}

/** What is under way: machinad's running jobs and machinactl's transfers, each with a Cancel. */
async function renderTransfers(): Promise<void> {
  const [jobs, transfers] = await Promise.all([
    api<JobList>("GET", PATHS.listJobs),
    api<TransferList>("GET", PATHS.listTransfers).catch(() => ({ transfers: [] })),
  ]);
  const since = (ms: number) => formatDuration(Math.max(0, Date.now() - ms) / 1000);
  const rows = [
    ...jobs.jobs
      .filter((j) => j.state === "running")
      .map((j) => {
        const last = [...j.events].reverse().find((e) => e.total !== undefined && e.done !== undefined);
        const progress = last !== undefined ? `${Math.round((last.done! / last.total!) * 100)} %` : (j.events.at(-1)?.message ?? j.events.at(-1)?.stage ?? "-");
        return el(
          "tr",
          { id: `job-${j.id}` },
          el("td", { label: "What", textContent: `${j.kind} (machinad)` }),
          el("td", { label: "Of", textContent: j.machine }),
          el("td", { label: "Progress", textContent: progress }),
          el("td", { label: "Since", textContent: since(j.created) }),
          el(
            "td",
            { className: "actions" },
            button("Cancel", `${j.kind} of ${j.machine}`, () => api("DELETE", url(PATHS.cancelJob, { id: j.id })), true),
          ),
        );
      }),
    // machinad's own pulls and bootstraps are transfers too (with their job): shown once, as the job above
    ...transfers.transfers
      .filter((t) => t.job === undefined)
      .map((t) =>
        el(
          "tr",
          { id: `transfer-${t.id}` },
          el("td", { label: "What", textContent: `${t.type} (machinactl, pid ${t.pid})` }),
          el("td", { label: "Of", textContent: `${t.local} ← ${t.remote}` }),
          el("td", { label: "Progress", textContent: t.progress === null ? "-" : `${Math.round(t.progress * 100)} %` }),
          el("td", { label: "Since", textContent: since(Date.parse(t.started)) }),
          el(
            "td",
            { className: "actions" },
            button("Cancel", `transfer ${t.id}`, () => api("DELETE", url(PATHS.cancelTransfer, { transfer: String(t.id) })), true),
          ),
        ),
      ),
  ];
  $("transfers")
    .querySelector("tbody")!
    .replaceChildren(...rows);
  $("transfers-section").hidden = rows.length === 0;
}

async function renderNetworks(): Promise<void> {
  const o = await api<NetworkOverview>("GET", PATHS.networks);
  $("networks")
    .querySelector("tbody")!
    .replaceChildren(
      ...o.machines.map((m) =>
        el(
          "tr",
          {},
          el("td", { label: "Machine", textContent: m.machine }),
          el("td", { label: "Attached", textContent: m.zone !== undefined ? `zone ${m.zone}` : m.bridge !== undefined ? `bridge ${m.bridge}` : m.kind }),
          el("td", { label: "Host interface", textContent: m.hostInterface ?? "-" }),
          el("td", { label: "Addresses", textContent: m.addresses.join(", ") || m.addressing }),
          el("td", {
            label: "Forwarded ports",
            textContent: m.ports.map((p) => `${p.protocol} ${p.hostPort} → ${p.containerPort}`).join(", ") || "-",
          }),
        ),
      ),
    );
  $("networks-section").hidden = o.machines.length === 0;
}

type TerminalModule = typeof import("./terminal.ts");
let terminal: ReturnType<TerminalModule["openTerminal"]> | undefined;

function closeTerminal(): void {
  terminal?.close();
  terminal = undefined;
  $("terminal").hidden = true;
  $("terminal").replaceChildren();
  $("terminal-button").textContent = "Open a terminal";
}

/** The shell of the machine in the details, in xterm.js (loaded now: terminal.js is not part of the first page). */
async function toggleTerminal(login = false): Promise<void> {
  if (terminal !== undefined) {
    closeTerminal();
    return;
  }
  const m = /^#machine\/(.+)$/.exec(location.hash);
  if (m === null) return;
  const name = decodeURIComponent(m[1]!);
  const module = "/assets/terminal.js"; // not bundled: loaded on first use
  const { openTerminal } = (await import(module)) as TerminalModule;
  const box = $("terminal");
  box.hidden = false;
  $("terminal-status").textContent = `Connected to ${name}.`;
  $("terminal-button").textContent = "Close the terminal";
  terminal = openTerminal(box, url(PATHS.machineShell, { name }), login ? "login=1" : "", (text) => {
    $("terminal-status").textContent = text;
  });
}

function settingsText(s: ImageSettings | undefined): string {
  if (s === undefined || s.file === null) return "No settings file: the defaults apply.";
  return `# ${s.file}\n${s.text ?? "(unreadable)"}`;
}

/** The image named in the location's #image/NAME: its facts, its settings, and what can be done to it. */
async function renderImageDetail(): Promise<void> {
  const m = /^#image\/(.+)$/.exec(location.hash);
  const section = $("image-detail");
  if (m === null) {
    section.hidden = true;
    return;
  }
  const name = decodeURIComponent(m[1]!);
  const [st, settings] = await Promise.all([
    api<ImageStatus>("GET", url(PATHS.imageStatus, { image: name })).catch(() => undefined),
    api<ImageSettings>("GET", url(PATHS.imageSettings, { image: name })).catch(() => undefined),
  ]);
  section.hidden = false;
  $("image-detail-title").textContent = st === undefined ? `${name} (gone)` : name;
  const origin = st?.origin;
  const facts: [string, string][] =
    st === undefined
      ? []
      : [
          ["Type", st.type],
          ["Path", st.path],
          ["Read-only", st.readOnly ? "yes" : "no"],
          ["OS", st.os ?? "-"],
          ["Architecture", st.architecture ?? "-"],
          ["Usage", formatBytes(st.usage)],
          ["Limit", st.limit === null ? "none" : formatBytes(st.limit)],
          ["Origin", originText(origin)],
        ];
  showFacts("image-facts", facts);
  $("image-settings").textContent = settingsText(settings);
  if (st === undefined) {
    $("image-actions").replaceChildren();
    return;
  }
  const ask = (what: string, initial: string) => {
    const v = prompt(what, initial)?.trim();
    if (v === undefined || v === "") throw new HttpError("cancelled");
    return v;
  };
  $("image-actions").replaceChildren(
    button("Clone", name, async () => {
      const to = ask(`Clone ${name} as`, `${name}-copy`);
      await api("POST", url(PATHS.cloneImage, { image: name }), { to });
    }),
    button("Rename", name, async () => {
      const to = ask(`Rename ${name} to`, name);
      await api("POST", url(PATHS.renameImage, { image: name }), { to });
      location.hash = `#image/${encodeURIComponent(to)}`;
    }),
    button(st.readOnly ? "Make writable" : "Make read-only", name, () => api("POST", url(PATHS.setImageReadOnly, { image: name }), { readOnly: !st.readOnly })),
    ...downloads(name, st.type),
  );
}

/** Links that download the image as an archive (GET …/archive: the session cookie goes along). */
function downloads(name: string, type: ImageStatus["type"]): HTMLAnchorElement[] {
  const kinds: [string, string, string][] =
    type === "raw"
      ? [["raw.xz", "?kind=raw&compression=xz", "raw.xz"]]
      : [
          ["tar.gz", "?kind=tar&compression=gzip", "tar.gz"],
          ["OCI archive", "?kind=oci", "oci.tar"],
        ];
  return kinds.map(([label, query, suffix]) => {
    const a = el("a", { href: url(PATHS.exportImage, { image: name }, query), textContent: `Download (${label})`, className: "download" });
    a.setAttribute("download", `${name}.${suffix}`);
    return a;
  });
}

/** The machine named in the location's #machine/NAME: its facts, and its log as it grows. */
let following: AbortController | undefined;
async function renderDetail(): Promise<void> {
  const m = /^#machine\/(.+)$/.exec(location.hash);
  const section = $("detail");
  if (m === null) {
    following?.abort();
    following = undefined;
    section.hidden = true;
    return;
  }
  const name = decodeURIComponent(m[1]!);
  const st = await api<MachineStatus>("GET", url(PATHS.machineStatus, { name })).catch(() => undefined);
  section.hidden = false;
  $("detail-title").textContent = name;
  const facts: [string, string][] =
    st === undefined
      ? [["State", "not running"]]
      : [
          ["State", st.state],
          ["OS", st.osPrettyName || st.os || "-"],
          ["Architecture", st.architecture ? `${st.architecture}${st.emulated ? " (emulated: qemu-user)" : ""}` : "-"],
          ["Leader", `${st.leader} (${st.leaderComm})`],
          ["Root", st.root],
          ["Addresses", st.network.addresses.join(", ") || "-"],
          ["Tasks", String(st.resources.tasks)],
          ["Memory", st.resources.memoryBytes === undefined ? "-" : formatBytes(st.resources.memoryBytes)],
          ["CPU time", st.resources.cpuUsec === undefined ? "-" : `${(st.resources.cpuUsec / 1e6).toFixed(1)} s`],
          ["Control group", st.controlGroup],
        ];
  showFacts("detail-facts", facts);
  const [history, settings] = await Promise.all([
    st === undefined ? undefined : api<SampleHistory>("GET", url(PATHS.machineSamples, { name })).catch(() => undefined),
    api<ImageSettings>("GET", url(PATHS.imageSettings, { image: name })).catch(() => undefined),
  ]);
  $("detail-settings").textContent = settingsText(settings);
  renderGraphs(history?.samples ?? []);
  if (following === undefined && st !== undefined) void followLog(name);
}

const SVG = "http://www.w3.org/2000/svg";

/** One graph: a line over the last minutes, its newest value in words (the graph is decoration for screen readers). */
export function graph(title: string, values: (number | undefined)[], text: (v: number) => string): HTMLElement {
  const known = values.filter((v): v is number => v !== undefined);
  const last = known[known.length - 1];
  const max = Math.max(1e-9, ...known);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 300 60");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG, "polyline");
  const step = values.length > 1 ? 300 / (values.length - 1) : 0;
  line.setAttribute(
    "points",
    values
      .map((v, i) => (v === undefined ? undefined : `${(i * step).toFixed(1)},${(58 - (v / max) * 56).toFixed(1)}`))
      .filter((p) => p !== undefined)
      .join(" "),
  );
  svg.append(line);
  return el("figure", { className: "graph" }, el("figcaption", { textContent: `${title}: ${last === undefined ? "-" : text(last)}` }), svg);
}

function renderGraphs(samples: Sample[]): void {
  const pairs = samples.slice(1).map((b, i) => [samples[i], b] as const);
  const net = pairs.map(([a, b]) => {
    const rx = rate(a, b, "rxBytes");
    const tx = rate(a, b, "txBytes");
    return rx === undefined && tx === undefined ? undefined : (rx ?? 0) + (tx ?? 0);
  });
  $("detail-graphs").replaceChildren(
    graph(
      "CPU",
      pairs.map(([a, b]) => cpuPercent(a, b)),
      percentText,
    ),
    graph(
      "Memory",
      samples.map((s) => s.memoryBytes),
      (v) => formatBytes(v),
    ),
    graph("Network", net, (v) => `${formatBytes(v)}/s`),
  );
}

/** Each NDJSON line of a streamed answer, parsed, to `onLine`. */
async function ndjson(res: Response, onLine: (value: unknown) => void): Promise<void> {
  if (res.body === null) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line !== "") onLine(JSON.parse(line));
    }
  }
}

/** The pull form: a job, its byte progress in the bar, its outcome in words. */
/** A job's events (GET /v1/jobs/ID/events) to onEvent, until its end: the finished job. */
async function followJob(created: Job, onEvent: (e: JobEvent) => void): Promise<Job> {
  let job = created;
  await ndjson(await fetch(url(PATHS.jobEvents, { id: job.id })), (line) => {
    if (typeof line === "object" && line !== null && "job" in line) job = (line as { job: Job }).job;
    else onEvent(line as JobEvent);
  });
  return job;
}

/** A form that starts a job (pull, bootstrap): its button off while it runs, its outcome in `status`. */
async function jobForm(
  form: HTMLFormElement,
  status: HTMLElement,
  what: string,
  start: (data: FormData) => Promise<Job>,
  onEvent: (e: JobEvent) => void,
  onDone: (job: Job) => string,
  onFail: () => void,
): Promise<void> {
  const button = form.querySelector("button")!;
  button.disabled = true;
  status.textContent = "Starting…";
  try {
    const job = await followJob(await start(new FormData(form)), onEvent);
    if (job.state === "done") {
      status.textContent = onDone(job);
      form.reset();
    } else {
      onFail();
      status.textContent = `${what} failed: ${job.error?.message ?? job.state}`;
    }
  } catch (e) {
    onFail();
    status.textContent = `${what} failed: ${(e as Error).message}`;
  } finally {
    button.disabled = false;
    void refresh();
  }
}

/** The pull form: a job, its byte progress in the bar, its outcome in words. */
function pull(form: HTMLFormElement): Promise<void> {
  const bar = $<HTMLProgressElement>("pull-progress");
  const status = $("pull-status");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the size is known
  return jobForm(
    form,
    status,
    "Pull",
    (data) => {
      const name = String(data.get("name") ?? "").trim();
      const source = String(data.get("url") ?? "").trim();
      // OCI: a registry reference; "Verify: no" allows a registry over plain HTTP (--tls-verify=no)
      const request =
        data.get("kind") === "oci"
          ? { kind: "oci", ref: source, tlsVerify: data.get("verify") !== "no" }
          : { kind: data.get("kind"), url: source, verify: data.get("verify") };
      return api<Job>("POST", PATHS.pullImage, { ...request, ...(name !== "" ? { name } : {}) });
    },
    (e) => {
      if (e.total !== undefined && e.done !== undefined) {
        bar.max = e.total;
        bar.value = e.done;
        status.textContent = `${e.message ?? "Downloading"}: ${formatBytes(e.done)} of ${formatBytes(e.total)}`;
      } else if (e.message !== undefined) status.textContent = e.message;
    },
    (job) => {
      bar.max = 1;
      bar.value = 1;
      return `Pulled as image ${job.machine}.`;
    },
    () => void (bar.hidden = true),
  );
}

/** PUT a file with its upload's progress (fetch cannot report it: XMLHttpRequest): status and answer. */
function putWithProgress(target: string, file: File, onProgress: (done: number, total: number) => void): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", target);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: unknown;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => reject(new Error("the connection failed"));
    xhr.send(file);
  });
}

/** The upload form: the file's bytes as the request (PUT …/archive) with a progress bar, the image made in words. */
async function upload(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const status = $("upload-status");
  const bar = $<HTMLProgressElement>("upload-progress");
  const button = form.querySelector("button")!;
  const file = data.get("file");
  const name = String(data.get("name") ?? "").trim();
  if (!(file instanceof File)) return;
  button.disabled = true;
  bar.hidden = false;
  bar.max = Math.max(1, file.size);
  bar.value = 0;
  status.textContent = `Uploading ${formatBytes(file.size)}…`;
  try {
    const target = url(PATHS.importImage, { image: name }, `?kind=${encodeURIComponent(String(data.get("kind")))}`);
    const r = await putWithProgress(target, file, (done, total) => {
      bar.max = Math.max(1, total);
      bar.value = done;
      status.textContent = done < total ? `Uploading: ${formatBytes(done)} of ${formatBytes(total)}` : "Importing…";
    });
    const body = (r.body ?? {}) as { image?: string; message?: string };
    status.textContent = r.status === 200 ? `Imported as image ${body.image}.` : `Upload failed: ${body.message ?? r.status}`;
    if (r.status === 200) form.reset();
    else bar.hidden = true;
  } catch (e) {
    bar.hidden = true;
    status.textContent = `Upload failed: ${(e as Error).message}`;
  } finally {
    button.disabled = false;
    void refresh();
  }
}

/** The machine of the details (#machine/NAME), if any. */
function detailMachine(): string | undefined {
  const m = /^#machine\/(.+)$/.exec(location.hash);
  return m === null ? undefined : decodeURIComponent(m[1]!);
}

/** Files into and out of the machine of the details (PUT/GET …/files: copy-to/copy-from of one file). */
async function fileForm(form: HTMLFormElement, direction: "put" | "get"): Promise<void> {
  const name = detailMachine();
  const data = new FormData(form);
  const path = String(data.get("path") ?? "").trim();
  const status = $("file-status");
  if (name === undefined) return;
  const target = url(direction === "put" ? PATHS.putMachineFile : PATHS.getMachineFile, { name }, `?path=${encodeURIComponent(path)}`);
  try {
    if (direction === "put") {
      const file = data.get("file");
      if (!(file instanceof File)) return;
      const r = await fetch(target, { method: "PUT", body: file });
      status.textContent = r.ok ? `Uploaded to ${path}.` : `Upload failed: ${((await r.json()) as ApiError).message}`;
    } else {
      const r = await fetch(target);
      if (!r.ok) {
        status.textContent = `Download failed: ${((await r.json()) as ApiError).message}`;
        return;
      }
      const link = el("a", { href: URL.createObjectURL(await r.blob()) });
      link.setAttribute("download", path.slice(path.lastIndexOf("/") + 1) || "file");
      link.click();
      URL.revokeObjectURL(link.href);
      status.textContent = `Downloaded ${path}.`;
    }
    form.reset();
  } catch (e) {
    status.textContent = `${direction === "put" ? "Upload" : "Download"} failed: ${(e as Error).message}`;
  }
}

/** The bootstrap form: a job whose events are the build tool's lines (the newest one shown). */
function bootstrapForm(form: HTMLFormElement): Promise<void> {
  const status = $("bootstrap-status");
  return jobForm(
    form,
    status,
    "Bootstrap",
    (data) => {
      const release = String(data.get("release") ?? "").trim();
      const mirror = String(data.get("mirror") ?? "").trim();
      return api<Job>("POST", PATHS.bootstrapImage, {
        name: String(data.get("name") ?? "").trim(),
        distro: data.get("distro"),
        ...(release !== "" ? { release } : {}),
        ...(mirror !== "" ? { mirror } : {}),
      });
    },
    (e) => {
      if (e.message !== undefined) status.textContent = e.message;
    },
    (job) => `Bootstrapped image ${job.machine}.`,
    () => undefined,
  );
}

async function followLog(name: string): Promise<void> {
  const ac = new AbortController();
  following = ac;
  const pre = $("detail-log");
  pre.textContent = "";
  try {
    const r = await fetch(url(PATHS.machineLogs, { name }, "?lines=200&follow=1"), { signal: ac.signal });
    if (!r.ok) return;
    await ndjson(r, (value) => {
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(`${(value as { line: string }).line}\n`);
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  } catch {
    // aborted, or the machine is gone
  } finally {
    if (following === ac) following = undefined;
  }
}

let busy = false;
async function refresh(): Promise<void> {
  if (busy || document.hidden) return;
  busy = true;
  try {
    await Promise.all([renderMachines(), renderImages(), renderNetworks(), renderTransfers(), renderDetail(), renderImageDetail()]);
    if (!rendered) {
      rendered = true;
      setTimeout(() => void refresh(), 0); // the origins now
    }
    if ($("status").className === "error" && $("status").textContent?.startsWith("Not logged in")) show("");
  } catch (e) {
    if (!(e instanceof HttpError && e.message === "unauthorized")) show((e as Error).message, true);
  } finally {
    busy = false;
  }
}

async function main(): Promise<void> {
  const v = await api<{ version: string }>("GET", PATHS.version).catch(() => undefined);
  if (v !== undefined) $("host").textContent = `${location.host} · machinad ${v.version}`;
  $("terminal-button").addEventListener("click", () => void toggleTerminal());
  $("login-button").addEventListener("click", () => void toggleTerminal(true));
  window.addEventListener("hashchange", () => {
    closeTerminal();
    following?.abort();
    following = undefined;
    void refresh();
  });
  document.addEventListener("visibilitychange", () => void refresh());
  $<HTMLFormElement>("pull").addEventListener("submit", (e) => {
    e.preventDefault();
    void pull(e.target as HTMLFormElement);
  });
  for (const [id, direction] of [
    ["file-put", "put"],
    ["file-get", "get"],
  ] as const)
    $<HTMLFormElement>(id).addEventListener("submit", (e) => {
      e.preventDefault();
      void fileForm(e.target as HTMLFormElement, direction);
    });
  $<HTMLFormElement>("upload").addEventListener("submit", (e) => {
    e.preventDefault();
    void upload(e.target as HTMLFormElement);
  });
  $<HTMLFormElement>("bootstrap").addEventListener("submit", (e) => {
    e.preventDefault();
    void bootstrapForm(e.target as HTMLFormElement);
  });
  await refresh();
  setInterval(() => void refresh(), REFRESH_MS);
}

if (typeof document !== "undefined") void main();
