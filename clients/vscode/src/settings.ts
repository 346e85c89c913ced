/**
 * The extension's settings, read fresh on each use, with the model picker's
 * per-workspace choice (workspaceState) over the configured provider and model.
 */
import * as vscode from "vscode";

export const SECTION = "llmSidecar";
const CHOICE_KEY = "llmSidecar.modelChoice";

export interface ModelChoice {
  provider: string;
  model: string;
}

let workspaceState: vscode.Memento | undefined;

/** Called once at activation: where the picker's choice is remembered. */
export function useWorkspaceState(state: vscode.Memento): void {
  workspaceState = state;
}

export function savedChoice(): ModelChoice | undefined {
  return workspaceState?.get<ModelChoice>(CHOICE_KEY);
}

export async function saveChoice(choice: ModelChoice | undefined): Promise<void> {
  await workspaceState?.update(CHOICE_KEY, choice);
}

export function config() {
  const c = vscode.workspace.getConfiguration(SECTION);
  const choice = savedChoice();
  return {
    command: c.get<string[]>("command", []),
    pythonPath: c.get<string>("pythonPath", ""),
    env: c.get<Record<string, string>>("env", {}),
    provider: choice?.provider || c.get<string>("provider", "anthropic") || "anthropic",
    model: choice?.model || c.get<string>("model", "claude-sonnet-4-5") || "claude-sonnet-4-5",
    maxTokens: c.get<number>("maxTokens", 4096) || 4096,
  };
}
