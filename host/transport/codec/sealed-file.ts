import { createHash } from "node:crypto";
import { rejectDuplicateJsonKeys } from "../../../attestation/client/strict-json.js";
import { EgwError, type EgwErrorAction } from "../../../attestation/egw-error.js";
import { ProvisionError } from "./provision-errors.js";

/**
 * The sealed-secrets file the host hands the enclave at boot:
 *
 *   { "version": 1,
 *     "keyId": "<KMS key ARN, alias ARN, alias/name or key id>",
 *     "region": "<aws region>",
 *     "secrets": { "<NAME>": "<base64 KMS CiphertextBlob>" },
 *     "identity": { "dataKey": "<base64>", "iv": "<base64>", "sealed": "<base64>",    // optional
 *                   "attestation": "<base64 COSE_Sign1 of the generating enclave>" } }
 *
 * The file crosses the host, so it is parsed as hostile input: bytes are
 * bounded before decoding, unknown fields are refused (a field we ignore is a
 * field an attacker can use to make two files hash differently but act the
 * same, or the reverse), and duplicate keys are refused (JSON.parse keeps
 * the last one silently). The ciphertexts are not secret — KMS releases them
 * only to a measured enclave — but which ciphertexts were loaded is part of
 * what the enclave runs, so sealedFileSha256() of the exact bytes belongs in
 * the attested runtime-config hash.
 *
 * Two readers of the one format, here together: parseSealedFile, the
 * enclave's strict parse when it opens the file, and sealedFileRegion, the
 * host's read of the one field it needs (the KMS region, to ask the SDK
 * for credentials) before it hands the file over unopened.
 */

export const SEALED_FILE_VERSION = 1;
/** 64 secrets of at most 6144-byte blobs, base64-encoded, fit well under this. */
export const MAX_SEALED_FILE_BYTES = 1024 * 1024;
export const MAX_SEALED_SECRETS = 64;
/** KMS CiphertextBlob is 1..6144 bytes (AWS KMS API reference, Decrypt). */
export const MAX_CIPHERTEXT_BYTES = 6144;
/** KMS KeyId is 1..2048 characters (AWS KMS API reference, Decrypt). */
export const MAX_KEY_ID_LENGTH = 2048;
/** Same shape as provider `secret` names in the gateway config. */
export const SECRET_NAME_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * Key ARN, alias ARN, `alias/name`, or a bare key id (UUID or multi-Region
 * `mrk-…`). Partition is aws, aws-cn, aws-us-gov, …
 */
const KEY_ID_PATTERN =
  /^(?:arn:aws[a-z-]*:kms:[a-z0-9-]{1,32}:\d{12}:(?:key\/(?:[0-9a-f-]{36}|mrk-[0-9a-f]{32})|alias\/[A-Za-z0-9/_-]{1,256})|alias\/[A-Za-z0-9/_-]{1,256}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
/** us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5 … */
const REGION_PATTERN = /^[a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}$/;
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export type SealedSecretsErrorCode =
  | "ERR_SEALED_FILE_TOO_LARGE" // file bytes, secret count or a blob over its bound
  | "ERR_SEALED_FILE_MALFORMED" // not UTF-8 JSON of the right shape, unknown/duplicate field, bad value
  | "ERR_SEALED_FILE_VERSION" // version is not 1
  | "ERR_KMS_ATTESTATION" // the attester could not produce a document for the recipient key
  | "ERR_KMS_RELEASE_DENIED" // KMS refused: policy (PCRs), key state, bad ciphertext, credentials
  | "ERR_KMS_UNAVAILABLE" // network, timeout, throttling, KMS-side fault: may succeed on retry
  | "ERR_KMS_RESPONSE" // KMS answered 2xx but not with a CiphertextForRecipient we can open
  | "ERR_KMS_PLAINTEXT_EXPOSED" // KMS answered with Plaintext: the secret crossed the host in the clear
  | "ERR_IDENTITY_MALFORMED" // the sealed identity did not open (tampered, wrong data key) or is not a valid identity
  | "ERR_IDENTITY_EXPIRED" // the identity's signing receipt key is not valid now: rotate before it expires
  | "ERR_KMS_ENDPOINT" // on Nitro, the host named a KMS endpoint that is not AWS KMS in the file's region
  | "ERR_KMS_KEY_ID" // outside development, the pinned KMS key is not a full key ARN (an alias or bare id resolves in the host's account)
  | "ERR_KMS_KEY_MISMATCH" // the file, or a KMS answer, names another key than the pinned key ARN
  | "ERR_SECRET_MISSING" // a secret a provider uses is not in the sealed file
  | "ERR_SECRET_ORIGIN" // the origin a secret is bound to is not a URL, or not https outside development
  | "ERR_IDENTITY_MISSING" // the trust policy requires a sealed identity and none was handed in
  | "ERR_IDENTITY_POLICY" // a sealed identity was handed in, but the trust policy's identity mode is ephemeral
  | "ERR_IDENTITY_PROVENANCE"; // the sealed identity carries no valid attestation of an enclave of this image generating it

/**
 * Every failure while loading sealed secrets. Messages name the secret and
 * the field that failed, with sizes; never secret bytes, never a ciphertext,
 * never an upstream error message (which could echo request content).
 */
/** A refusal by KMS or by a check is "reject"; a deployment that lacks what the policy needs is "fix-config". */
const ACTION: Record<SealedSecretsErrorCode, EgwErrorAction> = {
  ERR_SEALED_FILE_TOO_LARGE: "fix-input",
  ERR_SEALED_FILE_MALFORMED: "fix-input",
  ERR_SEALED_FILE_VERSION: "fix-input",
  ERR_KMS_ATTESTATION: "retry",
  ERR_KMS_RELEASE_DENIED: "reject",
  ERR_KMS_UNAVAILABLE: "retry",
  ERR_KMS_RESPONSE: "reject",
  ERR_KMS_PLAINTEXT_EXPOSED: "reject",
  ERR_IDENTITY_MALFORMED: "reject",
  ERR_IDENTITY_EXPIRED: "fix-config",
  ERR_KMS_ENDPOINT: "reject",
  ERR_KMS_KEY_ID: "fix-config",
  ERR_KMS_KEY_MISMATCH: "reject",
  ERR_SECRET_MISSING: "fix-config",
  ERR_SECRET_ORIGIN: "fix-config",
  ERR_IDENTITY_MISSING: "fix-config",
  ERR_IDENTITY_POLICY: "fix-config",
  ERR_IDENTITY_PROVENANCE: "reject",
};

export class SealedSecretsError extends EgwError<SealedSecretsErrorCode> {
  override readonly name = "SealedSecretsError";

  constructor(code: SealedSecretsErrorCode, message: string) {
    super(code, message, ACTION[code]);
  }
}

export function isSealedSecretsError(err: unknown): err is SealedSecretsError {
  return err instanceof SealedSecretsError;
}

export interface SealedFile {
  version: 1;
  keyId: string;
  region: string;
  /** Secret name → KMS CiphertextBlob, in file order. */
  secrets: ReadonlyMap<string, Uint8Array>;
  /**
   * The sealed identity (TLS and receipt keys shared by every replica of
   * the measured image; enclave/secrets/identity-blob.ts), when present.
   */
  identity?: SealedIdentityBlob;
}

/** Outer, host-visible form of a sealed identity; the keys are inside `sealed`. */
export interface SealedIdentityBlob {
  /** KMS CiphertextBlob of the 32-byte data key (GenerateDataKey, identity encryption context). */
  dataKey: Uint8Array;
  /** AES-256-GCM nonce, 12 bytes. */
  iv: Uint8Array;
  /** AES-256-GCM ciphertext of the identity, with the 16-byte tag appended. */
  sealed: Uint8Array;
  /**
   * The attestation document of the enclave that generated the identity,
   * binding its public keys and this blob (identity-provenance.ts). Required:
   * a blob without one was not made by a measured enclave and never opens.
   */
  attestation: Uint8Array;
}

/** The identity's CBOR plaintext is a few hundred bytes; four keys and a certificate-free layout stay far below. */
export const MAX_SEALED_IDENTITY_BYTES = 8192;
/** Bound on the generator's attestation document (a Nitro document is about 4.5 KiB). */
export const MAX_IDENTITY_ATTESTATION_BYTES = 16 * 1024;

/** SHA-256 over the exact file bytes, as handed in (no re-serialisation). */
export function sealedFileSha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

const malformed = (message: string): SealedSecretsError => new SealedSecretsError("ERR_SEALED_FILE_MALFORMED", `sealed secrets: ${message}`);

export function parseSealedFile(bytes: Uint8Array): SealedFile {
  if (!(bytes instanceof Uint8Array)) throw malformed(`expected Uint8Array, got ${typeof bytes}`);
  if (bytes.length > MAX_SEALED_FILE_BYTES) {
    throw new SealedSecretsError("ERR_SEALED_FILE_TOO_LARGE", `sealed secrets: file is ${bytes.length} bytes, at most ${MAX_SEALED_FILE_BYTES} allowed`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw malformed("file is not valid UTF-8");
  }
  if (text.charCodeAt(0) === 0xfeff) throw malformed("file starts with a byte-order mark");
  // No valid field needs a JSON escape (names, ARNs, regions and base64 are
  // all plain ASCII). Refusing `\` keeps every key byte-exact, so "A" and
  // "\u0041" cannot alias.
  if (text.includes("\\")) throw malformed("escape sequences are not allowed");

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed("file is not JSON");
  }
  rejectDuplicateJsonKeys(text, (key) => malformed(`duplicate field (${key.length} characters)`));
  if (!isPlainObject(value)) throw malformed("top level must be an object");
  checkKeys(value, ["version", "keyId", "region", "secrets"], "top level", ["identity"]);

  if (value.version !== SEALED_FILE_VERSION) {
    const got = typeof value.version === "number" ? String(value.version) : typeof value.version;
    throw new SealedSecretsError("ERR_SEALED_FILE_VERSION", `sealed secrets: "version" expected ${SEALED_FILE_VERSION}, got ${got}`);
  }
  const keyId = value.keyId;
  if (typeof keyId !== "string" || keyId.length > MAX_KEY_ID_LENGTH || !KEY_ID_PATTERN.test(keyId)) {
    throw malformed(`"keyId" expected a KMS key ARN, alias ARN, alias/name or key id`);
  }
  const region = value.region;
  if (typeof region !== "string" || !REGION_PATTERN.test(region)) throw malformed(`"region" expected an AWS region such as us-east-1`);
  // A key ARN names its own region; a file that says otherwise is a mistake
  // that would send the attestation document to the wrong KMS endpoint.
  const arnRegion = /^arn:[^:]+:kms:([^:]+):/.exec(keyId)?.[1];
  if (arnRegion !== undefined && arnRegion !== region) throw malformed(`"region" ${region} differs from the key ARN's region ${arnRegion}`);

  const rawSecrets = value.secrets;
  if (!isPlainObject(rawSecrets)) throw malformed(`"secrets" must be an object`);
  const names = Object.keys(rawSecrets);
  // A file may carry only an identity; otherwise it must seal something.
  if (names.length === 0 && value.identity === undefined) throw malformed(`"secrets" is empty`);
  if (names.length > MAX_SEALED_SECRETS) {
    throw new SealedSecretsError("ERR_SEALED_FILE_TOO_LARGE", `sealed secrets: ${names.length} secrets, at most ${MAX_SEALED_SECRETS} allowed`);
  }
  const secrets = new Map<string, Uint8Array>();
  for (const name of names) {
    if (!SECRET_NAME_PATTERN.test(name)) throw malformed(`secret name must match ${SECRET_NAME_PATTERN.source} (length ${name.length})`);
    const blob = rawSecrets[name];
    if (typeof blob !== "string" || blob.length === 0 || !BASE64_PATTERN.test(blob)) {
      throw malformed(`secret ${name} must be a non-empty base64 string`);
    }
    const decoded = canonicalBase64(blob, `secret ${name}`);
    if (decoded.length > MAX_CIPHERTEXT_BYTES) {
      throw new SealedSecretsError("ERR_SEALED_FILE_TOO_LARGE", `sealed secrets: secret ${name} ciphertext is ${decoded.length} bytes, at most ${MAX_CIPHERTEXT_BYTES} allowed`);
    }
    secrets.set(name, new Uint8Array(decoded));
  }
  if (value.identity === undefined) return { version: 1, keyId, region, secrets };
  return { version: 1, keyId, region, secrets, identity: parseIdentityField(value.identity) };
}

function parseIdentityField(raw: unknown): SealedIdentityBlob {
  if (!isPlainObject(raw)) throw malformed(`"identity" must be an object`);
  checkKeys(raw, ["dataKey", "iv", "sealed", "attestation"], "identity");
  const field = (name: "dataKey" | "iv" | "sealed" | "attestation", min: number, max: number): Uint8Array => {
    const text = raw[name];
    if (typeof text !== "string" || text.length === 0 || !BASE64_PATTERN.test(text)) throw malformed(`identity.${name} must be a non-empty base64 string`);
    const bytes = canonicalBase64(text, `identity.${name}`);
    if (bytes.length < min || bytes.length > max) {
      throw new SealedSecretsError("ERR_SEALED_FILE_TOO_LARGE", `sealed secrets: identity.${name} is ${bytes.length} bytes, expected ${min}..${max}`);
    }
    return new Uint8Array(bytes);
  };
  return {
    dataKey: field("dataKey", 1, MAX_CIPHERTEXT_BYTES),
    iv: field("iv", 12, 12),
    sealed: field("sealed", 17, MAX_SEALED_IDENTITY_BYTES + 16),
    attestation: field("attestation", 1, MAX_IDENTITY_ATTESTATION_BYTES),
  };
}

/** Canonical base64 only (no non-zero trailing bits), so one file has one meaning. */
function canonicalBase64(text: string, where: string): Buffer {
  const decoded = Buffer.from(text, "base64");
  if (decoded.toString("base64") !== text) throw malformed(`${where} is not canonical base64`);
  return decoded;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string, optional: readonly string[] = []): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key) && !optional.includes(key)) throw malformed(`unknown field in ${where} (${key.length} characters)`);
  }
  for (const key of allowed) {
    if (!Object.hasOwn(obj, key)) throw malformed(`missing field "${key}" in ${where}`);
  }
}

/**
 * The host's read: the KMS region only. Everything else is the enclave's
 * to judge when it opens the file; refusing here what the enclave would
 * refuse there would be a second parser to keep in step. Failures are
 * provisioning input errors, since the host reads this only to provision.
 */
export function sealedFileRegion(bytes: Uint8Array): string {
  if (bytes.length > MAX_SEALED_FILE_BYTES)
    throw new ProvisionError("ERR_PROVISION_TOO_LARGE", `the sealed-secrets file is ${bytes.length} bytes, at most ${MAX_SEALED_FILE_BYTES} allowed`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ProvisionError("ERR_PROVISION_INPUT", "the sealed-secrets file is not UTF-8 JSON");
  }
  const region = (value as { region?: unknown } | null)?.region;
  if (typeof region !== "string" || !REGION_PATTERN.test(region)) throw new ProvisionError("ERR_PROVISION_INPUT", `the sealed-secrets file has no "region" such as us-east-1`);
  return region;
}
