/**
 * The status bar item (`🔑 1/3`, coloured by kind, every credential in its
 * tooltip) and a short status-bar message when the sidecar rotates keys.
 */
import * as vscode from "vscode";
import type { StatusNotification } from "./protocol";
import type { Sidecar } from "./sidecar";
import { config } from "./settings";
import { describeError, noteRotation, rotationMessage, statusBackground, statusBarText, tooltipMarkdown, type Rotation } from "./status";

/** How long the rotation message stays in the status bar. */
const ROTATION_MESSAGE_MS = 6000;

/** The status bar item: `🔑 1/3`, coloured by kind, with every credential in its tooltip. */
export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly statuses = new Map<string, StatusNotification>();
  private tooltipTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];
  private message: vscode.Disposable | undefined;
  /** Each provider's last rotation, shown in the tooltip after "(rotated)" is gone. */
  private readonly rotations = new Map<string, Rotation>();

  constructor(private readonly sidecar: Sidecar) {
    this.item = vscode.window.createStatusBarItem("llmSidecar.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "LLM Sidecar";
    this.item.command = "llmSidecar.showStatus";
    this.render();
    this.item.show();
    this.subscriptions.push(
      sidecar.onDidChangeStatus((s) => {
        const previous = this.statuses.get(s.provider);
        const rotation = noteRotation(previous, s);
        if (rotation) this.rotations.set(s.provider, rotation);
        const said = rotationMessage(previous, s);
        if (said) {
          this.message?.dispose(); // one message at a time, the newest
          this.message = vscode.window.setStatusBarMessage(said, ROTATION_MESSAGE_MS);
        }
        this.statuses.set(s.provider, s);
        this.render();
        this.scheduleTooltip();
      }),
      sidecar.onDidChangeState(() => this.refresh()),
    );
  }

  /** Ask the sidecar for the configured provider's status (it sends none when it has no credentials). */
  async refresh(): Promise<void> {
    if (this.sidecar.failure || !this.sidecar.api) {
      this.render();
      return;
    }
    try {
      const provider = config().provider;
      const result = await this.sidecar.api.status(provider);
      for (const p of result.providers) this.statuses.set(p.provider, p);
      this.render();
      await this.updateTooltip();
    } catch (err) {
      this.sidecar.log(`status: ${describeError(err, "sidecar/status")}`);
    }
  }

  render(): void {
    if (this.sidecar.failure) {
      this.item.text = "🔑 $(error) sidecar";
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
      this.item.tooltip = this.sidecar.failure;
      return;
    }
    const status = this.statuses.get(config().provider);
    this.item.text = statusBarText(status);
    const bg = statusBackground(status?.kind);
    this.item.backgroundColor = bg ? new vscode.ThemeColor(bg) : undefined;
    this.item.accessibilityInformation = {
      label: `LLM Sidecar: ${status ? `${status.provider} ${status.text}` : "starting"}`,
    };
    if (!this.item.tooltip) this.item.tooltip = "LLM Sidecar";
  }

  private scheduleTooltip(): void {
    if (this.tooltipTimer) clearTimeout(this.tooltipTimer);
    this.tooltipTimer = setTimeout(() => {
      this.tooltipTimer = undefined;
      void this.updateTooltip().catch(() => undefined);
    }, 200);
  }

  private async updateTooltip(): Promise<void> {
    const api = this.sidecar.api;
    if (!api) return;
    const result = await api.status();
    const provider = config().provider;
    // The configured provider first, even when it has no credentials yet.
    const providers = [...result.providers].sort(
      (a, b) => Number(b.provider === provider) - Number(a.provider === provider),
    );
    const md = new vscode.MarkdownString(tooltipMarkdown(providers, result.problems, new Date(), this.rotations), true);
    md.isTrusted = false;
    this.item.tooltip = md;
  }

  dispose(): void {
    if (this.tooltipTimer) clearTimeout(this.tooltipTimer);
    for (const s of this.subscriptions) s.dispose();
    this.message?.dispose();
    this.item.dispose();
  }
}

