import { parseCertificate, OID, type ParsedCertificate } from "./cert-parse.js";
import { decodeCoseSign1 } from "./cose-sign1.js";
import { parseDocumentPayload } from "./document.js";
import { AttestationError } from "./errors.js";

/**
 * A plain-data description of a document for people and tools (`egw
 * inspect`). It decodes and explains; it does not verify. Certificates that
 * cannot be parsed are reported as such rather than failing the whole view.
 */
export interface CertificateView {
  role: "leaf" | "intermediate" | "root";
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  sha256: string;
  signatureAlgorithm: string;
  publicKey: string;
  basicConstraints: string;
  keyUsage: string;
  criticalExtensions: string[];
}

export interface DocumentView {
  format: { tagged: boolean; bytes: number; payloadBytes: number; alg: string };
  moduleId: string;
  digest: string;
  timestamp: string;
  timestampMs: number;
  debugMode: boolean;
  pcrs: { index: number; hex: string; zero: boolean }[];
  publicKey: FieldView | null;
  userData: FieldView | null;
  nonce: FieldView | null;
  chain: (CertificateView | { role: string; error: string })[];
  /** The window in which every certificate of the chain is valid, if they all parse. */
  chainValidity: { notBefore: string; notAfter: string } | null;
}

export interface FieldView {
  length: number;
  hex: string;
  /** The bytes as text, when they are printable ASCII. */
  text?: string;
}

const ALGORITHMS: Record<string, string> = {
  [OID.ecdsaWithSha384]: "ecdsa-with-SHA384",
  "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
  "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
};
const CURVES: Record<string, string> = { [OID.secp384r1]: "P-384", "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.35": "P-521" };

function field(bytes: Uint8Array | null): FieldView | null {
  if (bytes === null) return null;
  const view: FieldView = { length: bytes.length, hex: Buffer.from(bytes).toString("hex") };
  if (bytes.length > 0 && bytes.every((b) => b >= 0x20 && b < 0x7f)) view.text = Buffer.from(bytes).toString("latin1");
  return view;
}

function certView(cert: ParsedCertificate, role: CertificateView["role"]): CertificateView {
  const bc = cert.basicConstraints;
  const ku = cert.keyUsage;
  return {
    role,
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialHex,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    sha256: cert.sha256,
    signatureAlgorithm: ALGORITHMS[cert.signatureAlgorithm] ?? cert.signatureAlgorithm,
    publicKey: cert.publicKeyAlgorithm === OID.ecPublicKey ? `EC ${CURVES[cert.publicKeyCurve ?? ""] ?? cert.publicKeyCurve}` : cert.publicKeyAlgorithm,
    basicConstraints: bc ? `CA:${bc.ca ? "TRUE" : "FALSE"}${bc.pathLen !== null ? `, pathlen:${bc.pathLen}` : ""}` : "absent",
    keyUsage: ku ? [ku.digitalSignature && "digitalSignature", ku.keyCertSign && "keyCertSign", ku.cRLSign && "cRLSign"].filter(Boolean).join(", ") || "(other)" : "absent",
    criticalExtensions: cert.extensions.filter((e) => e.critical).map((e) => e.oid),
  };
}

export function explainDocument(bytes: Uint8Array): DocumentView {
  const cose = decodeCoseSign1(bytes);
  const doc = parseDocumentPayload(cose.payload);
  const ders = [doc.certificate, ...[...doc.cabundle].reverse()];
  const parsed: (ParsedCertificate | AttestationError)[] = ders.map((der) => {
    try {
      return parseCertificate(der);
    } catch (err) {
      return err instanceof AttestationError ? err : new AttestationError("ERR_CERT_MALFORMED", "unreadable certificate");
    }
  });
  const role = (i: number): CertificateView["role"] => (i === 0 ? "leaf" : i === ders.length - 1 ? "root" : "intermediate");
  const ok = parsed.filter((p): p is ParsedCertificate => !(p instanceof AttestationError));
  const pcr0 = doc.pcrs.get(0);
  return {
    format: { tagged: cose.tagged, bytes: bytes.length, payloadBytes: cose.payload.length, alg: "ES384 (-35)" },
    moduleId: doc.moduleId,
    digest: doc.digest,
    timestamp: new Date(doc.timestamp).toISOString(),
    timestampMs: doc.timestamp,
    debugMode: pcr0 !== undefined && pcr0.every((b) => b === 0),
    pcrs: [...doc.pcrs].map(([index, value]) => ({
      index,
      hex: Buffer.from(value).toString("hex"),
      zero: value.every((b) => b === 0),
    })),
    publicKey: field(doc.publicKey),
    userData: field(doc.userData),
    nonce: field(doc.nonce),
    chain: parsed.map((p, i) => (p instanceof AttestationError ? { role: role(i), error: `${p.code}: ${p.message}` } : certView(p, role(i)))),
    chainValidity:
      ok.length === parsed.length
        ? {
            notBefore: new Date(Math.max(...ok.map((c) => c.notBefore.getTime()))).toISOString(),
            notAfter: new Date(Math.min(...ok.map((c) => c.notAfter.getTime()))).toISOString(),
          }
        : null,
  };
}
