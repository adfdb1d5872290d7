import { Agent, fetch as undiciFetch } from "undici";
import { createDevCa, type DevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";
import { hashToken } from "../../enclave/auth.js";
import { bootEnclave, type BootedEnclave } from "../../enclave/boot.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import type { ProviderAdapter } from "../../enclave/providers/types.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { splitConfig } from "./split-config.js";

/**
 * Boots the real enclave service (HTTPS on 127.0.0.1, simulated NSM with an
 * in-memory development CA) for tests, and gives them a fetch that trusts
 * exactly this enclave's self-signed certificate.
 */
export const CLIENT_TOKEN = "egw-test-token-0123456789";

export interface Harness {
  enclave: BootedEnclave;
  baseURL: string;
  fetch: typeof fetch;
  anchor: TrustAnchor;
  ca: DevCa;
  logs: string[];
  close(): Promise<void>;
}

export function configJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: 1,
    providers: [{ name: "local", kind: "local" }],
    models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" } },
    prefixRouting: true,
    egressAllowlist: [],
    clients: [{ name: "test", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
    ...overrides,
  });
}

export async function startHarness(
  options: {
    /** One object with both documents' fields (split by test/helpers/split-config.ts), or give trustPolicy + operations. */
    config?: string;
    trustPolicy?: string;
    operations?: string;
    /** With `config`: trust policy secrets.kmsKeyArn / identity. */
    secretsKmsKeyArn?: string;
    identity?: Record<string, unknown>;
    secrets?: Map<string, string>;
    adapters?: Map<string, ProviderAdapter>;
    fetch?: typeof fetch;
    now?: () => Date;
    egressProxy?: string;
    /** Reuse a development CA the test made (e.g. to give a local KMS its root). */
    ca?: DevCa;
    sealedSecrets?: Parameters<typeof bootEnclave>[0]["sealedSecrets"];
    /** PCR0 of the simulated enclave; default 0x11 × 48. */
    pcr0?: Uint8Array;
    /** Development: an extra PEM root for upstream TLS (a local HTTPS mock's certificate). */
    upstreamCa?: string;
    /** The host's AWS credentials (Bedrock). */
    awsCredentials?: Parameters<typeof bootEnclave>[0]["awsCredentials"];
  } = {},
): Promise<Harness> {
  const now = options.now ?? (() => new Date());
  const ca = options.ca ?? (await createDevCa({ now }));
  const attester = new SimulatedNsm({ ca, now, pcrs: { 0: options.pcr0 ?? new Uint8Array(48).fill(0x11) } });
  const logger = memoryLogger();
  const docs =
    options.trustPolicy !== undefined || options.operations !== undefined
      ? { trustPolicy: options.trustPolicy!, operations: options.operations! }
      : splitConfig(options.config ?? configJson(), {
          ...(options.secretsKmsKeyArn && { secretsKmsKeyArn: options.secretsKmsKeyArn }),
          ...(options.identity && { identity: options.identity }),
        });
  const enclave = await bootEnclave({
    trustPolicyBytes: new TextEncoder().encode(docs.trustPolicy),
    operationsBytes: new TextEncoder().encode(docs.operations),
    attester,
    secrets: staticSecrets(options.secrets ?? new Map()),
    log: logger,
    now,
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
    ...(options.fetch && { fetch: options.fetch }),
    ...(options.adapters && { adapters: options.adapters }),
    ...(options.egressProxy && { egressProxy: options.egressProxy }),
    ...(options.upstreamCa && { upstreamCa: options.upstreamCa }),
    ...(options.sealedSecrets && { sealedSecrets: options.sealedSecrets }),
    ...(options.awsCredentials && { awsCredentials: options.awsCredentials }),
    devRoot: trustAnchorFromPem(ca.rootPem, "development"),
  });
  const agent = new Agent({ connect: { ca: enclave.identity.tls.certPem } });
  const pinnedFetch = ((input: string | URL | Request, init?: RequestInit) => undiciFetch(input as string, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch;
  return {
    enclave,
    baseURL: `https://127.0.0.1:${enclave.server.port}/v1`,
    fetch: pinnedFetch,
    anchor: trustAnchorFromPem(ca.rootPem, "development"),
    ca,
    logs: logger.lines,
    close: async () => {
      await enclave.close();
      await agent.close();
    },
  };
}
