/**
 * Collecting a `sidecar/stream`'s deltas into what the user sees, and planning
 * the edits that keep an editor in step with it. No `vscode` import.
 */
import type { ContentBlock, StreamDelta, StreamResult, Usage } from "./protocol";

/** The answer's text in a result's content blocks: its text blocks, joined. */
export function answerText(content: ContentBlock[]): string {
  return content.map((b) => (b.type === "text" ? b.text : "")).join("");
}

export interface ToolCall {
  id: string;
  name: string;
  /** The input JSON as streamed so far (fragments concatenated). */
  json: string;
  done: boolean;
}

export class StreamCollector {
  /** The answer text so far. */
  text = "";
  thinking = "";
  signature = "";
  tools: ToolCall[] = [];
  usage: Usage | undefined;
  /** Bumped by every `restart`: everything streamed before it is void. */
  generation = 0;
  restarts: { attempt?: number; reason?: string }[] = [];
  /** Every `fallback`: the answer now comes from this provider and model (what was streamed before is void). */
  fallbacks: { provider: string; model: string; reason?: string }[] = [];
  deltas = 0;
  result: StreamResult | undefined;

  apply(delta: StreamDelta): void {
    this.deltas++;
    switch (delta.kind) {
      case "text":
        this.text += delta.text;
        break;
      case "thinking":
        this.thinking += delta.text;
        break;
      case "signature":
        this.signature += delta.signature;
        break;
      case "toolUseStart":
        this.tools.push({ id: delta.id, name: delta.name, json: "", done: false });
        break;
      case "toolInputDelta": {
        const tool = this.tools.find((t) => t.id === delta.id);
        if (tool) tool.json += delta.json;
        break;
      }
      case "toolUseStop": {
        const tool = this.tools.find((t) => t.id === delta.id);
        if (tool) tool.done = true;
        break;
      }
      case "usage":
        this.usage = delta.usage;
        break;
      case "restart":
      case "fallback":
        this.text = "";
        this.thinking = "";
        this.signature = "";
        this.tools = [];
        this.usage = undefined;
        this.generation++;
        if (delta.kind === "restart") this.restarts.push({ attempt: delta.attempt, reason: delta.reason });
        else this.fallbacks.push({ provider: delta.provider, model: delta.model, reason: delta.reason });
        break;
      default:
        // A delta kind this client does not know yet: ignore it.
        break;
    }
  }

  /** The final message; its text, when it has content, wins over what was streamed. */
  finish(result: StreamResult): void {
    this.result = result;
    const text = Array.isArray(result.content) ? answerText(result.content) : this.text;
    if (text !== this.text) {
      // The streamed text and the final one disagree: show the final one whole.
      this.text = text;
      this.generation++;
    }
    if (result.usage) this.usage = result.usage;
  }
}

/** What an editor already shows of a stream. */
export interface Rendered {
  generation: number;
  length: number;
}

/** Replace everything from offset `from` (within the answer) to the end of what is shown with `insert`. */
export interface EditPlan {
  from: number;
  insert: string;
  next: Rendered;
}

/**
 * The edit that brings a view showing `rendered` up to the collector's text,
 * or undefined when it is up to date. Appends while the text only grows;
 * replaces the whole answer after a `restart` (or when the final text differs).
 */
export function planEdit(rendered: Rendered, collector: StreamCollector): EditPlan | undefined {
  const text = collector.text;
  const next = { generation: collector.generation, length: text.length };
  if (rendered.generation === collector.generation && rendered.length <= text.length) {
    if (rendered.length === text.length) return undefined;
    return { from: rendered.length, insert: text.slice(rendered.length), next };
  }
  return { from: 0, insert: text, next };
}
