import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { encodeDocumentPayload, signCoseSign1 } from "../../attestation/dev/encode-document.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

/**
 * A throwaway CA for tests: builds root → intermediates → leaf with one knob
 * per PKIX rule, so each test breaks exactly one rule and keeps the rest valid.
 */
export interface CertSpec {
  /** basicConstraints: undefined → default for the role, null → extension absent. */
  ca?: boolean | null;
  pathLen?: number;
  /** KeyUsage flags; null → extension absent. */
  keyUsage?: number | null;
  unknownCriticalExtension?: boolean;
  curve?: "P-384" | "P-256";
  hash?: "SHA-384" | "SHA-256";
  notBefore?: Date;
  notAfter?: Date;
  /** Override the issuer name written into this certificate. */
  issuerName?: string;
  /** Sign with a stranger's key instead of the issuer's. */
  signWithWrongKey?: boolean;
}

export interface TestChain {
  anchor: TrustAnchor;
  rootPem: string;
  /** Root first, as in a Nitro cabundle. */
  cabundle: Uint8Array[];
  leaf: Uint8Array;
  leafKey: CryptoKey;
}

interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  name: string;
}

const KU = x509.KeyUsageFlags;

async function keyPair(curve: "P-384" | "P-256"): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"])) as CryptoKeyPair;
}

let serial = 1;

async function issue(name: string, spec: CertSpec, role: "root" | "ca" | "leaf", issuer: Issued | null, now: Date): Promise<Issued> {
  const keys = await keyPair(spec.curve ?? "P-384");
  const extensions: x509.Extension[] = [];
  const ca = spec.ca === undefined ? role !== "leaf" : spec.ca;
  if (ca !== null) extensions.push(new x509.BasicConstraintsExtension(ca, spec.pathLen, true));
  const ku = spec.keyUsage === undefined ? (role === "leaf" ? KU.digitalSignature : KU.keyCertSign | KU.cRLSign) : spec.keyUsage;
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, true));
  if (spec.unknownCriticalExtension) extensions.push(new x509.Extension("1.3.6.1.4.1.99999.1", true, new Uint8Array([0x05, 0x00])));
  let signingKey = issuer ? issuer.keys.privateKey : keys.privateKey;
  if (spec.signWithWrongKey) signingKey = (await keyPair("P-384")).privateKey;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(4, "0"),
    subject: name,
    issuer: spec.issuerName ?? (issuer ? issuer.name : name),
    notBefore: spec.notBefore ?? new Date(now.getTime() - 60_000),
    notAfter: spec.notAfter ?? new Date(now.getTime() + 3 * 3600_000),
    signingAlgorithm: { name: "ECDSA", hash: spec.hash ?? "SHA-384" },
    publicKey: keys.publicKey,
    signingKey,
    extensions,
  });
  return { cert, keys, name };
}

export async function buildTestChain(now: Date, specs: { root?: CertSpec; intermediates?: CertSpec[]; leaf?: CertSpec } = {}): Promise<TestChain> {
  const root = await issue("CN=test root", specs.root ?? {}, "root", null, now);
  const bundle: Issued[] = [root];
  const intermediates = specs.intermediates ?? [{}, {}];
  for (const [i, spec] of intermediates.entries()) {
    bundle.push(await issue(`CN=test intermediate ${i + 1}`, spec, "ca", bundle[bundle.length - 1]!, now));
  }
  const leaf = await issue("CN=test leaf", specs.leaf ?? {}, "leaf", bundle[bundle.length - 1]!, now);
  const rootPem = root.cert.toString("pem");
  return {
    anchor: trustAnchorFromPem(rootPem, "test"),
    rootPem,
    cabundle: bundle.map((b) => new Uint8Array(b.cert.rawData)),
    leaf: new Uint8Array(leaf.cert.rawData),
    leafKey: leaf.keys.privateKey,
  };
}

export const PCR_A = new Uint8Array(48).fill(0xa1);

/** A Nitro-format document from a test chain, signed by its leaf. */
export async function testDocument(
  chain: TestChain,
  fields: { timestamp: number; pcrs?: Map<number, Uint8Array>; nonce?: Uint8Array | null; userData?: Uint8Array | null; publicKey?: Uint8Array | null },
): Promise<Uint8Array> {
  const pcrs = fields.pcrs ?? new Map(Array.from({ length: 16 }, (_, i) => [i, i === 0 ? PCR_A : new Uint8Array(48)] as const));
  const payload = encodeDocumentPayload({
    moduleId: "test-module",
    digest: "SHA384",
    timestamp: fields.timestamp,
    pcrs,
    certificate: chain.leaf,
    cabundle: chain.cabundle,
    publicKey: fields.publicKey ?? null,
    userData: fields.userData ?? null,
    nonce: fields.nonce ?? null,
  });
  return signCoseSign1(payload, chain.leafKey);
}
