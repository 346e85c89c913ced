/**
 * Failed requests as the user sees them: one short message with the actions
 * that fix it (Add Key, Log In, Show Status, Open Log); the full error goes to
 * the "LLM Sidecar" output, so the toast never has to carry it.
 */
import * as vscode from "vscode";
import { ErrorCode } from "./protocol";
import type { Sidecar } from "./sidecar";
import { describeError, errorActions, type ErrorAction } from "./status";

const COMMANDS: Record<Exclude<ErrorAction, "Open Log">, string> = {
  "Add Key": "llmSidecar.keyAdd",
  "Log In": "llmSidecar.login",
  "Show Status": "llmSidecar.showStatus",
};

/** Show `err` with its actions; resolves once the user chose (or dismissed). */
export async function showError(sidecar: Sidecar, err: unknown, method: string): Promise<void> {
  const why = describeError(err, method);
  sidecar.log(`${method}: ${why}`);
  const actions = errorActions(err);
  const choice = await vscode.window.showErrorMessage(`LLM Sidecar: ${why}`, ...actions);
  if (choice === "Open Log") sidecar.output.show(true);
  else if (choice) await vscode.commands.executeCommand(COMMANDS[choice]);
}

/** Run `fn`; a failure (other than a cancel) is shown with its actions and gives undefined. */
export async function report<T>(sidecar: Sidecar, method: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { code?: number })?.code !== ErrorCode.requestCancelled) void showError(sidecar, err, method);
    return undefined;
  }
}
