import { GatewayError } from "./errors.js";
import type { ProviderAdapter } from "./providers/types.js";
import type { ClientConfig, RuntimeConfig } from "./runtime-config.js";

/**
 * Model name → provider. Two forms, both from configuration:
 *  - explicit routes: `models: { "gpt-4o": { provider: "openai", model: "gpt-4o" } }`,
 *    with optional fallbacks (other exposed names);
 *  - prefix routing: "<provider>/<model>" goes to that provider with that
 *    upstream model, when `prefixRouting` is on.
 * An explicit route wins over the prefix form. Config loading already
 * refused any alias named "<p>/…" that points at a provider other than p,
 * so a name never silently selects another provider's model.
 */
export interface Route {
  /** The name the client asked for. */
  exposed: string;
  /** Safe label for logs and metrics: the configured name, or "<provider>/*". */
  label: string;
  adapter: ProviderAdapter;
  upstreamModel: string;
  fallbacks: string[];
}

export class Router {
  constructor(
    private readonly config: RuntimeConfig,
    private readonly adapters: ReadonlyMap<string, ProviderAdapter>,
  ) {}

  resolve(model: string): Route {
    const explicit = Object.hasOwn(this.config.models, model) ? this.config.models[model] : undefined;
    if (explicit) {
      const adapter = this.adapters.get(explicit.provider);
      if (!adapter) throw new GatewayError("internal_error", "route names a provider that is not running");
      return { exposed: model, label: model, adapter, upstreamModel: explicit.model, fallbacks: explicit.fallbacks ?? [] };
    }
    const slash = model.indexOf("/");
    if (this.config.prefixRouting && slash > 0 && slash < model.length - 1) {
      const adapter = this.adapters.get(model.slice(0, slash));
      if (adapter) {
        const upstreamModel = model.slice(slash + 1);
        if (!/^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/.test(upstreamModel)) {
          throw new GatewayError("invalid_request", "model name has characters that are not allowed");
        }
        return { exposed: model, label: `${adapter.info.name}/*`, adapter, upstreamModel, fallbacks: [] };
      }
    }
    throw new GatewayError("model_not_found", "The model does not exist or is not served by this gateway.");
  }

  /** Models for GET /v1/models: the explicit routes (prefix routing serves any id, so it lists none). */
  list(): { id: string; provider: string; description: string | undefined }[] {
    return Object.entries(this.config.models).map(([id, r]) => ({ id, provider: r.provider, description: r.description }));
  }
}

/** Does a client's model allowlist admit this exposed model name? */
export function clientMayUse(client: ClientConfig, model: string): boolean {
  return client.models.some((pattern) => {
    if (pattern === "*") return true;
    if (pattern.endsWith("/*")) return model.startsWith(pattern.slice(0, -1));
    return pattern === model;
  });
}
