import type { TrustProvider } from "../../../attestation/trust-policy.js";

/**
 * What each configured provider serves, as the enclave's adapters decide
 * it, stated on the banner so nothing defaults silently:
 *  - an openai-compatible (and xai) provider serves each of chat,
 *    embeddings and images unless its `capabilities` says false: an absent
 *    field is ON (enclave/providers/openai/openai-adapter.ts; checked
 *    against the adapter in test/infra/dev-config.test.ts);
 *  - the first-party kinds serve what their adapter implements.
 * The trust-policy parser's semantics are not changed here; this only reads them.
 */
export const OPENAI_CAPABILITIES = ["chat", "embeddings", "images"] as const;
export type Capability = (typeof OPENAI_CAPABILITIES)[number];

export interface EffectiveCapabilities {
  on: Capability[];
  off: Capability[];
  /** Capabilities the policy does not mention, on by default. */
  defaulted: Capability[];
}

const FIXED: Record<TrustProvider["kind"], Capability[] | undefined> = {
  openai: ["chat", "embeddings", "images"],
  anthropic: ["chat"],
  gemini: ["chat", "embeddings"],
  local: ["chat", "embeddings", "images"],
  xai: undefined,
  "openai-compatible": undefined,
};

export function effectiveCapabilities(p: Pick<TrustProvider, "kind" | "capabilities">): EffectiveCapabilities {
  const fixed = FIXED[p.kind];
  if (fixed) return { on: [...fixed], off: OPENAI_CAPABILITIES.filter((c) => !fixed.includes(c)), defaulted: [] };
  const declared = (p.capabilities ?? {}) as Partial<Record<Capability, boolean>>;
  const on = OPENAI_CAPABILITIES.filter((c) => declared[c] !== false);
  return { on, off: OPENAI_CAPABILITIES.filter((c) => declared[c] === false), defaulted: OPENAI_CAPABILITIES.filter((c) => declared[c] === undefined) };
}

/** One banner line: `chat, embeddings, images (embeddings, images: not in the policy, on by default)`. */
export function describeCapabilities(p: Pick<TrustProvider, "kind" | "capabilities">): string {
  const c = effectiveCapabilities(p);
  const on = c.on.length > 0 ? c.on.join(", ") : "nothing";
  const off = c.off.length > 0 ? `; off: ${c.off.join(", ")}` : "";
  const defaulted = c.defaulted.length > 0 ? ` (${c.defaulted.join(", ")}: not in the policy, on by default)` : "";
  return `${on}${off}${defaulted}`;
}
