import { createHash } from "node:crypto";

/**
 * The config hash attested in user_data (docs/PROTOCOL.md): SHA-256 of the
 * runtime config bytes; with a sealed-secrets file,
 * SHA-256(SHA-256(config) ‖ SHA-256(file)), so a client can tell which
 * sealed keys (by ciphertext) and which sealed identity the enclave holds.
 *
 * A module of its own, importing nothing but node:crypto, so the release and
 * deployment tools (egw manifest create, the CDK app) compute exactly what
 * the enclave attests without loading the gateway.
 */
export function attestedConfigHash(configBytes: Uint8Array, sealedFile?: Uint8Array): Uint8Array {
  const config = createHash("sha256").update(configBytes).digest();
  if (!sealedFile) return new Uint8Array(config);
  const file = createHash("sha256").update(sealedFile).digest();
  return new Uint8Array(createHash("sha256").update(config).update(file).digest());
}
