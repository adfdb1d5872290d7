import { DecryptCommand, KMSClient, type DecryptCommandOutput } from "@aws-sdk/client-kms";
import type { Attester } from "../../attestation/attester.js";
import { staticSecrets, type SecretSource } from "../secrets.js";
import { CmsError } from "./cms-error.js";
import { decryptCiphertextForRecipient, generateRecipientKey } from "./recipient-decrypt.js";
import { SealedSecretsError, parseSealedFile } from "./sealed-file.js";

/**
 * Opens the sealed-secrets file at boot (AWS KMS Developer Guide, "How AWS
 * Nitro Enclaves uses AWS KMS"):
 *   fresh RSA-2048 recipient key → attestation document with its SPKI as
 *   `public_key` → for each secret, Decrypt with `Recipient` → open
 *   `CiphertextForRecipient` with the private key.
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
  attester: Attester;
  /**
   * Built by the caller (see createKmsClient): region from the file, requests
   * through the egress proxy, credentials from the host. This module never
   * reads the environment.
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
  readonly keyId: string;
  readonly region: string;
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

export async function openSealedSecrets(options: OpenSealedSecretsOptions): Promise<SealedSecretSource> {
  const { attester, kmsClient } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`"timeoutMs" expected a positive number, got ${timeoutMs}`);
  const sealed = parseSealedFile(options.file);

  const recipient = generateRecipientKey();
  let attestationDocument: Uint8Array;
  try {
    attestationDocument = await attester.attest({ publicKey: recipient.spkiDer });
  } catch (err) {
    const code = typeof (err as { code?: unknown })?.code === "string" ? ` (${(err as { code: string }).code})` : "";
    throw new SealedSecretsError("ERR_KMS_ATTESTATION", `sealed secrets: could not obtain an attestation document for the recipient key${code}`);
  }

  const values = new Map<string, string>();
  for (const [name, ciphertext] of sealed.secrets) {
    const output = await decrypt(kmsClient, name, sealed.keyId, ciphertext, attestationDocument, timeoutMs);
    values.set(name, openOutput(name, output, recipient.privateKey));
  }
  const source = staticSecrets(values);
  return {
    has: (name) => source.has(name),
    get: (name) => source.get(name),
    names: Object.freeze([...values.keys()]),
    keyId: sealed.keyId,
    region: sealed.region,
  };
}

async function decrypt(
  client: KMSClient,
  name: string,
  keyId: string,
  ciphertext: Uint8Array,
  attestationDocument: Uint8Array,
  timeoutMs: number,
): Promise<DecryptCommandOutput> {
  const command = new DecryptCommand({
    CiphertextBlob: ciphertext,
    KeyId: keyId,
    EncryptionAlgorithm: "SYMMETRIC_DEFAULT",
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
