import "reflect-metadata";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate as PeculiarCertificate,
} from "@peculiar/x509";
import { X509Certificate } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEV_CA_STORE_FILE, DEV_ROOT_FILE, createDevCa, loadDevCa, loadOrCreateDevCa, saveDevCa, type DevCa } from "../../../attestation/dev/dev-ca.js";

const NOW = new Date("2030-06-01T12:00:00.750Z");
const clock = { now: () => NOW };
const HOUR = 60 * 60 * 1000;
const posix = process.platform !== "win32";

let ca: DevCa;
beforeAll(async () => {
  ca = await createDevCa(clock);
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "egw-dev-ca-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const caDir = () => join(dir, "ca");
const storePath = () => join(caDir(), DEV_CA_STORE_FILE);
const rootPath = () => join(caDir(), DEV_ROOT_FILE);

function extensions(der: Uint8Array) {
  const cert = new PeculiarCertificate(der);
  return {
    cert,
    oids: cert.extensions.map((e) => e.type),
    bc: cert.getExtension(BasicConstraintsExtension),
    ku: cert.getExtension(KeyUsagesExtension),
    ski: cert.getExtension(SubjectKeyIdentifierExtension),
    aki: cert.getExtension(AuthorityKeyIdentifierExtension),
  };
}

const OID = { bc: "2.5.29.19", ku: "2.5.29.15", ski: "2.5.29.14", aki: "2.5.29.35" };
const CA_USAGES = KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;

describe("chain layout (mirrors the AWS Nitro chain)", () => {
  it("has a root and three intermediates, all P-384 with ecdsa-with-SHA384", () => {
    const bundle = ca.cabundle();
    expect(bundle).toHaveLength(4);
    for (const der of bundle) {
      const cert = new X509Certificate(der);
      expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("secp384r1");
      expect(new PeculiarCertificate(der).signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-384" } });
    }
    expect(Buffer.from(bundle[0]!).equals(ca.rootCertificate)).toBe(true);
  });

  it("root: self-signed CA, critical basicConstraints and keyUsage, 30 years", () => {
    const root = new X509Certificate(ca.rootCertificate);
    expect(root.verify(root.publicKey)).toBe(true);
    expect(root.ca).toBe(true);
    const { cert, oids, bc, ku, aki } = extensions(ca.rootCertificate);
    expect(oids).toEqual([OID.bc, OID.ski, OID.ku]);
    expect(bc).toMatchObject({ critical: true, ca: true, pathLength: undefined });
    expect(ku).toMatchObject({ critical: true, usages: CA_USAGES });
    expect(aki).toBeNull();
    expect(cert.subject).toBe("C=ZZ, O=enclave-gateway, OU=DEVELOPMENT, CN=enclave-gateway development root (NOT FOR PRODUCTION)");
    expect(cert.notBefore.getTime()).toBeLessThanOrEqual(NOW.getTime());
    expect(cert.notAfter.getTime() - NOW.getTime()).toBeGreaterThan(29 * 365 * 24 * HOUR);
  });

  it("intermediates: CA with pathLen 2, 1, 0, key identifiers chained, AWS extension order", () => {
    const bundle = ca.cabundle();
    const expected = [
      { pathLength: 2, usages: CA_USAGES, oids: [OID.bc, OID.aki, OID.ski, OID.ku] },
      { pathLength: 1, usages: CA_USAGES, oids: [OID.bc, OID.aki, OID.ski, OID.ku] },
      { pathLength: 0, usages: KeyUsageFlags.keyCertSign, oids: [OID.bc, OID.ku, OID.ski, OID.aki] },
    ];
    for (const [i, want] of expected.entries()) {
      const child = extensions(bundle[i + 1]!);
      const parent = extensions(bundle[i]!);
      expect(child.oids).toEqual(want.oids);
      expect(child.bc).toMatchObject({ critical: true, ca: true, pathLength: want.pathLength });
      expect(child.ku).toMatchObject({ critical: true, usages: want.usages });
      expect(child.aki?.keyId).toBe(parent.ski?.keyId);
      expect(child.cert.issuer).toBe(parent.cert.subject);
      expect(child.cert.subject).toContain("(NOT FOR PRODUCTION)");
      expect(child.cert.subject).toContain("OU=DEVELOPMENT");
    }
  });

  it("leaf: not a CA, digitalSignature + nonRepudiation, validity [now − 30 s, now + 3 h]", async () => {
    const leaf = await ca.issueLeaf({ commonName: "dev-test-enc1.development", at: NOW });
    const { cert, oids, bc, ku } = extensions(leaf.certificate);
    expect(oids).toEqual([OID.bc, OID.ku]);
    expect(bc).toMatchObject({ critical: true, ca: false });
    // AWS leaves mark keyUsage non-critical; we copy that.
    expect(ku).toMatchObject({ critical: false, usages: KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation });
    expect(cert.notBefore.toISOString()).toBe("2030-06-01T11:59:30.000Z");
    expect(cert.notAfter.toISOString()).toBe("2030-06-01T15:00:00.000Z");
    expect(leaf.notBefore).toEqual(cert.notBefore);
    expect(leaf.notAfter).toEqual(cert.notAfter);
    expect(cert.subject).toBe("C=ZZ, ST=Development, L=localhost, O=enclave-gateway, OU=DEVELOPMENT, CN=dev-test-enc1.development");
    const nodeLeaf = new X509Certificate(leaf.certificate);
    const instance = new X509Certificate(ca.cabundle()[3]!);
    expect(nodeLeaf.ca).toBe(false);
    expect(nodeLeaf.checkIssued(instance)).toBe(true);
    expect(nodeLeaf.verify(instance.publicKey)).toBe(true);
  });

  it("gives every leaf its own key and serial", async () => {
    const a = new X509Certificate((await ca.issueLeaf({ commonName: "dev-a", at: NOW })).certificate);
    const b = new X509Certificate((await ca.issueLeaf({ commonName: "dev-a", at: NOW })).certificate);
    expect(a.serialNumber).not.toBe(b.serialNumber);
    expect(a.publicKey.equals(b.publicKey)).toBe(false);
    expect(leafKeyExtractable(await ca.issueLeaf({ commonName: "dev-a", at: NOW }))).toBe(false);
  });

  it("refuses a leaf outside the CA's validity (ERR_DEV_CA)", async () => {
    await expect(ca.issueLeaf({ commonName: "dev-x", at: new Date(NOW.getTime() - 2 * HOUR) })).rejects.toMatchObject({
      code: "ERR_DEV_CA",
    });
    await expect(ca.issueLeaf({ commonName: "dev-x", at: new Date("2045-01-01T00:00:00Z") })).rejects.toMatchObject({
      code: "ERR_DEV_CA",
    });
  });

  it("refuses an over-long leaf common name (ERR_NSM_REQUEST)", async () => {
    await expect(ca.issueLeaf({ commonName: "d".repeat(65), at: NOW })).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
  });
});

function leafKeyExtractable(leaf: { privateKey: { extractable: boolean } }): boolean {
  return leaf.privateKey.extractable;
}

describe("save and load", () => {
  it("round-trips with 0700 directory, 0600 key store and the root PEM", async () => {
    await saveDevCa(ca, caDir());
    if (posix) {
      expect((await stat(caDir())).mode & 0o777).toBe(0o700);
      expect((await stat(storePath())).mode & 0o777).toBe(0o600);
      expect((await stat(rootPath())).mode & 0o777).toBe(0o644);
    }
    const rootPem = await readFile(rootPath(), "utf8");
    expect(rootPem).toBe(ca.rootPem);
    expect(Buffer.from(new X509Certificate(rootPem).raw).equals(ca.rootCertificate)).toBe(true);
    const store = JSON.parse(await readFile(storePath(), "utf8"));
    expect(store.chain.map((e: { role: string }) => e.role)).toEqual(["root", "regional", "zonal", "instance"]);
    expect(store.chain[0].privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);

    const loaded = await loadDevCa(caDir(), clock);
    expect(loaded.cabundle().map((c) => Buffer.from(c).toString("hex"))).toEqual(ca.cabundle().map((c) => Buffer.from(c).toString("hex")));
    // The loaded keys still sign: a leaf from the loaded CA chains to the saved root.
    const leaf = new X509Certificate((await loaded.issueLeaf({ commonName: "dev-loaded", at: NOW })).certificate);
    expect(leaf.verify(new X509Certificate(ca.cabundle()[3]!).publicKey)).toBe(true);
  });

  it("loadOrCreateDevCa creates once, then loads the same CA", async () => {
    const first = await loadOrCreateDevCa(caDir(), clock);
    const second = await loadOrCreateDevCa(caDir(), { now: () => new Date(NOW.getTime() + 24 * HOUR) });
    expect(Buffer.from(second.rootCertificate).equals(first.rootCertificate)).toBe(true);
    expect(await readFile(rootPath(), "utf8")).toBe(first.rootPem);
    if (posix) expect((await stat(storePath())).mode & 0o777).toBe(0o600);
  });

  it("loadOrCreateDevCa racing itself ends with one CA", async () => {
    const results = await Promise.all([1, 2, 3].map(() => loadOrCreateDevCa(caDir(), clock)));
    const roots = new Set(results.map((r) => Buffer.from(r.rootCertificate).toString("hex")));
    expect(roots.size).toBe(1);
    const onDisk = await loadDevCa(caDir(), clock);
    expect(roots.has(Buffer.from(onDisk.rootCertificate).toString("hex"))).toBe(true);
  });

  it("loadOrCreateDevCa rewrites a deleted dev-root.pem from the store", async () => {
    await saveDevCa(ca, caDir());
    await unlink(rootPath());
    const loaded = await loadOrCreateDevCa(caDir(), clock);
    expect(Buffer.from(loaded.rootCertificate).equals(ca.rootCertificate)).toBe(true);
    expect(await readFile(rootPath(), "utf8")).toBe(ca.rootPem);
  });

  it("loadOrCreateDevCa refuses to replace a root whose keys are gone", async () => {
    await saveDevCa(ca, caDir());
    await unlink(storePath());
    await expect(loadOrCreateDevCa(caDir(), clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
  });

  it("loadDevCa on an empty directory is ERR_DEV_CA", async () => {
    await expect(loadDevCa(dir, clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
  });

  it("refuses a CA that has expired by load time", async () => {
    await saveDevCa(ca, caDir());
    await expect(loadDevCa(caDir(), { now: () => new Date("2041-01-01T00:00:00Z") })).rejects.toMatchObject({
      code: "ERR_DEV_CA",
    });
  });
});

describe("corrupt or tampered stores are ERR_DEV_CA", () => {
  let other: DevCa;
  beforeAll(async () => {
    other = await createDevCa(clock);
  });

  type Store = { format: string; version: number; chain: { role: string; certificate: string; privateKey: string }[] };
  const mutations: [string, (text: string, otherStore: Store) => string][] = [
    ["truncated JSON", (t) => t.slice(0, t.length / 2)],
    ["not JSON", () => "\u0000\u0001binary"],
    ["JSON null", () => "null"],
    ["wrong format", (t) => JSON.stringify({ ...JSON.parse(t), format: "something-else" })],
    ["future version", (t) => JSON.stringify({ ...JSON.parse(t), version: 2 })],
    ["three entries", (t) => JSON.stringify({ ...JSON.parse(t), chain: JSON.parse(t).chain.slice(0, 3) })],
    [
      "roles swapped",
      (t) => {
        const s = JSON.parse(t) as Store;
        [s.chain[1]!.role, s.chain[2]!.role] = [s.chain[2]!.role, s.chain[1]!.role];
        return JSON.stringify(s);
      },
    ],
    [
      "a key that does not match its certificate",
      (t) => {
        const s = JSON.parse(t) as Store;
        s.chain[1]!.privateKey = s.chain[2]!.privateKey;
        return JSON.stringify(s);
      },
    ],
    [
      "an intermediate from another CA (chain broken)",
      (t, o) => {
        const s = JSON.parse(t) as Store;
        s.chain[2] = o.chain[2]!;
        return JSON.stringify(s);
      },
    ],
    [
      "a certificate PEM with garbage base64",
      (t) => {
        const s = JSON.parse(t) as Store;
        s.chain[0]!.certificate = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        return JSON.stringify(s);
      },
    ],
    [
      "a private key in a CERTIFICATE block",
      (t) => {
        const s = JSON.parse(t) as Store;
        s.chain[0]!.privateKey = s.chain[0]!.certificate;
        return JSON.stringify(s);
      },
    ],
    [
      "a flipped byte in a certificate signature",
      (t) => {
        const s = JSON.parse(t) as Store;
        const der = Buffer.from(s.chain[3]!.certificate.replace(/-----[A-Z ]+-----|\n/g, ""), "base64");
        der[der.length - 5]! ^= 0x01;
        s.chain[3]!.certificate = `-----BEGIN CERTIFICATE-----\n${der.toString("base64")}\n-----END CERTIFICATE-----\n`;
        return JSON.stringify(s);
      },
    ],
    ["70 KiB of whitespace", (t) => t + " ".repeat(70 * 1024)],
  ];

  it.each(mutations)("%s", async (_what, mutate) => {
    await saveDevCa(ca, caDir());
    const otherStore = JSON.parse(await other.exportStore()) as Store;
    const text = await readFile(storePath(), "utf8");
    await writeFile(storePath(), mutate(text, otherStore), { mode: 0o600 });
    await expect(loadDevCa(caDir(), clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
    await expect(loadOrCreateDevCa(caDir(), clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
  });

  it("a dev-root.pem of another CA", async () => {
    await saveDevCa(ca, caDir());
    await writeFile(rootPath(), other.rootPem);
    await expect(loadDevCa(caDir(), clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
    await expect(loadOrCreateDevCa(caDir(), clock)).rejects.toMatchObject({ code: "ERR_DEV_CA" });
  });

  it.skipIf(!posix)("a key store readable by group or others", async () => {
    await saveDevCa(ca, caDir());
    await chmod(storePath(), 0o644);
    await expect(loadDevCa(caDir(), clock)).rejects.toMatchObject({
      code: "ERR_DEV_CA",
      message: expect.stringContaining("chmod 600"),
    });
  });
});
