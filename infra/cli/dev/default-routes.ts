import type { ProviderKind, TrustProvider } from "../../../attestation/trust-policy.js";

/**
 * The model routes `egw dev` adds for a first-party provider that has none,
 * so GET /v1/models lists what it serves and the SDKs' usual model names
 * work as they are (the router lists explicit routes only: prefix routing,
 * "<provider>/<model>", serves any id but lists none; enclave/router.ts).
 * A few current models per kind, chat and embeddings; any other id is still
 * reachable as "<provider>/<model>". The exposed name is the upstream id.
 * Names are taken from the model lists of the SDK versions in package.json.
 */
export const DEFAULT_MODELS: Readonly<Partial<Record<ProviderKind, readonly string[]>>> = Object.freeze({
  openai: ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "gpt-5.4", "gpt-5.4-mini", "text-embedding-3-small"],
  // None the SDK marks deprecated (@anthropic-ai/sdk internal/data/deprecated-models.ts warns on those).
  anthropic: ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6"],
  gemini: ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-embedding-001"],
  xai: ["grok-4", "grok-3-mini"],
});

export interface RouteJson {
  provider: string;
  model: string;
  description?: string;
}

/**
 * Default routes for each first-party provider no route in `models`
 * targets. Names already taken (by the user, or an earlier provider of the
 * same kind) are left alone; nothing existing is changed.
 */
export function defaultRoutes(providers: readonly Pick<TrustProvider, "name" | "kind">[], models: Readonly<Record<string, { provider?: unknown }>>): Record<string, RouteJson> {
  const added: Record<string, RouteJson> = {};
  const routed = new Set(Object.values(models).map((r) => r.provider));
  for (const p of providers) {
    if (routed.has(p.name)) continue;
    for (const model of DEFAULT_MODELS[p.kind] ?? []) {
      if (Object.hasOwn(models, model) || Object.hasOwn(added, model)) continue;
      added[model] = { provider: p.name, model, description: `${p.name} (default route added by egw dev)` };
    }
  }
  return added;
}
