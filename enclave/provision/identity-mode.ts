import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import type { Attester } from "../../attestation/attester.js";
import type { TrustAnchor } from "../../attestation/roots.js";
import { egressFetchFor, identityTrustedRoots, kmsClientFor, kmsPinsFor, runtimeConfigFor } from "../boot.js";
import { checkPinnedKey } from "../secrets/key-arn.js";
import type { Logger } from "../observability/log.js";
import { signingSpki, type IdentityKeys } from "../secrets/identity-blob.js";
import { generateSealedIdentity, openSealedIdentity } from "../secrets/identity-source.js";
import { parseSealedFile, SealedSecretsError, type SealedIdentityBlob } from "../../host/transport/codec/sealed-file.js";
import type { IdentityGenerateRequest, ProvisionBundle } from "../../host/transport/codec/bundle.js";
import { ProvisionError } from "../../host/transport/codec/provision-errors.js";
import type { IdentityStatus } from "../../host/transport/codec/status.js";

/**
 * Identity mode: the bundle asks for a new shared identity (docs/IDENTITY.md,
 * "Rotation, step by step"), and this measured enclave makes it instead of
 * serving. It has to happen here: whoever generates the TLS key could stand
 * in the middle of clients' attested connections, so the operator must
 * never hold it. Only the sealed blob (ciphertext) and public hashes leave.
 *
 *   runtime config → egress path and KMS client exactly as bootEnclave builds
 *   them (boot.ts) → sealed file → open the previous identity, if the file
 *   has one (a rotation) → generateSealedIdentity → open the new blob once
 *   (a blob this measurement cannot open would stop every replica booted
 *   from it) → public summary.
 *
 * The provider secrets in the file are not opened: generation needs only
 * the identity key ARN the trust policy pins (`identity.kmsKeyArn`; a policy
 * whose identity is ephemeral makes no identity at all),
 * and a secret that is never released cannot leak.
 *
 * An expired previous identity is refused (openSealedIdentity's
 * ERR_IDENTITY_EXPIRED): its signing key can no longer be opened for a
 * rotation, so its receipts cannot be carried over. The operator then makes
 * a fresh identity by removing the file's `identity` field, and clients
 * re-pin the TLS SPKI.
 */
export interface IdentityModeOptions {
  bundle: ProvisionBundle;
  attester: Attester;
  log: Logger;
  now: () => Date;
  /** As for bootEnclave: the host's egress CONNECT proxy, and a development CA. */
  egressProxy?: string;
  upstreamCa?: string;
  /** Replaces the egress fetch (tests). */
  fetch?: typeof fetch;
  /** As for bootEnclave: the simulated NSM's root. */
  devRoot?: TrustAnchor;
}

const DAY_MS = 24 * 3600_000;

const requestError = (message: string) => new ProvisionError("ERR_PROVISION_IDENTITY", `identity request: ${message}`);

/**
 * The generation options for a request, given whether the file already has
 * an identity. A rotation must say how long the old key's receipts stay
 * valid (0 is the emergency cut-off, so there is no safe default); a first
 * identity has no old key, so an overlap or a TLS rotation would be ignored,
 * and a field that would be ignored is refused.
 */
export function identityRequestOptions(request: IdentityGenerateRequest, rotation: boolean): { validityMs: number; overlapMs?: number; rotateTls: boolean } {
  if (rotation && request.overlapDays === undefined) {
    throw requestError(`the sealed file already has an identity, so this is a rotation: "overlapDays" is required (0 cuts the old key off at once)`);
  }
  if (!rotation && request.overlapDays !== undefined) throw requestError(`the sealed file has no identity to rotate: "overlapDays" is not allowed`);
  if (!rotation && request.rotateTls !== undefined)
    throw requestError(`the sealed file has no identity to rotate: "rotateTls" is not allowed (a first identity always has a new TLS key)`);
  return {
    validityMs: request.validityDays * DAY_MS,
    ...(request.overlapDays !== undefined && { overlapMs: request.overlapDays * DAY_MS }),
    rotateTls: request.rotateTls === true,
  };
}

const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const iso = (ms: number) => new Date(ms).toISOString();

/** What the operator may see and publish: hashes of public keys and their windows. */
function publicSummary(blob: SealedIdentityBlob, keys: IdentityKeys): Omit<IdentityStatus, "status"> {
  const tlsSpki = createPublicKey(createPrivateKey({ key: Buffer.from(keys.tlsPkcs8), format: "der", type: "pkcs8" })).export({ type: "spki", format: "der" });
  return {
    identity: { dataKey: b64(blob.dataKey), iv: b64(blob.iv), sealed: b64(blob.sealed), attestation: b64(blob.attestation) },
    tlsSpkiSha256: sha256Hex(tlsSpki),
    receiptKeys: [
      { spkiSha256: sha256Hex(signingSpki(keys.signing.pkcs8)), notBefore: iso(keys.signing.notBefore), notAfter: iso(keys.signing.notAfter) },
      ...keys.retired.map((k) => ({ spkiSha256: sha256Hex(k.spki), notBefore: iso(k.notBefore), notAfter: iso(k.notAfter) })),
    ],
  };
}

function wipe(keys: IdentityKeys | undefined): void {
  keys?.tlsPkcs8.fill(0);
  keys?.signing.pkcs8.fill(0);
}

export async function generateIdentityFromBundle(options: IdentityModeOptions): Promise<Omit<IdentityStatus, "status">> {
  const { bundle, attester, log, now } = options;
  const request = bundle.identity?.generate;
  const sealedSecrets = bundle.sealedSecrets;
  // decodeBundle already refuses identity without sealedSecrets; checked again so this function stands alone.
  if (request === undefined || sealedSecrets === undefined) throw requestError(`needs "identity.generate" and "sealedSecrets"`);
  const config = runtimeConfigFor({ trustPolicyBytes: bundle.trustPolicyBytes, operationsBytes: bundle.operationsBytes, attester, sealedSecrets });
  const sealed = parseSealedFile(sealedSecrets.file);
  const generation = identityRequestOptions(request, sealed.identity !== undefined);
  const pins = kmsPinsFor(config.trust, attester);
  if (pins.identityKeyArn === undefined) {
    throw new SealedSecretsError(
      "ERR_IDENTITY_POLICY",
      'the trust policy\'s identity mode is ephemeral, so no shared identity is made; set identity { "mode": "sealed", "kmsKeyArn": … }',
    );
  }
  const identityKeyArn = pins.identityKeyArn;
  const region = checkPinnedKey(identityKeyArn, "sealed identity", { dev: pins.dev }) as string;
  const trustedRoots = identityTrustedRoots(attester, options.devRoot);
  const fetch = egressFetchFor(config, options);
  const kmsClient = kmsClientFor(config, region, sealedSecrets, fetch, attester);
  const kms = { attester, kmsClient, keyArn: identityKeyArn, dev: pins.dev, now };
  const open = { trustedRoots, ...(pins.generatorPcrs && { generatorPcrs: pins.generatorPcrs }) };
  let previous: IdentityKeys | undefined;
  let made: { blob: SealedIdentityBlob; keys: IdentityKeys } | undefined;
  let reopened: IdentityKeys | undefined;
  try {
    if (sealed.identity) {
      previous = await openSealedIdentity({ ...kms, ...open, blob: sealed.identity });
      log.log("info", "identity.previous_released", { count: 1 + previous.retired.length, notAfter: iso(previous.signing.notAfter) });
    }
    made = await generateSealedIdentity({ ...kms, ...generation, ...(previous && { previous }) });
    // Opened as a replica will: this also verifies the attestation just written into it.
    reopened = await openSealedIdentity({ ...kms, ...open, blob: made.blob });
    if (
      !Buffer.from(reopened.tlsPkcs8).equals(Buffer.from(made.keys.tlsPkcs8)) ||
      !Buffer.from(reopened.signing.pkcs8).equals(Buffer.from(made.keys.signing.pkcs8)) ||
      reopened.retired.length !== made.keys.retired.length
    ) {
      throw new SealedSecretsError("ERR_IDENTITY_MALFORMED", "sealed identity: the new blob opened to different keys than were sealed");
    }
    const summary = publicSummary(made.blob, made.keys);
    log.log("info", "identity.generated", { count: summary.receiptKeys.length, notAfter: summary.receiptKeys[0]!.notAfter, tlsSpkiSha256: summary.tlsSpkiSha256 });
    return summary;
  } finally {
    // The private keys exist only for this call; the reply carries the blob.
    wipe(previous);
    wipe(made?.keys);
    wipe(reopened);
    kmsClient.destroy();
  }
}
