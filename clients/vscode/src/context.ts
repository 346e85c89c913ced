/**
 * Editor context attached to a question: what it is, how it is labelled on the
 * chip, and how it is put in front of the model. No `vscode` import.
 */

export interface Attachment {
  /** Workspace-relative path (or the file name), for the chip and the model. */
  path: string;
  uri: string;
  languageId: string;
  /** 0-based, inclusive: the lines attached. */
  startLine: number;
  endLine: number;
  text: string;
  /** True for a selection (Replace Selection replaces it); false for the visible part of the file. */
  fromSelection: boolean;
}

/** Lines kept from a very large selection: a context, not the whole repository. */
export const MAX_CONTEXT_LINES = 400;

/** `src/a.ts:3-14` (1-based, as the editor's gutter shows them). */
export function attachmentLabel(a: Pick<Attachment, "path" | "startLine" | "endLine">): string {
  const start = a.startLine + 1;
  const end = a.endLine + 1;
  return `${a.path}:${start === end ? start : `${start}-${end}`}`;
}

/** A fence that the attached text cannot close early. */
function fence(text: string): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  return "`".repeat(longest + 1);
}

/** One attached file (`#file`), whole up to MAX_CONTEXT_LINES, in front of the model. */
function fileBlock(a: Attachment): string {
  const f = fence(a.text);
  return `File ${attachmentLabel(a)}:\n\n${f}${a.languageId}\n${a.text}\n${f}\n\n`;
}

/**
 * The user message: the files attached with `#file` (labelled, fenced), then the
 * selection or visible part, then the question.
 */
export function userContent(prompt: string, attachment?: Attachment, files: readonly Attachment[] = []): string {
  const head = files.map(fileBlock).join("");
  if (!attachment) return head + prompt;
  const what = attachment.fromSelection ? "Selected code" : "Visible part of the file";
  const f = fence(attachment.text);
  return `${head}${what} from ${attachmentLabel(attachment)}:\n\n${f}${attachment.languageId}\n${attachment.text}\n${f}\n\n${prompt}`;
}

/** The `#file:NAME` mentions of a question, in order, each once (as Copilot Chat spells them). */
export function fileMentions(prompt: string): string[] {
  const names = [...prompt.matchAll(/(?:^|\s)#file:(\S+)/g)].map((m) => m[1]);
  return [...new Set(names)];
}

/**
 * The open file a `#file:NAME` means: the one whose workspace-relative path is
 * NAME, else the only one whose base name is NAME. Undefined when none or
 * several match (the user is told which).
 */
export function matchOpenFile<T extends { path: string }>(name: string, open: readonly T[]): T | T[] | undefined {
  const exact = open.find((f) => f.path === name);
  if (exact) return exact;
  const byBase = open.filter((f) => f.path.split("/").pop() === name);
  if (byBase.length === 1) return byBase[0];
  return byBase.length > 1 ? byBase : undefined;
}
