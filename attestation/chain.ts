import { createHash, timingSafeEqual } from "node:crypto";
import { OID, parseCertificate, type ParsedCertificate } from "./cert-parse.js";
import { AttestationError } from "./errors.js";
import { verifyEs384 } from "./es384.js";
import type { TrustAnchor } from "./roots.js";

/**
 * Certificate path validation for Nitro documents (AWS "Verifying the root of
 * trust", §3.2.3; RFC 5280 §6.1, reduced to what Nitro chains use):
 *
 *   chain = [leaf = certificate, cabundle[n-1], …, cabundle[1], cabundle[0] = root]
 *
 * For every certificate: X.509 v3, ecdsa-with-SHA384 signature, EC P-384 key,
 * valid at `currentDate`, no unknown critical extension, issuer name equal to
 * the next certificate's subject and signature valid under its key. CAs need
 * basicConstraints cA=TRUE, keyUsage keyCertSign and a pathLenConstraint that
 * admits the CAs below them; the leaf must not be a CA and needs keyUsage
 * digitalSignature. The root must be byte-identical to a trust anchor.
 *
 * @peculiar/x509's chain builder only links certificates by name and key
 * identifier; none of the rules above would be enforced by it.
 */
export interface CertificateSummary {
  role: "leaf" | "intermediate" | "root";
  subject: string;
  issuer: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  sha256: string;
}

export interface ChainCheck {
  leaf: ParsedCertificate;
  anchor: TrustAnchor;
  chain: CertificateSummary[];
  /** True when the intermediates came from the cache (already verified). */
  cached: boolean;
  /** Signature checks still to run, in pipeline order. */
  pending: { what: string; run: () => Promise<boolean> }[];
  /** Called once every pending check passed, to remember the intermediates. */
  commit: () => void;
}

const KNOWN_CRITICAL = new Set<string>([OID.basicConstraints, OID.keyUsage]);

interface CachedBundle {
  certs: ParsedCertificate[];
  anchorSha256: string;
  notBefore: number;
  notAfter: number;
}

/**
 * Remembers cabundles whose every link has been verified, so the next
 * document from the same instance costs two signature checks, not five.
 * Entries are keyed by the exact bundle bytes and the anchor that ended
 * the chain; validity is still checked against each call's `currentDate`.
 */
export class ChainCache {
  private readonly entries = new Map<string, CachedBundle>();

  constructor(private readonly maxEntries = 32) {}

  get(key: string): CachedBundle | undefined {
    const entry = this.entries.get(key);
    if (entry) {
      // Refresh recency: Map iteration order is insertion order.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, value: CachedBundle): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

function constraints(message: string): AttestationError {
  return new AttestationError("ERR_CERT_CONSTRAINTS", message);
}

function parse(der: Uint8Array, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (err) {
    if (err instanceof AttestationError) {
      throw new AttestationError(err.code, `${what}: ${err.message}`, { cause: err });
    }
    throw new AttestationError("ERR_CERT_MALFORMED", `${what}: unreadable certificate`, { cause: err });
  }
}

function checkAlgorithms(cert: ParsedCertificate, what: string): void {
  if (cert.signatureAlgorithm !== OID.ecdsaWithSha384) {
    throw new AttestationError("ERR_CERT_ALGORITHM", `${what}: signature algorithm ${cert.signatureAlgorithm} is not ecdsa-with-SHA384`);
  }
  if (cert.publicKeyAlgorithm !== OID.ecPublicKey || cert.publicKeyCurve !== OID.secp384r1) {
    throw new AttestationError("ERR_CERT_ALGORITHM", `${what}: public key is not EC P-384`);
  }
}

function checkValidity(cert: ParsedCertificate, what: string, now: number): void {
  if (now < cert.notBefore.getTime()) {
    throw new AttestationError("ERR_CERT_NOT_YET_VALID", `${what}: not valid before ${cert.notBefore.toISOString()}`);
  }
  if (now > cert.notAfter.getTime()) {
    throw new AttestationError("ERR_CERT_EXPIRED", `${what}: expired at ${cert.notAfter.toISOString()}`);
  }
}

function checkCriticalExtensions(cert: ParsedCertificate, what: string): void {
  for (const ext of cert.extensions) {
    // RFC 5280 §4.2: a critical extension that is not understood means reject.
    if (ext.critical && !KNOWN_CRITICAL.has(ext.oid)) throw constraints(`${what}: unknown critical extension ${ext.oid}`);
  }
}

/** `below` = number of CA certificates between this CA and the leaf. */
function checkCa(cert: ParsedCertificate, what: string, below: number): void {
  const bc = cert.basicConstraints;
  if (!bc || !bc.ca) throw constraints(`${what}: basicConstraints cA is not TRUE`);
  if (bc.pathLen !== null && below > bc.pathLen) {
    throw constraints(`${what}: pathLenConstraint ${bc.pathLen} but ${below} CA certificate(s) below it`);
  }
  if (!cert.keyUsage || !cert.keyUsage.keyCertSign) throw constraints(`${what}: keyUsage lacks keyCertSign`);
}

function checkLeaf(cert: ParsedCertificate): void {
  if (cert.basicConstraints?.ca) throw constraints("leaf: must not be a CA certificate");
  if (!cert.keyUsage || !cert.keyUsage.digitalSignature) throw constraints("leaf: keyUsage lacks digitalSignature");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function checkLink(child: ParsedCertificate, issuer: ParsedCertificate, what: string): void {
  if (!sameBytes(child.issuerDer, issuer.subjectDer)) {
    throw new AttestationError("ERR_CHAIN_BROKEN", `${what}: issuer name does not match the next certificate's subject`);
  }
}

function summary(cert: ParsedCertificate, role: CertificateSummary["role"]): CertificateSummary {
  return {
    role,
    subject: cert.subject,
    issuer: cert.issuer,
    serialHex: cert.serialHex,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    sha256: cert.sha256,
  };
}

function bundleKey(cabundle: Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const der of cabundle) {
    hash.update(Uint8Array.of(der.length >> 8, der.length & 0xff));
    hash.update(der);
  }
  return hash.digest("hex");
}

function bundleWindow(certs: ParsedCertificate[]): { notBefore: number; notAfter: number } {
  return {
    notBefore: Math.max(...certs.map((c) => c.notBefore.getTime())),
    notAfter: Math.min(...certs.map((c) => c.notAfter.getTime())),
  };
}

/**
 * Runs every structural and time rule now, and returns the signature checks
 * as pending jobs so the caller can run them concurrently with the COSE
 * signature check.
 */
export function checkChain(
  certificate: Uint8Array,
  cabundle: Uint8Array[],
  options: { anchors: TrustAnchor[]; currentDate: Date; cache?: ChainCache },
): ChainCheck {
  const now = options.currentDate.getTime();
  const key = bundleKey(cabundle);
  const rootSha = createHash("sha256").update(cabundle[0]!).digest("hex");
  const anchor = options.anchors.find((a) => a.sha256 === rootSha && sameBytes(a.der, cabundle[0]!));
  if (!anchor) {
    throw new AttestationError("ERR_ROOT_UNTRUSTED", `cabundle[0] (sha256 ${rootSha}) is not a trusted root`);
  }

  const pending: ChainCheck["pending"] = [];
  const cachedEntry = options.cache?.get(key);
  let certs: ParsedCertificate[];
  let cached = false;
  if (cachedEntry && cachedEntry.anchorSha256 === anchor.sha256 && now >= cachedEntry.notBefore && now <= cachedEntry.notAfter) {
    certs = cachedEntry.certs;
    cached = true;
  } else {
    certs = cabundle.map((der, i) => parse(der, `cabundle[${i}]`));
    const n = certs.length;
    certs.forEach((cert, i) => {
      const what = i === 0 ? "root" : `cabundle[${i}]`;
      checkAlgorithms(cert, what);
      checkCriticalExtensions(cert, what);
      // CAs below cabundle[i], not counting the leaf: cabundle[i+1..n-1].
      checkCa(cert, what, n - 1 - i);
      checkValidity(cert, what, now);
      if (i > 0) {
        const issuer = certs[i - 1]!;
        checkLink(cert, issuer, what);
        pending.push({ what, run: () => verifyEs384(cert.tbs, issuer.publicKey, cert.signature, "der") });
      }
    });
  }

  const leaf = parse(certificate, "leaf");
  const parent = certs[certs.length - 1]!;
  checkAlgorithms(leaf, "leaf");
  checkCriticalExtensions(leaf, "leaf");
  checkLeaf(leaf);
  checkValidity(leaf, "leaf", now);
  checkLink(leaf, parent, "leaf");
  pending.push({ what: "leaf", run: () => verifyEs384(leaf.tbs, parent.publicKey, leaf.signature, "der") });

  const chain: CertificateSummary[] = [summary(leaf, "leaf")];
  for (let i = certs.length - 1; i >= 0; i--) chain.push(summary(certs[i]!, i === 0 ? "root" : "intermediate"));

  return {
    leaf,
    anchor,
    chain,
    cached,
    pending,
    commit: () => {
      if (!cached && options.cache) options.cache.set(key, { certs, anchorSha256: anchor.sha256, ...bundleWindow(certs) });
    },
  };
}
