/**
 * The example inputs the committed manifest (infra/k8s/manifests) is synthesized
 * from. They are placeholders that show the shape: the token hash is of
 * "example-token-replace-me" and the "ciphertext" is a readable sentence, so
 * a deployment of the example fails closed at KMS. Synthesize your own with
 * `node dist/infra/k8s/synth.js --runtime-config … --sealed-secrets … --image …`.
 * Kept as text in a module (not JSON imports) so the exact bytes, which the
 * enclave hashes, are what the chart receives.
 */
export const EXAMPLE_RUNTIME_CONFIG = `{
  "version": 1,
  "providers": [
    { "name": "openai", "kind": "openai", "baseUrl": "https://api.openai.com/v1", "secret": "OPENAI_API_KEY" }
  ],
  "egressAllowlist": ["api.openai.com:443", "kms.eu-west-1.amazonaws.com:443"],
  "clients": [
    { "name": "example", "tokenSha256": "875ca15102495ea430c9af8e6eeb9a455e58e74d842b8bf852eed00b0482e739", "models": ["*"] }
  ],
  "proxyProtocol": true
}
`;

export const EXAMPLE_SEALED_SECRETS = `{
  "version": 1,
  "keyId": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
  "region": "eu-west-1",
  "secrets": {
    "OPENAI_API_KEY": "RVhBTVBMRSBjaXBoZXJ0ZXh0OiByZXBsYWNlIHRoaXMgZmlsZSB3aXRoIHRoZSBvdXRwdXQgb2YgZWd3IHNlYWw="
  }
}
`;

export function exampleInput(): { runtimeConfig: Uint8Array; sealedSecrets: Uint8Array } {
  return { runtimeConfig: new TextEncoder().encode(EXAMPLE_RUNTIME_CONFIG), sealedSecrets: new TextEncoder().encode(EXAMPLE_SEALED_SECRETS) };
}
