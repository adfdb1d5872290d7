import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { encodeCbor } from "./cbor-encode.js";
import { AttestationError } from "./errors.js";

/**
 * The channel binding the enclave puts in an attestation document's
 * `user_data` (docs/PROTOCOL.md): a versioned, definite-length CBOR map.
 *
 *   v1 (an identity made at boot, the default):
 *     { "v": 1, "tls_spki_sha256": bstr .size 32, "config_sha256": bstr .size 32 }
 *   v2 (a sealed identity shared by replicas, with rotation):
 *     { "v": 2, "tls_spki_sha256": …, "config_sha256": …,
 *       "receipt_keys": [ 1*4 { "spki": bstr, "nbf": uint, "exp": uint } ] }
 *
 *   v3 (issue 11: the trust policy and operations split; what the enclave emits):
 *     { "v": 3, "tls_spki_sha256": …, "config_sha256": …, "policy_sha256": bstr .size 32,
 *       ? "receipt_keys": [ … as in v2 ] }
 *   `policy_sha256` is the SHA-256 of the trust policy's exact bytes, which
 *   the enclave also serves at GET /v1/attestation/policy; `config_sha256`
 *   then covers trust policy, operations and sealed file together
 *   (host/transport/codec/config-hash.ts). `receipt_keys` is present exactly when the
 *   identity is sealed.
 *
 * A client accepts a connection only when the SHA-256 of the TLS
 * certificate's SubjectPublicKeyInfo it sees equals `tls_spki_sha256`.
 * `receipt_keys` lists every receipt key of the sealed identity with its
 * validity (milliseconds since the epoch, nbf inclusive, exp exclusive):
 * the one the enclave signs with (also the document's `public_key`) and the
 * ones it rotated away from, so a receipt signed before a rotation still
 * verifies against a document issued after it, within its key's window.
 * Unknown keys are refused: a future version bumps `v`.
 */
export interface ReceiptKeyWindow {
  /** SubjectPublicKeyInfo DER of a P-256 key. */
  spki: Uint8Array;
  /** First instant (ms since the epoch) a receipt signed by this key may claim. */
  notBefore: number;
  /** First instant it may no longer claim. */
  notAfter: number;
}

export interface ChannelBinding {
  v: 1 | 2 | 3;
  tlsSpkiSha256: Uint8Array;
  configSha256: Uint8Array;
  /** Present exactly when v is 3: SHA-256 of the attested trust policy's bytes. */
  policySha256?: Uint8Array;
  /** Present when v is 2, and when v is 3 with a sealed identity. */
  receiptKeys?: ReceiptKeyWindow[];
}

/** user_data is at most 1024 bytes (NSM API); four P-256 keys with windows fit with room to spare. */
export const MAX_RECEIPT_KEYS = 4;
const MAX_SPKI_BYTES = 200;

function mismatch(message: string): AttestationError {
  return new AttestationError("ERR_USER_DATA_MISMATCH", message);
}

/** Encodes v3 when `policySha256` is given (the enclave always gives it), else v1/v2 (tests of older clients' documents). */
export function encodeBinding(binding: Omit<ChannelBinding, "v">): Uint8Array {
  if (binding.tlsSpkiSha256.length !== 32 || binding.configSha256.length !== 32 || (binding.policySha256 !== undefined && binding.policySha256.length !== 32)) {
    throw new AttestationError("ERR_DOC_FIELD", "channel binding hashes must be 32 bytes");
  }
  const entries: [string, unknown][] = [
    ["v", binding.policySha256 ? 3 : binding.receiptKeys ? 2 : 1],
    ["tls_spki_sha256", Buffer.from(binding.tlsSpkiSha256)],
    ["config_sha256", Buffer.from(binding.configSha256)],
  ];
  if (binding.policySha256) entries.push(["policy_sha256", Buffer.from(binding.policySha256)]);
  if (binding.receiptKeys) {
    checkKeys(binding.receiptKeys, (m) => new AttestationError("ERR_DOC_FIELD", m));
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

const V1_KEYS = new Set(["v", "tls_spki_sha256", "config_sha256"]);
const V2_KEYS = new Set([...V1_KEYS, "receipt_keys"]);
const V3_KEYS = new Set([...V2_KEYS, "policy_sha256"]);
const WINDOW_KEYS = new Set(["spki", "nbf", "exp"]);

export function decodeBinding(userData: Uint8Array | null): ChannelBinding {
  if (userData === null) throw mismatch("document carries no channel binding (user_data is null)");
  const map = decodeStrict(userData, "user_data channel binding");
  if (!(map instanceof Map)) throw mismatch("user_data is not a channel-binding map");
  const v = map.get("v");
  if (v !== 1 && v !== 2 && v !== 3) throw mismatch("channel binding version is not 1, 2 or 3");
  const allowed = v === 1 ? V1_KEYS : v === 2 ? V2_KEYS : V3_KEYS;
  for (const key of map.keys()) {
    if (typeof key !== "string" || !allowed.has(key)) throw mismatch("channel binding has an unknown field");
  }
  const tls = map.get("tls_spki_sha256");
  const config = map.get("config_sha256");
  if (!isBytes(tls) || tls.length !== 32 || !isBytes(config) || config.length !== 32) {
    throw mismatch("channel binding hashes must be 32-byte strings");
  }
  const binding: ChannelBinding = { v, tlsSpkiSha256: copyBytes(tls), configSha256: copyBytes(config) };
  if (v === 3) {
    const policy = map.get("policy_sha256");
    if (!isBytes(policy) || policy.length !== 32) throw mismatch("channel binding v3 needs policy_sha256 (a 32-byte string)");
    binding.policySha256 = copyBytes(policy);
  }
  if (v === 2 || (v === 3 && map.has("receipt_keys"))) {
    const list = map.get("receipt_keys");
    if (!Array.isArray(list)) throw mismatch("channel binding v2 needs receipt_keys");
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
    binding.receiptKeys = keys;
  }
  return binding;
}

/** The entry of `keys` whose SPKI equals `spki` byte for byte. */
export function findReceiptKey(keys: readonly ReceiptKeyWindow[], spki: Uint8Array): ReceiptKeyWindow | undefined {
  const want = Buffer.from(spki);
  return keys.find((k) => want.equals(Buffer.from(k.spki)));
}
