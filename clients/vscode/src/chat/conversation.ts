/**
 * One chat: its turns as they stream, and the messages a follow-up sends (the
 * conversation so far). No `vscode` import.
 */
import { attachmentLabel, userContent, type Attachment } from "../context";
import type { Message, StreamResult } from "../protocol";

export type TurnState = "streaming" | "done" | "failed" | "cancelled";

export interface Turn {
  id: number;
  prompt: string;
  /** What went to the model as the user message (attachment included). */
  content: string;
  attachment?: Attachment;
  /** Other open files attached with `#file`, whole. */
  files: Attachment[];
  /** The answer so far. */
  text: string;
  /** Partial answers a `restart` voided, oldest first, each with why. */
  replaced: { text: string; reason: string }[];
  /** Where the answer went instead of the provider asked, when a `fallback` came: shown above it. */
  fallback?: string;
  state: TurnState;
  /** Model, answering key, tokens and cost, once done; or why it failed. */
  footer?: string;
}

export class Conversation {
  readonly turns: Turn[] = [];
  private nextId = 1;

  /** Start a turn; `messages` is what to send: every finished turn, then this one. */
  ask(prompt: string, attachment?: Attachment, files: Attachment[] = []): { turn: Turn; messages: Message[] } {
    const messages: Message[] = [];
    for (const t of this.turns) {
      if (t.state !== "done" || !t.text) continue; // a failed turn has no answer to follow up on
      messages.push({ role: "user", content: t.content }, { role: "assistant", content: t.text });
    }
    const turn: Turn = {
      id: this.nextId++,
      prompt,
      content: userContent(prompt, attachment, files),
      attachment,
      files,
      text: "",
      replaced: [],
      state: "streaming",
    };
    this.turns.push(turn);
    messages.push({ role: "user", content: turn.content });
    return { turn, messages };
  }

  /** A `restart`: the partial answer is kept aside, shown as replaced. */
  restart(turn: Turn, reason: string | undefined): void {
    if (turn.text) turn.replaced.push({ text: turn.text, reason: reason || "retried on another key" });
    turn.text = "";
  }

  /** A `fallback`: the provider asked cannot answer; another the user listed does. Never silent. */
  fallback(turn: Turn, provider: string, model: string, reason: string | undefined): void {
    const why = reason ? `: ${reason}` : "";
    this.restart(turn, `moved to the fallback ${provider} ${model}`);
    turn.fallback = `Answered by the fallback ${provider} ${model}${why}`;
  }

  get busy(): boolean {
    return this.turns.some((t) => t.state === "streaming");
  }

  clear(): void {
    this.turns.length = 0;
  }
}

/** `claude-sonnet-4-5 · key sk-ant-…a1b2 · 12 in / 40 out · $0.000636 · 2 attempts` */
export function footerText(result: StreamResult): string {
  const from = result.fallbackFrom;
  const parts = [
    from ? `${result.provider ?? "?"} ${result.model} (fallback for ${from.provider} ${from.model})` : result.model,
  ];
  if (result.credential) parts.push(`key ${result.credential.fingerprint}`);
  if (result.usage) parts.push(`${result.usage.inputTokens} in / ${result.usage.outputTokens} out`);
  if (result.cost) parts.push(`$${result.cost.total.toFixed(6)}`);
  if (result.attempts && result.attempts > 1) parts.push(`${result.attempts} attempts`);
  return parts.join(" · ");
}

/** The chips a sent question shows: its `#file`s, then its selection or visible part. */
export function chipLabels(turn: Turn): string[] {
  return [...turn.files, ...(turn.attachment ? [turn.attachment] : [])].map(attachmentLabel);
}
