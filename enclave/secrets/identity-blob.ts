import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { MAX_RECEIPT_KEYS, type ReceiptKeyWindow } from "../../attestation/binding.js";
import { copyBytes, decodeStrict, isBytes } from "../../attestation/cbor-decode.js";
import { encodeCbor } from "../../attestation/cbor-encode.js";
import { MAX_SEALED_IDENTITY_BYTES, SealedSecretsError, type SealedIdentityBlob } from "../../host/transport/codec/sealed-file.js";

/**
 * The sealed identity: the TLS key and the receipt keys that every replica
 * of one measured image shares, so clients that pinned the TLS SPKI or a
 * receipt key survive restarts and scale-out (docs/PROTOCOL.md, "Shared
 * identity").
 *
 * Sealing is envelope encryption with a KMS data key: the 32-byte key comes
 * from GenerateDataKey with a Recipient (so only an attested enclave ever
 * sees it) under the IDENTITY_ENCRYPTION_CONTEXT, and encrypts this CBOR
 * plaintext with AES-256-GCM here. Why not KMS Encrypt of the keys
 * themselves: the operator can call Encrypt, so a blob they made would hold
 * keys they know, and with the TLS key they could stand in the middle of a
 * client's attested connection. The key policy denies Encrypt and
 * GenerateDataKey-without-attestation under this context (infra/review/kms), so a
 * blob that opens was made inside a measured enclave.
 *
 * Plaintext (definite-length CBOR, text keys):
 *   { "v": 1, "created": uint ms,
 *     "tls": bstr (PKCS#8 of a P-256 key),
 *     "signing": { "pkcs8": bstr, "nbf": uint ms, "exp": uint ms },
 *     "retired": [ 0*3 { "spki": bstr, "nbf": uint ms, "exp": uint ms } ] }
 * `signing` is the receipt key replicas sign with; `retired` are public
 * halves of keys it replaced, attested so that receipts they signed inside
 * their window keep verifying after a rotation.
 */
export const IDENTITY_ENCRYPTION_CONTEXT: Readonly<Record<string, string>> = Object.freeze({ "egw:purpose": "enclave-identity" });
/** GCM associated data: a blob is only ever opened as an identity of this version. */
const AAD = Buffer.from("egw-identity-v1");
export const MAX_RETIRED_KEYS = MAX_RECEIPT_KEYS - 1;

export interface IdentityKeys {
  created: number;
  /** PKCS#8 DER of the TLS key (P-256). */
  tlsPkcs8: Uint8Array;
  signing: { pkcs8: Uint8Array; notBefore: number; notAfter: number };
  retired: ReceiptKeyWindow[];
}

const malformed = (message: string): SealedSecretsError => new SealedSecretsError("ERR_IDENTITY_MALFORMED", `sealed identity: ${message}`);

/** AES-256-GCM under the data key. The data key is the caller's to zero. */
/** The blob without the generator's attestation, which is made over it (identity-provenance.ts). */
export type SealedIdentityCiphertext = Pick<SealedIdentityBlob, "dataKey" | "iv" | "sealed">;

export function sealIdentity(keys: IdentityKeys, dataKey: Uint8Array, dataKeyCiphertext: Uint8Array): SealedIdentityCiphertext {
  if (dataKey.length !== 32) throw malformed("data key must be 32 bytes");
  const plaintext = encodeIdentity(keys);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", dataKey, iv).setAAD(AAD);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  plaintext.fill(0);
  return { dataKey: new Uint8Array(dataKeyCiphertext), iv: new Uint8Array(iv), sealed: new Uint8Array(sealed) };
}

/** Opens a blob with its data key; a tampered byte anywhere fails the GCM tag. */
export function openIdentity(blob: SealedIdentityCiphertext, dataKey: Uint8Array): IdentityKeys {
  if (dataKey.length !== 32) throw malformed("data key must be 32 bytes");
  if (blob.sealed.length <= 16) throw malformed("ciphertext is too short");
  let plaintext: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", dataKey, blob.iv).setAAD(AAD);
    decipher.setAuthTag(blob.sealed.subarray(blob.sealed.length - 16));
    plaintext = Buffer.concat([decipher.update(blob.sealed.subarray(0, blob.sealed.length - 16)), decipher.final()]);
  } catch {
    // One message for every failure: no oracle on which byte was wrong.
    throw malformed("the identity does not open under its data key (tampered or mismatched blob)");
  }
  try {
    return decodeIdentity(plaintext);
  } finally {
    plaintext.fill(0);
  }
}

export function encodeIdentity(keys: IdentityKeys): Uint8Array {
  checkIdentity(keys);
  const window = (k: { notBefore: number; notAfter: number }): [string, unknown][] => [
    ["nbf", BigInt(k.notBefore)],
    ["exp", BigInt(k.notAfter)],
  ];
  return encodeCbor(
    new Map<string, unknown>([
      ["v", 1],
      ["created", BigInt(keys.created)],
      ["tls", Buffer.from(keys.tlsPkcs8)],
      ["signing", new Map<string, unknown>([["pkcs8", Buffer.from(keys.signing.pkcs8)], ...window(keys.signing)])],
      ["retired", keys.retired.map((k) => new Map<string, unknown>([["spki", Buffer.from(k.spki)], ...window(k)]))],
    ]),
  );
}

function fields(map: unknown, allowed: readonly string[], where: string): Map<unknown, unknown> {
  if (!(map instanceof Map)) throw malformed(`${where} must be a map`);
  for (const key of map.keys()) if (typeof key !== "string" || !allowed.includes(key)) throw malformed(`${where} has an unknown field`);
  for (const key of allowed) if (!map.has(key)) throw malformed(`${where} lacks "${key}"`);
  return map;
}

function time(map: Map<unknown, unknown>, key: string, where: string): number {
  const v = map.get(key);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw malformed(`${where}.${key} must be a non-negative integer`);
  return v;
}

function bytes(map: Map<unknown, unknown>, key: string, where: string): Uint8Array {
  const v = map.get(key);
  if (!isBytes(v) || v.length === 0 || v.length > 512) throw malformed(`${where}.${key} must be 1..512 bytes`);
  return copyBytes(v);
}

export function decodeIdentity(plaintext: Uint8Array): IdentityKeys {
  if (plaintext.length > MAX_SEALED_IDENTITY_BYTES) throw malformed(`plaintext over ${MAX_SEALED_IDENTITY_BYTES} bytes`);
  let value: unknown;
  try {
    value = decodeStrict(plaintext, "sealed identity");
  } catch {
    throw malformed("plaintext is not strict CBOR");
  }
  const top = fields(value, ["v", "created", "tls", "signing", "retired"], "identity");
  if (top.get("v") !== 1) throw malformed("version is not 1");
  const signing = fields(top.get("signing"), ["pkcs8", "nbf", "exp"], "signing");
  const retired = top.get("retired");
  if (!Array.isArray(retired)) throw malformed("retired must be an array");
  const keys: IdentityKeys = {
    created: time(top, "created", "identity"),
    tlsPkcs8: bytes(top, "tls", "identity"),
    signing: { pkcs8: bytes(signing, "pkcs8", "signing"), notBefore: time(signing, "nbf", "signing"), notAfter: time(signing, "exp", "signing") },
    retired: retired.map((entry, i) => {
      const m = fields(entry, ["spki", "nbf", "exp"], `retired[${i}]`);
      return { spki: bytes(m, "spki", `retired[${i}]`), notBefore: time(m, "nbf", `retired[${i}]`), notAfter: time(m, "exp", `retired[${i}]`) };
    }),
  };
  checkIdentity(keys);
  return keys;
}

/** Every key P-256, every window nbf < exp, at most MAX_RETIRED_KEYS retired, no key twice. */
function checkIdentity(keys: IdentityKeys): void {
  if (keys.retired.length > MAX_RETIRED_KEYS) throw malformed(`at most ${MAX_RETIRED_KEYS} retired receipt keys`);
  const windows = [keys.signing, ...keys.retired];
  for (const w of windows) {
    if (!Number.isSafeInteger(w.notBefore) || !Number.isSafeInteger(w.notAfter) || w.notAfter <= w.notBefore) throw malformed("a receipt key window has nbf >= exp");
  }
  const spkis = [signingSpki(keys.signing.pkcs8), ...keys.retired.map((k) => p256Public(k.spki))];
  p256Private(keys.tlsPkcs8, "tls");
  if (new Set(spkis.map((s) => Buffer.from(s).toString("hex"))).size !== spkis.length) throw malformed("a receipt key appears twice");
}

function p256Private(pkcs8: Uint8Array, what: string) {
  let key;
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
  } catch {
    throw malformed(`${what} is not a PKCS#8 private key`);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw malformed(`${what} is not a P-256 key`);
  return key;
}

function p256Public(spki: Uint8Array): Uint8Array {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch {
    throw malformed("a retired receipt key is not a SubjectPublicKeyInfo");
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw malformed("a retired receipt key is not P-256");
  return spki;
}

/** SPKI DER of the signing receipt key. */
export function signingSpki(pkcs8: Uint8Array): Uint8Array {
  return new Uint8Array(createPublicKey(p256Private(pkcs8, "signing receipt key")).export({ type: "spki", format: "der" }));
}
