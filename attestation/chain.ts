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
  /** What came from the cache (already verified): "none", "intermediates" or "all". */
  cached: "none" | "intermediates" | "all";
  /**
   * Signature checks already started on the thread pool, in pipeline order.
   * Each resolves to true or false and never rejects.
   */
  pending: { what: string; result: Promise<boolean> }[];
  /** Called once every pending check passed, to remember what was verified. */
  commit: () => void;
}

const KNOWN_CRITICAL = new Set<string>([OID.basicConstraints, OID.keyUsage]);

interface CachedBundle {
  certs: ParsedCertificate[];
  anchorSha256: string;
  notBefore: number;
  notAfter: number;
}

interface CachedLeaf {
  leaf: ParsedCertificate;
}

/** A small LRU map; Map iteration order is insertion order. */
class Lru<V> {
  private readonly entries = new Map<string, V>();

  constructor(private readonly maxEntries: number) {}

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, value: V): void {
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

/**
 * Remembers certificate links whose signatures have been verified, so the
 * next document from the same enclave costs one signature check (the
 * document's), not five. The NSM keeps its leaf for the enclave's lifetime
 * (the fixtures' leaves predate their documents by up to a minute), and the
 * cabundle changes only when AWS rotates intermediates.
 *
 * Bundles are keyed by their exact bytes plus the anchor that ended the
 * chain; leaves by their bytes plus the bundle key. Only signature results
 * and parsed structure are cached: validity is checked again against every
 * call's `currentDate`, and nothing is cached unless every check passed.
 */
export class ChainCache {
  readonly bundles: Lru<CachedBundle>;
  readonly leaves: Lru<CachedLeaf>;

  constructor(maxEntries = 32) {
    this.bundles = new Lru(maxEntries);
    this.leaves = new Lru(maxEntries);
  }

  /** Number of cached bundles. */
  get size(): number {
    return this.bundles.size;
  }

  clear(): void {
    this.bundles.clear();
    this.leaves.clear();
  }
}

// Trust anchors are constants: parse each once, not once per document.
const parsedAnchors = new WeakMap<TrustAnchor, ParsedCertificate>();

function parsedAnchor(anchor: TrustAnchor): ParsedCertificate {
  let parsed = parsedAnchors.get(anchor);
  if (!parsed) {
    parsed = parse(anchor.der, `trust anchor ${anchor.name}`);
    parsedAnchors.set(anchor, parsed);
  }
  return parsed;
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
 * Runs every structural and time rule now, and starts each signature check
 * on the thread pool as soon as both of its certificates are parsed, so
 * parsing the next certificate overlaps with verifying the previous link.
 */
export function checkChain(certificate: Uint8Array, cabundle: Uint8Array[], options: { anchors: TrustAnchor[]; currentDate: Date; cache?: ChainCache }): ChainCheck {
  const now = options.currentDate.getTime();
  const rootSha = createHash("sha256").update(cabundle[0]!).digest("hex");
  const anchor = options.anchors.find((a) => a.sha256 === rootSha && sameBytes(a.der, cabundle[0]!));
  if (!anchor) {
    throw new AttestationError("ERR_ROOT_UNTRUSTED", `cabundle[0] (sha256 ${rootSha}) is not a trusted root`);
  }
  const cache = options.cache;
  const key = bundleKey(cabundle);
  const leafKey = `${createHash("sha256").update(certificate).digest("hex")}|${key}`;
  const pending: ChainCheck["pending"] = [];

  const cachedBundle = cache?.bundles.get(key);
  const bundleHit = cachedBundle !== undefined && cachedBundle.anchorSha256 === anchor.sha256 && now >= cachedBundle.notBefore && now <= cachedBundle.notAfter;
  const cachedLeaf = bundleHit ? cache?.leaves.get(leafKey) : undefined;

  let certs: ParsedCertificate[];
  if (bundleHit) {
    certs = cachedBundle.certs;
  } else {
    const n = cabundle.length;
    certs = [parsedAnchor(anchor)];
    for (let i = 0; i < n; i++) {
      const what = i === 0 ? "root" : `cabundle[${i}]`;
      const cert = i === 0 ? certs[0]! : parse(cabundle[i]!, what);
      checkAlgorithms(cert, what);
      checkCriticalExtensions(cert, what);
      // CAs below cabundle[i], not counting the leaf: cabundle[i+1..n-1].
      checkCa(cert, what, n - 1 - i);
      checkValidity(cert, what, now);
      if (i > 0) {
        const issuer = certs[i - 1]!;
        checkLink(cert, issuer, what);
        pending.push({ what, result: verifyEs384(cert.tbs, issuer.publicKey, cert.signature, "der") });
        certs.push(cert);
      }
    }
  }

  const parent = certs[certs.length - 1]!;
  const leaf = cachedLeaf ? cachedLeaf.leaf : parse(certificate, "leaf");
  if (!cachedLeaf) {
    checkAlgorithms(leaf, "leaf");
    checkCriticalExtensions(leaf, "leaf");
    checkLeaf(leaf);
    checkLink(leaf, parent, "leaf");
  }
  checkValidity(leaf, "leaf", now);
  if (!cachedLeaf) pending.push({ what: "leaf", result: verifyEs384(leaf.tbs, parent.publicKey, leaf.signature, "der") });

  const chain: CertificateSummary[] = [summary(leaf, "leaf")];
  for (let i = certs.length - 1; i >= 0; i--) chain.push(summary(certs[i]!, i === 0 ? "root" : "intermediate"));

  return {
    leaf,
    anchor,
    chain,
    cached: cachedLeaf ? "all" : bundleHit ? "intermediates" : "none",
    pending,
    commit: () => {
      if (!cache) return;
      if (!bundleHit) cache.bundles.set(key, { certs, anchorSha256: anchor.sha256, ...bundleWindow(certs) });
      if (!cachedLeaf) cache.leaves.set(leafKey, { leaf });
    },
  };
}
