/**
 * Typed calls to the sidecar over any JSON-RPC connection: vscode-jsonrpc's
 * `MessageConnection` in tests, vscode-languageclient's `LanguageClient` in
 * the extension. No `vscode` import.
 */
import type { CancellationToken, Disposable } from "vscode-jsonrpc";
import { StreamCollector } from "./collector";
import { Method, Notification } from "./protocol";
import type {
  KeyAddParams,
  KeyAddResult,
  KeyListResult,
  KeyRemoveParams,
  KeyRemoveResult,
  KeyResetResult,
  LoginEnded,
  LoginParams,
  LoginResult,
  LogoutParams,
  ModelsResult,
  PolicyParams,
  PolicyResult,
  StatusNotification,
  StatusResult,
  StreamDelta,
  StreamParams,
  StreamResult,
} from "./protocol";

/** The part of a JSON-RPC connection the sidecar API needs. */
export interface Rpc {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onNotification(method: string, handler: (params: any) => void): Disposable;
}

let streamCounter = 0;

/** A stream id unique within this process and, very likely, across processes. */
export function newStreamId(prefix = "vscode"): string {
  streamCounter++;
  return `${prefix}-${process.pid}-${streamCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

export class SidecarApi {
  private readonly statusListeners = new Set<(s: StatusNotification) => void>();
  private readonly loginListeners = new Set<(e: LoginEnded) => void>();
  private readonly streams = new Map<string, (d: StreamDelta) => void>();
  private readonly subscriptions: Disposable[];

  constructor(private readonly rpc: Rpc) {
    // vscode-jsonrpc keeps one handler per method: register once and fan out.
    this.subscriptions = [
      rpc.onNotification(Notification.didChangeStatus, (params: StatusNotification) => {
        for (const listener of [...this.statusListeners]) listener(params);
      }),
      rpc.onNotification(Notification.didEndLogin, (params: LoginEnded) => {
        for (const listener of [...this.loginListeners]) listener(params);
      }),
      rpc.onNotification(Notification.streamDelta, (params: StreamDelta) => {
        if (params && typeof params.streamId === "string") this.streams.get(params.streamId)?.(params);
      }),
    ];
  }

  /**
   * vscode-jsonrpc reads a trailing argument as a parameter unless it is a
   * CancellationToken: an explicit `undefined` would turn params into an array.
   */
  private request<R>(method: string, params: unknown, token?: CancellationToken): Promise<R> {
    return token ? this.rpc.sendRequest<R>(method, params, token) : this.rpc.sendRequest<R>(method, params);
  }

  onDidChangeStatus(listener: (s: StatusNotification) => void): Disposable {
    this.statusListeners.add(listener);
    return { dispose: () => this.statusListeners.delete(listener) };
  }

  /** `sidecar/didEndLogin`: how each login ended (succeeded, failed, cancelled, superseded). */
  onDidEndLogin(listener: (e: LoginEnded) => void): Disposable {
    this.loginListeners.add(listener);
    return { dispose: () => this.loginListeners.delete(listener) };
  }

  status(provider?: string): Promise<StatusResult> {
    return this.request(Method.status, provider ? { provider } : {});
  }

  keyAdd(params: KeyAddParams): Promise<KeyAddResult> {
    return this.request(Method.keyAdd, params);
  }

  keyList(provider: string): Promise<KeyListResult> {
    return this.request(Method.keyList, { provider });
  }

  keyRemove(params: KeyRemoveParams): Promise<KeyRemoveResult> {
    return this.request(Method.keyRemove, params);
  }

  keyReset(provider: string): Promise<KeyResetResult> {
    return this.request(Method.keyReset, { provider });
  }

  policy(params: PolicyParams): Promise<PolicyResult> {
    return this.request(Method.policy, params);
  }

  login(params: LoginParams): Promise<LoginResult> {
    return this.request(Method.login, params);
  }

  loginComplete(loginId: string, input: string): Promise<unknown> {
    return this.request(Method.loginComplete, { loginId, input });
  }

  loginCancel(loginId: string): Promise<unknown> {
    return this.request(Method.loginCancel, { loginId });
  }

  logout(params: LogoutParams): Promise<unknown> {
    return this.request(Method.logout, params);
  }

  /** The models of `provider`, or of every provider; see docs/protocol.md. */
  models(provider?: string): Promise<ModelsResult> {
    return this.request(Method.models, provider ? { provider } : {});
  }

  /**
   * Streams one request. Each delta is applied to `collector` (a new one when
   * not given) before `onDelta` sees it; the result is the final message.
   * Cancelling `token` sends `$/cancelRequest` and rejects with -32800.
   */
  async stream(
    params: StreamParams,
    options: {
      collector?: StreamCollector;
      onDelta?: (delta: StreamDelta, collector: StreamCollector) => void;
      token?: CancellationToken;
    } = {},
  ): Promise<{ result: StreamResult; collector: StreamCollector }> {
    const collector = options.collector ?? new StreamCollector();
    const streamId = params.streamId ?? newStreamId();
    this.streams.set(streamId, (delta) => {
      collector.apply(delta);
      options.onDelta?.(delta, collector);
    });
    try {
      const result = await this.request<StreamResult>(
        Method.stream,
        { ...params, streamId },
        options.token,
      );
      collector.finish(result);
      return { result, collector };
    } finally {
      this.streams.delete(streamId);
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
    this.statusListeners.clear();
    this.streams.clear();
  }
}
