/**
 * The llm-sidecar wire contract (docs/protocol.md in the project), as types.
 *
 * Plain TypeScript: no `vscode` import, so that the protocol layer runs and is
 * tested in plain Node over vscode-jsonrpc.
 */

export const Method = {
  status: "sidecar/status",
  login: "sidecar/login",
  loginComplete: "sidecar/loginComplete",
  loginCancel: "sidecar/loginCancel",
  logout: "sidecar/logout",
  keyAdd: "sidecar/keyAdd",
  keyList: "sidecar/keyList",
  keyRemove: "sidecar/keyRemove",
  keyReset: "sidecar/keyReset",
  policy: "sidecar/policy",
  stream: "sidecar/stream",
  models: "sidecar/models",
} as const;

export const Notification = {
  didChangeStatus: "sidecar/didChangeStatus",
  didEndLogin: "sidecar/didEndLogin",
  streamDelta: "sidecar/streamDelta",
} as const;

/** JSON-RPC error codes the sidecar answers with. */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  requestCancelled: -32800,
  noCredentials: -32001,
  allRateLimited: -32002,
  allRejected: -32003,
  upstream: -32004,
  loginFailed: -32005,
  store: -32006,
} as const;

export type StatusKind = "Normal" | "Warning" | "Error" | "Inactive";

/** Every state `sidecar/status` reports (sidecar/rotation.py `State`; a test checks they match). */
export type CredentialState = "ok" | "expiring" | "expired" | "coolingDown" | "outOfCredit" | "rejected" | "refused";

/** One rate-limit window the provider last reported for a credential (docs/protocol.md). */
export interface RateWindow {
  name: string; // requests, tokens, input-tokens, output-tokens, unified-5h, unified-7d, unified
  account: boolean; // the whole credential's (a subscription's unified window), not one model's
  model?: string; // the model scope it covers (`sonnet`, `gpt-4o`)
  limit?: number;
  remaining?: number;
  utilization?: number; // unified windows: 0..1
  status?: string; // unified windows: allowed, allowed_warning, rejected
  resetAt?: string;
  percentLeft?: number; // 0-100
}

/** The credential rests for this model scope only; other models still use it. */
export interface ModelCooldown {
  model: string;
  until: string;
  reason: "rateLimit" | "overloaded" | string;
  message?: string; // the provider's words
}

export interface CredentialInfo {
  id: string;
  kind: "api_key" | "token" | "oauth" | string;
  source: "profile" | "pool" | "env" | string;
  fingerprint: string;
  state: CredentialState | string;
  expiresAt?: string;
  cooldownUntil?: string;
  message?: string;
  label?: string;
  windows?: RateWindow[];
  modelCooldowns?: ModelCooldown[];
}

/** `sidecar/didChangeStatus` params: what a status bar shows. */
export interface StatusNotification {
  provider: string;
  kind: StatusKind;
  text: string;
  index: number;
  size: number;
  rotated: boolean;
  message?: string;
}

/** A provider's status with its credentials (`sidecar/status`, `keyReset`, ...). */
export interface ProviderStatus extends StatusNotification {
  credentials?: CredentialInfo[];
}

export interface StatusParams {
  provider?: string;
}
export interface StatusResult {
  providers: ProviderStatus[];
  problems: string[];
}

export interface KeyAddParams {
  provider: string;
  key?: string;
}
export interface KeyAddResult {
  added: boolean;
  credential: CredentialInfo;
  status: ProviderStatus;
}

export interface KeyListParams {
  provider: string;
}
export interface KeyListResult {
  provider: string;
  credentials: CredentialInfo[];
}

export type KeyRemoveParams =
  | { provider: string; fingerprint: string }
  | { provider: string; index: number };
export interface KeyRemoveResult {
  removed: CredentialInfo;
  status: ProviderStatus;
}

export interface KeyResetParams {
  provider: string;
}
export type KeyResetResult = ProviderStatus;

/** Which key when: `sticky` stays on the key that answers, `primary` goes back to the first. */
export type Policy = "sticky" | "primary";
export interface PolicyParams {
  provider: string;
  policy?: Policy; // absent: only read it
}
export interface PolicyResult {
  provider: string;
  policy: Policy;
  status: ProviderStatus;
}

export interface LoginParams {
  provider: string;
  mode?: "auto" | "paste";
  profile?: string;
}
export interface LoginResult {
  loginId: string;
  url: string;
  mode: "auto" | "paste";
  /** What the user is to do now, and why an auto login runs as paste. */
  message?: string;
}

export type LoginOutcome = "succeeded" | "failed" | "cancelled" | "superseded";

/** `sidecar/didEndLogin` params: a login ended, once per login, whoever ended it. */
export interface LoginEnded {
  loginId: string;
  provider: string;
  profile: string;
  outcome: LoginOutcome;
  message: string;
}
export interface LoginCompleteParams {
  loginId: string;
  input: string;
}
export interface LoginCancelParams {
  loginId: string;
}
export interface LogoutParams {
  provider: string;
  profile?: string;
}

export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string }
  | { type: "tool_use"; id: string; name: string; input: unknown }
  | { type: "tool_result"; tool_use_id: string; content: unknown; is_error?: boolean };

export interface Message {
  role: "user" | "assistant";
  content: string | ContentBlock[];
}

export interface Tool {
  name: string;
  description?: string;
  inputSchema: unknown;
}

export interface StreamParams {
  provider: string;
  model: string;
  messages: Message[];
  maxTokens: number;
  system?: string;
  tools?: Tool[];
  thinking?: { budgetTokens: number };
  temperature?: number;
  profile?: string;
  streamId?: string;
  /** The result leaves out `content`: for a client that built the answer from the deltas. */
  omitContent?: boolean;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

export interface Cost {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  total: number;
  currency: string;
  pricesAsOf?: string;
}

export interface StreamResult {
  streamId: string;
  model: string;
  /** The final message's blocks (the answer's only copy besides the deltas); absent with `omitContent`. */
  content?: ContentBlock[];
  stopReason: string;
  usage: Usage;
  cost?: Cost;
  credential?: { id: string; fingerprint: string };
  attempts?: number;
  /** The provider that answered (another than asked when a fallback did). */
  provider?: string;
  /** What was asked for, when a fallback answered instead. */
  fallbackFrom?: { provider: string; model: string; reason?: string };
}

export type StreamDelta =
  | { streamId: string; kind: "text"; text: string }
  | { streamId: string; kind: "thinking"; text: string }
  | { streamId: string; kind: "signature"; signature: string }
  | { streamId: string; kind: "toolUseStart"; id: string; name: string }
  | { streamId: string; kind: "toolInputDelta"; id: string; json: string }
  | { streamId: string; kind: "toolUseStop"; id: string }
  | { streamId: string; kind: "usage"; usage: Usage }
  | { streamId: string; kind: "restart"; attempt?: number; reason?: string }
  | { streamId: string; kind: "fallback"; provider: string; model: string; reason?: string };

export interface ModelInfo {
  provider: string;
  id: string;
  /** `provider`: from the provider's own list; `known`: from the sidecar's price table and catalog. */
  source: "provider" | "known";
}

export interface ModelsResult {
  models: ModelInfo[];
  /** Why a provider's own list could not be had (its known models are listed instead). */
  errors: { provider: string; message: string }[];
}

/** What the editor tells the sidecar about itself in `initializationOptions`. */
export interface InitializationOptions {
  editorInfo: { name: string; version: string };
  editorPluginInfo: { name: string; version: string };
}
