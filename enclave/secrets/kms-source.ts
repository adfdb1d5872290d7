import { DecryptCommand, KMSClient, type DecryptCommandOutput } from "@aws-sdk/client-kms";
import type { Attester } from "../../attestation/attester.js";
import { staticSecrets, type SecretSource } from "../secrets.js";
import { CmsError } from "./cms-error.js";
import { checkAnswerKey, checkPinnedKey } from "./key-arn.js";
import { decryptCiphertextForRecipient, generateRecipientKey } from "./recipient-decrypt.js";
import { providerSecretContext, type ProviderSecretContext } from "./secret-context.js";
import { SECRET_NAME_PATTERN, SealedSecretsError, parseSealedFile } from "../../host/transport/codec/sealed-file.js";

/**
 * Opens the sealed-secrets file at boot (AWS KMS Developer Guide, "How AWS
 * Nitro Enclaves uses AWS KMS"):
 *   pinned key and the secrets the trust policy uses checked against the
 *   file → fresh RSA-2048 recipient key → attestation document with its
 *   SPKI as `public_key` → for each used secret, Decrypt with `Recipient`,
 *   `KeyId` = the pinned ARN and the secret's encryption context (name and
 *   origin) → answer's `KeyId` checked → open `CiphertextForRecipient` with
 *   the private key.
 * KMS checks the document against the key policy's
 * `kms:RecipientAttestation:*` conditions and encrypts the plaintext to the
 * document's key, so the secret never crosses the host in the clear.
 *
 * All or nothing: the first failure rejects the whole call, and the caller
 * stops the enclave. There is no fallback — a partial set of keys would let a
 * host that blocks one Decrypt choose which providers the enclave serves.
 */

export interface OpenSealedSecretsOptions {
  /** The sealed-secrets file, exactly as handed in by the host. */
  file: Uint8Array;
  /**
   * The trust policy's KMS key ARN (`secretsKeyArn`). Every Decrypt names it
   * and every answer must be for it; outside development it must be a full
   * key ARN and the file's own `keyId` must equal it (key-arn.ts).
   */
  keyArn: string;
  /**
   * The secrets the trust policy uses, each with the origin of the ONE
   * provider that uses it. Only these are decrypted, each under
   * providerSecretContext(name, origin): a ciphertext sealed for another
   * name or origin does not open (KMS InvalidCiphertextException).
   */
  secrets: ReadonlyArray<{ name: string; origin: string; provider?: string }>;
  /** Development (simulated NSM, local KMS): aliases and http origins allowed, the file's keyId not compared. */
  dev: boolean;
  attester: Attester;
  /**
   * Built by the caller (see createKmsClient): region from the key ARN,
   * requests through the egress proxy, credentials from the host. This
   * module never reads the environment.
   */
  kmsClient: KMSClient;
  /** Clock; only used to bound each Decrypt call. */
  now: () => Date;
  /** Per-call budget for one Decrypt, default 10 s. */
  timeoutMs?: number;
}

/** A SecretSource that also says which names it holds (for the boot log; never values). */
export interface SealedSecretSource extends SecretSource {
  readonly names: readonly string[];
  /** The pinned key ARN every secret was released under. */
  readonly keyId: string;
  readonly region: string;
  /** File entries no provider uses: left sealed (never sent to KMS). */
  readonly unused: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * KMS error names that mean "KMS looked and said no": retrying will not help;
 * the key policy, key state, ciphertext or credentials must change.
 * AccessDeniedException is what a failed kms:RecipientAttestation condition
 * returns; it is not a modelled KMS exception, so it arrives as a plain
 * KMSServiceException with that name.
 */
const DENIED = new Set([
  "AccessDeniedException",
  "KMSInvalidStateException",
  "DisabledException",
  "NotFoundException",
  "IncorrectKeyException",
  "InvalidCiphertextException",
  "InvalidKeyUsageException",
  "InvalidGrantTokenException",
  "ValidationException",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "IncompleteSignature",
  "ExpiredTokenException",
  "InvalidClientTokenId",
]);

/** Transient: KMS or the path to it is unwell. */
const UNAVAILABLE = new Set([
  "KeyUnavailableException",
  "DependencyTimeoutException",
  "KMSInternalException",
  "ThrottlingException",
  "ServiceUnavailableException",
  "TimeoutError",
  "AbortError",
]);

/** Checked before any KMS call: one entry per name, each bound to one origin. */
function secretContexts(secrets: OpenSealedSecretsOptions["secrets"], dev: boolean): Map<string, ProviderSecretContext> {
  if (!Array.isArray(secrets)) throw new TypeError(`"secrets" expected an array of { name, origin }`);
  const out = new Map<string, ProviderSecretContext>();
  for (const { name, origin } of secrets) {
    // The caller resolves which provider a secret serves; one secret, one origin.
    if (out.has(name)) throw new TypeError(`secret ${String(name)} is listed twice: one secret serves at most one provider`);
    try {
      out.set(name, providerSecretContext(name, origin, { dev }));
    } catch (err) {
      throw new SealedSecretsError("ERR_SECRET_ORIGIN", `sealed secrets: secret ${SECRET_NAME_PATTERN.test(name) ? name : "(bad name)"}: ${(err as Error).message}`);
    }
  }
  return out;
}

export async function openSealedSecrets(options: OpenSealedSecretsOptions): Promise<SealedSecretSource> {
  const { attester, kmsClient, keyArn, dev } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`"timeoutMs" expected a positive number, got ${timeoutMs}`);
  if (typeof dev !== "boolean") throw new TypeError(`"dev" expected a boolean`);
  const sealed = parseSealedFile(options.file);
  const region = checkPinnedKey(keyArn, "sealed secrets", { dev, fallbackRegion: sealed.region });
  // The file is the host's: outside development it must name exactly the
  // pinned key, so a file sealed under the host's key (or an alias the host
  // resolves) is refused here, before anything is sent.
  if (!dev && sealed.keyId !== keyArn) {
    throw new SealedSecretsError("ERR_KMS_KEY_MISMATCH", `sealed secrets: the file is sealed under another key than the pinned key ${keyArn}`);
  }
  const contexts = secretContexts(options.secrets, dev);
  for (const name of contexts.keys()) {
    if (!sealed.secrets.has(name)) {
      const provider = options.secrets.find((s) => s.name === name)?.provider;
      throw new SealedSecretsError("ERR_SECRET_MISSING", `sealed secrets: ${name} is used by ${provider ? `provider "${provider}"` : "a provider"} but not in the sealed file`);
    }
  }

  const recipient = generateRecipientKey();
  let attestationDocument: Uint8Array;
  try {
    attestationDocument = await attester.attest({ publicKey: recipient.spkiDer });
  } catch (err) {
    const code = typeof (err as { code?: unknown })?.code === "string" ? ` (${(err as { code: string }).code})` : "";
    throw new SealedSecretsError("ERR_KMS_ATTESTATION", `sealed secrets: could not obtain an attestation document for the recipient key${code}`);
  }

  const values = new Map<string, string>();
  for (const [name, context] of contexts) {
    const output = await decrypt(kmsClient, name, keyArn, context, sealed.secrets.get(name)!, attestationDocument, timeoutMs);
    checkAnswerKey(output.KeyId, keyArn, `sealed secrets: ${name}`, "Decrypt");
    values.set(name, openOutput(name, output, recipient.privateKey));
  }
  const source = staticSecrets(values);
  return {
    has: (name) => source.has(name),
    get: (name) => source.get(name),
    names: Object.freeze([...values.keys()]),
    keyId: keyArn,
    region,
    unused: [...sealed.secrets.keys()].filter((name) => !contexts.has(name)).length,
  };
}

async function decrypt(
  client: KMSClient,
  name: string,
  keyId: string,
  context: ProviderSecretContext,
  ciphertext: Uint8Array,
  attestationDocument: Uint8Array,
  timeoutMs: number,
): Promise<DecryptCommandOutput> {
  const command = new DecryptCommand({
    CiphertextBlob: ciphertext,
    KeyId: keyId,
    EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
    EncryptionContext: { ...context },
    Recipient: { AttestationDocument: attestationDocument, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" },
  });
  try {
    return await client.send(command, { abortSignal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw classifyKmsError(name, err);
  }
}

/**
 * The SDK error's name is the KMS `__type`; `$metadata.httpStatusCode` is
 * absent when no HTTP answer came back at all (refused connection, DNS,
 * proxy down, timeout). Only name, status and request id are kept: the
 * upstream message is not ours to vet.
 */
export function classifyKmsError(name: string, err: unknown, operation = "Decrypt"): SealedSecretsError {
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    $fault?: unknown;
    $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  };
  const type = typeof e.name === "string" ? e.name : "Error";
  const status = typeof e.$metadata?.httpStatusCode === "number" ? e.$metadata.httpStatusCode : undefined;
  const requestId = typeof e.$metadata?.requestId === "string" ? `, request id ${e.$metadata.requestId}` : "";
  const what = `${type.replace(/[^A-Za-z0-9_.:-]/g, "").slice(0, 80)}${status === undefined ? "" : ` (HTTP ${status})`}${requestId}`;

  if (status !== undefined && status >= 200 && status < 300) {
    return new SealedSecretsError("ERR_KMS_RESPONSE", `sealed secrets: KMS ${operation} for ${name} returned an unreadable answer: ${what}`);
  }
  if (DENIED.has(type)) {
    return new SealedSecretsError("ERR_KMS_RELEASE_DENIED", `sealed secrets: KMS refused to release ${name}: ${what}`);
  }
  if (UNAVAILABLE.has(type) || status === undefined || e.$fault === "server" || status >= 500) {
    return new SealedSecretsError("ERR_KMS_UNAVAILABLE", `sealed secrets: KMS ${operation} for ${name} failed: ${what}`);
  }
  // Any other 4xx is KMS refusing this request; the caller stops either way.
  return new SealedSecretsError("ERR_KMS_RELEASE_DENIED", `sealed secrets: KMS refused to release ${name}: ${what}`);
}

function openOutput(name: string, output: DecryptCommandOutput, privateKey: Parameters<typeof decryptCiphertextForRecipient>[1]): string {
  const plaintext = openRecipientOutput(name, output, privateKey);
  try {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(plaintext);
    } catch {
      throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed secrets: ${name} is not UTF-8 text`);
    }
  } finally {
    plaintext.fill(0);
  }
}

/**
 * The plaintext KMS encrypted to our recipient key, from a Decrypt or
 * GenerateDataKey answer. The caller owns (and must zero) the bytes.
 */
export function openRecipientOutput(
  name: string,
  output: { Plaintext?: Uint8Array | undefined; CiphertextForRecipient?: Uint8Array | undefined },
  privateKey: Parameters<typeof decryptCiphertextForRecipient>[1],
): Uint8Array {
  // KMS leaves Plaintext null when it honoured Recipient. Plaintext here means
  // something between us and KMS dropped the Recipient: the secret has
  // already crossed the host in the clear and must be rotated, not used.
  if (output.Plaintext !== undefined && output.Plaintext !== null && output.Plaintext.length > 0) {
    output.Plaintext.fill(0);
    throw new SealedSecretsError(
      "ERR_KMS_PLAINTEXT_EXPOSED",
      `sealed secrets: KMS returned ${name} as Plaintext instead of CiphertextForRecipient; treat it as exposed and rotate it`,
    );
  }
  const cms = output.CiphertextForRecipient;
  if (!(cms instanceof Uint8Array) || cms.length === 0) {
    throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed secrets: KMS Decrypt for ${name} returned no CiphertextForRecipient`);
  }
  let plaintext: Uint8Array;
  try {
    plaintext = decryptCiphertextForRecipient(cms, privateKey);
  } catch (err) {
    const code = err instanceof CmsError ? err.code : "unexpected error";
    throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed secrets: could not open CiphertextForRecipient for ${name} (${code})`);
  }
  if (plaintext.length === 0) throw new SealedSecretsError("ERR_KMS_RESPONSE", `sealed secrets: ${name} decrypted to an empty value`);
  return plaintext;
}

export interface CreateKmsClientOptions {
  /** The file's region; the KMS endpoint follows from it unless `endpoint` is set. */
  region: string;
  /** e.g. the local mock KMS, or a VPC endpoint. */
  endpoint?: string;
  /** Credentials from the host (the enclave has no instance metadata). */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * How requests leave the enclave, e.g. a NodeHttpHandler whose agent
   * tunnels through the vsock egress proxy. Default: the SDK's Node handler.
   */
  requestHandler?: KMSClient["config"]["requestHandler"];
}

/**
 * A KMS client with nothing taken from the environment or shared config
 * files, and SDK retries (3 attempts) for transient faults only.
 */
export function createKmsClient(options: CreateKmsClientOptions): KMSClient {
  return new KMSClient({
    region: options.region,
    credentials: options.credentials,
    maxAttempts: 3,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.requestHandler === undefined ? {} : { requestHandler: options.requestHandler }),
  });
}
