import { EgwError } from "../../attestation/egw-error.js";

/**
 * The KMS encryption context of a sealed provider secret: the contract
 * between `egw seal` (infra/cli/seal.ts), which passes it to Encrypt, and the
 * enclave, which rebuilds it from its trust policy for Decrypt. KMS binds the
 * context to the ciphertext as additional authenticated data (AWS KMS
 * developer guide, "Encryption context"), so a ciphertext sealed for one
 * name and origin fails with InvalidCiphertextException under any other: the
 * host cannot hand the enclave the OpenAI key as if it were the key of an
 * origin it controls. The key policy can also condition Decrypt on these
 * pairs (kms:EncryptionContext:egw:secret / egw:origin; infra/review/kms/key-policy.ts).
 *
 *   { "egw:purpose": "provider-secret", "egw:secret": "<NAME>", "egw:origin": "<origin>" }
 *
 * `<origin>` is the WHATWG URL origin serialisation (`new URL(x).origin`:
 * scheme, lower-cased host, port only when not the default; no path, no
 * trailing slash), so both sides produce the same bytes from equivalent
 * spellings. This module imports nothing but the error base (attestation/egw-error.ts), so the
 * trusted and the operator side can both import it.
 */

export const PROVIDER_SECRET_PURPOSE = "provider-secret";
/** Same shape as provider `secret` names in the gateway config and the sealed-secrets file. */
export const PROVIDER_SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Bounds the context KMS sees (its encryption context is limited to 8192 characters in all). */
export const MAX_ORIGIN_LENGTH = 1024;

export type SecretContextCode = "ERR_SECRET_CONTEXT_NAME" | "ERR_SECRET_CONTEXT_ORIGIN";

export class SecretContextError extends EgwError<SecretContextCode> {
  override readonly name = "SecretContextError";
  constructor(code: SecretContextCode, message: string) {
    super(code, message, "fix-input");
  }
}

export interface SecretContextOptions {
  /** Development only: admit http: origins (a local upstream). */
  dev?: boolean;
}

/**
 * The WHATWG origin of `origin`, which must be an https (or, with `dev`, http)
 * URL without credentials, path, query or fragment. Throws SecretContextError.
 */
export function secretOrigin(origin: string, options: SecretContextOptions = {}): string {
  const bad = (why: string) => new SecretContextError("ERR_SECRET_CONTEXT_ORIGIN", `origin ${why}, got "${String(origin).slice(0, 80)}"`);
  if (typeof origin !== "string" || origin.length === 0 || origin.length > MAX_ORIGIN_LENGTH) throw bad(`must be a string of 1..${MAX_ORIGIN_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw bad("is not a URL");
  }
  const schemes = options.dev === true ? ["https:", "http:"] : ["https:"];
  if (!schemes.includes(url.protocol)) throw bad(options.dev === true ? "must be https: or http:" : "must be https: (http: only in development)");
  if (url.username !== "" || url.password !== "") throw bad("must not carry credentials");
  // "https://h" and "https://h/" both parse to pathname "/"; anything longer is a path.
  if (url.pathname !== "/" || url.search !== "" || url.hash !== "" || /[?#]/.test(origin)) throw bad("must have no path, query or fragment");
  return url.origin;
}

/** The frozen encryption context for provider secret `name`, to be sent only to `origin`. */
export function providerSecretContext(name: string, origin: string, options: SecretContextOptions = {}): Readonly<Record<string, string>> {
  if (typeof name !== "string" || !PROVIDER_SECRET_NAME.test(name)) {
    throw new SecretContextError("ERR_SECRET_CONTEXT_NAME", `secret name must look like OPENAI_API_KEY (${PROVIDER_SECRET_NAME.source}), got "${String(name).slice(0, 80)}"`);
  }
  return Object.freeze({ "egw:purpose": PROVIDER_SECRET_PURPOSE, "egw:secret": name, "egw:origin": secretOrigin(origin, options) });
}

/** The context map as KMS takes it (EncryptionContext: string → string). */
export type ProviderSecretContext = Readonly<Record<string, string>>;
