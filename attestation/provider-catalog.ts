/**
 * Every provider kind a trust policy can name, as data: the wire format the
 * enclave speaks to it, its official origin (fixed outside development, as
 * a client reading the policy must be able to rely on), how it
 * authenticates, and what it can serve. attestation/trust-policy.ts derives
 * PROVIDER_KINDS and FIRST_PARTY_BASE_URLS from this table, so it is the
 * one list; enclave/providers/registry.ts serves each kind by one module
 * (test/enclave/providers/registry.test.ts keeps them in step).
 *
 * It lives in attestation/ and imports nothing, because the verifying client
 * parses the served policy with the same codec: a client that reads
 * `"kind": "groq"` learns the origin from this table, not from the host.
 *
 * Presets are OpenAI-compatible endpoints with a fixed origin: a policy
 * says `{ "name": "groq", "kind": "groq", "secret": "GROQ_API_KEY" }` and
 * nothing else is needed. Origins and auth headers were checked against each
 * provider's API reference (the `docs` field) in December 2026.
 *
 * Capabilities, one line per capability below, so a new one (e.g.
 * `responses`) is one line there and a word in the kinds that serve it:
 *  - `serves` is what a kind can do at most: a policy may switch a
 *    capability off, never on beyond it (parse error naming the provider);
 *  - the effective set when the policy says nothing is `serves`, minus the
 *    kind's `offByDefault` (a capability one must ask for).
 */

/** Every capability a provider entry can have, and what it gates. */
export const CAPABILITIES = Object.freeze({
  chat: "POST /v1/chat/completions, /v1/messages and every surface translated through chat",
  streaming: "stream: true on the chat surfaces",
  tools: "function tools in a chat request",
  embeddings: "POST /v1/embeddings",
  images: "POST /v1/images/generations",
  responses: "POST /v1/responses passed through natively, and the stored-response calls; without it /v1/responses is translated through chat",
} as const);

export type Capability = keyof typeof CAPABILITIES;
export const CAPABILITY_NAMES: readonly Capability[] = Object.freeze(Object.keys(CAPABILITIES) as Capability[]);
export type Capabilities = Readonly<Record<Capability, boolean>>;

/** How a kind proves who is calling. */
export type ProviderAuth = "bearer" | "x-api-key" | "x-goog-api-key" | "sigv4" | "none";

/** The wire format, i.e. which adapter module speaks to it. */
export type ProviderWire = "openai" | "anthropic" | "gemini" | "bedrock" | "local";

export interface ProviderKindEntry {
  wire: ProviderWire;
  /**
   * The official base URL (the `openai` SDK's `baseURL` for OpenAI-compatible
   * ones). Absent: the policy writes it (openai-compatible), it follows from
   * the region (bedrock), or there is none (local).
   */
  baseUrl?: string;
  auth: ProviderAuth;
  /** A named OpenAI-compatible endpoint at a fixed origin. */
  preset: boolean;
  serves: readonly Capability[];
  offByDefault?: readonly Capability[];
  /** Where the origin and auth were checked. */
  docs?: string;
}

const ALL: readonly Capability[] = ["chat", "streaming", "tools", "embeddings", "images"];
const CHAT: readonly Capability[] = ["chat", "streaming", "tools"];

export const PROVIDER_CATALOG = Object.freeze({
  // ── first party ──────────────────────────────────────────────────────────
  openai: {
    wire: "openai",
    baseUrl: "https://api.openai.com/v1",
    auth: "bearer",
    preset: false,
    serves: [...ALL, "responses"],
    docs: "https://platform.openai.com/docs/api-reference",
  },
  anthropic: { wire: "anthropic", baseUrl: "https://api.anthropic.com", auth: "x-api-key", preset: false, serves: CHAT, docs: "https://docs.anthropic.com/en/api" },
  gemini: {
    wire: "gemini",
    baseUrl: "https://generativelanguage.googleapis.com",
    auth: "x-goog-api-key",
    preset: false,
    serves: [...CHAT, "embeddings"],
    docs: "https://ai.google.dev/api",
  },
  // Converse / ConverseStream at https://bedrock-runtime.<region>.amazonaws.com, SigV4 with the host's role credentials,
  // whose account the policy pins (checked with STS GetCallerIdentity before first use).
  bedrock: { wire: "bedrock", auth: "sigv4", preset: false, serves: CHAT, docs: "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html" },
  // ── presets: OpenAI-compatible at a fixed origin ─────────────────────────
  xai: { wire: "openai", baseUrl: "https://api.x.ai/v1", auth: "bearer", preset: true, serves: [...CHAT, "images"], docs: "https://docs.x.ai/api-reference" },
  openrouter: {
    wire: "openai",
    baseUrl: "https://openrouter.ai/api/v1",
    auth: "bearer",
    preset: true,
    serves: [...CHAT, "embeddings"],
    docs: "https://openrouter.ai/docs/api_reference",
  },
  mistral: { wire: "openai", baseUrl: "https://api.mistral.ai/v1", auth: "bearer", preset: true, serves: [...CHAT, "embeddings"], docs: "https://docs.mistral.ai/api" },
  // DeepSeek documents https://api.deepseek.com and also accepts /v1 (a path, not a model version); same origin.
  deepseek: { wire: "openai", baseUrl: "https://api.deepseek.com", auth: "bearer", preset: true, serves: CHAT, docs: "https://api-docs.deepseek.com" },
  groq: { wire: "openai", baseUrl: "https://api.groq.com/openai/v1", auth: "bearer", preset: true, serves: CHAT, docs: "https://console.groq.com/docs/openai" },
  together: { wire: "openai", baseUrl: "https://api.together.xyz/v1", auth: "bearer", preset: true, serves: ALL, docs: "https://docs.together.ai/reference" },
  fireworks: {
    wire: "openai",
    baseUrl: "https://api.fireworks.ai/inference/v1",
    auth: "bearer",
    preset: true,
    serves: [...CHAT, "embeddings"],
    docs: "https://docs.fireworks.ai/api-reference",
  },
  // BytePlus ModelArk (Ark), Southeast Asia: Seed chat at /chat/completions, Seedream at /images/generations;
  // its embeddings endpoint is multimodal (/embeddings/multimodal), not OpenAI's shape, so not offered.
  byteplus: {
    wire: "openai",
    baseUrl: "https://ark.ap-southeast.bytepluses.com/api/v3",
    auth: "bearer",
    preset: true,
    serves: [...CHAT, "images"],
    docs: "https://docs.byteplus.com/en/docs/ModelArk",
  },
  zai: { wire: "openai", baseUrl: "https://api.z.ai/api/paas/v4", auth: "bearer", preset: true, serves: [...CHAT, "images"], docs: "https://docs.z.ai/api-reference" },
  // ── anything else ────────────────────────────────────────────────────────
  // An endpoint the policy names by URL. Every capability is on unless the policy switches it off (stated, not implied),
  // except `responses`: most OpenAI-compatible servers speak Chat Completions only, so the Responses API is translated
  // unless the policy says the endpoint speaks it.
  "openai-compatible": { wire: "openai", auth: "bearer", preset: false, serves: [...ALL, "responses"], offByDefault: ["responses"] },
  // The built-in deterministic responder (not an LLM): no origin, no key.
  local: { wire: "local", auth: "none", preset: false, serves: ALL },
} as const satisfies Record<string, ProviderKindEntry>);

export type ProviderKind = keyof typeof PROVIDER_CATALOG;

/** The entry of a kind (typed as the interface, so optional fields read as such). */
export function kindEntry(kind: ProviderKind): ProviderKindEntry {
  return PROVIDER_CATALOG[kind] as ProviderKindEntry;
}

/** What a kind has when the policy says nothing about capabilities. */
export function defaultCapabilities(kind: ProviderKind): Capabilities {
  const entry = kindEntry(kind);
  const out = {} as Record<Capability, boolean>;
  for (const c of CAPABILITY_NAMES) out[c] = entry.serves.includes(c) && !(entry.offByDefault ?? []).includes(c);
  return Object.freeze(out);
}
