import type { Hono } from "hono";
import { createDevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { RECEIPT_HEADER, receiptKeyFromSpki, verifyReceipt, type ReceiptClaims } from "../../attestation/receipt.js";
import { AttestationService } from "../../enclave/attestation-service.js";
import { hashToken } from "../../enclave/auth.js";
import { createGatewayApp } from "../../enclave/gateway.js";
import type { GatewayEnv } from "../../enclave/http/gateway-env.js";
import { createIdentity, type EnclaveIdentity } from "../../enclave/identity.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import { createMetrics, type GatewayMetrics } from "../../enclave/observability/metrics.js";
import { createAdapters } from "../../enclave/providers/registry.js";
import type { ProviderAdapter } from "../../enclave/providers/types.js";
import { loadRuntimeConfig, type RuntimeConfig } from "../../enclave/runtime-config.js";
import { staticSecrets } from "../../enclave/secrets.js";
import type { UpstreamDeps } from "../../enclave/upstream.js";
import { splitConfig } from "./split-config.js";

/**
 * The gateway app without a port: createGatewayApp over the built-in local
 * model, a simulated NSM and a clock the test moves, driven through
 * `app.request()`. For what only a real socket shows (TLS, Connection:
 * close, unread bodies), test/helpers/enclave-harness.ts boots the server.
 */
export const TOKEN = "egw-app-test-token-0123456789";
export const OTHER_TOKEN = "egw-app-test-other-token-0123";

export interface TestClock {
  now: () => Date;
  advance(ms: number): void;
}

export function testClock(start = Date.parse("2026-06-01T12:00:00Z")): TestClock {
  let t = start;
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

export interface GatewayApp {
  app: Hono<GatewayEnv>;
  config: RuntimeConfig;
  identity: EnclaveIdentity;
  metrics: GatewayMetrics;
  logs: string[];
  clock: TestClock;
  trustPolicyBytes: Uint8Array;
}

export interface GatewayAppOptions {
  /** Fields of the one-object config (test/helpers/split-config.ts) over the defaults below. */
  config?: Record<string, unknown>;
  clock?: TestClock;
  identity?: EnclaveIdentity;
  upstream?: Partial<UpstreamDeps>;
  /** Wraps each configured adapter (to observe what the gateway hands it). */
  wrapAdapter?: (adapter: ProviderAdapter) => ProviderAdapter;
  /** Provider secrets by name (default none). */
  secrets?: Map<string, string>;
}

export function appConfigJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: 1,
    providers: [{ name: "local", kind: "local" }],
    models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } },
    prefixRouting: true,
    clients: [
      { name: "test", tokenSha256: hashToken(TOKEN), models: ["*"] },
      { name: "other", tokenSha256: hashToken(OTHER_TOKEN), models: ["local"] },
    ],
    ...overrides,
  });
}

export async function gatewayApp(options: GatewayAppOptions = {}): Promise<GatewayApp> {
  const clock = options.clock ?? testClock();
  const { trustPolicy, operations } = splitConfig(appConfigJson(options.config));
  const trustPolicyBytes = new TextEncoder().encode(trustPolicy);
  const config = loadRuntimeConfig(trustPolicyBytes, new TextEncoder().encode(operations), { dev: true });
  const identity = options.identity ?? (await createIdentity({ now: clock.now }));
  const ca = await createDevCa({ now: clock.now });
  const attestation = new AttestationService({
    attester: new SimulatedNsm({ ca, now: clock.now, pcrs: { 0: new Uint8Array(48).fill(0x11) } }),
    identity,
    configSha256: new Uint8Array(32),
    policySha256: new Uint8Array(32),
    now: clock.now,
    perSecond: config.limits.attestationPerSecond,
    reservedShare: config.limits.attestationReservedShare,
    perAddressPerSecond: config.limits.attestationPerAddressPerSecond,
    clientTokenSha256: config.clients.map((c) => c.tokenSha256),
  });
  const metrics = createMetrics();
  const log = memoryLogger();
  const app = createGatewayApp({
    config,
    trustPolicyBytes,
    adapters: new Map(
      [...createAdapters(config.providers, staticSecrets(options.secrets ?? new Map()))].map(([name, a]) => [name, options.wrapAdapter ? options.wrapAdapter(a) : a]),
    ),
    attestation,
    identity,
    log,
    metrics,
    upstream: {
      fetch: () => Promise.reject(new Error("no upstream in app tests")),
      now: clock.now,
      random: () => 0.5,
      sleep: () => Promise.resolve(),
      ...options.upstream,
    },
  });
  return { app, config, identity, metrics, logs: log.lines, clock, trustPolicyBytes };
}

/** A JSON POST with the client token. */
export function post(g: GatewayApp, path: string, body: unknown, headers: Record<string, string> = {}, env?: GatewayEnv["Bindings"]): Promise<Response> {
  const init = {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
  return Promise.resolve(g.app.request(path, init, env));
}

/** Verifies a complete response's receipt against the identity's key and the exact bytes; returns its claims. */
export async function receiptOf(g: GatewayApp, response: Response, requestBody: Uint8Array | string = new Uint8Array(0)): Promise<{ claims: ReceiptClaims; body: Uint8Array }> {
  const header = response.headers.get(RECEIPT_HEADER);
  if (header === null) throw new Error("no receipt header");
  const body = new Uint8Array(await response.arrayBuffer());
  const claims = verifyReceipt(new Uint8Array(Buffer.from(header, "base64url")), {
    publicKey: receiptKeyFromSpki(g.identity.receipt.publicSpkiDer),
    requestBody: typeof requestBody === "string" ? new TextEncoder().encode(requestBody) : requestBody,
    responseBody: body,
  });
  return { claims, body };
}
