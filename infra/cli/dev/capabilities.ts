import { CAPABILITY_NAMES, type Capability } from "../../../attestation/provider-catalog.js";
import { capabilitiesOf, type TrustPolicy, type TrustProvider } from "../../../attestation/trust-policy.js";

/**
 * What each configured provider serves, stated on the banner so nothing
 * defaults silently. The effective set is the trust policy's own
 * (capabilitiesOf: the kind's defaults in attestation/provider-catalog.ts,
 * narrowed or widened by the policy within what the kind serves), the same
 * set the enclave holds every adapter to (enclave/providers/capabilities.ts).
 * For an openai-compatible endpoint, whose real abilities the gateway
 * cannot know, the capabilities the policy did not write are named as
 * defaults; for a first-party kind or a preset the kind fixes them.
 */
export interface EffectiveCapabilities {
  on: Capability[];
  off: Capability[];
  /** Capabilities the policy does not mention whose value is the kind's default (openai-compatible only). */
  defaulted: Capability[];
}

/** `stated`: the capabilities object as the policy document wrote it (absent: the provider's own field). */
export function effectiveCapabilities(p: Pick<TrustProvider, "kind" | "capabilities">, stated: Record<string, unknown> | undefined = p.capabilities): EffectiveCapabilities {
  const caps = capabilitiesOf(p);
  const on = CAPABILITY_NAMES.filter((c) => caps[c]);
  const off = CAPABILITY_NAMES.filter((c) => !caps[c]);
  const defaulted = p.kind === "openai-compatible" ? CAPABILITY_NAMES.filter((c) => stated?.[c] === undefined) : [];
  return { on, off, defaulted };
}

/** One banner line: `chat, streaming, tools, embeddings; off: images, responses (chat, …: not in the policy, kind default)`. */
export function describeCapabilities(p: Pick<TrustProvider, "kind" | "capabilities">, stated?: Record<string, unknown>): string {
  const c = effectiveCapabilities(p, stated ?? p.capabilities);
  const on = c.on.length > 0 ? c.on.join(", ") : "nothing";
  const off = c.off.length > 0 ? `; off: ${c.off.join(", ")}` : "";
  const defaulted = c.defaulted.length > 0 ? ` (${c.defaulted.join(", ")}: not in the policy, the kind's default)` : "";
  return `${on}${off}${defaulted}`;
}

/** Each provider's capabilities object as the policy's bytes wrote it (the parsed policy holds the effective values only). */
export function statedCapabilities(trustBytes: Uint8Array, policy: TrustPolicy): Map<string, Record<string, unknown> | undefined> {
  const out = new Map<string, Record<string, unknown> | undefined>();
  let raw: { providers?: Array<{ name?: unknown; capabilities?: unknown }> } = {};
  try {
    raw = JSON.parse(Buffer.from(trustBytes).toString("utf8")) as typeof raw;
  } catch {
    // The policy was parsed from these bytes already; unreachable, and then nothing is named as a default.
  }
  for (const p of policy.providers) {
    const entry = (raw.providers ?? []).find((e) => e.name === p.name);
    const caps = entry?.capabilities;
    out.set(p.name, caps !== null && typeof caps === "object" ? (caps as Record<string, unknown>) : undefined);
  }
  return out;
}
