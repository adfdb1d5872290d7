import forge from "node-forge";
import { CmsError } from "./cms-error.js";

/**
 * Parses a KMS `CiphertextForRecipient`: a CMS ContentInfo holding
 * EnvelopedData (RFC 5652 §3, §6.1), in the one shape KMS produces and
 * nothing else:
 *
 *   ContentInfo { envelopedData, [0] EnvelopedData {
 *     version 2,
 *     recipientInfos SET { KeyTransRecipientInfo {            -- exactly one
 *       version 2, rid [0] subjectKeyIdentifier,
 *       keyEncryptionAlgorithm rsaesOaep(sha256, mgf1(sha256)),  -- RFC 4055 §4.1
 *       encryptedKey OCTET STRING (256 bytes, RSA-2048) } },
 *     encryptedContentInfo { id-data, aes256-CBC(IV 16 bytes),   -- RFC 3565 §4.1
 *       [0] IMPLICIT encryptedContent } } }
 *
 * KMS emits BER with indefinite lengths (X.690 §8.1.3.6), and the
 * encryptedContent either primitive or as a constructed [0] of OCTET STRING
 * chunks (X.690 §8.7.3). Both fixtures in shared/fixtures/kms-cms are of
 * that kind.
 *
 * BER handling: node-forge's `asn1.fromDer` in strict mode already reads
 * indefinite lengths on constructed values (to the end-of-contents octets)
 * and refuses them on primitives, bounds recursion with `maxDepth`, checks
 * every child against its parent's length, and with `parseAllBytes` refuses
 * trailing bytes. So no BER→DER normaliser is needed. Its gaps are covered
 * here by the schema: it does not read high tag numbers (tag byte low bits
 * 0x1F) and reads a stray `00 00` inside a definite-length value as a
 * universal-0 element; neither can match any position of the schema below,
 * and every constructed value is checked for its exact child count, so every
 * node forge returns is checked.
 *
 * Strictness choices (KMS never emits the alternatives): constructed
 * encodings are accepted only for the encryptedContent; originatorInfo and
 * unprotectedAttrs are refused; the OAEP label, if present at all, must be
 * the empty pSpecified default.
 */

/** Upper bound on the whole input. A sealed provider key is tens of bytes. */
export const MAX_CMS_BYTES = 64 * 1024;
/** Deepest level the schema has (OID inside the MGF1 hash AlgorithmIdentifier is 10). */
export const MAX_CMS_DEPTH = 11;
/** Upper bound on OCTET STRING chunks in a constructed encryptedContent. */
export const MAX_CONTENT_CHUNKS = 1024;
/** RSA-2048: the only recipient key size the enclave generates. */
export const ENCRYPTED_KEY_BYTES = 256;
export const AES_BLOCK_BYTES = 16;
/** subjectKeyIdentifier size bounds; KMS sends 32 bytes. */
export const MAX_SKI_BYTES = 64;

export const CMS_OID = {
  envelopedData: "1.2.840.113549.1.7.3",
  data: "1.2.840.113549.1.7.1",
  rsaesOaep: "1.2.840.113549.1.1.7",
  mgf1: "1.2.840.113549.1.1.8",
  pSpecified: "1.2.840.113549.1.1.9",
  sha256: "2.16.840.1.101.3.4.2.1",
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
} as const;

export interface CmsEnvelope {
  /** rid of the one recipient; not checked against the key (how KMS derives it is not documented). */
  subjectKeyIdentifier: Uint8Array;
  /** RSAES-OAEP(SHA-256, MGF1-SHA-256) wrapped AES-256 key, 256 bytes. */
  encryptedKey: Uint8Array;
  /** AES-256-CBC IV, 16 bytes. */
  iv: Uint8Array;
  /** AES-256-CBC ciphertext, a non-zero multiple of 16 bytes, chunks concatenated. */
  encryptedContent: Uint8Array;
  /** How the encryptedContent was encoded on the wire. */
  contentEncoding: "primitive" | "constructed";
}

const { Class, Type } = forge.asn1;
type Node = forge.asn1.Asn1;

const OID_DER = Object.fromEntries(Object.entries(CMS_OID).map(([name, oid]) => [name, forge.asn1.oidToDer(oid).getBytes()])) as Record<keyof typeof CMS_OID, string>;

// forge's typings only declare the boolean `strict` argument; the runtime
// takes this options object (node-forge lib/asn1.js, asn1.fromDer).
type FromDer = (bytes: string, options: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean; maxDepth: number }) => Node;

export function parseCmsEnvelope(bytes: Uint8Array): CmsEnvelope {
  if (!(bytes instanceof Uint8Array)) {
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: expected Uint8Array");
  }
  if (bytes.length > MAX_CMS_BYTES) {
    throw new CmsError("ERR_CMS_TOO_LARGE", `CMS: input is ${bytes.length} bytes, limit ${MAX_CMS_BYTES}`);
  }
  const root = decodeBer(bytes);

  // ContentInfo (RFC 5652 §3)
  const contentInfo = seq(root, "ContentInfo", 2);
  if (oidOf(contentInfo[0], "ContentInfo.contentType") !== OID_DER.envelopedData) {
    throw new CmsError("ERR_CMS_CONTENT_TYPE", "CMS: ContentInfo.contentType is not envelopedData");
  }
  const explicit = children(contentInfo[1], Class.CONTEXT_SPECIFIC, 0, "ContentInfo.content [0]", 1, 1);

  // EnvelopedData (RFC 5652 §6.1). Exactly four fields: originatorInfo [0]
  // and unprotectedAttrs [1] are refused, so the count is the check.
  const ed = seq(explicit[0], "EnvelopedData", 3);
  integerIs(ed[0], 2, "EnvelopedData.version");
  const recipient = recipientInfo(ed[1]);
  const content = encryptedContentInfo(ed[2]);
  return { ...recipient, ...content };
}

function decodeBer(bytes: Uint8Array): Node {
  try {
    return (forge.asn1.fromDer as unknown as FromDer)(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1"), {
      strict: true,
      parseAllBytes: true,
      decodeBitStrings: false,
      maxDepth: MAX_CMS_DEPTH,
    });
  } catch {
    // forge's messages carry no input bytes, but they are not ours to vet;
    // one fixed message covers truncation, overruns, depth and trailing bytes.
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: not a well-formed BER value (truncated, overlong, too deep or trailing bytes)");
  }
}

function recipientInfo(node: Node | undefined): Pick<CmsEnvelope, "subjectKeyIdentifier" | "encryptedKey"> {
  const set = children(node, Class.UNIVERSAL, Type.SET, "EnvelopedData.recipientInfos", 0, Number.MAX_SAFE_INTEGER);
  if (set.length !== 1) {
    throw new CmsError("ERR_CMS_RECIPIENT", `CMS: recipientInfos has ${set.length} entries, expected exactly 1`);
  }
  const ri = set[0]!;
  // RecipientInfo CHOICE (RFC 5652 §6.2): ktri is the untagged SEQUENCE; kari [1],
  // kekri [2], pwri [3] and ori [4] are context-tagged.
  if (ri.tagClass !== Class.UNIVERSAL || ri.type !== Type.SEQUENCE || !ri.constructed) {
    throw new CmsError("ERR_CMS_RECIPIENT", "CMS: the recipient is not a KeyTransRecipientInfo");
  }
  const ktri = seq(ri, "KeyTransRecipientInfo", 4);
  // §6.2.1: version 2 goes with rid = subjectKeyIdentifier; version 0 with issuerAndSerialNumber.
  if (!isInteger(ktri[0], 2)) {
    throw new CmsError("ERR_CMS_RECIPIENT", "CMS: KeyTransRecipientInfo.version is not 2");
  }
  const rid = ktri[1]!;
  if (rid.tagClass !== Class.CONTEXT_SPECIFIC || rid.type !== 0 || rid.constructed) {
    throw new CmsError("ERR_CMS_RECIPIENT", "CMS: KeyTransRecipientInfo.rid is not [0] subjectKeyIdentifier");
  }
  const ski = primitiveBytes(rid, "KeyTransRecipientInfo.rid");
  if (ski.length < 1 || ski.length > MAX_SKI_BYTES) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: subjectKeyIdentifier is ${ski.length} bytes, expected 1..${MAX_SKI_BYTES}`);
  }
  keyEncryptionAlgorithm(ktri[2]);
  const encryptedKey = octetString(ktri[3], "KeyTransRecipientInfo.encryptedKey");
  if (encryptedKey.length !== ENCRYPTED_KEY_BYTES) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: encryptedKey is ${encryptedKey.length} bytes, expected ${ENCRYPTED_KEY_BYTES}`);
  }
  return { subjectKeyIdentifier: ski, encryptedKey };
}

/**
 * RSAES-OAEP-params (RFC 4055 §3.1 / RFC 8017 A.2.1): every field has a SHA-1
 * default, so an absent hashFunc or maskGenFunc means SHA-1 and is refused.
 * pSourceFunc, if present, must be the empty pSpecified label (the default,
 * which DER would omit).
 */
function keyEncryptionAlgorithm(node: Node | undefined): void {
  const alg = algorithmIdentifier(node, "keyEncryptionAlgorithm");
  if (alg.oid !== OID_DER.rsaesOaep) {
    throw new CmsError("ERR_CMS_ALGORITHM", `CMS: keyEncryptionAlgorithm ${oidText(alg.oid)} is not RSAES-OAEP`);
  }
  if (alg.params === undefined || alg.params.tagClass !== Class.UNIVERSAL || alg.params.type !== Type.SEQUENCE || !alg.params.constructed) {
    throw new CmsError("ERR_CMS_ALGORITHM", "CMS: RSAES-OAEP parameters are missing (SHA-1 defaults are refused)");
  }
  const fields = alg.params.value as Node[];
  let next = 0;
  const field = (tag: number): Node | undefined => {
    const f = fields[next];
    if (f !== undefined && f.tagClass === Class.CONTEXT_SPECIFIC && f.type === tag && f.constructed) {
      next++;
      return explicitOne(f, `RSAES-OAEP-params [${tag}]`);
    }
    return undefined;
  };
  const hashFunc = field(0);
  const maskGenFunc = field(1);
  const pSourceFunc = field(2);
  if (next !== fields.length) {
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: RSAES-OAEP-params has unexpected fields");
  }
  if (hashFunc === undefined || !isSha256(hashFunc, "RSAES-OAEP hashFunc")) {
    throw new CmsError("ERR_CMS_ALGORITHM", "CMS: RSAES-OAEP hashFunc is not SHA-256");
  }
  if (maskGenFunc === undefined) {
    throw new CmsError("ERR_CMS_ALGORITHM", "CMS: RSAES-OAEP maskGenFunc is not MGF1 with SHA-256");
  }
  const mgf = algorithmIdentifier(maskGenFunc, "RSAES-OAEP maskGenFunc");
  if (mgf.oid !== OID_DER.mgf1 || mgf.params === undefined || !isSha256(mgf.params, "MGF1 hash")) {
    throw new CmsError("ERR_CMS_ALGORITHM", "CMS: RSAES-OAEP maskGenFunc is not MGF1 with SHA-256");
  }
  if (pSourceFunc !== undefined) {
    const ps = algorithmIdentifier(pSourceFunc, "RSAES-OAEP pSourceFunc");
    if (ps.oid !== OID_DER.pSpecified || ps.params === undefined || octetString(ps.params, "pSpecified label").length !== 0) {
      throw new CmsError("ERR_CMS_ALGORITHM", "CMS: RSAES-OAEP label is not empty");
    }
  }
}

/** SHA-256 AlgorithmIdentifier; parameters NULL or absent (RFC 4055 §2.1 says accept both). */
function isSha256(node: Node, what: string): boolean {
  const alg = algorithmIdentifier(node, what);
  if (alg.oid !== OID_DER.sha256) return false;
  if (alg.params !== undefined) nullValue(alg.params, `${what} parameters`);
  return true;
}

function encryptedContentInfo(node: Node | undefined): Pick<CmsEnvelope, "iv" | "encryptedContent" | "contentEncoding"> {
  // encryptedContent is OPTIONAL in RFC 5652 §6.1 (detached content); KMS always includes it.
  const eci = children(node, Class.UNIVERSAL, Type.SEQUENCE, "EncryptedContentInfo", 2, 3);
  if (oidOf(eci[0], "EncryptedContentInfo.contentType") !== OID_DER.data) {
    throw new CmsError("ERR_CMS_CONTENT_TYPE", "CMS: EncryptedContentInfo.contentType is not id-data");
  }
  const alg = algorithmIdentifier(eci[1], "contentEncryptionAlgorithm");
  if (alg.oid !== OID_DER.aes256Cbc) {
    throw new CmsError("ERR_CMS_ALGORITHM", `CMS: contentEncryptionAlgorithm ${oidText(alg.oid)} is not AES-256-CBC`);
  }
  if (alg.params === undefined) {
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: AES-256-CBC IV is missing");
  }
  const iv = octetString(alg.params, "AES-256-CBC IV");
  if (iv.length !== AES_BLOCK_BYTES) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: AES-256-CBC IV is ${iv.length} bytes, expected ${AES_BLOCK_BYTES}`);
  }
  const ec = eci[2];
  if (ec === undefined) {
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: encryptedContent is missing (detached content is not supported)");
  }
  if (ec.tagClass !== Class.CONTEXT_SPECIFIC || ec.type !== 0) {
    throw new CmsError("ERR_CMS_MALFORMED", "CMS: encryptedContent is not [0]");
  }
  let encryptedContent: Uint8Array;
  let contentEncoding: CmsEnvelope["contentEncoding"];
  if (ec.constructed) {
    const chunks = ec.value as Node[];
    if (chunks.length > MAX_CONTENT_CHUNKS) {
      throw new CmsError("ERR_CMS_TOO_LARGE", `CMS: encryptedContent has ${chunks.length} chunks, limit ${MAX_CONTENT_CHUNKS}`);
    }
    // X.690 §8.7.3.2: each chunk is an OCTET STRING; nested constructed chunks are refused.
    encryptedContent = Buffer.concat(chunks.map((c, i) => octetString(c, `encryptedContent chunk ${i}`)));
    contentEncoding = "constructed";
  } else {
    encryptedContent = primitiveBytes(ec, "encryptedContent");
    contentEncoding = "primitive";
  }
  if (encryptedContent.length === 0 || encryptedContent.length % AES_BLOCK_BYTES !== 0) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: encryptedContent is ${encryptedContent.length} bytes, expected a non-zero multiple of ${AES_BLOCK_BYTES}`);
  }
  return { iv, encryptedContent: new Uint8Array(encryptedContent), contentEncoding };
}

// ---- node checks -----------------------------------------------------------

function children(node: Node | undefined, tagClass: forge.asn1.Class, type: number, what: string, min: number, max: number): Node[] {
  if (node === undefined) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is missing`);
  }
  if (node.tagClass !== tagClass || node.type !== type || !node.constructed || !Array.isArray(node.value)) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} has the wrong tag`);
  }
  if (node.value.length < min || node.value.length > max) {
    const expected = min === max ? `${min}` : `${min}..${max}`;
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} has ${node.value.length} fields, expected ${expected}`);
  }
  return node.value;
}

function seq(node: Node | undefined, what: string, n: number): Node[] {
  return children(node, Class.UNIVERSAL, Type.SEQUENCE, what, n, n);
}

function explicitOne(node: Node, what: string): Node {
  return children(node, node.tagClass, node.type, what, 1, 1)[0]!;
}

function primitiveBytes(node: Node, what: string): Uint8Array {
  if (node.constructed || typeof node.value !== "string") {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is not a primitive value`);
  }
  return new Uint8Array(Buffer.from(node.value, "latin1"));
}

function octetString(node: Node | undefined, what: string): Uint8Array {
  if (node === undefined || node.tagClass !== Class.UNIVERSAL || node.type !== Type.OCTETSTRING || node.constructed) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is not a primitive OCTET STRING`);
  }
  return primitiveBytes(node, what);
}

function oidOf(node: Node | undefined, what: string): string {
  if (node === undefined || node.tagClass !== Class.UNIVERSAL || node.type !== Type.OID || node.constructed || typeof node.value !== "string") {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is not an OBJECT IDENTIFIER`);
  }
  // Compared as encoded bytes, so a non-minimal encoding of a right OID is refused too.
  return node.value;
}

function nullValue(node: Node, what: string): void {
  if (node.tagClass !== Class.UNIVERSAL || node.type !== Type.NULL || node.constructed || node.value !== "") {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is not NULL`);
  }
}

function isInteger(node: Node | undefined, expected: number): boolean {
  // BER integers are minimal too (X.690 §8.3.2), so small values are one byte.
  return node !== undefined && node.tagClass === Class.UNIVERSAL && node.type === Type.INTEGER && !node.constructed && node.value === String.fromCharCode(expected);
}

function integerIs(node: Node | undefined, expected: number, what: string): void {
  if (!isInteger(node, expected)) {
    throw new CmsError("ERR_CMS_MALFORMED", `CMS: ${what} is not ${expected}`);
  }
}

function algorithmIdentifier(node: Node | undefined, what: string): { oid: string; params: Node | undefined } {
  const fields = children(node, Class.UNIVERSAL, Type.SEQUENCE, what, 1, 2);
  return { oid: oidOf(fields[0], `${what}.algorithm`), params: fields[1] };
}

/** Dotted form for error messages; OIDs are public identifiers, capped in length. */
function oidText(der: string): string {
  if (der.length === 0 || der.length > 32) return "(unrecognised OID)";
  try {
    return forge.asn1.derToOid(der);
  } catch {
    return "(unrecognised OID)";
  }
}
