import { randomInt } from "node:crypto";
import type { Attester } from "../attestation/attester.js";
import { AttestationService } from "./attestation-service.js";
import { createEgressFetch } from "./egress.js";
import { createGatewayApp } from "./gateway.js";
import { createIdentity, identityFromKeys, type EnclaveIdentity } from "./identity.js";
import type { IdentityKeys } from "./secrets/identity-blob.js";
import { openSealedIdentity } from "./secrets/identity-source.js";
import type { ListenEndpoint } from "./listen.js";
import type { Logger } from "./observability/log.js";
import { createMetrics, type GatewayMetrics } from "./observability/metrics.js";
import { createAdapters } from "./providers/registry.js";
import type { ProviderAdapter } from "./providers/types.js";
import { parseRuntimeConfig, type RuntimeConfig } from "./runtime-config.js";
import type { SecretSource } from "./secrets.js";
import { startHttpsServer, type RunningServer } from "./server.js";
import { defaultSleep } from "./upstream.js";
import { attestedConfigHash } from "./config-hash.js";
import { EgressHttpHandler } from "./secrets/kms-http-handler.js";
import { checkKmsEndpoint } from "./secrets/kms-endpoint.js";
import { createKmsClient, openSealedSecrets } from "./secrets/kms-source.js";
import type { KMSClient } from "@aws-sdk/client-kms";
import { parseSealedFile } from "./secrets/sealed-file.js";

/**
 * Assembles the enclave from its parts. Everything with an effect is passed
 * in (attester, secrets, clock, fetch, logger), so tests boot the real
 * thing with local mocks, and production passes the NSM and KMS.
 */
export interface BootOptions {
  /** The runtime config exactly as received; its SHA-256 is attested. */
  configBytes: Uint8Array;
  attester: Attester;
  secrets: SecretSource;
  log: Logger;
  now?: () => Date;
  listen: ListenEndpoint;
  /** Replaces the egress fetch (tests that must reach local mocks still get the allowlist unless they pass their own). */
  fetch?: typeof fetch;
  /** Replaces configured adapters by name (tests). */
  adapters?: Map<string, ProviderAdapter>;
  hostnames?: string[];
  /** The host's egress CONNECT proxy, e.g. http://127.0.0.1:3128. Without it the enclave dials directly (development). */
  egressProxy?: string;
  /** Development: extra PEM CA for upstream TLS (the local model server). */
  upstreamCa?: string;
  /**
   * Provider keys sealed under KMS. When given, they replace `secrets`: the
   * enclave opens them at boot with KMS Decrypt + Recipient (its attestation),
   * through the egress path, and refuses to serve if any is not released.
   */
  sealedSecrets?: {
    file: Uint8Array;
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    /** Override the KMS endpoint (VPC endpoint, or a local KMS in tests). */
    endpoint?: string;
  };
}

export interface BootedEnclave {
  config: RuntimeConfig;
  configSha256: Uint8Array;
  identity: EnclaveIdentity;
  attestation: AttestationService;
  metrics: GatewayMetrics;
  server: RunningServer;
  close(): Promise<void>;
}

// Re-exported: tests and tools import it from here too.
export { attestedConfigHash };

/**
 * The egress path and the KMS client a boot uses, shared with identity
 * generation (enclave/provision/identity-mode.ts) so that it reaches KMS
 * exactly as a boot does: through the attested allowlist and the host's
 * egress proxy, region from the sealed file, credentials from the host.
 */
export function egressFetchFor(config: RuntimeConfig, options: Pick<BootOptions, "fetch" | "egressProxy" | "upstreamCa">): typeof fetch {
  return (
    options.fetch ??
    createEgressFetch({
      allowlist: config.egressAllowlist,
      connectTimeoutMs: config.limits.connectTimeoutMs,
      headersTimeoutMs: config.limits.firstByteTimeoutMs,
      ...(options.egressProxy && { proxy: options.egressProxy }),
      ...(options.upstreamCa && { extraCa: options.upstreamCa }),
    })
  );
}

export function kmsClientFor(
  config: RuntimeConfig,
  region: string,
  sealedSecrets: NonNullable<BootOptions["sealedSecrets"]>,
  fetch: typeof globalThis.fetch,
  attester: Pick<Attester, "kind">,
): KMSClient {
  // On Nitro an endpoint override must still be AWS KMS (kms-endpoint.ts).
  checkKmsEndpoint(sealedSecrets.endpoint, region, attester.kind);
  return createKmsClient({
    region,
    credentials: sealedSecrets.credentials,
    ...(sealedSecrets.endpoint && { endpoint: sealedSecrets.endpoint }),
    requestHandler: new EgressHttpHandler(fetch, config.limits.connectTimeoutMs + 10_000),
  });
}

export async function bootEnclave(options: BootOptions): Promise<BootedEnclave> {
  const now = options.now ?? (() => new Date());
  const config = parseRuntimeConfig(options.configBytes);
  const configSha256 = attestedConfigHash(options.configBytes, options.sealedSecrets?.file);
  const fetch = egressFetchFor(config, options);
  let secrets = options.secrets;
  let identityKeys: IdentityKeys | undefined;
  if (options.sealedSecrets) {
    const sealed = parseSealedFile(options.sealedSecrets.file);
    const kmsClient = kmsClientFor(config, sealed.region, options.sealedSecrets, fetch, options.attester);
    // Throws (and so stops the boot) unless every secret is released.
    const source = await openSealedSecrets({ file: options.sealedSecrets.file, attester: options.attester, kmsClient, now });
    options.log.log("info", "secrets.released", { count: source.names.length });
    secrets = source;
    if (sealed.identity) {
      // The shared identity: every replica of this image presents the same
      // TLS key and receipt keys. Refused (and the boot stopped) unless KMS
      // releases it to this measurement and its signing key is valid now.
      identityKeys = await openSealedIdentity({ blob: sealed.identity, attester: options.attester, kmsClient, keyId: sealed.keyId, now });
      options.log.log("info", "identity.released", { count: 1 + identityKeys.retired.length, notAfter: new Date(identityKeys.signing.notAfter).toISOString() });
    }
  }
  const hostnames = options.hostnames && { hostnames: options.hostnames };
  const identity = identityKeys ? await identityFromKeys(identityKeys, { now, ...hostnames }) : await createIdentity({ now, ...hostnames });
  const attestation = new AttestationService({
    attester: options.attester,
    identity,
    configSha256,
    now,
    perSecond: config.limits.attestationPerSecond,
    reservedShare: config.limits.attestationReservedShare,
    perAddressPerSecond: config.limits.attestationPerAddressPerSecond,
    clientTokenSha256: config.clients.map((c) => c.tokenSha256),
  });
  const metrics = createMetrics();
  const adapters = options.adapters ?? createAdapters(config.providers, secrets);
  const app = createGatewayApp({
    config,
    adapters,
    attestation,
    identity,
    log: options.log,
    metrics,
    upstream: {
      fetch,
      now,
      random: () => randomInt(0, 1_000_000) / 1_000_000,
      sleep: defaultSleep,
      onAttempt: (route, outcome) => metrics.upstreamAttempts.inc({ provider: route.adapter.info.name, outcome }),
    },
  });
  // Fail fast if the attester cannot issue: a gateway that cannot prove
  // itself must not serve.
  await attestation.current();
  const server = await startHttpsServer({ app, identity, listen: options.listen, limits: config.limits, proxyProtocol: config.proxyProtocol });
  options.log.log("info", "enclave.ready", {
    port: server.port,
    attester: options.attester.kind,
    configSha256: Buffer.from(configSha256).toString("hex"),
    tlsSpkiSha256: Buffer.from(identity.tls.spkiSha256).toString("hex"),
  });
  return {
    config,
    configSha256,
    identity,
    attestation,
    metrics,
    server,
    close: async () => {
      await server.close();
      await options.attester.close();
    },
  };
}
