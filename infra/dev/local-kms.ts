import { createCipheriv, createDecipheriv, createPublicKey, randomBytes, randomUUID, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TrustAnchor } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { KMS_LAYOUT, assemble, seal } from "./cms-encode.js";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * A local AWS KMS speaking the JSON 1.1 protocol the SDK uses: POST /, with
 * `x-amz-target: TrentService.<Operation>` and
 * `content-type: application/x-amz-json-1.1`; blobs are base64 strings;
 * errors are HTTP 400 with `{"__type": "<Name>", "message": "…"}` (the SDK
 * takes the error name from `__type`). Encrypt, Decrypt and GenerateDataKey
 * exist, with EncryptionContext bound to the ciphertext as KMS binds it (a
 * Decrypt with another context fails with InvalidCiphertextException).
 *
 * Encrypt returns an opaque blob: AES-256-GCM under a mock master key, with
 * the key ARN as associated data. Decrypt with `Recipient` verifies the
 * attestation document against the development root, enforces `allowedPcrs`
 * as the key policy's `kms:RecipientAttestation:PCR<n>` conditions would, and
 * answers with a real CMS EnvelopedData (RSAES-OAEP-SHA-256 + AES-256-CBC,
 * KMS's BER shape) to the document's `public_key`, and no Plaintext.
 */

export interface MockKmsPolicy {
  /** kms:RecipientAttestation:PCR<n> conditions; every listed PCR must match. */
  allowedPcrs: Readonly<Record<number, Uint8Array>>;
  /** The explicit Deny on Decrypt and GenerateDataKey without a recipient attestation. Default true. */
  denyWithoutRecipient?: boolean;
  /**
   * The explicit Deny on Encrypt under the identity encryption context
   * (infra/review/kms/key-policy.ts), so only an attested enclave can make a sealed
   * identity. Default true.
   */
  denyIdentityEncrypt?: boolean;
}

/** Ways to make the mock lie, for the enclave's refusals. */
export type MockKmsMisbehaviour =
  | "none"
  | "plaintext-in-clear" // ignore Recipient; answer with Plaintext only (a host that stripped Recipient)
  | "plaintext-and-recipient" // both fields
  | "garbage-cfr" // CiphertextForRecipient that is not CMS
  | "no-cfr" // neither field
  | "not-json" // HTTP 200 with a non-JSON body
  | "server-error" // HTTP 500 KMSInternalException
  | "any-key-id" // a KMS that answers for its own key whatever KeyId was asked for (a host-run impersonator)
  | "foreign-key-id"; // a correct answer, but naming another key (a KMS that resolved an alias elsewhere, or lies)

export interface MockKmsOptions {
  trustedRoot: TrustAnchor;
  policy: MockKmsPolicy;
  now: () => Date;
  region?: string;
  /** The account in the key's ARN, default 111122223333; a second instance with another plays a host-owned key. */
  account?: string;
  /** The key id (a UUID) in the key's ARN, default a random one; `egw dev` keeps one so its trust policy's hash stays put. */
  keyId?: string;
}

export interface RecordedKmsRequest {
  target: string;
  contentType: string | undefined;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface MockKms {
  /** e.g. http://127.0.0.1:12345 — the SDK's `endpoint`. */
  readonly endpoint: string;
  readonly region: string;
  readonly keyArn: string;
  readonly alias: string;
  readonly requests: RecordedKmsRequest[];
  policy: MockKmsPolicy;
  misbehave: MockKmsMisbehaviour;
  /** Dummy credentials: the mock does not check SigV4, only that a signature is present. */
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/** A refusal the mock answers with as KMS would (`__type` = `type`); the code is only for our error base. */
class KmsFault extends EgwError<"ERR_LOCAL_KMS_FAULT"> {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super("ERR_LOCAL_KMS_FAULT", message, "fix-input");
  }
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64");

function blobField(body: Record<string, unknown>, field: string, required: boolean): Uint8Array | undefined {
  const v = body[field];
  if (v === undefined || v === null) {
    if (required) throw new KmsFault("ValidationException", `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`);
    return undefined;
  }
  if (typeof v !== "string") throw new KmsFault("SerializationException", `${field} must be a base64 string`);
  return new Uint8Array(Buffer.from(v, "base64"));
}

export async function startMockKms(options: MockKmsOptions): Promise<MockKms> {
  const region = options.region ?? "us-east-1";
  const account = options.account ?? "111122223333";
  if (!/^\d{12}$/.test(account)) throw new TypeError("account must be 12 digits");
  const keyId = options.keyId ?? randomUUID();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(keyId)) throw new TypeError("keyId must be a lower-case UUID");
  const keyArn = `arn:aws:kms:${region}:${account}:key/${keyId}`;
  const alias = "alias/enclave-gateway-test";
  const aliasArn = `arn:aws:kms:${region}:${account}:${alias}`;
  const masterKey = randomBytes(32);
  const requests: RecordedKmsRequest[] = [];

  function resolveKey(keyId: unknown): void {
    if (keyId === undefined || mock.misbehave === "any-key-id") return;
    const known = [keyArn, alias, aliasArn, keyArn.slice(keyArn.indexOf("/") + 1)];
    if (typeof keyId !== "string" || !known.includes(keyId)) throw new KmsFault("NotFoundException", `Key '${String(keyId)}' does not exist`);
  }

  /** EncryptionContext: a string→string map; bound into the blob as associated data, in sorted order. */
  function contextAad(body: Record<string, unknown>): Buffer {
    const ctx = body.EncryptionContext;
    if (ctx === undefined || ctx === null) return Buffer.from(keyArn);
    if (typeof ctx !== "object" || Array.isArray(ctx)) throw new KmsFault("SerializationException", "EncryptionContext must be a map");
    const entries = Object.entries(ctx as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.some(([, v]) => typeof v !== "string")) throw new KmsFault("SerializationException", "EncryptionContext values must be strings");
    return Buffer.from(`${keyArn}\u0000${JSON.stringify(entries)}`);
  }

  function sealBlob(plaintext: Uint8Array, aad: Buffer): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", masterKey, iv).setAAD(aad);
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([0x01]), iv, cipher.getAuthTag(), ct]);
  }

  function encrypt(body: Record<string, unknown>): Record<string, unknown> {
    if (body.KeyId === undefined) throw new KmsFault("ValidationException", "KeyId is required");
    resolveKey(body.KeyId);
    const plaintext = blobField(body, "Plaintext", true)!;
    if (plaintext.length < 1 || plaintext.length > 4096) throw new KmsFault("ValidationException", "Plaintext must be 1..4096 bytes");
    const purpose = (body.EncryptionContext as Record<string, unknown> | undefined)?.["egw:purpose"];
    if (purpose === "enclave-identity" && (mock.policy.denyIdentityEncrypt ?? true)) {
      throw new KmsFault("AccessDeniedException", `User is not authorized to perform: kms:Encrypt on resource: ${keyArn} with an explicit deny`);
    }
    const blob = sealBlob(plaintext, contextAad(body));
    return { CiphertextBlob: b64(blob), KeyId: keyArn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" };
  }

  async function generateDataKey(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (body.KeyId === undefined) throw new KmsFault("ValidationException", "KeyId is required");
    resolveKey(body.KeyId);
    if (body.KeySpec !== "AES_256") throw new KmsFault("ValidationException", "this mock supports KeySpec AES_256 only");
    const hasRecipient = body.Recipient !== undefined && body.Recipient !== null;
    const key = hasRecipient ? await recipientKey(body.Recipient, "kms:GenerateDataKey") : undefined;
    if (!hasRecipient && (mock.policy.denyWithoutRecipient ?? true)) {
      throw new KmsFault("AccessDeniedException", `User is not authorized to perform: kms:GenerateDataKey on resource: ${keyArn} with an explicit deny`);
    }
    const dataKey = randomBytes(32);
    const blob = sealBlob(dataKey, contextAad(body));
    const base = { KeyId: keyArn, CiphertextBlob: b64(blob) };
    if (key === undefined) return { ...base, Plaintext: b64(dataKey) };
    return { ...base, CiphertextForRecipient: b64(assemble(seal(dataKey, key).parts, KMS_LAYOUT)) };
  }

  function openBlob(blob: Uint8Array, aad: Buffer): Buffer {
    if (blob.length < 1 + 12 + 16 + 1 || blob[0] !== 0x01) throw new KmsFault("InvalidCiphertextException", "");
    try {
      const decipher = createDecipheriv("aes-256-gcm", masterKey, blob.subarray(1, 13)).setAAD(aad);
      decipher.setAuthTag(blob.subarray(13, 29));
      return Buffer.concat([decipher.update(blob.subarray(29)), decipher.final()]);
    } catch {
      throw new KmsFault("InvalidCiphertextException", "");
    }
  }

  async function recipientKey(recipient: unknown, action = "kms:Decrypt"): Promise<KeyObject> {
    if (typeof recipient !== "object" || recipient === null) throw new KmsFault("SerializationException", "Recipient must be an object");
    const r = recipient as Record<string, unknown>;
    if (r.KeyEncryptionAlgorithm !== "RSAES_OAEP_SHA_256") throw new KmsFault("ValidationException", "KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256");
    const doc = blobField(r, "AttestationDocument", true)!;
    let publicKey: Uint8Array | null;
    try {
      const result = await verifyAttestation(doc, {
        currentDate: options.now(),
        expectedPcrs: "any",
        trustedRoots: [options.trustedRoot],
      });
      publicKey = result.document.publicKey;
      // The key policy: each kms:RecipientAttestation:PCR<n> condition must hold.
      for (const [index, expected] of Object.entries(mock.policy.allowedPcrs)) {
        const actual = result.document.pcrs.get(Number(index));
        if (actual === undefined || !Buffer.from(actual).equals(Buffer.from(expected))) {
          throw new KmsFault(
            "AccessDeniedException",
            `User is not authorized to perform: ${action} on resource: ${keyArn} because of the kms:RecipientAttestation:PCR${index} condition`,
          );
        }
      }
    } catch (err) {
      if (err instanceof KmsFault) throw err;
      throw new KmsFault("ValidationException", "The attestation document is not valid");
    }
    if (publicKey === null) throw new KmsFault("ValidationException", "The attestation document has no public key");
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(publicKey), format: "der", type: "spki" });
    } catch {
      throw new KmsFault("ValidationException", "The attestation document's public key is not an RSA SubjectPublicKeyInfo");
    }
    if (key.asymmetricKeyType !== "rsa") throw new KmsFault("ValidationException", "The attestation document's public key is not RSA");
    return key;
  }

  async function decrypt(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    resolveKey(body.KeyId);
    if (body.EncryptionAlgorithm !== undefined && body.EncryptionAlgorithm !== "SYMMETRIC_DEFAULT") {
      throw new KmsFault("IncorrectKeyException", "The key is a symmetric key");
    }
    const blob = blobField(body, "CiphertextBlob", true)!;
    const hasRecipient = body.Recipient !== undefined && body.Recipient !== null;
    const key = hasRecipient ? await recipientKey(body.Recipient) : undefined;
    if (!hasRecipient && (mock.policy.denyWithoutRecipient ?? true)) {
      throw new KmsFault("AccessDeniedException", `User is not authorized to perform: kms:Decrypt on resource: ${keyArn} with an explicit deny`);
    }
    const plaintext = openBlob(blob, contextAad(body));
    const base = { KeyId: keyArn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" };
    if (key === undefined || mock.misbehave === "plaintext-in-clear") return { ...base, Plaintext: b64(plaintext) };
    const cms = assemble(seal(plaintext, key).parts, KMS_LAYOUT);
    switch (mock.misbehave) {
      case "plaintext-and-recipient":
        return { ...base, Plaintext: b64(plaintext), CiphertextForRecipient: b64(cms) };
      case "garbage-cfr":
        return { ...base, CiphertextForRecipient: b64(randomBytes(300)) };
      case "no-cfr":
        return base;
      default:
        return { ...base, CiphertextForRecipient: b64(cms) };
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 1024 * 1024) throw new KmsFault("ValidationException", "request too large");
      chunks.push(chunk);
    }
    const target = String(req.headers["x-amz-target"] ?? "");
    if (req.method !== "POST" || req.url !== "/") throw new KmsFault("UnknownOperationException", "POST / only");
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      throw new KmsFault("SerializationException", "body is not a JSON object");
    }
    requests.push({
      target,
      contentType: req.headers["content-type"],
      authorization: req.headers.authorization,
      body,
    });
    if (req.headers["content-type"] !== "application/x-amz-json-1.1") throw new KmsFault("UnknownOperationException", "bad content-type");
    if (!req.headers.authorization?.startsWith("AWS4-HMAC-SHA256 ")) throw new KmsFault("MissingAuthenticationTokenException", "no signature");
    if (mock.misbehave === "server-error") throw new KmsFault("KMSInternalException", "internal", 500);
    let out: Record<string, unknown>;
    if (target === "TrentService.Encrypt") out = encrypt(body);
    else if (target === "TrentService.Decrypt") out = await decrypt(body);
    else if (target === "TrentService.GenerateDataKey") out = await generateDataKey(body);
    else throw new KmsFault("UnknownOperationException", `unsupported target ${target}`);
    const headers = { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() };
    if (mock.misbehave === "not-json" && target === "TrentService.Decrypt") {
      res.writeHead(200, headers).end("<html>proxy error</html>");
      return;
    }
    if (mock.misbehave === "foreign-key-id" && "KeyId" in out) out = { ...out, KeyId: `arn:aws:kms:${region}:999999999999:key/${randomUUID()}` };
    res.writeHead(200, headers).end(JSON.stringify(out));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const fault = err instanceof KmsFault ? err : new KmsFault("KMSInternalException", "internal error", 500);
      res
        .writeHead(fault.status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() })
        .end(JSON.stringify({ __type: fault.type, message: fault.message }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  const mock: MockKms = {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    keyArn,
    alias,
    requests,
    policy: options.policy,
    misbehave: "none",
    credentials: { accessKeyId: "AKIAMOCKKMS000000000", secretAccessKey: "mock-kms-secret-access-key" },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
  return mock;
}
