/**
 * The development CA behind the simulated NSM.
 *
 * It mirrors the AWS Nitro chain (root → regional → zonal → instance → leaf,
 * all ECDSA P-384 with SHA-384) with the extension layout of real AWS
 * certificates, so that a verifier sees the same shapes in development as in
 * production. Every subject says it is a development CA; the root is
 * generated on the developer's machine, so a development document never
 * chains to the pinned AWS Nitro root and can never pass as production.
 *
 * On disk (see saveDevCa):
 *   <dir>/dev-root.pem        the root certificate, to hand to verifiers (0644)
 *   <dir>/dev-ca-keys.json    root + intermediate certificates and PKCS#8 keys (0600)
 * The directory is created 0700.
 *
 * Differences from AWS, on purpose:
 *  - No CRL Distribution Points extension: there is no CRL server to point at.
 *  - Intermediates live 10 years instead of 1–20 days: nothing rotates them
 *    in development, and the leaf (3 h) is what exercises expiry.
 */
import "reflect-metadata";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectKeyIdentifierExtension,
  X509Certificate as PeculiarCertificate,
  X509CertificateGenerator,
  type Extension,
  type JsonNameParams,
} from "@peculiar/x509";
import { X509Certificate as NodeCertificate, createPrivateKey, createPublicKey, randomBytes, webcrypto } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { link, mkdir, open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { AttestationError } from "../errors.js";

type CryptoKey = webcrypto.CryptoKey;

export const DEV_ROOT_FILE = "dev-root.pem";
export const DEV_CA_STORE_FILE = "dev-ca-keys.json";
const STORE_FORMAT = "enclave-gateway/dev-ca";
const STORE_VERSION = 1;
/** Stores are a few kilobytes; anything larger is not ours. */
const MAX_STORE_BYTES = 64 * 1024;
const MAX_ROOT_PEM_BYTES = 16 * 1024;

/** AWS leaves expire 3 h after issue. */
export const LEAF_LIFETIME_MS = 3 * 60 * 60 * 1000;
/** Back-dating absorbs small clock differences between issuer and verifier. */
export const LEAF_BACKDATE_MS = 30 * 1000;
const CA_BACKDATE_MS = 60 * 60 * 1000;
const YEAR_MS = 365 * 24 * 60 * 60 * 1000;
/** ub-common-name (RFC 5280 Appendix A). */
const MAX_COMMON_NAME = 64;

/** Marks every name this CA issues; also checked on load. */
export const DEV_MARKER = "(NOT FOR PRODUCTION)";
export const DEV_ROOT_COMMON_NAME = `enclave-gateway development root ${DEV_MARKER}`;

const ECDSA_P384 = { name: "ECDSA", namedCurve: "P-384" } as const;
const ECDSA_SHA384 = { name: "ECDSA", hash: "SHA-384" } as const;
const crypto = webcrypto;

export type DevCaRole = "root" | "regional" | "zonal" | "instance";

interface CaProfile {
  role: DevCaRole;
  commonName: string;
  /** undefined for the root, as in the AWS root. */
  pathLength: number | undefined;
  lifetimeMs: number;
  keyUsages: KeyUsageFlags;
  subject(commonName: string): JsonNameParams;
}

const printable = (value: string) => [{ printableString: value }];
const utf8 = (value: string) => [{ utf8String: value }];
// AWS's attribute sets and their order, per level; C is PrintableString, the
// rest UTF8String as in the AWS certificates. "ZZ" is the ISO 3166
// user-assigned code: no real country.
const ORG = "enclave-gateway";
const UNIT = "DEVELOPMENT";
const COUNTRY = "ZZ";
const STATE = "Development";
const LOCALITY = "localhost";
const nameCOOuCn = (cn: string): JsonNameParams => [{ C: printable(COUNTRY) }, { O: utf8(ORG) }, { OU: utf8(UNIT) }, { CN: utf8(cn) }];
const nameCnOuOCStL = (cn: string): JsonNameParams => [
  { CN: utf8(cn) },
  { OU: utf8(UNIT) },
  { O: utf8(ORG) },
  { C: printable(COUNTRY) },
  { ST: utf8(STATE) },
  { L: utf8(LOCALITY) },
];
const nameCStLOOuCn = (cn: string): JsonNameParams => [
  { C: printable(COUNTRY) },
  { ST: utf8(STATE) },
  { L: utf8(LOCALITY) },
  { O: utf8(ORG) },
  { OU: utf8(UNIT) },
  { CN: utf8(cn) },
];

const CA_KEY_USAGES = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;

/** Root first; each entry issues the next one. Path lengths as in AWS (2, 1, 0). */
const PROFILES: readonly CaProfile[] = [
  {
    role: "root",
    commonName: DEV_ROOT_COMMON_NAME,
    pathLength: undefined,
    lifetimeMs: 30 * YEAR_MS,
    keyUsages: CA_KEY_USAGES,
    subject: nameCOOuCn,
  },
  {
    role: "regional",
    commonName: `enclave-gateway development regional CA ${DEV_MARKER}`,
    pathLength: 2,
    lifetimeMs: 10 * YEAR_MS,
    keyUsages: CA_KEY_USAGES,
    subject: nameCOOuCn,
  },
  {
    role: "zonal",
    commonName: `enclave-gateway development zonal CA ${DEV_MARKER}`,
    pathLength: 1,
    lifetimeMs: 10 * YEAR_MS,
    keyUsages: CA_KEY_USAGES,
    subject: nameCnOuOCStL,
  },
  {
    role: "instance",
    commonName: `enclave-gateway development instance CA ${DEV_MARKER}`,
    pathLength: 0,
    lifetimeMs: 10 * YEAR_MS,
    keyUsages: KeyUsageFlags.keyCertSign,
    subject: nameCStLOOuCn,
  },
];

export interface DevLeaf {
  /** DER of the leaf certificate (the document's `certificate`). */
  certificate: Uint8Array;
  /** Non-extractable ECDSA P-384 key that signs the document. */
  privateKey: CryptoKey;
  notBefore: Date;
  notAfter: Date;
}

export interface DevCa {
  /** DER of the self-signed development root. */
  readonly rootCertificate: Uint8Array;
  /** The root as PEM: what a verifier is given to trust development documents. */
  readonly rootPem: string;
  /** The window in which every CA certificate is valid. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DER certificates as a document's cabundle: root first, then intermediates. */
  cabundle(): Uint8Array[];
  /**
   * Issues a leaf for one enclave: fresh P-384 key, validity
   * [at − 30 s, at + 3 h] (whole seconds, as X.509 encodes them).
   */
  issueLeaf(params: { commonName: string; at: Date }): Promise<DevLeaf>;
  /** The key store as JSON text (contains private keys). */
  exportStore(): Promise<string>;
}

export interface DevCaClock {
  now: () => Date;
}

interface CaEntry {
  profile: CaProfile;
  der: Uint8Array;
  cert: PeculiarCertificate;
  privateKey: CryptoKey;
}

function devCaError(message: string, cause?: unknown): AttestationError {
  return new AttestationError("ERR_DEV_CA", message, cause === undefined ? undefined : { cause });
}

function readClock(clock: DevCaClock): Date {
  const date = clock.now();
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw devCaError("clock returned an invalid Date");
  }
  return date;
}

/** Whole seconds: X.509 times carry no fraction, so round down before comparing. */
function floorToSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** 16 random bytes with the top bit set: 17-byte positive DER INTEGER, like the AWS CA serials. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) | 0x80;
  return bytes.toString("hex");
}

function pemEncode(der: Uint8Array, label: string): string {
  const body = Buffer.from(der)
    .toString("base64")
    .replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** Exactly one PEM block with the expected label and nothing else but whitespace. */
function pemDecode(text: unknown, label: string, what: string): Uint8Array {
  if (typeof text !== "string") throw devCaError(`${what}: expected PEM text`);
  const match = /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END ([A-Z0-9 ]+)-----\s*$/.exec(text);
  if (!match || match[1] !== label || match[3] !== label) {
    throw devCaError(`${what}: expected one PEM block labelled "${label}"`);
  }
  const base64 = (match[2] ?? "").replace(/\r?\n/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0) {
    throw devCaError(`${what}: malformed base64 in PEM`);
  }
  const der = new Uint8Array(Buffer.from(base64, "base64"));
  if (der.length === 0) throw devCaError(`${what}: empty PEM block`);
  return der;
}

function checkCommonName(cn: string, what: string): void {
  if (typeof cn !== "string" || cn.length === 0 || cn.length > MAX_COMMON_NAME) {
    throw new AttestationError("ERR_NSM_REQUEST", `${what} expected 1..${MAX_COMMON_NAME} characters`);
  }
}

async function generateKeyPair(extractable: boolean): Promise<webcrypto.CryptoKeyPair> {
  return crypto.subtle.generateKey(ECDSA_P384, extractable, ["sign", "verify"]);
}

function caExtensions(profile: CaProfile, ski: Extension, aki: Extension | undefined): Extension[] {
  const bc = new BasicConstraintsExtension(true, profile.pathLength, true);
  const ku = new KeyUsagesExtension(profile.keyUsages, true);
  // Extension order as in the AWS certificates of each level.
  switch (profile.role) {
    case "root":
      return [bc, ski, ku];
    case "regional":
    case "zonal":
      return aki ? [bc, aki, ski, ku] : [bc, ski, ku];
    case "instance":
      return aki ? [bc, ku, ski, aki] : [bc, ku, ski];
  }
}

async function issueCa(profile: CaProfile, issuer: CaEntry | undefined, now: Date): Promise<CaEntry> {
  checkCommonName(profile.commonName, `${profile.role} common name`);
  const keys = await generateKeyPair(true);
  const notBefore = floorToSecond(now.getTime() - CA_BACKDATE_MS);
  let notAfter = floorToSecond(now.getTime() + profile.lifetimeMs);
  if (issuer && notAfter > issuer.cert.notAfter) notAfter = issuer.cert.notAfter;
  const subject = new Name(profile.subject(profile.commonName));
  const ski = await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto);
  const aki = issuer ? await AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey, false, crypto) : undefined;
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject,
      issuer: issuer ? issuer.cert.subjectName : subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: issuer ? issuer.privateKey : keys.privateKey,
      signingAlgorithm: ECDSA_SHA384,
      extensions: caExtensions(profile, ski, aki),
    },
    crypto,
  );
  return { profile, der: new Uint8Array(cert.rawData), cert, privateKey: keys.privateKey };
}

class DevCaImpl implements DevCa {
  readonly rootCertificate: Uint8Array;
  readonly rootPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly #chain: readonly CaEntry[];

  constructor(chain: readonly CaEntry[]) {
    const root = chain[0];
    if (!root || chain.length !== PROFILES.length) throw devCaError("incomplete CA chain");
    this.#chain = chain;
    this.rootCertificate = root.der.slice();
    this.rootPem = pemEncode(root.der, "CERTIFICATE");
    this.notBefore = new Date(Math.max(...chain.map((e) => e.cert.notBefore.getTime())));
    this.notAfter = new Date(Math.min(...chain.map((e) => e.cert.notAfter.getTime())));
  }

  cabundle(): Uint8Array[] {
    return this.#chain.map((entry) => entry.der.slice());
  }

  async issueLeaf(params: { commonName: string; at: Date }): Promise<DevLeaf> {
    const { commonName, at } = params;
    checkCommonName(commonName, "leaf common name");
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw devCaError("issue time is not a valid Date");
    const notBefore = floorToSecond(at.getTime() - LEAF_BACKDATE_MS);
    const notAfter = floorToSecond(at.getTime() + LEAF_LIFETIME_MS);
    checkCovers(this.notBefore, this.notAfter, notBefore, notAfter);
    const issuer = this.#chain[this.#chain.length - 1];
    if (!issuer) throw devCaError("incomplete CA chain");
    const keys = await generateKeyPair(false);
    const cert = await X509CertificateGenerator.create(
      {
        serialNumber: randomSerial(),
        subject: new Name(nameCStLOOuCn(commonName)),
        issuer: issuer.cert.subjectName,
        notBefore,
        notAfter,
        publicKey: keys.publicKey,
        signingKey: issuer.privateKey,
        signingAlgorithm: ECDSA_SHA384,
        // As AWS leaves: CA:FALSE (critical) and a NON-critical keyUsage of
        // digitalSignature + nonRepudiation; no key identifiers.
        extensions: [new BasicConstraintsExtension(false, undefined, true), new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation, false)],
      },
      crypto,
    );
    return { certificate: new Uint8Array(cert.rawData), privateKey: keys.privateKey, notBefore, notAfter };
  }

  async exportStore(): Promise<string> {
    const chain = [];
    for (const entry of this.#chain) {
      const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", entry.privateKey));
      chain.push({
        role: entry.profile.role,
        certificate: pemEncode(entry.der, "CERTIFICATE"),
        privateKey: pemEncode(pkcs8, "PRIVATE KEY"),
      });
    }
    const store = {
      format: STORE_FORMAT,
      version: STORE_VERSION,
      notice: "Private keys of an enclave-gateway DEVELOPMENT attestation CA. NOT FOR PRODUCTION. " + "Whoever holds this file can issue development attestation documents.",
      chain,
    };
    return `${JSON.stringify(store, null, 2)}\n`;
  }
}

function checkCovers(caNotBefore: Date, caNotAfter: Date, notBefore: Date, notAfter: Date): void {
  if (notBefore < caNotBefore) {
    throw devCaError(`development CA is not valid before ${caNotBefore.toISOString()}; check the clock`);
  }
  if (notAfter > caNotAfter) {
    throw devCaError(`development CA expires at ${caNotAfter.toISOString()}, before a leaf issued now would; delete the CA directory to create a new one`);
  }
}

/** Creates a new development CA in memory (root + 3 intermediates). */
export async function createDevCa(clock: DevCaClock): Promise<DevCa> {
  const now = readClock(clock);
  const chain: CaEntry[] = [];
  for (const profile of PROFILES) {
    chain.push(await issueCa(profile, chain[chain.length - 1], now));
  }
  return new DevCaImpl(chain);
}

/**
 * Checks everything a store could get wrong: PEM shape, P-384 keys that match
 * their certificates, signatures along the chain, CA flags and path lengths,
 * development names, and validity at `now` for a full leaf lifetime.
 */
async function caFromStore(text: string, now: Date): Promise<DevCa> {
  let store: unknown;
  try {
    store = JSON.parse(text);
  } catch (err) {
    throw devCaError("key store is not valid JSON", err);
  }
  if (typeof store !== "object" || store === null) throw devCaError("key store is not a JSON object");
  const { format, version, chain } = store as Record<string, unknown>;
  if (format !== STORE_FORMAT || version !== STORE_VERSION) {
    throw devCaError(`key store format is not "${STORE_FORMAT}" version ${STORE_VERSION}`);
  }
  if (!Array.isArray(chain) || chain.length !== PROFILES.length) {
    throw devCaError(`key store must hold ${PROFILES.length} CA entries`);
  }
  const entries: CaEntry[] = [];
  let previous: NodeCertificate | undefined;
  for (const [i, profile] of PROFILES.entries()) {
    const item: unknown = chain[i];
    const what = `key store entry ${i} (${profile.role})`;
    if (typeof item !== "object" || item === null) throw devCaError(`${what}: not an object`);
    const record = item as Record<string, unknown>;
    if (record.role !== profile.role) throw devCaError(`${what}: role is not "${profile.role}"`);
    const der = pemDecode(record.certificate, "CERTIFICATE", what);
    const pkcs8 = pemDecode(record.privateKey, "PRIVATE KEY", what);

    let nodeCert: NodeCertificate;
    let cert: PeculiarCertificate;
    try {
      nodeCert = new NodeCertificate(der);
      cert = new PeculiarCertificate(der);
    } catch (err) {
      throw devCaError(`${what}: certificate does not parse`, err);
    }
    const curve = nodeCert.publicKey.asymmetricKeyDetails?.namedCurve;
    const sigAlg = cert.signatureAlgorithm as { name?: string; hash?: { name?: string } };
    if (curve !== "secp384r1" || sigAlg.name !== "ECDSA" || sigAlg.hash?.name !== "SHA-384") {
      throw devCaError(`${what}: certificate is not ECDSA P-384 with SHA-384`);
    }

    let privateKey: CryptoKey;
    try {
      const keyObject = createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
      const derived = createPublicKey(keyObject).export({ format: "der", type: "spki" });
      if (!derived.equals(nodeCert.publicKey.export({ format: "der", type: "spki" }))) {
        throw devCaError(`${what}: private key does not match the certificate`);
      }
      privateKey = await crypto.subtle.importKey("pkcs8", pkcs8, ECDSA_P384, true, ["sign"]);
    } catch (err) {
      if (err instanceof AttestationError) throw err;
      throw devCaError(`${what}: private key is not a P-384 PKCS#8 key`, err);
    }

    const issuer = previous ?? nodeCert;
    if (!nodeCert.checkIssued(issuer) || !nodeCert.verify(issuer.publicKey)) {
      throw devCaError(`${what}: certificate is not signed by ${previous ? "the previous entry" : "itself"}`);
    }
    const bc = cert.getExtension(BasicConstraintsExtension);
    if (!bc || !bc.critical || bc.ca !== true || bc.pathLength !== profile.pathLength) {
      throw devCaError(`${what}: basicConstraints is not CA with pathLen ${String(profile.pathLength)}`);
    }
    const ku = cert.getExtension(KeyUsagesExtension);
    if (!ku || !ku.critical || (ku.usages & KeyUsageFlags.keyCertSign) === 0) {
      throw devCaError(`${what}: keyUsage lacks keyCertSign`);
    }
    if (!cert.subjectName.getField("CN").some((cn) => cn.endsWith(DEV_MARKER))) {
      throw devCaError(`${what}: subject does not mark a development CA`);
    }
    entries.push({ profile, der, cert, privateKey });
    previous = nodeCert;
  }
  const ca = new DevCaImpl(entries);
  checkCovers(ca.notBefore, ca.notAfter, floorToSecond(now.getTime() - LEAF_BACKDATE_MS), floorToSecond(now.getTime() + LEAF_LIFETIME_MS));
  return ca;
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

/** Reads a regular file, bounded, optionally refusing group/other access. */
async function readBounded(path: string, maxBytes: number, privateFile: boolean): Promise<string> {
  const handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw devCaError(`${path} is not a regular file`);
    if (info.size > maxBytes) throw devCaError(`${path} is larger than ${maxBytes} bytes (${info.size})`);
    if (privateFile && process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      throw devCaError(`${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) throw devCaError(`${path} is larger than ${maxBytes} bytes`);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

async function writeTemp(dir: string, name: string, text: string, mode: number): Promise<string> {
  const temp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, "wx", mode);
  try {
    await handle.chmod(mode); // the umask may have narrowed it; never widened it
    await handle.writeFile(text, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temp;
}

/** Creates `dir` (and parents) 0700; an existing directory keeps its mode, it may not be ours. */
async function prepareDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

async function writeRootPem(dir: string, ca: DevCa): Promise<void> {
  const temp = await writeTemp(dir, DEV_ROOT_FILE, ca.rootPem, 0o644);
  await rename(temp, join(dir, DEV_ROOT_FILE));
}

/**
 * Saves `ca` to `dir` (created 0700 if missing), replacing any CA there:
 * the key store at 0600, then the root PEM. Both are written to a temporary
 * file and renamed, so a reader never sees half a file.
 */
export async function saveDevCa(ca: DevCa, dir: string): Promise<void> {
  try {
    await prepareDir(dir);
    const temp = await writeTemp(dir, DEV_CA_STORE_FILE, await ca.exportStore(), 0o600);
    await rename(temp, join(dir, DEV_CA_STORE_FILE));
    await writeRootPem(dir, ca);
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw devCaError(`cannot save the development CA to ${dir}`, err);
  }
}

/**
 * Loads and validates the CA saved in `dir`. `dev-root.pem` must be present
 * and equal the store's root. Throws ERR_DEV_CA on any problem.
 */
export async function loadDevCa(dir: string, clock: DevCaClock): Promise<DevCa> {
  const now = readClock(clock);
  const ca = await loadStore(dir, now);
  let rootText: string;
  try {
    rootText = await readBounded(join(dir, DEV_ROOT_FILE), MAX_ROOT_PEM_BYTES, false);
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw devCaError(`cannot read ${join(dir, DEV_ROOT_FILE)}`, err);
  }
  checkRootPem(rootText, ca);
  return ca;
}

function checkRootPem(rootText: string, ca: DevCa): void {
  const rootDer = pemDecode(rootText, "CERTIFICATE", DEV_ROOT_FILE);
  if (!Buffer.from(rootDer).equals(ca.rootCertificate)) {
    throw devCaError(`${DEV_ROOT_FILE} does not match the root in ${DEV_CA_STORE_FILE}`);
  }
}

async function loadStore(dir: string, now: Date): Promise<DevCa> {
  const path = join(dir, DEV_CA_STORE_FILE);
  let text: string;
  try {
    text = await readBounded(path, MAX_STORE_BYTES, true);
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    if (isErrno(err, "ENOENT")) throw devCaError(`no development CA at ${dir} (${DEV_CA_STORE_FILE} missing)`, err);
    throw devCaError(`cannot read ${path}`, err);
  }
  return caFromStore(text, now);
}

/**
 * For the CLI: loads the CA in `dir`, or creates and saves one when the
 * directory holds none. A missing `dev-root.pem` is rewritten from the store
 * (it is public); a `dev-root.pem` without its key store is an error rather
 * than silently replaced, because verifiers may already trust that root.
 * Creation is exclusive: when two processes race, both end up with the CA
 * that was linked into place first.
 */
export async function loadOrCreateDevCa(dir: string, clock: DevCaClock): Promise<DevCa> {
  const now = readClock(clock);
  const rootPath = join(dir, DEV_ROOT_FILE);
  try {
    await prepareDir(dir);
    const ca = await loadStore(dir, now).catch(async (err: unknown) => {
      if (!storeMissing(err)) throw err;
      if (await exists(rootPath)) {
        // A racing creator links its store before it writes the root, so a
        // root without a store is either that race (load again) or lost keys.
        return loadStore(dir, now).catch((again: unknown) => {
          if (!storeMissing(again)) throw again;
          throw devCaError(`${rootPath} exists without ${DEV_CA_STORE_FILE}; remove it to create a new development CA`);
        });
      }
      return createAndLinkStore(dir, now);
    });
    if (await exists(rootPath)) {
      checkRootPem(await readBounded(rootPath, MAX_ROOT_PEM_BYTES, false), ca);
    } else {
      await writeRootPem(dir, ca);
    }
    return ca;
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw devCaError(`cannot load or create the development CA in ${dir}`, err);
  }
}

function storeMissing(err: unknown): boolean {
  return err instanceof AttestationError && isErrno(err.cause, "ENOENT");
}

/** Creates a CA and links its store into place; if another process won, loads theirs. */
async function createAndLinkStore(dir: string, now: Date): Promise<DevCa> {
  const created = await createDevCa({ now: () => now });
  const temp = await writeTemp(dir, DEV_CA_STORE_FILE, await created.exportStore(), 0o600);
  try {
    await link(temp, join(dir, DEV_CA_STORE_FILE)); // link(2) never replaces an existing file
    return created;
  } catch (err) {
    if (!isErrno(err, "EEXIST")) throw err;
    return loadStore(dir, now);
  } finally {
    await unlink(temp);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    const handle = await open(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
    await handle.close();
    return true;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return false;
    throw err;
  }
}
