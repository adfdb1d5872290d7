import type { ProviderKind } from "../../../attestation/trust-policy.js";
import { defaultRoutes } from "./default-routes.js";

/**
 * The trust policy `egw dev` writes when no `--config` is given: the local
 * model, plus each first-party provider whose key is in the environment,
 * fixed to its official origin, with default model routes
 * (default-routes.ts). Deterministic JSON (fixed field order, 2-space
 * indent, one trailing newline), so its hash only changes when its content must.
 */
export const ENV_PROVIDERS: readonly { env: string; name: string; kind: ProviderKind }[] = Object.freeze([
  { env: "OPENAI_API_KEY", name: "openai", kind: "openai" },
  { env: "ANTHROPIC_API_KEY", name: "anthropic", kind: "anthropic" },
  { env: "GEMINI_API_KEY", name: "gemini", kind: "gemini" },
  { env: "XAI_API_KEY", name: "xai", kind: "xai" },
]);

/** The secret of the optional key for the local model, so key handling can be exercised without a real provider. */
export const LOCAL_KEY_ENV = "EGW_DEV_LOCAL_KEY";

export function devTrustPolicy(input: {
  modelPort: number;
  localKey: boolean;
  providers: readonly { env: string; name: string; kind: ProviderKind }[];
  kmsKeyArn: string;
}): string {
  const providers = [
    {
      name: "local",
      kind: "openai-compatible",
      baseUrl: `https://127.0.0.1:${input.modelPort}/v1`,
      ...(input.localKey && { secret: LOCAL_KEY_ENV }),
      capabilities: { chat: true, embeddings: true, images: true },
    },
    ...input.providers.map((p) => ({ name: p.name, kind: p.kind, secret: p.env })),
  ];
  const usesSecrets = providers.some((p) => "secret" in p);
  const local = { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } };
  const policy = {
    version: 1,
    providers,
    models: { ...local, ...defaultRoutes(input.providers, local) },
    prefixRouting: true,
    ...(usesSecrets && { secrets: { kmsKeyArn: input.kmsKeyArn } }),
    identity: { mode: "ephemeral" },
  };
  return `${JSON.stringify(policy, null, 2)}\n`;
}
