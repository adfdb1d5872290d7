import { upstreamOrigins, type TrustPolicy } from "../../../attestation/trust-policy.js";
import { describeCapabilities } from "./capabilities.js";
import { clientSnippets, fenced } from "./client-snippets.js";

/**
 * What `egw dev` prints once the stack is up (after the JSON ready line):
 * where it is, what it attests, each provider with its origin and effective
 * capabilities (defaults stated), the models /v1/models lists, what egw dev
 * added to a user's policy, then how to verify and call it: egw verify,
 * egw proxy with curl, and one program per client (client-snippets.ts).
 */
export interface BannerInput {
  origin: string;
  policy: TrustPolicy;
  /** "generated" (from the environment) or the --config file. */
  source: string;
  notes: readonly string[];
  measurements: Record<string, string>;
  trustFile: string;
  policySha256: string;
  configSha256: string;
  tlsSpkiSha256: string;
  manifestFile: string;
  tokenFile: string;
  logDir: string;
  sealedSecrets: readonly string[];
}

const MAX_LISTED_MODELS = 24;

function providerLines(policy: TrustPolicy, sealed: readonly string[], generated: boolean): string[] {
  return policy.providers.map((p) => {
    const what =
      generated && p.name === "local" ? "  (egw dev's local model: deterministic, NOT an LLM)" : p.kind === "local" ? "  (built-in responder: deterministic, NOT an LLM)" : "";
    const key = p.secret ? `, key ${p.secret}${sealed.includes(p.secret) ? " (sealed under the local KMS)" : ""}` : "";
    return `    ${p.name} (${p.kind}) → ${p.origin}${key}: ${describeCapabilities(p)}${what}`;
  });
}

function modelLines(policy: TrustPolicy): string[] {
  const ids = Object.keys(policy.models);
  const shown = ids.slice(0, MAX_LISTED_MODELS).join(", ");
  const more = ids.length > MAX_LISTED_MODELS ? ` … (${ids.length - MAX_LISTED_MODELS} more)` : "";
  const lines = [`  models (/v1/models): ${ids.length > 0 ? `${shown}${more}` : "none (no route in the trust policy)"}`];
  if (policy.prefixRouting) lines.push(`  prefix routing: any "<provider>/<model id>" goes to that provider (not listed in /v1/models)`);
  const unrouted = policy.providers.filter((p) => !Object.values(policy.models).some((r) => r.provider === p.name)).map((p) => p.name);
  if (unrouted.length > 0)
    lines.push(`  no route names ${unrouted.join(", ")}: ${policy.prefixRouting ? `call them as "<provider>/<model id>"` : "they cannot be called (prefixRouting is off)"}`);
  return lines;
}

export function bannerText(b: BannerInput): string {
  const proxyUrl = "http://127.0.0.1:8787";
  const curlModel = Object.keys(b.policy.models)[0] ?? `${b.policy.providers[0]!.name}/model-id`;
  return [
    "",
    `enclave-gateway development stack is up at ${b.origin}/v1 (host relay → enclave → egress proxy → providers)`,
    `  trust policy: ${b.source}`,
    ...b.notes.map((n) => `  egw dev ${n}`),
    "  providers (effective capabilities):",
    ...providerLines(b.policy, b.sealedSecrets, b.source === "generated"),
    ...(b.source === "generated" && b.policy.providers.length === 1
      ? ["  (set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or XAI_API_KEY to add real providers, or pass --config <file>)"]
      : []),
    ...modelLines(b.policy),
    ...Object.entries(b.measurements).map(([i, hex]) => `  PCR${i}: ${hex}`),
    `  upstream origins:       ${upstreamOrigins(b.policy).join(", ")}`,
    `  trust policy sha256:    ${b.policySha256}  (${b.trustFile})`,
    `  attested config sha256: ${b.configSha256}`,
    `  TLS key (SPKI sha256):  ${b.tlsSpkiSha256}`,
    `  dev manifest:           ${b.manifestFile}`,
    `  client token:           ${b.tokenFile}`,
    "",
    "Verify it (measurements, trust policy and development root from the dev manifest):",
    `  npx egw verify ${b.origin} --policy ${b.manifestFile}`,
    "Use it through the local verifying proxy (every answer checked):",
    `  npx egw proxy --upstream ${b.origin} --policy ${b.manifestFile} --listen 127.0.0.1:8787 &`,
    `  curl -s ${proxyUrl}/v1/chat/completions -H "authorization: Bearer $(cat ${b.tokenFile})" \\`,
    `       -H 'content-type: application/json' -d '${JSON.stringify({ model: curlModel, messages: [{ role: "user", content: "hello" }] })}'`,
    "Or call it from TypeScript, verified in process (each is a whole ES module: save as .mts and run it):",
    ...clientSnippets({ origin: b.origin, manifestFile: b.manifestFile, tokenFile: b.tokenFile, policy: b.policy }).flatMap(fenced),
    "",
    `Logs: ${b.logDir}. Ctrl-C stops everything.`,
  ].join("\n");
}
