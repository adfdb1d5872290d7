import { rejectDuplicateJsonKeys } from "../../../attestation/client/strict-json.js";
import { ProvisionError } from "./provision-errors.js";
import { MAX_SEALED_FILE_BYTES } from "./sealed-file.js";

export { MAX_SEALED_FILE_BYTES };

/**
 * The boot bundle: what the host hands a fresh enclave, which has no
 * filesystem from the host and no network but vsock. The host encodes it
 * (encodeBundle) and the enclave decodes it (decodeBundle), both with this
 * file, so the caps and field rules cannot drift apart. The frame body is
 * UTF-8 JSON (docs/PROTOCOL.md, "Boot provisioning"):
 *
 *   { "version": 2,
 *     "trustPolicy": "<base64: the trust policy file's exact bytes>",
 *     "operations": "<base64: the operations file's exact bytes>",
 *     "sealedSecrets": "<base64: the sealed-secrets file's exact bytes>",            optional
 *     "awsCredentials": { "accessKeyId": "…", "secretAccessKey": "…",
 *                         "sessionToken": "…" (optional) },                          with sealedSecrets only
 *     "kmsEndpoint": "https://…" }                                                   optional, with sealedSecrets only
 *
 * Files travel as base64 of their bytes, never as parsed JSON, because their
 * SHA-256 is what the enclave attests: re-serialising would change the hash.
 *
 * Everything in the bundle comes from the untrusted host, and that is
 * acceptable: the trust policy is attested (`policy_sha256`) and served to
 * clients, which constrain what it says; operations cannot move a byte
 * anywhere (enclave/operations.ts); the sealed file opens only under the
 * trust policy's key ARN and for its origins; the credentials are useless
 * without this enclave's attestation (the key policy requires it), and the
 * KMS endpoint can only name a host the attested egress allowlist admits.
 * What matters here is that the parse is strict: bounded sizes, no unknown
 * or duplicate field (two bundles that differ only in an ignored field
 * would be indistinguishable in the logs), every type checked.
 *
 * `identity` asks the enclave to make (or rotate) the shared sealed
 * identity instead of serving (docs/IDENTITY.md; enclave/provision/
 * identity-mode.ts). The host may ask for that too: the keys are made and
 * sealed inside the enclave, and what comes back is ciphertext and hashes.
 * Whether `overlapDays` must be present depends on the sealed file (a
 * rotation needs it, a first identity refuses it), which this decoder does
 * not open; identity-mode.ts checks that.
 */
/** 2: trust policy and operations in place of version 1's single runtime config (refused: it has no trust policy). */
export const BUNDLE_VERSION = 2;
/** Trust policy bytes, as attestation/trust-policy.ts accepts. */
export const MAX_TRUST_POLICY_BYTES = 256 * 1024;
/** Operations bytes, as enclave/operations.ts accepts. */
export const MAX_OPERATIONS_BYTES = 1024 * 1024;
/**
 * The frame body: both files at their maxima, base64-encoded (4/3), plus
 * credentials and field names. Smaller would make files that boot with
 * --trust-policy/--operations fail over the channel; the length prefix lets the reader refuse
 * anything larger before buffering it.
 */
export const MAX_BUNDLE_BYTES = 3 * 1024 * 1024 + 512 * 1024;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Whole days, as the operator gives them; 1825 days is identity-source.ts's 5-year cap on validityMs. */
export const MAX_IDENTITY_DAYS = 1825;

/** `identity.generate`: make a new shared identity (or rotate the file's) instead of booting. */
export interface IdentityGenerateRequest {
  /** How long the new signing receipt key is valid, from now. */
  validityDays: number;
  /** How long the previous signing key's receipts stay valid; exactly when the file already has an identity. */
  overlapDays?: number;
  /** Make a new TLS key too (only with a previous identity; clients re-pin). */
  rotateTls?: boolean;
}

export interface ProvisionBundle {
  /** The trust policy exactly as the host read it; its SHA-256 is attested as `policy_sha256`. */
  trustPolicyBytes: Uint8Array;
  /** The operations document exactly as the host read it. */
  operationsBytes: Uint8Array;
  /** What bootEnclave's `sealedSecrets` option takes, when the host sent a sealed-secrets file. */
  sealedSecrets?: { file: Uint8Array; credentials: AwsCredentials; endpoint?: string };
  /** Present only with sealedSecrets: generate an identity and reply with it; do not serve. */
  identity?: { generate: IdentityGenerateRequest };
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

const tooLarge = (what: string, n: number, max: number) => new ProvisionError("ERR_PROVISION_TOO_LARGE", `${what} is ${n} bytes, at most ${max} allowed`);

/**
 * The host's side: the frame body for these files. The caps are the
 * decoder's, checked here too so an operator's mistake fails on the host
 * with a clear message instead of as a refusal from the enclave. The host
 * may send any trust policy it likes: the enclave attests the SHA-256 of
 * exactly these bytes, and a client checks what they say before sending
 * anything.
 */
export function encodeBundle(input: BundleInput): Uint8Array {
  if (input.trustPolicy.length === 0) throw new ProvisionError("ERR_PROVISION_INPUT", "the trust policy is empty");
  if (input.trustPolicy.length > MAX_TRUST_POLICY_BYTES) throw tooLarge("the trust policy", input.trustPolicy.length, MAX_TRUST_POLICY_BYTES);
  if (input.operations.length === 0) throw new ProvisionError("ERR_PROVISION_INPUT", "the operations file is empty");
  if (input.operations.length > MAX_OPERATIONS_BYTES) throw tooLarge("the operations file", input.operations.length, MAX_OPERATIONS_BYTES);
  const body: Record<string, unknown> = {
    version: BUNDLE_VERSION,
    trustPolicy: Buffer.from(input.trustPolicy).toString("base64"),
    operations: Buffer.from(input.operations).toString("base64"),
  };
  if (input.sealedSecrets !== undefined) {
    if (input.sealedSecrets.length === 0) throw new ProvisionError("ERR_PROVISION_INPUT", "the sealed-secrets file is empty");
    if (input.sealedSecrets.length > MAX_SEALED_FILE_BYTES) throw tooLarge("the sealed-secrets file", input.sealedSecrets.length, MAX_SEALED_FILE_BYTES);
    if (input.awsCredentials === undefined) throw new ProvisionError("ERR_PROVISION_CREDENTIALS", "sealed secrets need AWS credentials for KMS");
    body.sealedSecrets = Buffer.from(input.sealedSecrets).toString("base64");
    const { accessKeyId, secretAccessKey, sessionToken } = input.awsCredentials;
    body.awsCredentials = { accessKeyId, secretAccessKey, ...(sessionToken !== undefined && sessionToken !== "" && { sessionToken }) };
    if (input.kmsEndpoint !== undefined) body.kmsEndpoint = input.kmsEndpoint;
    if (input.identity !== undefined) body.identity = { generate: identityRequest(input.identity.generate) };
  } else if (input.awsCredentials !== undefined || input.kmsEndpoint !== undefined || input.identity !== undefined) {
    // The enclave refuses fields it would ignore; so does the encoder.
    throw new ProvisionError("ERR_PROVISION_INPUT", "AWS credentials, a KMS endpoint and an identity request are only sent with a sealed-secrets file");
  }
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  if (bytes.length > MAX_BUNDLE_BYTES) throw tooLarge("the bundle", bytes.length, MAX_BUNDLE_BYTES);
  return bytes;
}

function identityRequest(generate: { validityDays: number; overlapDays?: number; rotateTls?: boolean }): Record<string, unknown> {
  const days = (value: number, name: string, min: number) => {
    if (!Number.isInteger(value) || value < min || value > MAX_IDENTITY_DAYS)
      throw new ProvisionError("ERR_PROVISION_INPUT", `${name} must be whole days, ${min}..${MAX_IDENTITY_DAYS}`);
    return value;
  };
  // Fixed field order; rotateTls only when asked for (the enclave refuses it for a first identity).
  return {
    validityDays: days(generate.validityDays, "the identity's validity", 1),
    ...(generate.overlapDays !== undefined && { overlapDays: days(generate.overlapDays, "the identity's overlap", 0) }),
    ...(generate.rotateTls === true && { rotateTls: true }),
  };
}

// IAM AccessKeyId is 16..128 word characters (IAM API reference, AccessKey).
const ACCESS_KEY_ID = /^\w{16,128}$/;
// Secret keys are 40 base64-like characters and STS session tokens a few
// KB of base64; printable ASCII without spaces bounds both without guessing
// AWS's alphabet.
const SECRET_ACCESS_KEY = /^[\x21-\x7e]{1,256}$/;
const SESSION_TOKEN = /^[\x21-\x7e]{1,8192}$/;
// Same rule as EGW_KMS_ENDPOINT (enclave/config.ts): scheme and authority only.
const KMS_ENDPOINT = /^https?:\/\/[^\s/]{1,253}\/?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const malformed = (message: string): ProvisionError => new ProvisionError("ERR_PROVISION_MALFORMED", `provisioning bundle: ${message}`);

export function decodeBundle(body: Uint8Array): ProvisionBundle {
  if (!(body instanceof Uint8Array)) throw malformed(`expected Uint8Array, got ${typeof body}`);
  if (body.length > MAX_BUNDLE_BYTES) throw new ProvisionError("ERR_PROVISION_TOO_LARGE", `provisioning bundle: ${body.length} bytes, at most ${MAX_BUNDLE_BYTES} allowed`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    throw malformed("not valid UTF-8");
  }
  if (text.charCodeAt(0) === 0xfeff) throw malformed("starts with a byte-order mark");
  // No valid value needs a JSON escape (base64, key ids, secret keys, tokens
  // and URLs are plain printable ASCII). Refusing `\` keeps every key
  // byte-exact, so "a" and "\u0061" cannot alias.
  if (text.includes("\\")) throw malformed("escape sequences are not allowed");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw malformed("not JSON");
  }
  // JSON.parse keeps the last of two equal keys silently.
  rejectDuplicateJsonKeys(text, (key) => malformed(`duplicate field (${key.length} characters)`));
  if (!isPlainObject(value)) throw malformed("top level must be an object");
  checkKeys(value, ["version", "trustPolicy", "operations"], ["sealedSecrets", "awsCredentials", "kmsEndpoint", "identity"], "top level");
  if (value.version !== BUNDLE_VERSION) {
    throw malformed(`"version" expected ${BUNDLE_VERSION}, got ${typeof value.version === "number" ? String(value.version) : typeof value.version}`);
  }
  const trustPolicyBytes = base64Field(value.trustPolicy, "trustPolicy", MAX_TRUST_POLICY_BYTES);
  const operationsBytes = base64Field(value.operations, "operations", MAX_OPERATIONS_BYTES);
  if (value.sealedSecrets === undefined) {
    // Credentials or an endpoint without a file would be ignored; a field
    // that is sent but ignored is refused instead.
    if (value.awsCredentials !== undefined || value.kmsEndpoint !== undefined) throw malformed(`"awsCredentials" and "kmsEndpoint" are only allowed with "sealedSecrets"`);
    // The identity is sealed under the file's KMS key, in its region, with the bundle's credentials.
    if (value.identity !== undefined) throw malformed(`"identity" needs "sealedSecrets" (the KMS key id and region) and "awsCredentials"`);
    return { trustPolicyBytes, operationsBytes };
  }
  const file = base64Field(value.sealedSecrets, "sealedSecrets", MAX_SEALED_FILE_BYTES);
  if (value.awsCredentials === undefined) throw malformed(`"sealedSecrets" needs "awsCredentials" (KMS Decrypt is a signed request)`);
  const credentials = credentialsField(value.awsCredentials);
  let endpoint: string | undefined;
  if (value.kmsEndpoint !== undefined) {
    if (typeof value.kmsEndpoint !== "string" || !KMS_ENDPOINT.test(value.kmsEndpoint)) throw malformed(`"kmsEndpoint" expected a URL without a path`);
    endpoint = value.kmsEndpoint;
  }
  const sealedSecrets = { file, credentials, ...(endpoint !== undefined && { endpoint }) };
  if (value.identity === undefined) return { trustPolicyBytes, operationsBytes, sealedSecrets };
  return { trustPolicyBytes, operationsBytes, sealedSecrets, identity: identityField(value.identity) };
}

function identityField(value: unknown): { generate: IdentityGenerateRequest } {
  if (!isPlainObject(value)) throw malformed(`"identity" must be an object`);
  // One verb today; a request with none (or another) would do nothing, so it is refused.
  checkKeys(value, ["generate"], [], `"identity"`);
  const generate = value.generate;
  if (!isPlainObject(generate)) throw malformed(`"identity.generate" must be an object`);
  checkKeys(generate, ["validityDays"], ["overlapDays", "rotateTls"], `"identity.generate"`);
  const request: IdentityGenerateRequest = { validityDays: daysField(generate.validityDays, "validityDays", 1) };
  if (generate.overlapDays !== undefined) request.overlapDays = daysField(generate.overlapDays, "overlapDays", 0);
  if (generate.rotateTls !== undefined) {
    if (typeof generate.rotateTls !== "boolean") throw malformed(`"identity.generate.rotateTls" expected true or false`);
    request.rotateTls = generate.rotateTls;
  }
  return { generate: request };
}

function daysField(value: unknown, name: string, min: number): number {
  // Whole days only: a fraction would be a unit mistake (hours? ms?), not a wish.
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > MAX_IDENTITY_DAYS) {
    throw malformed(`"identity.generate.${name}" expected a whole number of days, ${min}..${MAX_IDENTITY_DAYS}`);
  }
  return value;
}

function base64Field(value: unknown, name: string, max: number): Uint8Array {
  if (typeof value !== "string" || value.length === 0 || !BASE64.test(value)) throw malformed(`"${name}" expected a non-empty base64 string`);
  const bytes = Buffer.from(value, "base64");
  if (bytes.length > max) throw new ProvisionError("ERR_PROVISION_TOO_LARGE", `provisioning bundle: "${name}" is ${bytes.length} bytes, at most ${max} allowed`);
  // Canonical base64 only (no non-zero trailing bits): one bundle, one meaning.
  if (bytes.toString("base64") !== value) throw malformed(`"${name}" is not canonical base64`);
  return new Uint8Array(bytes);
}

function credentialsField(value: unknown): AwsCredentials {
  if (!isPlainObject(value)) throw malformed(`"awsCredentials" must be an object`);
  checkKeys(value, ["accessKeyId", "secretAccessKey"], ["sessionToken"], `"awsCredentials"`);
  // Lengths only in messages: these are credentials.
  const { accessKeyId, secretAccessKey, sessionToken } = value;
  if (typeof accessKeyId !== "string" || !ACCESS_KEY_ID.test(accessKeyId)) throw malformed(`"awsCredentials.accessKeyId" expected 16..128 word characters`);
  if (typeof secretAccessKey !== "string" || !SECRET_ACCESS_KEY.test(secretAccessKey)) throw malformed(`"awsCredentials.secretAccessKey" expected 1..256 printable characters`);
  if (sessionToken === undefined) return { accessKeyId, secretAccessKey };
  if (typeof sessionToken !== "string" || !SESSION_TOKEN.test(sessionToken)) throw malformed(`"awsCredentials.sessionToken" expected 1..8192 printable characters`);
  return { accessKeyId, secretAccessKey, sessionToken };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(obj: Record<string, unknown>, required: readonly string[], optional: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    // Only the length of an unknown name: it could be anything the host sent.
    if (!required.includes(key) && !optional.includes(key)) throw malformed(`unknown field in ${where} (${key.length} characters)`);
  }
  for (const key of required) {
    if (!Object.hasOwn(obj, key)) throw malformed(`missing field "${key}" in ${where}`);
  }
}
