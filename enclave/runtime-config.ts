import { createHash } from "node:crypto";

/**
 * The runtime configuration the host hands the enclave: which providers
 * exist, which models route where, who may call, what the enclave may dial,
 * and every limit. It is attested: the SHA-256 of the exact bytes received
 * goes into the attestation document's user_data, so a client can tell
 * which configuration (and therefore which egress allowlist) it talks to.
 * Secrets are never part of it, only their names.
 */
export type ProviderKind = "openai" | "openai-compatible" | "anthropic" | "gemini" | "local";

export interface ProviderConfig {
  name: string;
  kind: ProviderKind;
  baseUrl: string;
  /** Name of the secret holding the API key (env var in development, sealed blob in production). */
  secret?: string;
  /** OpenAI-compatible only: what the endpoint can do. Default chat only… plus embeddings/images when listed. */
  capabilities?: { chat?: boolean; embeddings?: boolean; images?: boolean };
}

export interface ModelRoute {
  provider: string;
  model: string;
  /** Exposed model names to try, in order, when this one fails before any byte reached the client. */
  fallbacks?: string[];
  /** Human description for GET /v1/models. */
  description?: string;
}

export interface ClientConfig {
  name: string;
  /** SHA-256 (hex) of the bearer token; the token itself is never stored. */
  tokenSha256: string;
  /** Exposed model names or patterns ("*", "local/*"). */
  models: string[];
  /** Requests per minute for this client; default limits.rateLimitPerMinute. */
  rateLimitPerMinute?: number;
}

export interface Limits {
  maxBodyBytes: number;
  maxHeaderBytes: number;
  maxConcurrentRequests: number;
  maxConnections: number;
  rateLimitPerMinute: number;
  /** Requests per minute per client address, when the relay reports addresses (proxyProtocol). */
  ipRateLimitPerMinute: number;
  attestationPerSecond: number;
  /** Fresh attestation documents per second per client address for requests without a client proof (burst: twice this). */
  attestationPerAddressPerSecond: number;
  /** Share (0..1) of attestationPerSecond only requests with a valid x-egw-attest-proof may use. */
  attestationReservedShare: number;
  /** Request body bytes held in memory across all requests at once (503 overloaded beyond). */
  maxInFlightBodyBytes: number;
  /** A request body must arrive within this many ms of the gateway starting to read it (408 request_timeout). */
  bodyTimeoutMs: number;
  connectTimeoutMs: number;
  firstByteTimeoutMs: number;
  idleTimeoutMs: number;
  totalTimeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
}

export interface RuntimeConfig {
  version: 1;
  providers: ProviderConfig[];
  /** Explicit routes: exposed model name → provider and upstream model. */
  models: Record<string, ModelRoute>;
  /** Also route "<provider>/<model>" names to that provider, for any model. */
  prefixRouting: boolean;
  /** host:port pairs the enclave may dial; every provider's host must be listed. */
  egressAllowlist: string[];
  clients: ClientConfig[];
  limits: Limits;
  /** The host relay sends a PROXY protocol v2 header before TLS on every connection. */
  proxyProtocol: boolean;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 10 * 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
  maxConcurrentRequests: 256,
  maxConnections: 4096,
  rateLimitPerMinute: 600,
  ipRateLimitPerMinute: 6000,
  attestationPerSecond: 10,
  attestationPerAddressPerSecond: 2,
  attestationReservedShare: 0.5,
  // Well under an enclave's memory (the default image gets 1 GiB or more),
  // well over what concurrent chat requests hold (a few KiB each): a few
  // large uploads at once, never maxConcurrentRequests × maxBodyBytes.
  maxInFlightBodyBytes: 64 * 1024 * 1024,
  bodyTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  firstByteTimeoutMs: 120_000,
  idleTimeoutMs: 60_000,
  totalTimeoutMs: 600_000,
  maxRetries: 2,
  retryBaseDelayMs: 250,
  retryMaxDelayMs: 8_000,
};

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "ERR_CONFIG";
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;
const KINDS: ProviderKind[] = ["openai", "openai-compatible", "anthropic", "gemini", "local"];
const DEFAULT_BASE_URLS: Partial<Record<ProviderKind, string>> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
  gemini: "https://generativelanguage.googleapis.com",
  local: "local://",
};

function fail(path: string, message: string): never {
  throw new ConfigError(`runtime config ${path}: ${message}`);
}

function obj(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(path, "must be an object");
  return value as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], path: string): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) fail(`${path}.${key}`, "unknown field");
}

function str(value: unknown, path: string, pattern?: RegExp): string {
  if (typeof value !== "string" || value.length === 0) fail(path, "must be a non-empty string");
  if (pattern && !pattern.test(value)) fail(path, `"${value.slice(0, 64)}" has an invalid format`);
  return value;
}

function posInt(value: unknown, path: string, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) fail(path, `must be an integer in 0..${max}`);
  return value;
}

function share(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1) fail(path, "must be a number in 0..1");
  return value;
}

/** "host:port" of a URL, as the egress allowlist names it. */
export function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : url.protocol === "http:" ? "80" : "");
  return `${url.hostname}:${port}`;
}

function parseProvider(value: unknown, i: number): ProviderConfig {
  const path = `providers[${i}]`;
  const o = obj(value, path);
  onlyKeys(o, ["name", "kind", "baseUrl", "secret", "capabilities"], path);
  const name = str(o.name, `${path}.name`, NAME);
  const kind = str(o.kind, `${path}.kind`) as ProviderKind;
  if (!KINDS.includes(kind)) fail(`${path}.kind`, `must be one of ${KINDS.join(", ")}`);
  const baseUrl = o.baseUrl === undefined ? DEFAULT_BASE_URLS[kind] : str(o.baseUrl, `${path}.baseUrl`);
  if (baseUrl === undefined) fail(`${path}.baseUrl`, `is required for kind ${kind}`);
  if (kind !== "local") {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      fail(`${path}.baseUrl`, "is not a URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") fail(`${path}.baseUrl`, "must be http(s)");
    if (url.username || url.password) fail(`${path}.baseUrl`, "must not carry credentials");
    if (url.search || url.hash) fail(`${path}.baseUrl`, "must not have a query or fragment");
  }
  const provider: ProviderConfig = { name, kind, baseUrl: baseUrl.replace(/\/+$/, "") };
  if (o.secret !== undefined) provider.secret = str(o.secret, `${path}.secret`, /^[A-Z][A-Z0-9_]{0,63}$/);
  if (o.capabilities !== undefined) {
    const c = obj(o.capabilities, `${path}.capabilities`);
    onlyKeys(c, ["chat", "embeddings", "images"], `${path}.capabilities`);
    provider.capabilities = {};
    for (const k of ["chat", "embeddings", "images"] as const) {
      if (c[k] !== undefined) {
        if (typeof c[k] !== "boolean") fail(`${path}.capabilities.${k}`, "must be a boolean");
        provider.capabilities[k] = c[k];
      }
    }
  }
  return provider;
}

export function parseRuntimeConfig(bytes: Uint8Array): RuntimeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    fail("", "is not valid JSON");
  }
  const o = obj(raw, "(root)");
  onlyKeys(o, ["version", "providers", "models", "prefixRouting", "egressAllowlist", "clients", "limits", "proxyProtocol"], "(root)");
  if (o.version !== 1) fail("version", "must be 1");

  if (!Array.isArray(o.providers) || o.providers.length === 0) fail("providers", "must be a non-empty array");
  if (o.providers.length > 64) fail("providers", "at most 64");
  const providers = o.providers.map(parseProvider);
  const byName = new Map<string, ProviderConfig>();
  for (const p of providers) {
    if (byName.has(p.name)) fail("providers", `duplicate provider name "${p.name}"`);
    byName.set(p.name, p);
  }

  const models: Record<string, ModelRoute> = {};
  const rawModels = o.models === undefined ? {} : obj(o.models, "models");
  if (Object.keys(rawModels).length > 1024) fail("models", "at most 1024 routes");
  for (const [exposed, value] of Object.entries(rawModels)) {
    const path = `models["${exposed.slice(0, 64)}"]`;
    str(exposed, path, MODEL_NAME);
    const r = obj(value, path);
    onlyKeys(r, ["provider", "model", "fallbacks", "description"], path);
    const provider = str(r.provider, `${path}.provider`, NAME);
    if (!byName.has(provider)) fail(`${path}.provider`, `names no configured provider "${provider}"`);
    // An alias shaped like "<provider>/<model>" must point at that provider:
    // otherwise "anthropic/claude" could silently be served by someone else.
    const slash = exposed.indexOf("/");
    if (slash > 0) {
      const prefix = exposed.slice(0, slash);
      if (byName.has(prefix) && prefix !== provider) {
        fail(path, `is named after provider "${prefix}" but routes to "${provider}"`);
      }
    }
    const route: ModelRoute = { provider, model: str(r.model, `${path}.model`, MODEL_NAME) };
    if (r.fallbacks !== undefined) {
      if (!Array.isArray(r.fallbacks) || r.fallbacks.length > 4) fail(`${path}.fallbacks`, "must be an array of at most 4 model names");
      route.fallbacks = r.fallbacks.map((f, j) => str(f, `${path}.fallbacks[${j}]`, MODEL_NAME));
    }
    if (r.description !== undefined) route.description = str(r.description, `${path}.description`).slice(0, 200);
    models[exposed] = route;
  }
  for (const [exposed, route] of Object.entries(models)) {
    for (const f of route.fallbacks ?? []) {
      if (!models[f]) fail(`models["${exposed}"].fallbacks`, `"${f}" is not a configured model`);
      if (f === exposed) fail(`models["${exposed}"].fallbacks`, "a model cannot fall back to itself");
    }
  }

  const prefixRouting = o.prefixRouting === undefined ? true : o.prefixRouting;
  if (typeof prefixRouting !== "boolean") fail("prefixRouting", "must be a boolean");

  if (!Array.isArray(o.egressAllowlist)) fail("egressAllowlist", "must be an array of host:port");
  const egressAllowlist = o.egressAllowlist.map((e, i) => str(e, `egressAllowlist[${i}]`, /^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/).toLowerCase());
  for (const p of providers) {
    if (p.kind === "local") continue;
    const target = hostPort(new URL(p.baseUrl)).toLowerCase();
    if (!egressAllowlist.includes(target)) fail("egressAllowlist", `does not list ${target}, needed by provider "${p.name}"`);
  }

  if (!Array.isArray(o.clients)) fail("clients", "must be an array (empty means no client can call)");
  const clients = o.clients.map((value, i): ClientConfig => {
    const path = `clients[${i}]`;
    const c = obj(value, path);
    onlyKeys(c, ["name", "tokenSha256", "models", "rateLimitPerMinute"], path);
    const client: ClientConfig = {
      name: str(c.name, `${path}.name`, NAME),
      tokenSha256: str(c.tokenSha256, `${path}.tokenSha256`, /^[0-9a-f]{64}$/),
      models: Array.isArray(c.models) ? c.models.map((m, j) => str(m, `${path}.models[${j}]`, /^(\*|[A-Za-z0-9][A-Za-z0-9._:/@*-]{0,127})$/)) : fail(`${path}.models`, "must be an array"),
    };
    if (c.rateLimitPerMinute !== undefined) client.rateLimitPerMinute = posInt(c.rateLimitPerMinute, `${path}.rateLimitPerMinute`, 1_000_000);
    return client;
  });
  const tokens = new Set<string>();
  for (const c of clients) {
    if (tokens.has(c.tokenSha256)) fail("clients", `two clients share a token (second: "${c.name}")`);
    tokens.add(c.tokenSha256);
  }

  const limits = { ...DEFAULT_LIMITS };
  if (o.limits !== undefined) {
    const l = obj(o.limits, "limits");
    onlyKeys(l, Object.keys(DEFAULT_LIMITS), "limits");
    for (const [key, value] of Object.entries(l)) {
      (limits as Record<string, number>)[key] = key === "attestationReservedShare" ? share(value, `limits.${key}`) : posInt(value, `limits.${key}`, 2 ** 31);
    }
    if (limits.maxBodyBytes < 1024) fail("limits.maxBodyBytes", "must be at least 1024");
    // Otherwise a body of the allowed size could never be admitted.
    if (limits.maxInFlightBodyBytes < limits.maxBodyBytes) fail("limits.maxInFlightBodyBytes", "must be at least limits.maxBodyBytes");
    if (limits.bodyTimeoutMs < 100) fail("limits.bodyTimeoutMs", "must be at least 100");
  }

  const proxyProtocol = o.proxyProtocol === undefined ? false : o.proxyProtocol;
  if (typeof proxyProtocol !== "boolean") fail("proxyProtocol", "must be a boolean");

  return { version: 1, providers, models, prefixRouting, egressAllowlist, clients, limits, proxyProtocol };
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A development configuration: the local model only, one client token, no egress. */
export function developmentConfig(tokenSha256: string, extra: { providers?: ProviderConfig[]; egress?: string[] } = {}): string {
  const config = {
    version: 1,
    providers: [{ name: "local", kind: "local" }, ...(extra.providers ?? [])],
    models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } },
    prefixRouting: true,
    egressAllowlist: extra.egress ?? [],
    clients: [{ name: "dev", tokenSha256, models: ["*"] }],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}
