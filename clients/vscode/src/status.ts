/**
 * Turning sidecar statuses and errors into what VS Code shows: status bar
 * text and colour, the tooltip's Markdown, quick pick rows and error messages.
 * Pure functions, no `vscode` import.
 */
import { ErrorCode } from "./protocol";
import type { CredentialInfo, ProviderStatus, RateWindow, StatusKind, StatusNotification } from "./protocol";

/** The theme colour id of the status bar item's background for a status kind. */
export function statusBackground(kind: StatusKind | undefined): string | undefined {
  if (kind === "Warning") return "statusBarItem.warningBackground";
  if (kind === "Error") return "statusBarItem.errorBackground";
  return undefined;
}

/** The status bar text: the sidecar's own text (`🔑 1/3`, `🔑 2/3 (rotated)`). */
export function statusBarText(status: StatusNotification | undefined): string {
  if (!status) return "🔑 …";
  return status.text || `🔑 ${status.index}/${status.size}`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** `14:05:00` in local time, for a time today; with the date otherwise. */
export function formatTime(iso: string, now: Date = new Date()): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const hms = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  const sameDay =
    t.getFullYear() === now.getFullYear() &&
    t.getMonth() === now.getMonth() &&
    t.getDate() === now.getDate();
  return sameDay ? hms : `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${hms}`;
}

/** `42s`, `3m`, `5h`, `2d`: how far `iso` is from now (never negative). */
export function formatIn(iso: string, now: Date = new Date()): string {
  const ms = new Date(iso).getTime() - now.getTime();
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** A credential's state in words: `ok`, `cooling down until 14:05:00 (in 3m)`, ... */
export function describeState(cred: CredentialInfo, now: Date = new Date()): string {
  switch (cred.state) {
    case "ok":
      return cred.expiresAt ? `ok, expires ${formatTime(cred.expiresAt, now)}` : "ok";
    case "expiring":
      return cred.expiresAt
        ? `expires in ${formatIn(cred.expiresAt, now)} (${formatTime(cred.expiresAt, now)})`
        : "expiring";
    case "expired":
      return cred.expiresAt ? `expired ${formatTime(cred.expiresAt, now)}` : "expired";
    case "coolingDown":
      return cred.cooldownUntil
        ? `cooling down until ${formatTime(cred.cooldownUntil, now)} (in ${formatIn(cred.cooldownUntil, now)})`
        : "cooling down";
    case "outOfCredit":
      // Never evicted: skipped until the user tops up (the message says how).
      return "out of credit";
    case "rejected":
      return "rejected";
    case "refused":
      // Still in the pool and tried again, but this use was refused (docs/protocol.md).
      return "refused for this use";
    default:
      return String(cred.state);
  }
}

const SOURCE: Record<string, string> = { pool: "pool", profile: "login", env: "environment" };

export function describeSource(cred: CredentialInfo): string {
  const source = SOURCE[cred.source] ?? cred.source;
  return cred.label ? `${source} "${cred.label}"` : source;
}

/** Escape text for a Markdown table cell or a line of Markdown. */
export function mdEscape(text: string): string {
  return text
    .replace(/[\\`*_{}[\]<>()#+!|~]/g, (c) => `\\${c}`)
    .replace(/\r?\n/g, " ");
}

const STATE_ICON: Record<string, string> = {
  ok: "$(pass)",
  expiring: "$(watch)",
  expired: "$(error)",
  coolingDown: "$(clock)",
  outOfCredit: "$(credit-card)",
  rejected: "$(circle-slash)",
  refused: "$(workspace-untrusted)",
};

export function stateIcon(state: string): string {
  return STATE_ICON[state] ?? "$(question)";
}

/** `sonnet requests 3/50 left (6%) · resets 14:05:00` for one headroom window. */
export function describeWindow(w: RateWindow, now: Date = new Date()): string {
  const scope = w.account ? "account" : (w.model ?? "");
  let figures: string;
  if (w.utilization !== undefined) figures = `${Math.round(w.utilization * 100)}% used`;
  else if (w.limit !== undefined && w.remaining !== undefined) figures = `${w.remaining}/${w.limit} left`;
  else figures = "?";
  const percent = w.utilization === undefined && w.percentLeft !== undefined ? ` (${w.percentLeft}%)` : "";
  const status = w.status ? `, ${w.status}` : "";
  const reset = w.resetAt ? ` · resets ${formatTime(w.resetAt, now)}` : "";
  return `${scope} ${w.name} ${figures}${percent}${status}${reset}`.trim();
}

/** Lines under the credentials table: each key's windows and per-model cooldowns. */
function headroomLines(creds: CredentialInfo[], now: Date): string[] {
  const out: string[] = [];
  for (const c of creds) {
    const parts = (c.windows ?? []).map((w) => {
      const low = w.percentLeft !== undefined && w.percentLeft < 10 ? "$(warning) " : "";
      return low + mdEscape(describeWindow(w, now));
    });
    for (const m of c.modelCooldowns ?? []) {
      const why = m.reason === "overloaded" ? " (overloaded)" : "";
      const said = m.message ? `: ${m.message}` : "";
      parts.push(`$(clock) ${mdEscape(`${m.model} cooling down until ${formatTime(m.until, now)}${why}${said}`)}`);
    }
    if (parts.length > 0) out.push(`\`${c.fingerprint.replace(/`/g, "")}\` ${parts.join(" · ")}`, "");
  }
  return out;
}

/**
 * The status bar item's tooltip, as Markdown (with `$(icon)` syntax): each
 * provider's status and credentials, the one in use marked.
 */
export function tooltipMarkdown(
  providers: ProviderStatus[],
  problems: string[] = [],
  now: Date = new Date(),
  rotations: ReadonlyMap<string, Rotation> = new Map(),
): string {
  const out: string[] = ["**LLM Sidecar**", ""];
  if (providers.length === 0) {
    out.push("No credentials yet: run **LLM Sidecar: Add Key to Pool** or **LLM Sidecar: Log In**.", "");
  }
  for (const p of providers) {
    out.push(`**${mdEscape(p.provider)}** ${mdEscape(p.text)}`, "");
    if (p.message) out.push(`_${mdEscape(p.message)}_`, "");
    const rotation = rotations.get(p.provider);
    if (rotation) out.push(`$(sync) ${mdEscape(rotationLine(rotation, now))}`, "");
    const creds = p.credentials ?? [];
    if (creds.length > 0) {
      out.push("| | key | source | state |", "|:-:|---|---|---|");
      creds.forEach((c, i) => {
        const current = i + 1 === p.index && c.state !== "rejected" ? "▶" : "";
        // A rejected, refused or unpaid key's message says what to do (log in again, use
        // an API key, add credit).
        const advised = c.state === "rejected" || c.state === "refused" || c.state === "outOfCredit";
        const why = advised && c.message ? `: ${c.message}` : "";
        const state = `${stateIcon(c.state)} ${mdEscape(describeState(c, now) + why)}`;
        out.push(`| ${current} | \`${c.fingerprint.replace(/`/g, "")}\` | ${mdEscape(describeSource(c))} | ${state} |`);
      });
      out.push("", ...headroomLines(creds, now));
    }
  }
  for (const problem of problems) out.push(`$(warning) ${mdEscape(problem)}`, "");
  out.push("_Click for keys and actions._");
  return out.join("\n");
}

/** A row of the Show Status / Remove Key quick picks. */
export interface PickRow {
  label: string;
  description?: string;
  detail?: string;
  credential?: CredentialInfo;
  provider?: string;
}

export function credentialRows(status: ProviderStatus, now: Date = new Date()): PickRow[] {
  return (status.credentials ?? []).map((c, i) => ({
    label: `${stateIcon(c.state)} ${c.fingerprint}`,
    description: `${i + 1 === status.index && c.state !== "rejected" ? "in use · " : ""}${describeSource(c)} · ${describeState(c, now)}`,
    detail: c.message,
    credential: c,
    provider: status.provider,
  }));
}

/** Something that failed, from a JSON-RPC error or anything thrown. */
export interface ErrorLike {
  code?: number;
  message?: string;
  data?: unknown;
}

/**
 * A message for the user about a failed request, saying what to do where the
 * sidecar's own message does not.
 */
export function describeError(err: unknown, method?: string): string {
  const e = (err ?? {}) as ErrorLike;
  const message = typeof e.message === "string" && e.message ? e.message : String(err);
  switch (e.code) {
    case ErrorCode.methodNotFound:
      return `This llm-sidecar does not support ${method ?? "this request"} yet: update it (pip install -U llm-sidecar).`;
    case ErrorCode.requestCancelled:
      return "Cancelled.";
    case ErrorCode.noCredentials:
      return `${message} Add one with "LLM Sidecar: Add Key to Pool" or "LLM Sidecar: Log In".`;
    case ErrorCode.allRateLimited: {
      const data = (e.data ?? {}) as { retryAt?: string };
      return data.retryAt && !message.includes(formatTime(data.retryAt))
        ? `${message} (retry at ${formatTime(data.retryAt)})`
        : message;
    }
    default:
      return message;
  }
}

/** A user action offered with an error: a command to run, or the log. */
export type ErrorAction = "Add Key" | "Log In" | "Show Status" | "Open Log";

/** What the user can do about a failed request, most useful first. */
export function errorActions(err: unknown): ErrorAction[] {
  switch ((err as ErrorLike | undefined)?.code) {
    case ErrorCode.noCredentials:
      return ["Add Key", "Log In", "Open Log"];
    case ErrorCode.allRejected:
    case ErrorCode.loginFailed:
      return ["Add Key", "Log In", "Show Status"];
    case ErrorCode.allRateLimited:
      return ["Show Status", "Add Key"];
    case ErrorCode.upstream:
      return ["Show Status", "Open Log"];
    default:
      return ["Open Log"];
  }
}

/**
 * The short status-bar message for a rotation: `previous` was not rotated (or on
 * another key) and `next` is. Undefined when nothing rotated.
 */
export function rotationMessage(
  previous: StatusNotification | undefined,
  next: StatusNotification,
): string | undefined {
  if (!next.rotated) return undefined;
  if (previous?.rotated && previous.index === next.index) return undefined;
  // The sidecar's own words when it gave some (they say why), else the bare fact.
  return `$(sync) ${next.provider}: ${next.message || `rotated to key ${next.index}/${next.size}`}`;
}

/**
 * The last rotation of a provider. The sidecar clears "(rotated)" as soon as the
 * next key answers, so without this a rotation during a short answer is seen by
 * nobody: the tooltip keeps it for the session.
 */
export interface Rotation {
  at: string; // ISO time
  from?: number;
  to: number;
  size: number;
  message?: string;
}

/** The rotation `next` reports (as `rotationMessage` decides), or undefined. */
export function noteRotation(
  previous: StatusNotification | undefined,
  next: StatusNotification,
  now: Date = new Date(),
): Rotation | undefined {
  if (!rotationMessage(previous, next)) return undefined;
  return { at: now.toISOString(), from: previous?.index, to: next.index, size: next.size, message: next.message };
}

/** `last rotation 14:05:00: key 1 → key 2 of 3 (rotated to key 2 of 3)` */
export function rotationLine(r: Rotation, now: Date = new Date()): string {
  const keys = r.from && r.from !== r.to ? `key ${r.from} → key ${r.to} of ${r.size}` : `to key ${r.to} of ${r.size}`;
  return `last rotation ${formatTime(r.at, now)}: ${keys}${r.message ? ` (${r.message})` : ""}`;
}
