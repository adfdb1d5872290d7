import { ProvisionSendError } from "./errors.js";

/**
 * Builds the boot bundle's frame body (docs/PROTOCOL.md, "Boot
 * provisioning"): UTF-8 JSON with the files as base64 of their exact bytes.
 * The caps are the enclave's (enclave/provision/bundle.ts), checked here too
 * so an operator's mistake fails on the host with a clear message instead
 * of as a refusal from the enclave.
 *
 * The host is untrusted, and may send any trust policy it likes: that is
 * acceptable because the enclave attests the SHA-256 of exactly these bytes,
 * serves them, and a client checks what they say before sending anything.
 * Operations (tokens, limits) cannot move a byte anywhere.
 */
export const BUNDLE_VERSION = 2;
export const MAX_TRUST_POLICY_BYTES = 256 * 1024;
export const MAX_OPERATIONS_BYTES = 1024 * 1024;
export const MAX_SEALED_FILE_BYTES = 1024 * 1024;
export const MAX_BUNDLE_BYTES = 3 * 1024 * 1024 + 512 * 1024;
/** Whole days; the enclave's cap on identity validity and overlap (5 × 365). */
export const MAX_IDENTITY_DAYS = 1825;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface BundleInput {
  /** The trust policy file's bytes, exactly as read. */
  trustPolicy: Uint8Array;
  /** The operations file's bytes, exactly as read. */
  operations: Uint8Array;
  /** The sealed-secrets file's bytes, exactly as read. */
  sealedSecrets?: Uint8Array;
  /** For KMS Decrypt inside the enclave; required with sealedSecrets, refused without. */
  awsCredentials?: AwsCredentials;
  /** KMS endpoint override (a VPC endpoint); only with sealedSecrets. */
  kmsEndpoint?: string;
  /**
   * Ask the enclave to make (or rotate) the shared identity instead of
   * serving; only with sealedSecrets (its key id and region seal it).
   * `overlapDays` exactly when the file already has an identity: the
   * enclave checks that against the file.
   */
  identity?: { generate: { validityDays: number; overlapDays?: number; rotateTls?: boolean } };
}

const tooLarge = (what: string, n: number, max: number) => new ProvisionSendError("ERR_PROVISION_TOO_LARGE", `${what} is ${n} bytes, at most ${max} allowed`);

export function encodeBundle(input: BundleInput): Uint8Array {
  if (input.trustPolicy.length === 0) throw new ProvisionSendError("ERR_PROVISION_INPUT", "the trust policy is empty");
  if (input.trustPolicy.length > MAX_TRUST_POLICY_BYTES) throw tooLarge("the trust policy", input.trustPolicy.length, MAX_TRUST_POLICY_BYTES);
  if (input.operations.length === 0) throw new ProvisionSendError("ERR_PROVISION_INPUT", "the operations file is empty");
  if (input.operations.length > MAX_OPERATIONS_BYTES) throw tooLarge("the operations file", input.operations.length, MAX_OPERATIONS_BYTES);
  const body: Record<string, unknown> = {
    version: BUNDLE_VERSION,
    trustPolicy: Buffer.from(input.trustPolicy).toString("base64"),
    operations: Buffer.from(input.operations).toString("base64"),
  };
  if (input.sealedSecrets !== undefined) {
    if (input.sealedSecrets.length === 0) throw new ProvisionSendError("ERR_PROVISION_INPUT", "the sealed-secrets file is empty");
    if (input.sealedSecrets.length > MAX_SEALED_FILE_BYTES) throw tooLarge("the sealed-secrets file", input.sealedSecrets.length, MAX_SEALED_FILE_BYTES);
    if (input.awsCredentials === undefined) throw new ProvisionSendError("ERR_PROVISION_CREDENTIALS", "sealed secrets need AWS credentials for KMS");
    body.sealedSecrets = Buffer.from(input.sealedSecrets).toString("base64");
    const { accessKeyId, secretAccessKey, sessionToken } = input.awsCredentials;
    body.awsCredentials = { accessKeyId, secretAccessKey, ...(sessionToken !== undefined && sessionToken !== "" && { sessionToken }) };
    if (input.kmsEndpoint !== undefined) body.kmsEndpoint = input.kmsEndpoint;
    if (input.identity !== undefined) body.identity = { generate: identityRequest(input.identity.generate) };
  } else if (input.awsCredentials !== undefined || input.kmsEndpoint !== undefined || input.identity !== undefined) {
    // The enclave refuses fields it would ignore; so does the encoder.
    throw new ProvisionSendError("ERR_PROVISION_INPUT", "AWS credentials, a KMS endpoint and an identity request are only sent with a sealed-secrets file");
  }
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  if (bytes.length > MAX_BUNDLE_BYTES) throw tooLarge("the bundle", bytes.length, MAX_BUNDLE_BYTES);
  return bytes;
}

function identityRequest(generate: { validityDays: number; overlapDays?: number; rotateTls?: boolean }): Record<string, unknown> {
  const days = (value: number, name: string, min: number) => {
    if (!Number.isInteger(value) || value < min || value > MAX_IDENTITY_DAYS) throw new ProvisionSendError("ERR_PROVISION_INPUT", `${name} must be whole days, ${min}..${MAX_IDENTITY_DAYS}`);
    return value;
  };
  // Fixed field order; rotateTls only when asked for (the enclave refuses it for a first identity).
  return {
    validityDays: days(generate.validityDays, "the identity's validity", 1),
    ...(generate.overlapDays !== undefined && { overlapDays: days(generate.overlapDays, "the identity's overlap", 0) }),
    ...(generate.rotateTls === true && { rotateTls: true }),
  };
}
