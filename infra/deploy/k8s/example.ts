/**
 * The example inputs the committed manifest (infra/deploy/k8s/manifests) is synthesized
 * from. They are placeholders that show the shape: the token hash is of
 * "example-token-replace-me", the key ARN is AWS's documentation example and
 * the "ciphertext" is a readable sentence, so a deployment of the example
 * fails closed at KMS. Synthesize your own with
 * `node dist/infra/deploy/k8s/synth.js --trust-policy … --operations … --sealed-secrets … --image …`.
 * Kept as text in a module (not JSON imports) so the exact bytes, which the
 * enclave hashes, are what the chart receives.
 *
 * The trust policy is the relying party's / key owner's (reviewed: it names
 * where prompts and the key may go; egress is derived from it); the
 * operations file is the operator's (tokens and limits only).
 */
export const EXAMPLE_TRUST_POLICY = `{
  "version": 1,
  "providers": [
    { "name": "openai", "kind": "openai", "secret": "OPENAI_API_KEY" }
  ],
  "models": { "gpt": { "provider": "openai", "model": "gpt-4o" } },
  "secrets": { "kmsKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" },
  "identity": { "mode": "ephemeral" }
}
`;

export const EXAMPLE_OPERATIONS = `{
  "version": 1,
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

export function exampleInput(): { trustPolicy: Uint8Array; operations: Uint8Array; sealedSecrets: Uint8Array } {
  const utf8 = (s: string) => new TextEncoder().encode(s);
  return { trustPolicy: utf8(EXAMPLE_TRUST_POLICY), operations: utf8(EXAMPLE_OPERATIONS), sealedSecrets: utf8(EXAMPLE_SEALED_SECRETS) };
}
