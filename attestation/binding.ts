import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { encodeCbor } from "./cbor-encode.js";
import { AttestationError } from "./errors.js";

/**
 * The channel binding the enclave puts in an attestation document's
 * `user_data` (docs/PROTOCOL.md): a versioned, definite-length CBOR map.
 *
 *   v3:
 *     { "v": 3,
 *       "tls_spki_sha256": bstr .size 32,   SHA-256 of the TLS certificate's SubjectPublicKeyInfo
 *       "policy_sha256":   bstr .size 32,   SHA-256 of the exact trust-policy bytes (attestation/trust-policy.ts)
 *       "identity":        "ephemeral" / "sealed",
 *       ? "identity_key_arn": tstr,         sealed only: the KMS key ARN the identity is sealed under
 *       ? "receipt_keys": [ 1*4 { "spki": bstr, "nbf": uint, "exp": uint } ] }   sealed only
 *
 * A client accepts a connection only when the SHA-256 of the TLS
 * certificate's SubjectPublicKeyInfo it sees equals `tls_spki_sha256`, and
 * judges the trust policy whose hash is `policy_sha256` (served by the
 * enclave over the same connection) against its own constraints.
 * `identity` and `identity_key_arn` repeat what the trust policy says, so a
 * client can require a mode or a key from the document alone.
 * `receipt_keys` lists every receipt key of the sealed identity with its
 * validity (milliseconds since the epoch, nbf inclusive, exp exclusive):
 * the one the enclave signs with (also the document's `public_key`) and the
 * ones it rotated away from, so a receipt signed before a rotation still
 * verifies against a document issued after it, within its key's window.
 * Unknown keys are refused, and so are versions 1 and 2 (they bound a
 * runtime-config hash that changed with every token): a future version bumps `v`.
 */
export interface ReceiptKeyWindow {
  /** SubjectPublicKeyInfo DER of a P-256 key. */
  spki: Uint8Array;
  /** First instant (ms since the epoch) a receipt signed by this key may claim. */
  notBefore: number;
  /** First instant it may no longer claim. */
  notAfter: number;
}

export type BindingIdentity = { mode: "ephemeral" } | { mode: "sealed"; kmsKeyArn: string };

export interface ChannelBinding {
  v: 3;
  tlsSpkiSha256: Uint8Array;
  policySha256: Uint8Array;
  identity: BindingIdentity;
  /** Present exactly when the identity is sealed. */
  receiptKeys?: ReceiptKeyWindow[];
}

/** user_data is at most 1024 bytes (NSM API); four P-256 keys with windows and an ARN fit with room to spare. */
export const MAX_RECEIPT_KEYS = 4;
const MAX_SPKI_BYTES = 200;
const MAX_ARN_BYTES = 256;

function mismatch(message: string): AttestationError {
  return new AttestationError("ERR_USER_DATA_MISMATCH", message);
}

export function encodeBinding(binding: Omit<ChannelBinding, "v">): Uint8Array {
  const field = (m: string) => new AttestationError("ERR_DOC_FIELD", m);
  if (binding.tlsSpkiSha256.length !== 32 || binding.policySha256.length !== 32) throw field("channel binding hashes must be 32 bytes");
  const entries: [string, unknown][] = [
    ["v", 3],
    ["tls_spki_sha256", Buffer.from(binding.tlsSpkiSha256)],
    ["policy_sha256", Buffer.from(binding.policySha256)],
    ["identity", binding.identity.mode],
  ];
  if (binding.identity.mode === "sealed") {
    if (!binding.receiptKeys) throw field("a sealed identity attests its receipt keys");
    const arn = binding.identity.kmsKeyArn;
    if (typeof arn !== "string" || arn.length === 0 || Buffer.byteLength(arn) > MAX_ARN_BYTES) throw field(`identity_key_arn must be 1..${MAX_ARN_BYTES} bytes`);
    checkKeys(binding.receiptKeys, field);
    entries.push(["identity_key_arn", arn]);
    entries.push([
      "receipt_keys",
      binding.receiptKeys.map(
        (k) =>
          new Map<string, unknown>([
            ["spki", Buffer.from(k.spki)],
            ["nbf", BigInt(k.notBefore)],
            ["exp", BigInt(k.notAfter)],
          ]),
      ),
    ]);
  } else if (binding.identity.mode !== "ephemeral") {
    throw field("identity mode must be ephemeral or sealed");
  } else if (binding.receiptKeys) {
    throw field("an ephemeral identity has one receipt key, the document's public_key");
  }
  return encodeCbor(new Map<string, unknown>(entries));
}

function checkKeys(keys: readonly ReceiptKeyWindow[], fail: (m: string) => Error): void {
  if (keys.length === 0 || keys.length > MAX_RECEIPT_KEYS) throw fail(`receipt_keys must list 1..${MAX_RECEIPT_KEYS} keys`);
  for (const k of keys) {
    if (k.spki.length === 0 || k.spki.length > MAX_SPKI_BYTES) throw fail(`receipt_keys spki must be 1..${MAX_SPKI_BYTES} bytes`);
    if (!Number.isSafeInteger(k.notBefore) || !Number.isSafeInteger(k.notAfter) || k.notBefore < 0 || k.notAfter <= k.notBefore) {
      throw fail("receipt_keys windows must be integers with nbf < exp");
    }
  }
}

const EPHEMERAL_KEYS = new Set(["v", "tls_spki_sha256", "policy_sha256", "identity"]);
const SEALED_KEYS = new Set([...EPHEMERAL_KEYS, "identity_key_arn", "receipt_keys"]);
const WINDOW_KEYS = new Set(["spki", "nbf", "exp"]);

export function decodeBinding(userData: Uint8Array | null): ChannelBinding {
  if (userData === null) throw mismatch("document carries no channel binding (user_data is null)");
  const map = decodeStrict(userData, "user_data channel binding");
  if (!(map instanceof Map)) throw mismatch("user_data is not a channel-binding map");
  const v = map.get("v");
  if (v !== 3) throw mismatch(`channel binding version ${typeof v === "number" ? v : "(none)"} is not 3: this gateway predates trust policies`);
  const mode = map.get("identity");
  if (mode !== "ephemeral" && mode !== "sealed") throw mismatch('channel binding identity must be "ephemeral" or "sealed"');
  const allowed = mode === "ephemeral" ? EPHEMERAL_KEYS : SEALED_KEYS;
  for (const key of map.keys()) {
    if (typeof key !== "string" || !allowed.has(key)) throw mismatch("channel binding has an unknown field");
  }
  const tls = map.get("tls_spki_sha256");
  const policy = map.get("policy_sha256");
  if (!isBytes(tls) || tls.length !== 32 || !isBytes(policy) || policy.length !== 32) {
    throw mismatch("channel binding hashes must be 32-byte strings");
  }
  if (mode === "ephemeral") return { v: 3, tlsSpkiSha256: copyBytes(tls), policySha256: copyBytes(policy), identity: { mode } };
  const arn = map.get("identity_key_arn");
  if (typeof arn !== "string" || arn.length === 0 || Buffer.byteLength(arn) > MAX_ARN_BYTES) throw mismatch("a sealed channel binding needs identity_key_arn");
  const list = map.get("receipt_keys");
  if (!Array.isArray(list)) throw mismatch("a sealed channel binding needs receipt_keys");
  const keys = list.map((entry: unknown) => {
    if (!(entry instanceof Map)) throw mismatch("receipt_keys entries must be maps");
    for (const key of entry.keys()) if (typeof key !== "string" || !WINDOW_KEYS.has(key)) throw mismatch("receipt_keys entry has an unknown field");
    const spki = entry.get("spki");
    const nbf = entry.get("nbf");
    const exp = entry.get("exp");
    if (!isBytes(spki) || typeof nbf !== "number" || typeof exp !== "number") throw mismatch("receipt_keys entry needs spki (bytes), nbf and exp (integers)");
    return { spki: copyBytes(spki), notBefore: nbf, notAfter: exp };
  });
  checkKeys(keys, mismatch);
  return { v: 3, tlsSpkiSha256: copyBytes(tls), policySha256: copyBytes(policy), identity: { mode, kmsKeyArn: arn }, receiptKeys: keys };
}

/** The entry of `keys` whose SPKI equals `spki` byte for byte. */
export function findReceiptKey(keys: readonly ReceiptKeyWindow[], spki: Uint8Array): ReceiptKeyWindow | undefined {
  const want = Buffer.from(spki);
  return keys.find((k) => want.equals(Buffer.from(k.spki)));
}
