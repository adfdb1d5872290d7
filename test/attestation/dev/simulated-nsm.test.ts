import { decode } from "cbor-x";
import { X509Certificate, createHash, verify } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trustAnchorFromPem } from "../../../attestation/roots.js";
import { verifyAttestation } from "../../../attestation/verify.js";
import { DEV_ROOT_FILE, loadOrCreateDevCa, type DevCa } from "../../../attestation/dev/dev-ca.js";
import { SOURCE_FOLDERS, SimulatedNsm, defaultCodeBundle, measureCodeBundle } from "../../../attestation/dev/simulated-nsm.js";

const NOW = new Date("2031-02-03T04:05:06.789Z");
const clock = () => NOW;
const HOUR = 60 * 60 * 1000;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

// --- A minimal, independent CBOR reader: heads and item boundaries only. ---

interface Head {
  major: number;
  /** Argument (length, count or value); -1 for indefinite length. */
  arg: number;
  /** Offset just past the head. */
  body: number;
}

function readHead(bytes: Uint8Array, at: number): Head {
  const first = bytes[at];
  if (first === undefined) throw new Error(`CBOR truncated at ${at}`);
  const major = first >> 5;
  const info = first & 0x1f;
  if (info < 24) return { major, arg: info, body: at + 1 };
  if (info === 31) return { major, arg: -1, body: at + 1 };
  const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (size === undefined) throw new Error(`reserved additional info ${info} at ${at}`);
  let arg = 0;
  for (let i = 1; i <= size; i++) arg = arg * 256 + (bytes[at + i] ?? Number.NaN);
  return { major, arg, body: at + 1 + size };
}

/** Offset just past the item starting at `at`. Definite lengths only. */
function skipItem(bytes: Uint8Array, at: number): number {
  const head = readHead(bytes, at);
  if (head.arg === -1) throw new Error(`indefinite length at ${at}`);
  switch (head.major) {
    case 0:
    case 1:
    case 7:
      return head.body;
    case 2:
    case 3:
      return head.body + head.arg;
    case 4: {
      let pos = head.body;
      for (let i = 0; i < head.arg; i++) pos = skipItem(bytes, pos);
      return pos;
    }
    case 5: {
      let pos = head.body;
      for (let i = 0; i < 2 * head.arg; i++) pos = skipItem(bytes, pos);
      return pos;
    }
    default:
      throw new Error(`tag (major 6) at ${at}`);
  }
}

/** The untagged COSE_Sign1 split into the exact bytes of its four items. */
function splitCose(bytes: Uint8Array) {
  expect(bytes[0]).toBe(0x84);
  const items: { start: number; end: number }[] = [];
  let pos = 1;
  for (let i = 0; i < 4; i++) {
    const end = skipItem(bytes, pos);
    items.push({ start: pos, end });
    pos = end;
  }
  expect(pos).toBe(bytes.length);
  const bstr = (i: number) => {
    const item = items[i]!;
    const head = readHead(bytes, item.start);
    expect(head.major).toBe(2);
    return bytes.subarray(head.body, item.end);
  };
  return {
    protectedBytes: bstr(0),
    unprotected: bytes.subarray(items[1]!.start, items[1]!.end),
    payload: bstr(2),
    signature: bstr(3),
  };
}

/** Payload map entries as [key, first byte of value, value bytes], in wire order. */
function payloadEntries(payload: Uint8Array) {
  const head = readHead(payload, 0);
  expect(head.major).toBe(5);
  const entries: { key: string; valueFirstByte: number; value: Uint8Array }[] = [];
  let pos = head.body;
  for (let i = 0; i < head.arg; i++) {
    const keyHead = readHead(payload, pos);
    expect(keyHead.major).toBe(3);
    const keyEnd = skipItem(payload, pos);
    const key = Buffer.from(payload.subarray(keyHead.body, keyEnd)).toString("utf8");
    const valueEnd = skipItem(payload, keyEnd);
    entries.push({ key, valueFirstByte: payload[keyEnd]!, value: payload.subarray(keyEnd, valueEnd) });
    pos = valueEnd;
  }
  expect(pos).toBe(payload.length);
  return entries;
}

/** Sig_structure built by hand, not with the encoder under test. */
function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  const bstrHead = (n: number) =>
    n < 24 ? [0x40 + n] : n < 256 ? [0x58, n] : n < 65536 ? [0x59, n >> 8, n & 0xff] : [0x5a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return Uint8Array.from([0x84, 0x6a, ...Buffer.from("Signature1"), ...bstrHead(protectedBytes.length), ...protectedBytes, 0x40, ...bstrHead(payload.length), ...payload]);
}

// ---------------------------------------------------------------------------

let tmp: string;
let caDir: string;
let ca: DevCa;
let bundleDir: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "egw-sim-nsm-"));
  caDir = join(tmp, "ca");
  ca = await loadOrCreateDevCa(caDir, { now: clock });
  bundleDir = join(tmp, "bundle");
  await mkdir(join(bundleDir, "attestation"), { recursive: true });
  await writeFile(join(bundleDir, "attestation", "index.js"), "export {};\n");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function nsm(extra: Partial<ConstructorParameters<typeof SimulatedNsm>[0]> = {}) {
  return new SimulatedNsm({ ca, now: clock, codeBundle: { root: bundleDir }, ...extra });
}

const KEY_ORDER = ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];

describe("document bytes", () => {
  it("is an untagged COSE_Sign1 with protected a1 01 38 22, empty unprotected map, 96-byte signature", async () => {
    const doc = await nsm().attest({});
    const cose = splitCose(doc);
    expect(hex(doc.subarray(0, 6))).toBe("8444a1013822");
    expect(hex(cose.protectedBytes)).toBe("a1013822");
    expect(hex(cose.unprotected)).toBe("a0");
    expect(cose.signature.length).toBe(96);
  });

  it("has a definite 9-entry payload map in NSM key order, absent fields as null (f6)", async () => {
    const { payload } = splitCose(await nsm().attest({}));
    expect(payload[0]).toBe(0xa9);
    const entries = payloadEntries(payload);
    expect(entries.map((e) => e.key)).toEqual(KEY_ORDER);
    const byKey = new Map(entries.map((e) => [e.key, e]));
    expect(hex(byKey.get("digest")!.value)).toBe(`66${hex(Buffer.from("SHA384"))}`);
    expect(hex(byKey.get("timestamp")!.value)).toBe(`1b${NOW.getTime().toString(16).padStart(16, "0")}`);
    expect(byKey.get("pcrs")!.valueFirstByte).toBe(0xb0); // map of 16
    expect(byKey.get("cabundle")!.valueFirstByte).toBe(0x84); // array of 4
    for (const key of ["public_key", "user_data", "nonce"]) {
      expect(hex(byKey.get(key)!.value)).toBe("f6");
    }
  });

  it("carries the request fields as bstr, 1024 bytes each at most", async () => {
    const userData = new Uint8Array(1024).fill(0x11);
    const nonce = new Uint8Array(32).fill(0x22);
    const publicKey = new Uint8Array(1024).fill(0x33);
    const { payload } = splitCose(await nsm().attest({ userData, nonce, publicKey }));
    const byKey = new Map(payloadEntries(payload).map((e) => [e.key, e]));
    expect(hex(byKey.get("user_data")!.value.subarray(0, 3))).toBe("590400");
    expect(hex(byKey.get("nonce")!.value)).toBe(`5820${hex(nonce)}`);
    const decoded = decode(payload) as Record<string, Uint8Array>;
    expect(hex(decoded.user_data!)).toBe(hex(userData));
    expect(hex(decoded.public_key!)).toBe(hex(publicKey));
  });

  it("has a dev- module_id, PCRs 0..15 of 48 bytes, the injected timestamp and the dev cabundle", async () => {
    const sim = nsm();
    const decoded = decode(splitCose(await sim.attest({})).payload) as Record<string, any>;
    expect(decoded.module_id).toBe(sim.moduleId);
    expect(sim.moduleId).toMatch(/^dev-[0-9a-f]{16}-enc[0-9a-f]{16}$/);
    expect(Number(decoded.timestamp)).toBe(NOW.getTime());
    const pcrs = decoded.pcrs as Record<string, Uint8Array>;
    expect(Object.keys(pcrs).map(Number)).toEqual([...Array(16).keys()]);
    for (const value of Object.values(pcrs)) expect(value.length).toBe(48);
    expect(decoded.cabundle.map((c: Uint8Array) => hex(c))).toEqual(ca.cabundle().map(hex));
  });
});

describe("signature and chain", () => {
  it("ES384 signature verifies over the Sig_structure with the leaf key (node:crypto, ieee-p1363)", async () => {
    const cose = splitCose(await nsm().attest({ nonce: Uint8Array.of(1, 2, 3) }));
    const leaf = new X509Certificate((decode(cose.payload) as { certificate: Uint8Array }).certificate);
    const key = { key: leaf.publicKey, dsaEncoding: "ieee-p1363" as const };
    const toBeSigned = sigStructure(cose.protectedBytes, cose.payload);
    expect(verify("sha384", toBeSigned, key, cose.signature)).toBe(true);
    // The check is sharp: one flipped payload bit fails it.
    const tampered = cose.payload.slice();
    tampered[tampered.length - 1]! ^= 0x01;
    expect(verify("sha384", sigStructure(cose.protectedBytes, tampered), key, cose.signature)).toBe(false);
  });

  it("leaf → intermediates → root verifies up to the saved dev-root.pem, leaf valid [t − 30 s, t + 3 h]", async () => {
    const decoded = decode(splitCose(await nsm().attest({})).payload) as { certificate: Uint8Array; cabundle: Uint8Array[] };
    const savedRoot = new X509Certificate(await readFile(join(caDir, DEV_ROOT_FILE)));
    const bundle = decoded.cabundle.map((der) => new X509Certificate(der));
    expect(bundle[0]!.raw.equals(savedRoot.raw)).toBe(true);
    expect(savedRoot.verify(savedRoot.publicKey)).toBe(true);
    const chain = [...bundle, new X509Certificate(decoded.certificate)];
    for (let i = 1; i < chain.length; i++) {
      expect(chain[i]!.checkIssued(chain[i - 1]!)).toBe(true);
      expect(chain[i]!.verify(chain[i - 1]!.publicKey)).toBe(true);
    }
    const leaf = chain[chain.length - 1]!;
    expect(leaf.ca).toBe(false);
    expect(new Date(leaf.validFrom).getTime()).toBe(Math.floor((NOW.getTime() - 30_000) / 1000) * 1000);
    expect(new Date(leaf.validTo).getTime()).toBe(Math.floor((NOW.getTime() + 3 * HOUR) / 1000) * 1000);
    for (const cert of chain) {
      expect(new Date(cert.validFrom).getTime()).toBeLessThanOrEqual(NOW.getTime());
      expect(new Date(cert.validTo).getTime()).toBeGreaterThanOrEqual(NOW.getTime() + 3 * HOUR - 1000);
    }
    expect(leaf.subject).toContain(".development");
  });

  it("issues a fresh leaf per document, following the injected clock", async () => {
    let now = NOW;
    const sim = nsm({ now: () => now });
    const first = decode(splitCose(await sim.attest({})).payload) as { certificate: Uint8Array; timestamp: bigint };
    now = new Date(NOW.getTime() + 5 * HOUR);
    const second = decode(splitCose(await sim.attest({})).payload) as { certificate: Uint8Array; timestamp: bigint };
    expect(hex(first.certificate)).not.toBe(hex(second.certificate));
    expect(Number(second.timestamp)).toBe(now.getTime());
    expect(new Date(new X509Certificate(second.certificate).validTo).getTime()).toBe(now.getTime() - 789 + 3 * HOUR);
  });
});

describe("PCRs", () => {
  it("defaults: PCR0 = measured code bundle, PCR1/2/4 labelled and distinct, the rest zero, locked", async () => {
    const sim = nsm({ moduleId: "dev-fixed-enc1" });
    const pcr = async (i: number) => (await sim.describePcr(i)).data;
    expect(hex(await pcr(0))).toBe(hex(await measureCodeBundle(bundleDir)));
    const labelled = [hex(await pcr(1)), hex(await pcr(2)), hex(await pcr(4))];
    expect(new Set(labelled).size).toBe(3);
    for (const i of [3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]) expect(hex(await pcr(i))).toBe("00".repeat(48));
    expect((await sim.describePcr(0)).locked).toBe(true);
    // PCR4 follows the instance, as on hardware: same module id → same value.
    const twin = nsm({ moduleId: "dev-fixed-enc2" });
    expect(hex((await twin.describePcr(4)).data)).toBe(labelled[2]);
    expect(hex((await nsm().describePcr(4)).data)).not.toBe(labelled[2]);
  });

  it("document PCRs equal describePcr; overrides from a Map or a Record", async () => {
    const pcr0 = new Uint8Array(48).fill(0xaa);
    const pcr8 = new Uint8Array(48).fill(0x88);
    for (const pcrs of [
      new Map([
        [0, pcr0],
        [8, pcr8],
      ]),
      { 0: pcr0, 8: pcr8 },
    ]) {
      const sim = nsm({ pcrs, codeBundle: { root: join(tmp, "does-not-exist") } });
      const decoded = decode(splitCose(await sim.attest({})).payload) as { pcrs: Record<number, Uint8Array> };
      for (let i = 0; i < 16; i++) expect(hex(decoded.pcrs[i]!)).toBe(hex((await sim.describePcr(i)).data));
      expect(hex(decoded.pcrs[0]!)).toBe(hex(pcr0));
      expect(hex(decoded.pcrs[8]!)).toBe(hex(pcr8));
    }
  });

  it("describes PCRs 16..31 as unlocked zeros and can report 0..15 unlocked", async () => {
    expect(await nsm().describePcr(16)).toEqual({ index: 16, locked: false, data: new Uint8Array(48) });
    expect((await nsm({ pcrsLocked: false }).describePcr(0)).locked).toBe(false);
    await expect(nsm().describePcr(32)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
  });

  it.each([
    ["a 47-byte PCR", { pcrs: { 0: new Uint8Array(47) } }],
    ["PCR index 16", { pcrs: new Map([[16, new Uint8Array(48)]]) }],
    ["a module id without dev-", { moduleId: "i-0123456789abcdef0-enc0123456789abcdef" }],
    ["an over-long module id", { moduleId: `dev-${"a".repeat(60)}` }],
  ])("rejects %s (ERR_NSM_REQUEST)", (_what, extra) => {
    expect(() => nsm(extra as Parameters<typeof nsm>[0])).toThrow(expect.objectContaining({ code: "ERR_NSM_REQUEST" }));
  });
});

describe("NSM limits and lifecycle", () => {
  it.each([
    ["user_data", { userData: new Uint8Array(1025) }],
    ["nonce", { nonce: new Uint8Array(1025) }],
    ["public_key", { publicKey: new Uint8Array(1025) }],
  ])("rejects %s over 1024 bytes with ERR_NSM_REQUEST", async (_what, request) => {
    await expect(nsm().attest(request)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
  });

  it("getRandom returns the requested number of bytes, bounded", async () => {
    const sim = nsm();
    const a = await sim.getRandom(64);
    expect(a.length).toBe(64);
    expect(hex(a)).not.toBe(hex(await sim.getRandom(64)));
    expect((await sim.getRandom(0)).length).toBe(0);
    await expect(sim.getRandom(65537)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    await expect(sim.getRandom(-1)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
  });

  it("is unavailable after close", async () => {
    const sim = nsm();
    expect(sim.kind).toBe("simulated");
    await sim.close();
    await expect(sim.attest({})).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE" });
    await expect(sim.getRandom(1)).rejects.toMatchObject({ code: "ERR_NSM_UNAVAILABLE" });
  });

  it("fails with ERR_DEV_CA when the CA cannot cover a leaf at the injected time", async () => {
    await expect(nsm({ now: () => new Date("2045-01-01T00:00:00Z") }).attest({})).rejects.toMatchObject({
      code: "ERR_DEV_CA",
    });
  });
});

describe("measureCodeBundle", () => {
  async function tree(root: string, files: Record<string, string>) {
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(join(root, rel, ".."), { recursive: true });
      await writeFile(join(root, rel), content);
    }
    return root;
  }
  const FILES = { "a.js": "a", "b/c.js": "c", "b/d/e.js": "e", "B.js": "upper" };

  it("is SHA-384 of a sha384sum-style manifest in byte order of the paths", async () => {
    const root = await tree(join(tmp, "m1"), FILES);
    const sha = (s: string) => createHash("sha384").update(s).digest("hex");
    const manifest = ["B.js", "a.js", "b/c.js", "b/d/e.js"].map((rel) => `${sha(FILES[rel as keyof typeof FILES])}  ${rel}\n`).join("");
    expect(hex(await measureCodeBundle(root))).toBe(sha(manifest));
  });

  it("is deterministic and independent of creation order", async () => {
    const a = await tree(join(tmp, "m2"), FILES);
    const reversed = Object.fromEntries(Object.entries(FILES).reverse());
    const b = await tree(join(tmp, "m3"), reversed);
    const first = hex(await measureCodeBundle(a));
    expect(hex(await measureCodeBundle(a))).toBe(first);
    expect(hex(await measureCodeBundle(b))).toBe(first);
  });

  it("changes when a file's content or name changes", async () => {
    const root = await tree(join(tmp, "m4"), FILES);
    const before = hex(await measureCodeBundle(root));
    await writeFile(join(root, "b/d/e.js"), "e2");
    const edited = hex(await measureCodeBundle(root));
    expect(edited).not.toBe(before);
    await rename(join(root, "a.js"), join(root, "a2.js"));
    const renamed = hex(await measureCodeBundle(root));
    expect(new Set([before, edited, renamed]).size).toBe(3);
  });

  it("measures only the included folders, relative to the root", async () => {
    const root = await tree(join(tmp, "m5"), { "attestation/x.ts": "x", "test/y.test.ts": "y" });
    const only = await measureCodeBundle(root, { include: ["attestation", "missing"] });
    await writeFile(join(root, "test/y.test.ts"), "y2");
    expect(hex(await measureCodeBundle(root, { include: ["attestation", "missing"] }))).toBe(hex(only));
    const sha = (s: string) => createHash("sha384").update(s).digest("hex");
    expect(hex(only)).toBe(sha(`${sha("x")}  attestation/x.ts\n`));
  });

  it("enforces the file-count and size bounds (ERR_INPUT_TOO_LARGE)", async () => {
    const root = await tree(join(tmp, "m6"), FILES);
    await expect(measureCodeBundle(root, { limits: { maxFiles: 3 } })).rejects.toMatchObject({
      code: "ERR_INPUT_TOO_LARGE",
    });
    await expect(measureCodeBundle(root, { limits: { maxFileBytes: 4 } })).rejects.toMatchObject({
      code: "ERR_INPUT_TOO_LARGE",
    });
    await expect(measureCodeBundle(root, { limits: { maxDepth: 1 } })).rejects.toMatchObject({
      code: "ERR_INPUT_TOO_LARGE",
    });
  });

  it.skipIf(process.platform === "win32")("refuses symlinks and a missing root", async () => {
    const root = await tree(join(tmp, "m7"), FILES);
    await symlink(join(root, "a.js"), join(root, "link.js"));
    await expect(measureCodeBundle(root)).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
    await expect(measureCodeBundle(join(tmp, "nope"))).rejects.toMatchObject({ code: "ERR_NSM_REQUEST" });
  });

  it("defaults to dist/ when running compiled, to the source folders when running from source", async () => {
    const pkg = await tree(join(tmp, "pkg"), { "package.json": JSON.stringify({ name: "enclave-gateway" }) });
    const compiled = pathToFileURL(join(pkg, "dist", "attestation", "dev", "simulated-nsm.js")).href;
    expect(await defaultCodeBundle(compiled)).toEqual({ root: join(pkg, "dist") });
    const source = pathToFileURL(join(pkg, "attestation", "dev", "simulated-nsm.ts")).href;
    expect(await defaultCodeBundle(source)).toEqual({ root: pkg, include: SOURCE_FOLDERS });
    const here = await defaultCodeBundle();
    expect(here.include).toEqual(SOURCE_FOLDERS);
    await expect(defaultCodeBundle(pathToFileURL(join(tmp, "elsewhere", "x.js")).href)).rejects.toMatchObject({
      code: "ERR_NSM_REQUEST",
    });
  });
});

describe("interop with the project's verifier", () => {
  it("verifies with the development root named, and never against the default (AWS) roots", async () => {
    const nonce = Uint8Array.of(9, 9, 9);
    const sim = nsm();
    const doc = await sim.attest({ nonce });
    const pcr0 = (await sim.describePcr(0)).data;
    const currentDate = new Date(NOW.getTime() + 1000);
    const result = await verifyAttestation(doc, {
      currentDate,
      expectedPcrs: { 0: pcr0 },
      nonce,
      trustedRoots: [trustAnchorFromPem(ca.rootPem, "development")],
    });
    expect(result.root.production).toBe(false);
    expect(result.moduleId).toBe(sim.moduleId);
    await expect(verifyAttestation(doc, { currentDate, expectedPcrs: { 0: pcr0 }, nonce })).rejects.toMatchObject({
      code: "ERR_ROOT_UNTRUSTED",
    });
  });
});
