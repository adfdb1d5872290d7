import { generateKeyPairSync } from "node:crypto";
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from "@aws-sdk/client-kms";
import type { Attester } from "../../attestation/attester.js";
import { IDENTITY_ENCRYPTION_CONTEXT, MAX_RETIRED_KEYS, openIdentity, sealIdentity, signingSpki, type IdentityKeys } from "./identity-blob.js";
import { classifyKmsError, openRecipientOutput } from "./kms-source.js";
import { generateRecipientKey } from "./recipient-decrypt.js";
import { SealedSecretsError, type SealedIdentityBlob } from "./sealed-file.js";

/**
 * KMS side of the shared identity (identity-blob.ts has the format).
 *
 *  - generateSealedIdentity runs inside a measured enclave: fresh keys,
 *    a data key from GenerateDataKey + Recipient, the keys sealed under it.
 *    Rotation passes the previous identity: the new signing key starts now,
 *    the old one is kept as a retired public key whose window ends after
 *    `overlapMs` (0 for an emergency), and the TLS key carries over unless
 *    `rotateTls` (clients pin its SPKI).
 *  - openSealedIdentity runs at every boot: Decrypt + Recipient of the data
 *    key, then the blob. It refuses an identity whose signing key is not
 *    valid now, so a replica never starts with a key past its window.
 */
export interface IdentityKmsOptions {
  attester: Attester;
  kmsClient: KMSClient;
  keyId: string;
  now: () => Date;
  /** Per-call budget, default 10 s. */
  timeoutMs?: number;
}

const NAME = "the sealed identity";
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_VALIDITY_MS = 5 * 365 * 24 * 3600_000;

async function recipientDocument(attester: Attester) {
  const recipient = generateRecipientKey();
  try {
    return { recipient, document: await attester.attest({ publicKey: recipient.spkiDer }) };
  } catch (err) {
    const code = typeof (err as { code?: unknown })?.code === "string" ? ` (${(err as { code: string }).code})` : "";
    throw new SealedSecretsError("ERR_KMS_ATTESTATION", `sealed identity: could not obtain an attestation document for the recipient key${code}`);
  }
}

function dataKeyOf(output: { Plaintext?: Uint8Array; CiphertextForRecipient?: Uint8Array }, privateKey: Parameters<typeof openRecipientOutput>[2]): Uint8Array {
  const key = openRecipientOutput(NAME, output, privateKey);
  if (key.length !== 32) {
    key.fill(0);
    throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed identity: the data key is ${key.length} bytes, expected 32`);
  }
  return key;
}

/** Opens a sealed identity and checks its signing key is valid at `now`. */
export async function openSealedIdentity(options: IdentityKmsOptions & { blob: SealedIdentityBlob }): Promise<IdentityKeys> {
  const { recipient, document } = await recipientDocument(options.attester);
  let output;
  try {
    output = await options.kmsClient.send(
      new DecryptCommand({
        CiphertextBlob: options.blob.dataKey,
        KeyId: options.keyId,
        EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
        EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT },
        Recipient: { AttestationDocument: document, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" },
      }),
      { abortSignal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) },
    );
  } catch (err) {
    throw classifyKmsError(NAME, err);
  }
  const dataKey = dataKeyOf(output, recipient.privateKey);
  let keys: IdentityKeys;
  try {
    keys = openIdentity(options.blob, dataKey);
  } finally {
    dataKey.fill(0);
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
  const keys = nextIdentityKeys({ ...options, now: options.now().getTime() });
  const { recipient, document } = await recipientDocument(options.attester);
  let output;
  try {
    output = await options.kmsClient.send(
      new GenerateDataKeyCommand({
        KeyId: options.keyId,
        KeySpec: "AES_256",
        EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT },
        Recipient: { AttestationDocument: document, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" },
      }),
      { abortSignal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) },
    );
  } catch (err) {
    throw classifyKmsError(NAME, err, "GenerateDataKey");
  }
  if (!(output.CiphertextBlob instanceof Uint8Array) || output.CiphertextBlob.length === 0) {
    throw new SealedSecretsError("ERR_KMS_RESPONSE", "sealed identity: KMS GenerateDataKey returned no CiphertextBlob");
  }
  const dataKey = dataKeyOf(output, recipient.privateKey);
  try {
    return { blob: sealIdentity(keys, dataKey, output.CiphertextBlob), keys };
  } finally {
    dataKey.fill(0);
  }
}
