import { generateKeyPairSync } from "node:crypto";
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from "@aws-sdk/client-kms";
import type { Attester } from "../../attestation/attester.js";
import type { TrustAnchor } from "../../attestation/roots.js";
import { IDENTITY_ENCRYPTION_CONTEXT, MAX_RETIRED_KEYS, openIdentity, sealIdentity, signingSpki, type IdentityKeys } from "./identity-blob.js";
import { classifyKmsError, openRecipientOutput } from "./kms-source.js";
import { generateRecipientKey } from "./recipient-decrypt.js";
import { MAX_IDENTITY_ATTESTATION_BYTES, SealedSecretsError, type SealedIdentityBlob } from "../../host/transport/codec/sealed-file.js";
import { checkAnswerKey, checkPinnedKey } from "./key-arn.js";
import { checkIdentityAgainstClaims, encodeIdentityClaims, identityBlobSha256, identityKeyHashes, ownImagePcrs, verifyGeneratorAttestation } from "./identity-provenance.js";

/**
 * KMS side of the shared identity (identity-blob.ts has the format,
 * identity-provenance.ts the generator's attestation).
 *
 *  - generateSealedIdentity runs inside a measured enclave: fresh keys,
 *    a data key from GenerateDataKey + Recipient under the pinned key ARN
 *    (the answer's KeyId checked), the keys sealed under it, then an
 *    attestation document binding the keys' public halves, the blob and the
 *    key ARN. Rotation passes the previous identity: the new signing key
 *    starts now, the old one is kept as a retired public key whose window
 *    ends after `overlapMs` (0 for an emergency), and the TLS key carries
 *    over unless `rotateTls` (clients pin its SPKI).
 *  - openSealedIdentity runs at every boot: the generator's document is
 *    verified first (a blob made offline, or under another key, stops here,
 *    before KMS is asked), then Decrypt + Recipient of the data key under the
 *    pinned key, then the blob, whose keys must be the attested ones. It
 *    refuses an identity whose signing key is not valid now, so a replica
 *    never starts with a key past its window.
 */
export interface IdentityKmsOptions {
  attester: Attester;
  kmsClient: KMSClient;
  /**
   * The trust policy's `identity.kmsKeyArn`. Every call names it and every
   * answer must be for it (ERR_KMS_KEY_MISMATCH); outside development it
   * must be a full key ARN (ERR_KMS_KEY_ID).
   */
  keyArn: string;
  /** Development: aliases allowed, debug-mode generators accepted. */
  dev: boolean;
  now: () => Date;
  /** Per-call budget, default 10 s. */
  timeoutMs?: number;
}

export interface OpenIdentityOptions extends IdentityKmsOptions {
  blob: SealedIdentityBlob;
  /**
   * Roots the generator's document must chain to: the AWS Nitro root when
   * the attester is the NSM, the development root when simulated. The caller
   * chooses (this module reads no files).
   */
  trustedRoots: TrustAnchor[];
  /** PCR0..2 sets of other images whose identities are accepted (rollouts); this image's own are always accepted. */
  generatorPcrs?: ReadonlyArray<ReadonlyMap<number, Uint8Array>>;
}

const NAME = "the sealed identity";
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_VALIDITY_MS = 5 * 365 * 24 * 3600_000;

async function recipientDocument(attester: Attester) {
  const recipient = generateRecipientKey();
  try {
    return { recipient, document: await attester.attest({ publicKey: recipient.spkiDer }) };
  } catch (err) {
    throw attestationFailed(err, "the recipient key");
  }
}

function attestationFailed(err: unknown, what: string): SealedSecretsError {
  const code = typeof (err as { code?: unknown })?.code === "string" ? ` (${(err as { code: string }).code})` : "";
  return new SealedSecretsError("ERR_KMS_ATTESTATION", `sealed identity: could not obtain an attestation document for ${what}${code}`);
}

function dataKeyOf(output: { Plaintext?: Uint8Array; CiphertextForRecipient?: Uint8Array }, privateKey: Parameters<typeof openRecipientOutput>[2]): Uint8Array {
  const key = openRecipientOutput(NAME, output, privateKey);
  if (key.length !== 32) {
    key.fill(0);
    throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed identity: the data key is ${key.length} bytes, expected 32`);
  }
  return key;
}

/** Opens a sealed identity made by an accepted enclave under the pinned key, and checks its signing key is valid at `now`. */
export async function openSealedIdentity(options: OpenIdentityOptions): Promise<IdentityKeys> {
  checkPinnedKey(options.keyArn, "sealed identity", { dev: options.dev });
  const { recipient, document } = await recipientDocument(options.attester);
  // Before any key of the blob is used, and before KMS is asked for its data key.
  const attested = await verifyGeneratorAttestation({
    document: options.blob.attestation,
    blob: options.blob,
    keyArn: options.keyArn,
    trustedRoots: options.trustedRoots,
    ownPcrs: ownImagePcrs(document),
    ...(options.generatorPcrs && { generatorPcrs: options.generatorPcrs }),
    dev: options.dev,
  });
  let output;
  try {
    output = await options.kmsClient.send(
      new DecryptCommand({
        CiphertextBlob: options.blob.dataKey,
        KeyId: options.keyArn,
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT },
        Recipient: { AttestationDocument: document, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" },
      }),
      { abortSignal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) },
    );
  } catch (err) {
    throw classifyKmsError(NAME, err);
  }
  checkAnswerKey(output.KeyId, options.keyArn, "sealed identity", "Decrypt");
  const dataKey = dataKeyOf(output, recipient.privateKey);
  let keys: IdentityKeys;
  try {
    keys = openIdentity(options.blob, dataKey);
  } finally {
    dataKey.fill(0);
  }
  try {
    checkIdentityAgainstClaims(keys, attested);
  } catch (err) {
    keys.tlsPkcs8.fill(0);
    keys.signing.pkcs8.fill(0);
    throw err;
  }
  const now = options.now().getTime();
  if (now < keys.signing.notBefore || now >= keys.signing.notAfter) {
    throw new SealedSecretsError(
      "ERR_IDENTITY_EXPIRED",
      `sealed identity: the signing receipt key is valid from ${new Date(keys.signing.notBefore).toISOString()} to ${new Date(keys.signing.notAfter).toISOString()}, not now; rotate the identity`,
    );
  }
  return keys;
}

export interface GenerateIdentityOptions extends IdentityKmsOptions {
  /** How long the new signing receipt key is valid. */
  validityMs: number;
  /** The identity this one replaces (opened with openSealedIdentity), for a rotation. */
  previous?: IdentityKeys;
  /** How long receipts of the previous signing key stay valid after now. Required with `previous`. */
  overlapMs?: number;
  /** Make a new TLS key too (clients that pinned the old SPKI must re-pin). */
  rotateTls?: boolean;
}

function p256Pkcs8(): Uint8Array {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" }));
}

/** The keys of a new (or rotated) identity. Pure apart from key generation; exported for tests. */
export function nextIdentityKeys(options: Pick<GenerateIdentityOptions, "validityMs" | "previous" | "overlapMs" | "rotateTls"> & { now: number }): IdentityKeys {
  const { now, validityMs, previous } = options;
  if (!Number.isSafeInteger(validityMs) || validityMs <= 0 || validityMs > MAX_VALIDITY_MS) {
    throw new RangeError(`"validityMs" expected 1..${MAX_VALIDITY_MS}, got ${validityMs}`);
  }
  const retired = [];
  if (previous) {
    const overlap = options.overlapMs;
    if (overlap === undefined || !Number.isSafeInteger(overlap) || overlap < 0 || overlap > MAX_VALIDITY_MS) {
      throw new RangeError(`"overlapMs" expected 0..${MAX_VALIDITY_MS} with a previous identity, got ${overlap}`);
    }
    const old = previous.signing;
    // The old key's receipts stay valid until the overlap ends (or its own
    // expiry, if sooner); with overlap 0 a receipt claiming any later time
    // fails — the emergency case, where the key may be in other hands.
    const notAfter = Math.max(old.notBefore + 1, Math.min(old.notAfter, now + overlap));
    retired.push({ spki: signingSpki(old.pkcs8), notBefore: old.notBefore, notAfter }, ...previous.retired);
  }
  return {
    created: now,
    tlsPkcs8: previous && !options.rotateTls ? previous.tlsPkcs8 : p256Pkcs8(),
    signing: { pkcs8: p256Pkcs8(), notBefore: now, notAfter: now + validityMs },
    // Oldest keys drop off first; their receipts still verify against the
    // attestation documents saved with them (verifySavedExchange).
    retired: retired.slice(0, MAX_RETIRED_KEYS),
  };
}

/** A new sealed identity, made inside the enclave; nothing of it leaves in the clear. */
export async function generateSealedIdentity(options: GenerateIdentityOptions): Promise<{ blob: SealedIdentityBlob; keys: IdentityKeys }> {
  checkPinnedKey(options.keyArn, "sealed identity", { dev: options.dev });
  const keys = nextIdentityKeys({ ...options, now: options.now().getTime() });
  const { recipient, document } = await recipientDocument(options.attester);
  let output;
  try {
    output = await options.kmsClient.send(
      new GenerateDataKeyCommand({
        KeyId: options.keyArn,
        KeySpec: "AES_256",
        EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT },
        Recipient: { AttestationDocument: document, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" },
      }),
      { abortSignal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) },
    );
  } catch (err) {
    throw classifyKmsError(NAME, err, "GenerateDataKey");
  }
  // Before the data key is used: a key the host chose (its account, its alias) must not seal anything.
  checkAnswerKey(output.KeyId, options.keyArn, "sealed identity", "GenerateDataKey");
  if (!(output.CiphertextBlob instanceof Uint8Array) || output.CiphertextBlob.length === 0) {
    throw new SealedSecretsError("ERR_KMS_RESPONSE", "sealed identity: KMS GenerateDataKey returned no CiphertextBlob");
  }
  const dataKey = dataKeyOf(output, recipient.privateKey);
  let ciphertext;
  try {
    ciphertext = sealIdentity(keys, dataKey, output.CiphertextBlob);
  } finally {
    dataKey.fill(0);
  }
  const hashes = identityKeyHashes(keys);
  const userData = encodeIdentityClaims({ ...hashes, blobSha256: identityBlobSha256(ciphertext), keyArn: options.keyArn });
  let attestation: Uint8Array;
  try {
    attestation = await options.attester.attest({ publicKey: hashes.signingSpki, userData });
  } catch (err) {
    throw attestationFailed(err, "the new identity");
  }
  if (attestation.length > MAX_IDENTITY_ATTESTATION_BYTES) {
    throw new SealedSecretsError("ERR_KMS_ATTESTATION", `sealed identity: the attestation document is ${attestation.length} bytes, over ${MAX_IDENTITY_ATTESTATION_BYTES}`);
  }
  return { blob: { ...ciphertext, attestation }, keys };
}
