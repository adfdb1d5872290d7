import { rejectDuplicateJsonKeys } from "../attestation/client/strict-json.js";
import type { LogLevel } from "./observability/log.js";
import { EgwError } from "../attestation/egw-error.js";

/**
 * The operations document: everything the operator may tune without a
 * relying party's say, because none of it can move a prompt, a key or the
 * identity anywhere (docs/THREAT-MODEL.md, H24). Client tokens and which
 * exposed models each may call, rate limits, timeouts, retries, body and
 * connection limits, the PROXY protocol switch and the log level.
 *
 * Destinations live in the trust policy (attestation/trust-policy.ts) and
 * nowhere else: this codec has no field that names a provider, an origin,
 * a secret or a key, and refuses unknown fields, so a host cannot smuggle
 * one in. test/enclave/operations-property.test.ts checks that no value of
 * this schema changes a destination.
 *
 * ```jsonc
 * {
 *   "version": 1,
 *   "clients": [ { "name": "app", "tokenSha256": "<64 hex>", "models": ["*"], "rateLimitPerMinute": 600 } ],
 *   "limits": { "maxBodyBytes": 10485760, … },      // optional, each field optional (DEFAULT_LIMITS)
 *   "proxyProtocol": false,                          // optional
 *   "logLevel": "info"                               // optional
 * }
 * ```
 *
 * Its hash is attested too (channel binding v3 `config_sha256` covers it),
 * for an auditor who wants the exact deployment, but no client needs to pin
 * it: changing a token or a limit never breaks a client.
 */
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

export interface Operations {
  version: 1;
  clients: ClientConfig[];
  limits: Limits;
  /** The host relay sends a PROXY protocol v2 header before TLS on every connection. */
  proxyProtocol: boolean;
  /** Absent: the enclave's EGW_LOG_LEVEL (default info). */
  logLevel?: LogLevel;
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

export const MAX_OPERATIONS_BYTES = 1024 * 1024;
export const MAX_CLIENTS = 10_000;
const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MODEL_PATTERN = /^(\*|[A-Za-z0-9][A-Za-z0-9._:/@*-]{0,127})$/;

export class OperationsError extends EgwError<"ERR_CONFIG"> {
  override readonly name = "OperationsError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_CONFIG", message, "fix-config", options);
  }
}

function fail(path: string, message: string): never {
  throw new OperationsError(`operations ${path}: ${message}`);
}

function obj(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(path, "must be an object");
  return value as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) fail(`${path}.${key.slice(0, 64)}`, "unknown field");
}

function str(value: unknown, path: string, pattern: RegExp): string {
  if (typeof value !== "string" || value.length === 0) fail(path, "must be a non-empty string");
  if (!pattern.test(value)) fail(path, `"${value.slice(0, 64)}" has an invalid format`);
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

function parseClients(raw: unknown): ClientConfig[] {
  if (!Array.isArray(raw)) fail("clients", "must be an array (empty means no client can call)");
  if (raw.length > MAX_CLIENTS) fail("clients", `at most ${MAX_CLIENTS}`);
  const clients = raw.map((value, i): ClientConfig => {
    const path = `clients[${i}]`;
    const c = obj(value, path);
    onlyKeys(c, ["name", "tokenSha256", "models", "rateLimitPerMinute"], path);
    if (!Array.isArray(c.models) || c.models.length > 1024) fail(`${path}.models`, "must be an array of at most 1024 names or patterns");
    const client: ClientConfig = {
      name: str(c.name, `${path}.name`, NAME),
      // Never the token itself: a host that reads this file learns nothing it can call with.
      tokenSha256: str(c.tokenSha256, `${path}.tokenSha256`, /^[0-9a-f]{64}$/),
      models: c.models.map((m, j) => str(m, `${path}.models[${j}]`, MODEL_PATTERN)),
    };
    if (c.rateLimitPerMinute !== undefined) client.rateLimitPerMinute = posInt(c.rateLimitPerMinute, `${path}.rateLimitPerMinute`, 1_000_000);
    return client;
  });
  const tokens = new Set<string>();
  const names = new Set<string>();
  for (const c of clients) {
    if (tokens.has(c.tokenSha256)) fail("clients", `two clients share a token (second: "${c.name}")`);
    if (names.has(c.name)) fail("clients", `two clients share the name "${c.name}"`);
    tokens.add(c.tokenSha256);
    names.add(c.name);
  }
  return clients;
}

function parseLimits(raw: unknown): Limits {
  const limits = { ...DEFAULT_LIMITS };
  if (raw === undefined) return limits;
  const l = obj(raw, "limits");
  onlyKeys(l, Object.keys(DEFAULT_LIMITS), "limits");
  for (const [key, value] of Object.entries(l)) {
    (limits as Record<string, number>)[key] = key === "attestationReservedShare" ? share(value, `limits.${key}`) : posInt(value, `limits.${key}`, 2 ** 31);
  }
  if (limits.maxBodyBytes < 1024) fail("limits.maxBodyBytes", "must be at least 1024");
  // Otherwise a body of the allowed size could never be admitted.
  if (limits.maxInFlightBodyBytes < limits.maxBodyBytes) fail("limits.maxInFlightBodyBytes", "must be at least limits.maxBodyBytes");
  if (limits.bodyTimeoutMs < 100) fail("limits.bodyTimeoutMs", "must be at least 100");
  return limits;
}

/** Parses the operations document from its exact bytes. Throws OperationsError (ERR_CONFIG) naming the field at fault. */
export function parseOperations(bytes: Uint8Array): Operations {
  if (!(bytes instanceof Uint8Array)) fail("(bytes)", "expected a Uint8Array");
  if (bytes.length > MAX_OPERATIONS_BYTES) fail("(bytes)", `is ${bytes.length} bytes, at most ${MAX_OPERATIONS_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fail("(bytes)", "is not UTF-8");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    fail("(bytes)", "is not JSON");
  }
  rejectDuplicateJsonKeys(text, (key) => new OperationsError(`operations: field "${key.slice(0, 64)}" appears twice in one object`));
  const o = obj(raw, "(root)");
  onlyKeys(o, ["version", "clients", "limits", "proxyProtocol", "logLevel"], "(root)");
  if (o.version !== 1) fail("version", "must be 1");
  const operations: Operations = { version: 1, clients: parseClients(o.clients), limits: parseLimits(o.limits), proxyProtocol: false };
  if (o.proxyProtocol !== undefined) {
    if (typeof o.proxyProtocol !== "boolean") fail("proxyProtocol", "must be a boolean");
    operations.proxyProtocol = o.proxyProtocol;
  }
  if (o.logLevel !== undefined) {
    if (typeof o.logLevel !== "string" || !LOG_LEVELS.includes(o.logLevel as LogLevel)) fail("logLevel", `must be one of ${LOG_LEVELS.join(", ")}`);
    operations.logLevel = o.logLevel as LogLevel;
  }
  return operations;
}
