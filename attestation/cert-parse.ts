import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import forge from "node-forge";
import { children, readTlv, type Tlv } from "./der.js";
import { AttestationError } from "./errors.js";

/**
 * The X.509 fields that Nitro chain validation needs (RFC 5280 §4.1), read
 * straight from the DER with exact byte offsets. Primitive values (OIDs,
 * times) are decoded with node-forge's ASN.1 helpers.
 *
 * Why not @peculiar/x509 here: its parser costs 0.5–1.6 ms per certificate on
 * the reference machine and a document carries five, which alone would blow
 * the 3 ms verification budget. @peculiar/x509 is still used to *build*
 * certificates (development CA, TLS) and to pretty-print them in `inspect`.
 */
export interface ParsedCertificate {
  der: Uint8Array;
  sha256: string;
  serialHex: string;
  /** Exact TBSCertificate bytes: what the issuer's signature covers. */
  tbs: Uint8Array;
  signatureAlgorithm: string;
  /** DER ECDSA-Sig-Value from the signatureValue BIT STRING. */
  signature: Uint8Array;
  issuerDer: Uint8Array;
  subjectDer: Uint8Array;
  issuer: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  publicKeyAlgorithm: string;
  publicKeyCurve: string | null;
  spki: Uint8Array;
  publicKey: KeyObject;
  basicConstraints: { ca: boolean; pathLen: number | null } | null;
  /** KeyUsage bits (RFC 5280 §4.2.1.3), or null when the extension is absent. */
  keyUsage: KeyUsage | null;
  extensions: { oid: string; critical: boolean }[];
}

export interface KeyUsage {
  digitalSignature: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

export const OID = {
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecPublicKey: "1.2.840.10045.2.1",
  secp384r1: "1.3.132.0.34",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  crlDistributionPoints: "2.5.29.31",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
} as const;

const NAME_ATTRIBUTES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
};

function bad(message: string): AttestationError {
  return new AttestationError("ERR_CERT_MALFORMED", `certificate: ${message}`);
}

function binary(bytes: Uint8Array, tlv: Tlv): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + tlv.contentStart, tlv.end - tlv.contentStart).toString("binary");
}

function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (!tlv || tlv.tag !== tag) throw bad(`expected ${what}`);
  return tlv;
}

function oid(bytes: Uint8Array, tlv: Tlv | undefined): string {
  return forge.asn1.derToOid(binary(bytes, expectTag(tlv, 0x06, "OBJECT IDENTIFIER")));
}

function time(bytes: Uint8Array, tlv: Tlv | undefined): Date {
  if (!tlv) throw bad("missing time");
  const text = binary(bytes, tlv);
  let date: Date;
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
  if (tlv.tag === 0x17) date = forge.asn1.utcTimeToDate(text);
  else if (tlv.tag === 0x18) date = forge.asn1.generalizedTimeToDate(text);
  else throw bad("validity time must be UTCTime or GeneralizedTime");
  if (Number.isNaN(date.getTime())) throw bad("unreadable validity time");
  return date;
}

function nameToString(bytes: Uint8Array, name: Tlv): string {
  const parts: string[] = [];
  for (const rdn of children(bytes, name)) {
    expectTag(rdn, 0x31, "RDN SET");
    for (const atv of children(bytes, rdn)) {
      const [type, value] = children(bytes, expectTag(atv, 0x30, "AttributeTypeAndValue"));
      const key = oid(bytes, type);
      if (!value) throw bad("attribute without value");
      const text = Buffer.from(bytes.subarray(value.contentStart, value.end)).toString("utf8");
      parts.push(`${NAME_ATTRIBUTES[key] ?? key}=${text}`);
    }
  }
  return parts.join(", ");
}

function parseBasicConstraints(bytes: Uint8Array): { ca: boolean; pathLen: number | null } {
  const seq = expectTag(readTlv(bytes, 0), 0x30, "BasicConstraints SEQUENCE");
  if (seq.end !== bytes.length) throw bad("trailing bytes in BasicConstraints");
  let ca = false;
  let pathLen: number | null = null;
  for (const item of children(bytes, seq)) {
    if (item.tag === 0x01) {
      if (item.end - item.contentStart !== 1) throw bad("bad BOOLEAN");
      ca = bytes[item.contentStart] !== 0;
    } else if (item.tag === 0x02) {
      const length = item.end - item.contentStart;
      if (length < 1 || length > 2 || (bytes[item.contentStart]! & 0x80) !== 0) throw bad("bad pathLenConstraint");
      pathLen = 0;
      for (let i = item.contentStart; i < item.end; i++) pathLen = pathLen * 256 + bytes[i]!;
    } else {
      throw bad("unexpected item in BasicConstraints");
    }
  }
  return { ca, pathLen };
}

function parseKeyUsage(bytes: Uint8Array): KeyUsage {
  const bits = expectTag(readTlv(bytes, 0), 0x03, "KeyUsage BIT STRING");
  if (bits.end !== bytes.length || bits.end - bits.contentStart < 2) throw bad("bad KeyUsage");
  // Content: unused-bits count, then bits MSB-first: bit 0 digitalSignature,
  // bit 5 keyCertSign, bit 6 cRLSign.
  const first = bytes[bits.contentStart + 1]!;
  return {
    digitalSignature: (first & 0x80) !== 0,
    keyCertSign: (first & 0x04) !== 0,
    cRLSign: (first & 0x02) !== 0,
  };
}

export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const cert = expectTag(readTlv(der, 0), 0x30, "Certificate SEQUENCE");
  if (cert.end !== der.length) throw bad("trailing bytes after Certificate");
  const [tbsTlv, sigAlgTlv, sigValueTlv, extra] = children(der, cert);
  if (extra) throw bad("too many elements in Certificate");
  expectTag(tbsTlv, 0x30, "TBSCertificate");
  const outerAlg = oid(der, children(der, expectTag(sigAlgTlv, 0x30, "signatureAlgorithm"))[0]);
  const sigValue = expectTag(sigValueTlv, 0x03, "signatureValue BIT STRING");
  if (sigValue.end - sigValue.contentStart < 2 || der[sigValue.contentStart] !== 0) throw bad("bad signatureValue");

  const fields = children(der, tbsTlv!);
  let i = 0;
  const versionTlv = fields[i];
  if (!versionTlv || versionTlv.tag !== 0xa0) throw bad("not an X.509 v3 certificate");
  const versionInt = expectTag(children(der, versionTlv)[0], 0x02, "version INTEGER");
  if (versionInt.end - versionInt.contentStart !== 1 || der[versionInt.contentStart] !== 2) {
    throw bad("not an X.509 v3 certificate");
  }
  i++;
  const serial = expectTag(fields[i++], 0x02, "serialNumber");
  const innerAlg = oid(der, children(der, expectTag(fields[i++], 0x30, "signature AlgorithmIdentifier"))[0]);
  // RFC 5280 §4.1.1.2: the outer and inner algorithm identifiers must match.
  if (innerAlg !== outerAlg) throw bad("signature algorithm mismatch between TBS and outer certificate");
  const issuer = expectTag(fields[i++], 0x30, "issuer Name");
  const validity = children(der, expectTag(fields[i++], 0x30, "Validity"));
  const subject = expectTag(fields[i++], 0x30, "subject Name");
  const spkiTlv = expectTag(fields[i++], 0x30, "SubjectPublicKeyInfo");
  const [spkiAlg] = children(der, spkiTlv);
  const algParts = children(der, expectTag(spkiAlg, 0x30, "SPKI AlgorithmIdentifier"));
  const publicKeyAlgorithm = oid(der, algParts[0]);
  const curveTlv = algParts[1];
  const publicKeyCurve = curveTlv && curveTlv.tag === 0x06 ? oid(der, curveTlv) : null;

  const extensions: { oid: string; critical: boolean }[] = [];
  let basicConstraints: ParsedCertificate["basicConstraints"] = null;
  let keyUsage: KeyUsage | null = null;
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.tag === 0x81 || f.tag === 0x82 || f.tag === 0xa1 || f.tag === 0xa2) continue; // unique IDs
    if (f.tag !== 0xa3) throw bad("unexpected field in TBSCertificate");
    const list = expectTag(children(der, f)[0], 0x30, "Extensions");
    const seen = new Set<string>();
    for (const ext of children(der, list)) {
      const parts = children(der, expectTag(ext, 0x30, "Extension"));
      const extOid = oid(der, parts[0]);
      // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
      if (seen.has(extOid)) throw bad(`duplicate extension ${extOid}`);
      seen.add(extOid);
      let critical = false;
      let valueTlv = parts[1];
      if (valueTlv?.tag === 0x01) {
        critical = der[valueTlv.contentStart] !== 0;
        valueTlv = parts[2];
      }
      const value = expectTag(valueTlv, 0x04, "extnValue OCTET STRING");
      const valueBytes = der.subarray(value.contentStart, value.end);
      if (extOid === OID.basicConstraints) basicConstraints = parseBasicConstraints(valueBytes);
      if (extOid === OID.keyUsage) keyUsage = parseKeyUsage(valueBytes);
      extensions.push({ oid: extOid, critical });
    }
  }

  const spki = der.subarray(spkiTlv.start, spkiTlv.end);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  } catch (cause) {
    throw new AttestationError("ERR_CERT_MALFORMED", "certificate: unreadable public key", { cause });
  }
  return {
    der,
    sha256: createHash("sha256").update(der).digest("hex"),
    serialHex: Buffer.from(der.subarray(serial.contentStart, serial.end)).toString("hex"),
    tbs: der.subarray(tbsTlv!.start, tbsTlv!.end),
    signatureAlgorithm: outerAlg,
    signature: der.subarray(sigValue.contentStart + 1, sigValue.end),
    issuerDer: der.subarray(issuer.start, issuer.end),
    subjectDer: der.subarray(subject.start, subject.end),
    issuer: nameToString(der, issuer),
    subject: nameToString(der, subject),
    notBefore: time(der, validity[0]),
    notAfter: time(der, validity[1]),
    publicKeyAlgorithm,
    publicKeyCurve,
    spki,
    publicKey,
    basicConstraints,
    keyUsage,
    extensions,
  };
}
