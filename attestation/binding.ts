import { copyBytes, decodeStrict, isBytes } from "./cbor-decode.js";
import { encodeCbor } from "./cbor-encode.js";
import { AttestationError } from "./errors.js";

/**
 * The channel binding the enclave puts in an attestation document's
 * `user_data` (docs/PROTOCOL.md): a versioned, definite-length CBOR map
 *   { "v": 1, "tls_spki_sha256": bstr .size 32, "config_sha256": bstr .size 32 }
 * A client accepts a connection only when the SHA-256 of the TLS
 * certificate's SubjectPublicKeyInfo it sees equals `tls_spki_sha256`.
 * Unknown keys are refused: a future version bumps `v`.
 */
export interface ChannelBinding {
  v: 1;
  tlsSpkiSha256: Uint8Array;
  configSha256: Uint8Array;
}

export function encodeBinding(binding: Omit<ChannelBinding, "v">): Uint8Array {
  if (binding.tlsSpkiSha256.length !== 32 || binding.configSha256.length !== 32) {
    throw new AttestationError("ERR_DOC_FIELD", "channel binding hashes must be 32 bytes");
  }
  return encodeCbor(
    new Map<string, unknown>([
      ["v", 1],
      ["tls_spki_sha256", Buffer.from(binding.tlsSpkiSha256)],
      ["config_sha256", Buffer.from(binding.configSha256)],
    ]),
  );
}

export function decodeBinding(userData: Uint8Array | null): ChannelBinding {
  if (userData === null) throw new AttestationError("ERR_USER_DATA_MISMATCH", "document carries no channel binding (user_data is null)");
  const map = decodeStrict(userData, "user_data channel binding");
  if (!(map instanceof Map)) throw new AttestationError("ERR_USER_DATA_MISMATCH", "user_data is not a channel-binding map");
  if (map.get("v") !== 1) throw new AttestationError("ERR_USER_DATA_MISMATCH", "channel binding version is not 1");
  for (const key of map.keys()) {
    if (key !== "v" && key !== "tls_spki_sha256" && key !== "config_sha256") {
      throw new AttestationError("ERR_USER_DATA_MISMATCH", "channel binding has an unknown field");
    }
  }
  const tls = map.get("tls_spki_sha256");
  const config = map.get("config_sha256");
  if (!isBytes(tls) || tls.length !== 32 || !isBytes(config) || config.length !== 32) {
    throw new AttestationError("ERR_USER_DATA_MISMATCH", "channel binding hashes must be 32-byte strings");
  }
  return { v: 1, tlsSpkiSha256: copyBytes(tls), configSha256: copyBytes(config) };
}
