/**
 * The KMS encryption context a provider secret is sealed under (DESIGN.md
 * contract 5). KMS binds the context into the ciphertext (AWS KMS Developer
 * Guide, "Encryption context": Decrypt succeeds only with the exact same
 * map), so a ciphertext sealed for one secret name and one origin cannot be
 * released as another secret, or for another provider's origin, whatever
 * the host-written file or config says.
 *
 * `egw seal` (infra/kms) seals with this map and the enclave decrypts with
 * it; both sides must build it the same way, so this is the one function.
 */
export interface ProviderSecretContext {
  readonly "egw:purpose": "provider-secret";
  readonly "egw:secret": string;
  readonly "egw:origin": string;
}

const NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * `origin` is normalised with `new URL(o).origin` (lower-case host, default
 * port dropped), so "https://API.openai.com:443/v1" and
 * "https://api.openai.com" seal the same. Only https outside development: a
 * key sealed for an http origin would be sent in the clear.
 */
export function providerSecretContext(name: string, origin: string, options: { dev?: boolean } = {}): ProviderSecretContext {
  if (typeof name !== "string" || !NAME.test(name)) throw new TypeError(`secret name must match ${NAME.source}`);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new TypeError("secret origin is not a URL");
  }
  const allowed = options.dev === true ? ["https:", "http:"] : ["https:"];
  if (!allowed.includes(url.protocol)) throw new TypeError(`secret origin must be ${allowed.join(" or ")} (got ${url.protocol})`);
  return Object.freeze({ "egw:purpose": "provider-secret", "egw:secret": name, "egw:origin": url.origin });
}
