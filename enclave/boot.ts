import { randomInt } from "node:crypto";
import type { Attester } from "../attestation/attester.js";
import { AttestationService } from "./attestation-service.js";
import { createEgressFetch, refuseExtraCaOutsideDev } from "./egress.js";
import { createGatewayApp } from "./gateway.js";
import type { UpstreamFetch } from "./http/upstream-response.js";
import { createIdentity, identityFromKeys, type EnclaveIdentity } from "./identity.js";
import type { IdentityKeys } from "./secrets/identity-blob.js";
import { openSealedIdentity } from "./secrets/identity-source.js";
import type { ListenEndpoint } from "./listen.js";
import type { Logger } from "./observability/log.js";
import { createMetrics, type GatewayMetrics } from "./observability/metrics.js";
import { createAdapters } from "./providers/registry.js";
import type { ProviderAdapter } from "./providers/types.js";
import { loadRuntimeConfig, type RuntimeConfig } from "./runtime-config.js";
import { secretBindings, type TrustPolicy } from "../attestation/trust-policy.js";
import type { SecretSource } from "./secrets.js";
import { startHttpsServer, type RunningServer } from "./server.js";
import { defaultSleep } from "./upstream.js";
import { attestedConfigHash, attestedPolicyHash } from "../host/transport/codec/config-hash.js";
import { EgressHttpHandler } from "./secrets/kms-http-handler.js";
import { checkKmsEndpoint } from "./secrets/kms-endpoint.js";
import { createKmsClient, openSealedSecrets } from "./secrets/kms-source.js";
import type { KMSClient } from "@aws-sdk/client-kms";
import { parseSealedFile, SealedSecretsError } from "../host/transport/codec/sealed-file.js";
import { checkPinnedKey } from "./secrets/key-arn.js";
import { awsNitroRootG1, type TrustAnchor } from "../attestation/roots.js";

/**
 * Assembles the enclave from its parts. Everything with an effect is passed
 * in (attester, secrets, clock, fetch, logger), so tests boot the real
 * thing with local mocks, and production passes the NSM and KMS.
 */
export interface BootOptions {
  /** The trust policy exactly as received; its SHA-256 is attested (`policy_sha256`) and it is served at /v1/attestation/policy. */
  trustPolicyBytes: Uint8Array;
  /** The operations document exactly as received (tokens, limits); covered by `config_sha256`. */
  operationsBytes: Uint8Array;
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
   * AWS role credentials for Bedrock when no sealed-secrets file brings them
   * (with one, its credentials are used). Useless to a host: Bedrock is
   * called only after STS confirms they are the trust policy's pinned account.
   */
  awsCredentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Development: the simulated NSM's root. A sealed identity's generator
   * document must chain to it (on hardware: to the AWS Nitro root, always).
   */
  devRoot?: TrustAnchor;
}

/** What the trust policy pins about KMS; openSealedSecrets / openSealedIdentity check every answer against it. */
export interface KmsPins {
  /** `secrets.kmsKeyArn`: every provider secret is released under exactly this key. */
  secretsKeyArn: string | undefined;
  /** `identity.kmsKeyArn`: the shared identity is sealed and opened under exactly this key; absent for an ephemeral identity. */
  identityKeyArn: string | undefined;
  /** Development (simulated NSM): http origins and debug-mode generators allowed. Never with the real NSM. */
  dev: boolean;
  /** PCR0..2 sets of other images whose sealed identities this one accepts (rollouts). */
  generatorPcrs?: ReadonlyArray<ReadonlyMap<number, Uint8Array>>;
}

/**
 * The KMS pins, from the attested trust policy and nothing else: the
 * sealed file's own `keyId` and `region` are the host's and decide nothing.
 */
export function kmsPinsFor(trust: TrustPolicy, attester: Pick<Attester, "kind">): KmsPins {
  return {
    secretsKeyArn: trust.secrets?.kmsKeyArn,
    identityKeyArn: trust.identity.mode === "sealed" ? trust.identity.kmsKeyArn : undefined,
    dev: attester.kind === "simulated",
    ...(trust.identity.mode === "sealed" && trust.identity.generatorPcrs && { generatorPcrs: trust.identity.generatorPcrs }),
  };
}

/** The development rules of the trust policy apply exactly with the simulated NSM. */
export function isDev(attester: Pick<Attester, "kind">): boolean {
  return attester.kind === "simulated";
}

/**
 * Both inputs, parsed under the rules of this attester. A KMS endpoint
 * override is checked (on Nitro: AWS KMS, in a key's region) before it is
 * added to the derived egress.
 */
export function runtimeConfigFor(options: Pick<BootOptions, "trustPolicyBytes" | "operationsBytes" | "attester" | "sealedSecrets">): RuntimeConfig {
  const dev = isDev(options.attester);
  const endpoint = options.sealedSecrets?.endpoint;
  const config = loadRuntimeConfig(options.trustPolicyBytes, options.operationsBytes, { dev });
  if (endpoint === undefined) return config;
  const regions = [config.trust.secrets?.kmsKeyArn, config.trust.identity.mode === "sealed" ? config.trust.identity.kmsKeyArn : undefined]
    .filter((a): a is string => a !== undefined)
    .map((a) => checkPinnedKey(a, "trust policy", { dev }) as string);
  for (const region of new Set(regions)) checkKmsEndpoint(endpoint, region, options.attester.kind);
  return loadRuntimeConfig(options.trustPolicyBytes, options.operationsBytes, { dev, kmsEndpoint: endpoint });
}

/** The secrets the trust policy's providers use, each with the one origin it may be sent to. */
export function secretsUsedBy(config: RuntimeConfig): { name: string; origin: string; provider: string }[] {
  return secretBindings(config.trust).map(({ name, origin, provider }) => ({ name, origin, provider }));
}

/**
 * Every secret a provider names must be at hand at boot: released from the
 * sealed file, or (development) in the environment. A host that drops one
 * stops the boot, naming the provider, instead of leaving a provider that
 * answers 502 to every request.
 */
export function requireProviderSecrets(config: RuntimeConfig, secrets: SecretSource): void {
  const missing = secretBindings(config.trust).filter((b) => !secrets.has(b.name));
  if (missing.length > 0) {
    throw new SealedSecretsError(
      "ERR_SECRET_MISSING",
      `provider${missing.length > 1 ? "s" : ""} ${missing.map((m) => `"${m.provider}" (secret ${m.name})`).join(", ")}: no key was handed in, so ${missing.length > 1 ? "they" : "it"} cannot be served`,
    );
  }
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
  /** SHA-256 of the trust policy's bytes (`policy_sha256`). */
  policySha256: Uint8Array;
  identity: EnclaveIdentity;
  attestation: AttestationService;
  metrics: GatewayMetrics;
  server: RunningServer;
  close(): Promise<void>;
}

// Re-exported: tests and tools import it from here too.
export { attestedConfigHash, attestedPolicyHash };

/**
 * The egress path and the KMS client a boot uses, shared with identity
 * generation (enclave/provision/identity-mode.ts) so that it reaches KMS
 * exactly as a boot does: through the attested allowlist and the host's
 * egress proxy, region from the trust policy's key ARN, credentials from
 * the host (useless without the attestation the key policy requires).
 */
export function egressFetchFor(config: RuntimeConfig, options: Pick<BootOptions, "fetch" | "egressProxy" | "upstreamCa">): UpstreamFetch {
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
  fetch: UpstreamFetch,
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
  refuseExtraCaOutsideDev(options.upstreamCa, options.attester.kind);
  const config = runtimeConfigFor(options);
  const configSha256 = attestedConfigHash(options.trustPolicyBytes, options.operationsBytes, options.sealedSecrets?.file);
  const policySha256 = attestedPolicyHash(options.trustPolicyBytes);
  const pins = kmsPinsFor(config.trust, options.attester);
  const fetch = egressFetchFor(config, options);
  const used = secretsUsedBy(config);
  let secrets = options.secrets;
  let identityKeys: IdentityKeys | undefined;
  if (!options.sealedSecrets) {
    // Outside development a provider key comes sealed to this measurement, or not at all: a key
    // the host put in the environment is the host's, and so is whatever it is billed to.
    if (!pins.dev && used.length > 0) {
      throw new SealedSecretsError(
        "ERR_SECRET_MISSING",
        `the trust policy's providers use sealed secrets (${used.map((u) => u.name).join(", ")}) but no sealed-secrets file was given`,
      );
    }
    if (pins.identityKeyArn !== undefined)
      throw new SealedSecretsError("ERR_IDENTITY_MISSING", "the trust policy requires a sealed identity, but no sealed-secrets file was given");
  } else {
    const sealed = parseSealedFile(options.sealedSecrets.file);
    const clients = new Map<string, KMSClient>();
    // One client per region the trust policy's keys live in; never the file's region.
    const clientFor = (arn: string, what: string) => {
      const region = checkPinnedKey(arn, what, { dev: pins.dev }) as string;
      let client = clients.get(region);
      if (!client) {
        client = kmsClientFor(config, region, options.sealedSecrets!, fetch, options.attester);
        clients.set(region, client);
      }
      return client;
    };
    if (used.length > 0) {
      if (pins.secretsKeyArn === undefined)
        throw new SealedSecretsError("ERR_KMS_KEY_ID", "sealed secrets: the trust policy names no secrets.kmsKeyArn, so no KMS answer can be checked");
      // Throws (and so stops the boot) unless every secret a provider uses is released.
      const source = await openSealedSecrets({
        file: options.sealedSecrets.file,
        keyArn: pins.secretsKeyArn,
        secrets: used,
        dev: pins.dev,
        attester: options.attester,
        kmsClient: clientFor(pins.secretsKeyArn, "sealed secrets"),
        now,
      });
      options.log.log("info", "secrets.released", { count: source.names.length });
      // File entries no provider uses stay sealed; their count only.
      if (source.unused > 0) options.log.log("info", "secrets.unused", { count: source.unused });
      secrets = source;
    } else if (sealed.secrets.size > 0) {
      options.log.log("info", "secrets.unused", { count: sealed.secrets.size });
    }
    if (sealed.identity && pins.identityKeyArn === undefined) {
      // The policy a client reads says "ephemeral"; serving a shared identity would contradict it.
      throw new SealedSecretsError(
        "ERR_IDENTITY_POLICY",
        "the sealed-secrets file carries an identity, but the trust policy's identity mode is ephemeral; remove the identity from the file or change the policy",
      );
    }
    if (!sealed.identity && pins.identityKeyArn !== undefined) {
      throw new SealedSecretsError("ERR_IDENTITY_MISSING", "the trust policy requires a sealed identity, but the sealed-secrets file has none (generate one: docs/IDENTITY.md)");
    }
    if (sealed.identity && pins.identityKeyArn !== undefined) {
      // The shared identity: every replica of this image presents the same
      // TLS key and receipt keys. Refused (and the boot stopped) unless KMS
      // releases it to this measurement under the policy's key, its
      // generator's attestation verifies, and its signing key is valid now.
      identityKeys = await openSealedIdentity({
        blob: sealed.identity,
        attester: options.attester,
        kmsClient: clientFor(pins.identityKeyArn, "sealed identity"),
        keyArn: pins.identityKeyArn,
        dev: pins.dev,
        trustedRoots: identityTrustedRoots(options.attester, options.devRoot),
        ...(pins.generatorPcrs && { generatorPcrs: pins.generatorPcrs }),
        now,
      });
      options.log.log("info", "identity.released", { count: 1 + identityKeys.retired.length, notAfter: new Date(identityKeys.signing.notAfter).toISOString() });
    }
    for (const client of clients.values()) client.destroy();
  }
  const hostnames = options.hostnames && { hostnames: options.hostnames };
  const identity = identityKeys ? await identityFromKeys(identityKeys, { now, ...hostnames }) : await createIdentity({ now, ...hostnames });
  const attestation = new AttestationService({
    attester: options.attester,
    identity,
    configSha256,
    policySha256,
    now,
    perSecond: config.limits.attestationPerSecond,
    reservedShare: config.limits.attestationReservedShare,
    perAddressPerSecond: config.limits.attestationPerAddressPerSecond,
    clientTokenSha256: config.clients.map((c) => c.tokenSha256),
  });
  const metrics = createMetrics();
  // Boot checks: each provider can be served as the policy says, or the enclave does not start (never a 502 per request later).
  if (!options.adapters) requireProviderSecrets(config, secrets);
  const awsCredentials = options.sealedSecrets?.credentials ?? options.awsCredentials;
  const adapters = options.adapters ?? createAdapters(config.providers, secrets, awsCredentials ? { awsCredentials } : {});
  for (const adapter of adapters.values()) if (adapter.ready) await adapter.ready(fetch);
  const app = createGatewayApp({
    config,
    trustPolicyBytes: options.trustPolicyBytes,
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
    policySha256: Buffer.from(policySha256).toString("hex"),
    tlsSpkiSha256: Buffer.from(identity.tls.spkiSha256).toString("hex"),
  });
  return {
    config,
    configSha256,
    policySha256,
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
