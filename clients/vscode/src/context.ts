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

/** The user message: the attachment (labelled, fenced) first, then the question. */
export function userContent(prompt: string, attachment?: Attachment): string {
  if (!attachment) return prompt;
  const what = attachment.fromSelection ? "Selected code" : "Visible part of the file";
  const f = fence(attachment.text);
  return `${what} from ${attachmentLabel(attachment)}:\n\n${f}${attachment.languageId}\n${attachment.text}\n${f}\n\n${prompt}`;
}
