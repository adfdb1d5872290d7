import { randomInt } from "node:crypto";
import type { Attester } from "../attestation/attester.js";
import { AttestationService } from "./attestation-service.js";
import { createEgressFetch, refuseExtraCaOutsideDev } from "./egress.js";
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
import { parseSealedFile, SealedSecretsError } from "./secrets/sealed-file.js";
import { checkPinnedKey } from "./secrets/key-arn.js";
import { awsNitroRootG1, type TrustAnchor } from "../attestation/roots.js";

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
  /**
   * What the trust policy pins about KMS (issue 11); see kmsPinsFor for what
   * each absent field falls back to until the trust policy is wired in.
   */
  kmsPins?: Partial<KmsPins>;
  /**
   * Development: the simulated NSM's root. A sealed identity's generator
   * document must chain to it (on hardware: to the AWS Nitro root, always).
   */
  devRoot?: TrustAnchor;
}

/** The values openSealedSecrets / openSealedIdentity check against; the trust policy will supply them. */
export interface KmsPins {
  /** `secretsKeyArn`: every provider secret is released under exactly this key. */
  secretsKeyArn: string;
  /** `identity.kmsKeyArn`: the shared identity is sealed and opened under exactly this key. */
  identityKeyArn: string;
  /** Development (simulated NSM): aliases, http origins and debug-mode generators allowed. Never with the real NSM. */
  dev: boolean;
  /** PCR0..2 sets of other images whose sealed identities this one accepts (rollouts). */
  generatorPcrs?: ReadonlyArray<ReadonlyMap<number, Uint8Array>>;
}

/**
 * Today's stand-in for the trust policy: a pin that is not given falls back
 * to the sealed file's `keyId`, which the host wrote. That keeps every
 * deployment booting, but it only enforces the form (a full key ARN outside
 * development) and that every answer is for that one key; that the key is
 * the key owner's comes only once the attested trust policy supplies the ARN.
 */
export function kmsPinsFor(sealedKeyId: string, attester: Pick<Attester, "kind">, pins: Partial<KmsPins> = {}): KmsPins {
  const dev = pins.dev ?? attester.kind === "simulated";
  // A development document never passes as production, and production never relaxes a check.
  if (dev && attester.kind !== "simulated") throw new TypeError("development KMS checks are only allowed with the simulated NSM");
  return {
    secretsKeyArn: pins.secretsKeyArn ?? sealedKeyId,
    identityKeyArn: pins.identityKeyArn ?? sealedKeyId,
    dev,
    ...(pins.generatorPcrs && { generatorPcrs: pins.generatorPcrs }),
  };
}

/**
 * The secrets the config's providers use, each with the one origin it may
 * be sent to. A local provider sends nothing anywhere, so it has no origin.
 */
export function secretsUsedBy(config: RuntimeConfig): { name: string; origin: string }[] {
  const out = new Map<string, string>();
  for (const p of config.providers) {
    if (p.secret === undefined || p.kind === "local") continue;
    const origin = new URL(p.baseUrl).origin;
    const seen = out.get(p.secret);
    if (seen !== undefined && seen !== origin) {
      throw new SealedSecretsError("ERR_SECRET_ORIGIN", `sealed secrets: ${p.secret} is used by providers at two origins; one secret serves one provider`);
    }
    out.set(p.secret, origin);
  }
  return [...out].map(([name, origin]) => ({ name, origin }));
}

/** Which roots a sealed identity's generator document must chain to. */
export function identityTrustedRoots(attester: Pick<Attester, "kind">, devRoot: TrustAnchor | undefined): TrustAnchor[] {
  if (attester.kind === "nsm") return [awsNitroRootG1()];
  if (devRoot === undefined) {
    throw new SealedSecretsError("ERR_IDENTITY_PROVENANCE", "sealed identity: the simulated NSM's development root was not given, so no generator can be verified");
  }
  return [devRoot];
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
  refuseExtraCaOutsideDev(options.upstreamCa, options.attester.kind);
  const fetch = egressFetchFor(config, options);
  let secrets = options.secrets;
  let identityKeys: IdentityKeys | undefined;
  if (options.sealedSecrets) {
    const sealed = parseSealedFile(options.sealedSecrets.file);
    const pins = kmsPinsFor(sealed.keyId, options.attester, options.kmsPins);
    // The region of the pinned key, not the file's (checked again inside).
    const region = checkPinnedKey(pins.secretsKeyArn, "sealed secrets", { dev: pins.dev, fallbackRegion: sealed.region });
    const kmsClient = kmsClientFor(config, region, options.sealedSecrets, fetch, options.attester);
    // Throws (and so stops the boot) unless every secret a provider uses is released.
    const source = await openSealedSecrets({
      file: options.sealedSecrets.file,
      keyArn: pins.secretsKeyArn,
      secrets: secretsUsedBy(config),
      dev: pins.dev,
      attester: options.attester,
      kmsClient,
      now,
    });
    options.log.log("info", "secrets.released", { count: source.names.length });
    // File entries no provider uses stay sealed; their count only.
    if (source.unused > 0) options.log.log("info", "secrets.unused", { count: source.unused });
    secrets = source;
    if (sealed.identity) {
      // The shared identity: every replica of this image presents the same
      // TLS key and receipt keys. Refused (and the boot stopped) unless KMS
      // releases it to this measurement and its signing key is valid now.
      // (Same KMS client: today both keys are the file's, in one region.)
      identityKeys = await openSealedIdentity({
        blob: sealed.identity,
        attester: options.attester,
        kmsClient,
        keyArn: pins.identityKeyArn,
        dev: pins.dev,
        trustedRoots: identityTrustedRoots(options.attester, options.devRoot),
        ...(pins.generatorPcrs && { generatorPcrs: pins.generatorPcrs }),
        now,
      });
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
