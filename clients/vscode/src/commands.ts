/**
 * The commands other than the chat's: log in and out, the key pool, status,
 * the model picker. Each asks the sidecar and reports failures with actions.
 */
import * as vscode from "vscode";
import { report } from "./errors";
import type { LoginEnded, Policy } from "./protocol";
import { config, saveChoice } from "./settings";
import type { Sidecar } from "./sidecar";
import { credentialRows, type PickRow } from "./status";

export async function login(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/login", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  // Subscribed before the request: a login can end before its answer is read.
  let loginId: string | undefined;
  let pasting = false;
  const early: LoginEnded[] = [];
  const onEnd = (e: LoginEnded): void => {
    if (loginId === undefined) early.push(e);
    else if (e.loginId === loginId) {
      ended.dispose();
      // A paste reports its own outcome (the answer to sidecar/loginComplete).
      if (!pasting) showLoginEnded(e);
    }
  };
  const ended = api.onDidEndLogin(onEnd);
  const started = await report(sidecar, "sidecar/login", () => api.login({ provider }));
  if (!started) {
    ended.dispose();
    return;
  }
  loginId = started.loginId;
  for (const e of early) onEnd(e);

  const paste = async (): Promise<void> => {
    const input = await new Promise<string | undefined>((resolve) => {
      const box = vscode.window.createInputBox();
      box.title = `LLM Sidecar: Log In to ${provider}`;
      box.prompt = "Sign in in the browser, then paste the code it shows (code#state) or the whole redirect URL.";
      box.password = true;
      box.ignoreFocusOut = true;
      const open: vscode.QuickInputButton = {
        iconPath: new vscode.ThemeIcon("link-external"),
        tooltip: "Open the login page again",
      };
      box.buttons = [open];
      box.onDidTriggerButton(() => void vscode.env.openExternal(vscode.Uri.parse(started.url)));
      box.onDidAccept(() => {
        resolve(box.value.trim() || undefined);
        box.hide();
      });
      box.onDidHide(() => {
        resolve(undefined);
        box.dispose();
      });
      box.show();
    });
    pasting = true;
    if (!input) {
      await api.loginCancel(started.loginId).catch(() => undefined);
      return;
    }
    if ((await report(sidecar, "sidecar/loginComplete", () => api.loginComplete(started.loginId, input))) !== undefined) {
      void vscode.window.showInformationMessage(`LLM Sidecar: logged in to ${provider}.`);
    }
  };

  if (started.mode === "paste") {
    await paste();
    return;
  }
  // Auto mode: the sidecar asked VS Code (window/showDocument) to open the page;
  // its loopback server catches the redirect, and sidecar/didEndLogin says how it went.
  const choice = await vscode.window.showInformationMessage(
    `LLM Sidecar: finish logging in to ${provider} in your browser.`,
    "Open Again",
    "Paste Code Instead",
    "Cancel Login",
  );
  if (choice === "Open Again") await vscode.env.openExternal(vscode.Uri.parse(started.url));
  else if (choice === "Paste Code Instead") await paste();
  else if (choice === "Cancel Login") await api.loginCancel(started.loginId).catch(() => undefined);
}

/** A login's end, as the user is told: nothing for a cancel they asked for. */
export function showLoginEnded(e: LoginEnded): void {
  const text = `LLM Sidecar: ${e.message}`;
  if (e.outcome === "succeeded") void vscode.window.showInformationMessage(text);
  else if (e.outcome === "failed") void vscode.window.showErrorMessage(text);
  else if (e.outcome === "superseded") void vscode.window.showWarningMessage(text);
}

export async function logout(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/logout", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  if ((await report(sidecar, "sidecar/logout", () => api.logout({ provider }))) !== undefined) {
    void vscode.window.showInformationMessage(`LLM Sidecar: logged out of ${provider}.`);
  }
}

export async function keyAdd(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/keyAdd", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const choice = await vscode.window.showQuickPick(
    [
      { label: "$(key) Enter an API key…", id: "key" as const },
      { label: "$(account) Add the current login", detail: "the account you logged in with (LLM Sidecar: Log In)", id: "login" as const },
    ],
    { title: `LLM Sidecar: Add Key to the ${provider} Pool` },
  );
  if (!choice) return;
  let key: string | undefined;
  if (choice.id === "key") {
    key = (
      await vscode.window.showInputBox({
        title: `LLM Sidecar: Add Key to the ${provider} Pool`,
        prompt: "The key is stored by the sidecar (file mode 0600) and only shown by its fingerprint.",
        placeHolder: "sk-ant-api03-…",
        password: true,
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() ? undefined : "Paste a key"),
      })
    )?.trim();
    if (!key) return;
  }
  const result = await report(sidecar, "sidecar/keyAdd", () => api.keyAdd(key ? { provider, key } : { provider }));
  if (!result) return;
  void vscode.window.showInformationMessage(
    result.added
      ? `LLM Sidecar: added ${result.credential.fingerprint} to the ${provider} pool (${result.status.text}).`
      : `LLM Sidecar: ${result.credential.fingerprint} is already in the ${provider} pool.`,
  );
}

export async function keyRemove(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/keyList", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const status = await report(sidecar, "sidecar/status", async () => (await api.status(provider)).providers[0]);
  if (!status) return;
  const rows = credentialRows(status);
  if (rows.length === 0) {
    void vscode.window.showInformationMessage(`LLM Sidecar: no ${provider} credentials to remove.`);
    return;
  }
  const pick = await vscode.window.showQuickPick(rows, {
    title: `LLM Sidecar: Remove a ${provider} Key`,
    placeHolder: "Environment keys are removed by unsetting their variable",
  });
  if (!pick?.credential) return;
  const ok = await vscode.window.showWarningMessage(
    `Remove ${pick.credential.fingerprint} from the ${provider} pool? The sidecar forgets the key.`,
    { modal: true },
    "Remove",
  );
  if (ok !== "Remove") return;
  const result = await report(sidecar, "sidecar/keyRemove", () =>
    api.keyRemove({ provider, fingerprint: pick.credential!.id }),
  );
  if (result) {
    void vscode.window.showInformationMessage(`LLM Sidecar: removed ${result.removed.fingerprint} (${result.status.text}).`);
  }
}

export async function keyReset(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/keyReset", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const status = await report(sidecar, "sidecar/keyReset", () => api.keyReset(provider));
  if (status) void vscode.window.showInformationMessage(`LLM Sidecar: ${provider} rotation reset (${status.text}).`);
}

/** Which key when: a quick pick of the two policies, the one in force marked. */
export async function choosePolicy(sidecar: Sidecar): Promise<void> {
  const api = await report(sidecar, "sidecar/policy", () => sidecar.ready());
  if (!api) return;
  const { provider } = config();
  const current = await report(sidecar, "sidecar/policy", () => api.policy({ provider }));
  if (!current) return;
  type Row = vscode.QuickPickItem & { policy: Policy };
  const choices: Row[] = [
    {
      policy: "sticky",
      label: "Sticky",
      detail: "Stay on the key that answers: keeps the provider's prompt cache warm",
    },
    {
      policy: "primary",
      label: "Primary",
      detail: "Go back to the first key as soon as it is usable again",
    },
  ];
  const rows = choices.map((r) => ({ ...r, description: r.policy === current.policy ? "in use" : undefined }));
  const pick = await vscode.window.showQuickPick(rows, {
    title: `LLM Sidecar: Which ${provider} Key When`,
  });
  if (!pick || pick.policy === current.policy) return;
  const result = await report(sidecar, "sidecar/policy", () =>
    api.policy({ provider, policy: pick.policy }),
  );
  if (result) void vscode.window.showInformationMessage(`LLM Sidecar: ${provider} key policy is ${result.policy}.`);
}

export async function showStatus(sidecar: Sidecar): Promise<void> {
  if (sidecar.failure) {
    await sidecar.showFailure(sidecar.failure);
    return;
  }
  const api = await report(sidecar, "sidecar/status", () => sidecar.ready());
  if (!api) return;
  const result = await report(sidecar, "sidecar/status", () => api.status());
  if (!result) return;
  const { provider } = config();
  type Row = vscode.QuickPickItem & PickRow & { command?: string };
  const rows: Row[] = [];
  const providers = [...result.providers].sort(
    (a, b) => Number(b.provider === provider) - Number(a.provider === provider),
  );
  for (const p of providers) {
    rows.push({ label: `${p.provider}  ${p.text}`, kind: vscode.QuickPickItemKind.Separator });
    if (p.message) rows.push({ label: `$(info) ${p.message}` });
    rows.push(...credentialRows(p));
  }
  if (providers.length === 0) rows.push({ label: `$(info) No credentials yet` });
  for (const problem of result.problems) rows.push({ label: `$(warning) ${problem}` });
  rows.push(
    { label: "actions", kind: vscode.QuickPickItemKind.Separator },
    { label: "$(add) Add Key to Pool", command: "llmSidecar.keyAdd" },
    { label: "$(trash) Remove Key", command: "llmSidecar.keyRemove" },
    { label: "$(debug-restart) Reset Key Rotation", command: "llmSidecar.keyReset" },
    { label: "$(list-ordered) Choose Key Policy", command: "llmSidecar.choosePolicy" },
    { label: "$(sign-in) Log In", command: "llmSidecar.login" },
    { label: "$(comment-discussion) Open Chat", command: "llmSidecar.openChat" },
    { label: "$(symbol-class) Choose Model", command: "llmSidecar.pickModel" },
  );
  const pick = await vscode.window.showQuickPick(rows, {
    title: `LLM Sidecar: Status (${provider} in the status bar)`,
    matchOnDescription: true,
  });
  if (pick?.command) await vscode.commands.executeCommand(pick.command);
}


/**
 * Model and provider picker over `sidecar/models`: the choice is remembered for
 * this workspace and wins over the `provider` and `model` settings.
 */
export async function pickModel(sidecar: Sidecar, onPicked: () => void): Promise<void> {
  const api = await report(sidecar, "sidecar/models", () => sidecar.ready());
  if (!api) return;
  const current = config();
  type Row = vscode.QuickPickItem & { provider?: string; model?: string };
  const rows: Row[] = [];
  const pick = vscode.window.createQuickPick<Row>();
  pick.title = "LLM Sidecar: Choose a Model";
  pick.placeholder = `Now: ${current.provider} · ${current.model}`;
  pick.busy = true;
  pick.show();
  const result = await report(sidecar, "sidecar/models", () => api.models());
  if (!result) {
    pick.dispose();
    return;
  }
  let provider = "";
  // The current provider first: it is the likely choice.
  const models = [...result.models].sort(
    (a, b) => Number(b.provider === current.provider) - Number(a.provider === current.provider),
  );
  for (const m of models) {
    if (m.provider !== provider) {
      provider = m.provider;
      rows.push({ label: provider, kind: vscode.QuickPickItemKind.Separator });
    }
    const now = m.provider === current.provider && m.id === current.model;
    rows.push({
      label: `${now ? "$(check) " : ""}${m.id}`,
      description: m.source === "known" ? "known model" : undefined,
      provider: m.provider,
      model: m.id,
    });
  }
  for (const e of result.errors) rows.push({ label: `$(warning) ${e.provider}: ${e.message}` });
  pick.items = rows;
  pick.busy = false;
  const chosen = await new Promise<Row | undefined>((resolve) => {
    pick.onDidAccept(() => resolve(pick.selectedItems[0]));
    pick.onDidHide(() => resolve(undefined));
  });
  pick.dispose();
  if (!chosen?.provider || !chosen.model) return;
  await saveChoice({ provider: chosen.provider, model: chosen.model });
  onPicked();
}
