import { createHash } from "node:crypto";
import { rejectDuplicateJsonKeys } from "./client/strict-json.js";
import { EgwError } from "./egw-error.js";

/**
 * The trust policy: every setting that decides where a prompt, a provider key
 * or the enclave's identity can go (docs/PROTOCOL.md, "Trust policy"). The
 * host hands it to the enclave at boot, so it is hostile input until a
 * relying party has checked it: the enclave attests the SHA-256 of the exact
 * bytes (channel binding v3, `policy_sha256`) and serves the bytes over the
 * attested connection, and clients constrain what it says (allowed origins,
 * identity mode, key ARNs) rather than pinning a brittle hash.
 *
 * Everything that cannot move a byte elsewhere (client tokens, limits,
 * timeouts, retries, log level) lives in the operations document instead
 * (enclave/operations.ts), so changing a token never changes this hash.
 *
 * One codec for both sides: the enclave parses it to boot, the verifying
 * client parses the served copy to judge it. It imports nothing but
 * node:crypto, the strict-JSON helper and the error base.
 *
 * ```jsonc
 * {
 *   "version": 1,
 *   "providers": [                                   // 1..64, names unique
 *     { "name": "openai", "kind": "openai", "secret": "OPENAI_API_KEY" },
 *     { "name": "acme", "kind": "openai-compatible", "baseUrl": "https://llm.acme.example/v1",
 *       "secret": "ACME_KEY", "capabilities": { "chat": true, "embeddings": false, "images": false, "responses": false } },
 *     { "name": "local", "kind": "local" }
 *   ],
 *   "models": { "gpt": { "provider": "openai", "model": "gpt-5", "fallbacks": ["..."], "description": "..." } },
 *   "prefixRouting": true,                           // also route "<provider>/<model>"
 *   "secrets": { "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/<uuid>" },   // when any provider has a secret
 *   "identity": { "mode": "ephemeral" }              // or:
 *   // "identity": { "mode": "sealed", "kmsKeyArn": "arn:aws:kms:…:key/…",
 *   //               "generatorPcrs": [ { "0": "<96 hex>", "1": "…", "2": "…" } ] }   // optional, for rollouts
 * }
 * ```
 *
 * Rules outside development (a simulated NSM; `dev: true`):
 *  - first-party kinds are fixed to their official origin (`baseUrl` is
 *    refused), every other endpoint is an `openai-compatible` entry whose
 *    origin is written here for a client to see;
 *  - origins are https only, with no credentials, query or fragment;
 *  - one sealed secret serves at most one provider (always, not only outside
 *    dev: the secret's KMS encryption context names exactly one origin);
 *  - key ARNs are full key ARNs (`…:key/<id>`), never aliases or bare ids:
 *    KMS answers carry the key ARN, and the enclave compares it.
 * In development `baseUrl` may point a first-party kind at a local mock and
 * origins may be plain http, because a simulated enclave's documents chain to
 * a development root that no production client trusts.
 */
export const TRUST_POLICY_VERSION = 1;
export const MAX_TRUST_POLICY_BYTES = 256 * 1024;

export type ProviderKind = "openai" | "anthropic" | "gemini" | "xai" | "openai-compatible" | "local";
export const PROVIDER_KINDS: readonly ProviderKind[] = Object.freeze(["openai", "anthropic", "gemini", "xai", "openai-compatible", "local"]);

/** The official base URL of each first-party kind; its origin is the only one that kind may reach outside development. */
export const FIRST_PARTY_BASE_URLS: Readonly<Partial<Record<ProviderKind, string>>> = Object.freeze({
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com",
  gemini: "https://generativelanguage.googleapis.com",
  xai: "https://api.x.ai/v1",
});

export interface TrustProvider {
  name: string;
  kind: ProviderKind;
  /** Full base URL (no trailing slash); "local://" for the built-in model. */
  baseUrl: string;
  /** `new URL(baseUrl).origin`, or "local" for the built-in model. */
  origin: string;
  /** Name of the sealed secret this provider's key comes from. */
  secret?: string;
  /**
   * openai-compatible only: what the endpoint serves (absent fields: chat true, the rest false).
   * `responses`: the endpoint speaks OpenAI's Responses API itself, so /v1/responses passes through
   * to it instead of being translated (kind openai always does; absent means false).
   */
  capabilities?: { chat?: boolean; embeddings?: boolean; images?: boolean; responses?: boolean };
}

export interface TrustModelRoute {
  provider: string;
  model: string;
  fallbacks?: string[];
  description?: string;
}

export type IdentityPolicy = { mode: "ephemeral" } | { mode: "sealed"; kmsKeyArn: string; generatorPcrs?: ReadonlyMap<number, Uint8Array>[] };

export interface TrustPolicy {
  version: 1;
  providers: TrustProvider[];
  models: Record<string, TrustModelRoute>;
  prefixRouting: boolean;
  /** Present when a provider names a secret. */
  secrets?: { kmsKeyArn: string };
  identity: IdentityPolicy;
}

export class TrustPolicyError extends EgwError<"ERR_TRUST_POLICY_INVALID"> {
  override readonly name = "TrustPolicyError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_TRUST_POLICY_INVALID", message, "fix-policy", options);
  }
}

export interface ParseTrustPolicyOptions {
  /** Development rules (simulated NSM): http origins and first-party base-URL overrides allowed. */
  dev: boolean;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;
const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** A full KMS key ARN (AWS KMS Developer Guide, "Key identifiers"): partition, region, account, key/<uuid or mrk-…>. */
export const KMS_KEY_ARN =
  /^arn:(aws[a-z-]*):kms:([a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}):(\d{12}):key\/(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
const PCR_HEX = /^[0-9a-f]{96}$/;
const MAX_PROVIDERS = 64;
const MAX_ROUTES = 1024;
const MAX_GENERATOR_SETS = 8;

function fail(path: string, message: string): never {
  throw new TrustPolicyError(`trust policy ${path}: ${message}`);
}

function obj(value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(path, "must be an object");
  return value as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) fail(`${path}.${key.slice(0, 64)}`, "unknown field");
}

function str(value: unknown, path: string, pattern?: RegExp): string {
  if (typeof value !== "string" || value.length === 0) fail(path, "must be a non-empty string");
  if (pattern && !pattern.test(value)) fail(path, `"${value.slice(0, 64)}" has an invalid format`);
  return value;
}

function bool(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") fail(path, "must be a boolean");
  return value;
}

/** The region a full key ARN names. */
export function kmsKeyRegion(arn: string): string {
  const m = KMS_KEY_ARN.exec(arn);
  if (!m) throw new TrustPolicyError(`"${arn.slice(0, 128)}" is not a full KMS key ARN`);
  return m[2]!;
}

/**
 * The AWS KMS endpoint host for a key ARN's region (AWS General Reference,
 * "AWS Key Management Service endpoints"): kms.<region>.amazonaws.com, and
 * .amazonaws.com.cn in the China partition.
 */
export function kmsEndpointHost(arn: string): string {
  const m = KMS_KEY_ARN.exec(arn);
  if (!m) throw new TrustPolicyError(`"${arn.slice(0, 128)}" is not a full KMS key ARN`);
  return `kms.${m[2]}.amazonaws.com${m[1] === "aws-cn" ? ".cn" : ""}`;
}

function keyArn(value: unknown, path: string): string {
  const arn = str(value, path);
  if (arn.length > 2048 || !KMS_KEY_ARN.test(arn)) fail(path, "must be a full KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>); aliases and bare key ids are refused");
  return arn;
}

function parseBaseUrl(raw: string, path: string, dev: boolean): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(path, "is not a URL");
  }
  if (url.protocol !== "https:" && !(dev && url.protocol === "http:")) fail(path, dev ? "must be http(s)" : "must be https (plain http is for development only)");
  if (url.username || url.password) fail(path, "must not carry credentials");
  if (url.search || url.hash) fail(path, "must not have a query or fragment");
  return url;
}

function parseProvider(value: unknown, i: number, dev: boolean): TrustProvider {
  const path = `providers[${i}]`;
  const o = obj(value, path);
  onlyKeys(o, ["name", "kind", "baseUrl", "secret", "capabilities"], path);
  const name = str(o.name, `${path}.name`, NAME);
  const kind = str(o.kind, `${path}.kind`) as ProviderKind;
  if (!PROVIDER_KINDS.includes(kind)) fail(`${path}.kind`, `must be one of ${PROVIDER_KINDS.join(", ")}`);
  if (kind === "local") {
    if (o.baseUrl !== undefined || o.secret !== undefined || o.capabilities !== undefined) fail(path, "a local provider takes only name and kind");
    return { name, kind, baseUrl: "local://", origin: "local" };
  }
  const official = FIRST_PARTY_BASE_URLS[kind];
  let raw: string;
  if (o.baseUrl === undefined) {
    if (official === undefined) fail(`${path}.baseUrl`, `is required for kind ${kind}`);
    raw = official;
  } else {
    raw = str(o.baseUrl, `${path}.baseUrl`);
    // A first-party kind names its official origin and nothing else: a
    // policy that says "openai" must mean api.openai.com to the client that
    // reads it. Other endpoints are openai-compatible entries, visible as such.
    if (official !== undefined && !dev) fail(`${path}.baseUrl`, `kind ${kind} is fixed to ${new URL(official).origin}; use kind openai-compatible for another endpoint`);
  }
  const url = parseBaseUrl(raw, `${path}.baseUrl`, dev);
  const provider: TrustProvider = { name, kind, baseUrl: url.href.replace(/\/+$/, ""), origin: url.origin };
  if (o.secret !== undefined) provider.secret = str(o.secret, `${path}.secret`, SECRET_NAME);
  if (o.capabilities !== undefined) {
    if (kind !== "openai-compatible") fail(`${path}.capabilities`, "only openai-compatible providers declare capabilities");
    const c = obj(o.capabilities, `${path}.capabilities`);
    onlyKeys(c, ["chat", "embeddings", "images", "responses"], `${path}.capabilities`);
    provider.capabilities = {};
    for (const k of ["chat", "embeddings", "images", "responses"] as const) if (c[k] !== undefined) provider.capabilities[k] = bool(c[k], `${path}.capabilities.${k}`, false);
  }
  return provider;
}

function parseRoutes(raw: unknown, byName: ReadonlyMap<string, TrustProvider>): Record<string, TrustModelRoute> {
  const models: Record<string, TrustModelRoute> = {};
  const o = raw === undefined ? {} : obj(raw, "models");
  if (Object.keys(o).length > MAX_ROUTES) fail("models", `at most ${MAX_ROUTES} routes`);
  for (const [exposed, value] of Object.entries(o)) {
    const path = `models["${exposed.slice(0, 64)}"]`;
    str(exposed, path, MODEL_NAME);
    const r = obj(value, path);
    onlyKeys(r, ["provider", "model", "fallbacks", "description"], path);
    const provider = str(r.provider, `${path}.provider`, NAME);
    if (!byName.has(provider)) fail(`${path}.provider`, `names no configured provider "${provider}"`);
    // "anthropic/claude" must not silently be served by someone else.
    const slash = exposed.indexOf("/");
    if (slash > 0) {
      const prefix = exposed.slice(0, slash);
      if (byName.has(prefix) && prefix !== provider) fail(path, `is named after provider "${prefix}" but routes to "${provider}"`);
    }
    const route: TrustModelRoute = { provider, model: str(r.model, `${path}.model`, MODEL_NAME) };
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
  return models;
}

function parseIdentity(raw: unknown): IdentityPolicy {
  if (raw === undefined) fail("identity", 'is required: { "mode": "ephemeral" } or { "mode": "sealed", "kmsKeyArn": … }');
  const o = obj(raw, "identity");
  if (o.mode === "ephemeral") {
    onlyKeys(o, ["mode"], "identity");
    return { mode: "ephemeral" };
  }
  if (o.mode !== "sealed") fail("identity.mode", 'must be "ephemeral" or "sealed"');
  onlyKeys(o, ["mode", "kmsKeyArn", "generatorPcrs"], "identity");
  const identity: IdentityPolicy = { mode: "sealed", kmsKeyArn: keyArn(o.kmsKeyArn, "identity.kmsKeyArn") };
  if (o.generatorPcrs !== undefined) {
    if (!Array.isArray(o.generatorPcrs) || o.generatorPcrs.length === 0 || o.generatorPcrs.length > MAX_GENERATOR_SETS) {
      fail("identity.generatorPcrs", `must list 1..${MAX_GENERATOR_SETS} PCR sets`);
    }
    identity.generatorPcrs = o.generatorPcrs.map((set, i) => {
      const s = obj(set, `identity.generatorPcrs[${i}]`);
      const keys = Object.keys(s);
      // The generator's image, kernel and application: a set that leaves one
      // out would accept an identity made by other code.
      if (keys.length !== 3 || !["0", "1", "2"].every((k) => keys.includes(k))) fail(`identity.generatorPcrs[${i}]`, 'must name exactly PCRs "0", "1" and "2"');
      return new Map([0, 1, 2].map((n) => [n, new Uint8Array(Buffer.from(str(s[String(n)], `identity.generatorPcrs[${i}].${n}`, PCR_HEX), "hex"))]));
    });
  }
  return identity;
}

/** Parses the trust policy from its exact bytes. Throws TrustPolicyError naming the field at fault. */
export function parseTrustPolicy(bytes: Uint8Array, options: ParseTrustPolicyOptions): TrustPolicy {
  if (!(bytes instanceof Uint8Array)) fail("(bytes)", "expected a Uint8Array");
  if (bytes.length > MAX_TRUST_POLICY_BYTES) fail("(bytes)", `is ${bytes.length} bytes, at most ${MAX_TRUST_POLICY_BYTES}`);
  if (typeof options?.dev !== "boolean") fail("(options)", "dev must be said on purpose (true or false)");
  const { dev } = options;
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
  rejectDuplicateJsonKeys(text, (key) => new TrustPolicyError(`trust policy: field "${key.slice(0, 64)}" appears twice in one object`));
  const o = obj(raw, "(root)");
  onlyKeys(o, ["version", "providers", "models", "prefixRouting", "secrets", "identity"], "(root)");
  if (o.version !== TRUST_POLICY_VERSION) fail("version", `must be ${TRUST_POLICY_VERSION}`);
  if (!Array.isArray(o.providers) || o.providers.length === 0) fail("providers", "must be a non-empty array");
  if (o.providers.length > MAX_PROVIDERS) fail("providers", `at most ${MAX_PROVIDERS}`);
  const providers = o.providers.map((p, i) => parseProvider(p, i, dev));
  const byName = new Map<string, TrustProvider>();
  const bySecret = new Map<string, string>();
  for (const p of providers) {
    if (byName.has(p.name)) fail("providers", `duplicate provider name "${p.name}"`);
    byName.set(p.name, p);
    if (p.secret !== undefined) {
      // The secret's KMS encryption context names one origin; a second
      // provider could only be another place to send it.
      const other = bySecret.get(p.secret);
      if (other !== undefined) fail("providers", `secret ${p.secret} is used by "${other}" and "${p.name}"; one secret serves one provider`);
      bySecret.set(p.secret, p.name);
    }
  }
  const models = parseRoutes(o.models, byName);
  const prefixRouting = bool(o.prefixRouting, "prefixRouting", true);
  const policy: TrustPolicy = { version: 1, providers, models, prefixRouting, identity: parseIdentity(o.identity) };
  if (o.secrets !== undefined) {
    const s = obj(o.secrets, "secrets");
    onlyKeys(s, ["kmsKeyArn"], "secrets");
    policy.secrets = { kmsKeyArn: keyArn(s.kmsKeyArn, "secrets.kmsKeyArn") };
  }
  // In development secrets may come from the environment, with no KMS key;
  // the enclave still refuses a sealed file when no key is named.
  if (bySecret.size > 0 && policy.secrets === undefined && !dev) fail("secrets", "is required when a provider names a secret: which KMS key may release it");
  if (bySecret.size === 0 && policy.secrets !== undefined) fail("secrets", "names a KMS key but no provider uses a secret");
  return policy;
}

/** SHA-256 of the exact bytes: what channel binding v3 attests as `policy_sha256`. */
export function trustPolicySha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The origins a prompt can be sent to under this policy (the built-in model appears as "local"). */
export function upstreamOrigins(policy: TrustPolicy): string[] {
  return [...new Set(policy.providers.map((p) => p.origin))].sort();
}

/** "host:port" of a URL, as the egress allowlist names it. */
export function hostPort(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : url.protocol === "http:" ? "80" : "");
  return `${url.hostname}:${port}`.toLowerCase();
}

/**
 * The egress set, derived rather than listed by hand: every provider
 * origin, plus the AWS KMS endpoint of each key ARN's region. Nothing else
 * is reachable from the enclave.
 */
export function derivedEgress(policy: TrustPolicy): string[] {
  const out = new Set<string>();
  for (const p of policy.providers) if (p.kind !== "local") out.add(hostPort(new URL(p.baseUrl)));
  const arns = [policy.secrets?.kmsKeyArn, policy.identity.mode === "sealed" ? policy.identity.kmsKeyArn : undefined];
  for (const arn of arns) if (arn !== undefined) out.add(`${kmsEndpointHost(arn)}:443`);
  return [...out].sort();
}

/** The sealed secrets this policy uses, each with the origin of the one provider that may receive it. */
export function secretBindings(policy: TrustPolicy): { name: string; origin: string; provider: string }[] {
  return policy.providers.filter((p) => p.secret !== undefined).map((p) => ({ name: p.secret!, origin: p.origin, provider: p.name }));
}

/** A few lines a person can read: what `egw verify` prints. */
export function describeTrustPolicy(policy: TrustPolicy): string[] {
  const lines = [`upstream origins: ${upstreamOrigins(policy).join(", ")}`];
  for (const p of policy.providers) lines.push(`  provider ${p.name} (${p.kind}) → ${p.origin}${p.secret ? ` with sealed secret ${p.secret}` : ""}`);
  lines.push(
    policy.identity.mode === "ephemeral"
      ? "identity: ephemeral (keys made in this enclave at boot, never leave it)"
      : `identity: sealed under ${policy.identity.kmsKeyArn}${policy.identity.generatorPcrs ? ` (${policy.identity.generatorPcrs.length} extra generator PCR set(s))` : ""}`,
  );
  lines.push(policy.secrets ? `secrets KMS key: ${policy.secrets.kmsKeyArn}` : "secrets KMS key: none (no provider uses a sealed secret)");
  return lines;
}
