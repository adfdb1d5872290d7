import { EncryptCommand } from "@aws-sdk/client-kms";
import { secretBindings, type TrustPolicy } from "../../../attestation/trust-policy.js";
import { createKmsClient } from "../../../enclave/secrets/kms-source.js";
import { providerSecretContext } from "../../../enclave/secrets/secret-context.js";
import type { MockKms } from "../../dev/local-kms.js";
import { DevError } from "./dev-error.js";

/**
 * Provider keys for `egw dev`: read from the environment (the variable the
 * secret names, or the one `secretsEnv` maps it to), then sealed under the
 * local KMS for the one origin the trust policy sends each to
 * (enclave/secrets/secret-context.ts), as an operator seals them with AWS
 * KMS. No child process receives a key in its environment. A secret the
 * policy names but the environment lacks stops egw dev before anything
 * starts, naming the provider and the variable (in production the enclave
 * refuses it at boot: ERR_SECRET_MISSING).
 */
export interface SecretToSeal {
  name: string;
  provider: string;
  origin: string;
  env: string;
  value: string;
}

export function secretsFromEnv(policy: TrustPolicy, env: Readonly<Record<string, string | undefined>>, secretsEnv: Readonly<Record<string, string>> = {}): SecretToSeal[] {
  const found: SecretToSeal[] = [];
  const missing: string[] = [];
  for (const b of secretBindings(policy)) {
    const variable = secretsEnv[b.name] ?? b.name;
    const value = env[variable] ?? "";
    if (value === "") missing.push(`provider "${b.provider}" needs secret ${b.name}: set ${variable}`);
    else found.push({ name: b.name, provider: b.provider, origin: b.origin, env: variable, value });
  }
  if (missing.length > 0) throw new DevError("ERR_DEV_SECRET_MISSING", `${missing.join("; ")} (or map the secret to another variable with "secretsEnv" in the --config file)`);
  return found;
}

/** The sealed-secrets file's `secrets` map: name → base64 KMS ciphertext, under the encryption context that names the secret's one origin. */
export async function sealWithLocalKms(kms: MockKms, secrets: readonly SecretToSeal[]): Promise<Record<string, string>> {
  const sealed: Record<string, string> = {};
  const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  try {
    for (const s of secrets) {
      // Development rules, as the simulated enclave rebuilds the context (a local mock may be plain http).
      const EncryptionContext = { ...providerSecretContext(s.name, s.origin, { dev: true }) };
      const out = await operator.send(new EncryptCommand({ KeyId: kms.keyArn, Plaintext: Buffer.from(s.value), EncryptionContext }));
      sealed[s.name] = Buffer.from(out.CiphertextBlob!).toString("base64");
    }
  } finally {
    operator.destroy();
  }
  return sealed;
}
