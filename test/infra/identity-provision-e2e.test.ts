import { EncryptCommand } from "@aws-sdk/client-kms";
import { createHash, createPrivateKey } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PassThrough } from "node:stream";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { loadOrCreateDevCa, type DevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { hashToken } from "../../enclave/auth.js";
import { signingSpki, type IdentityKeys } from "../../enclave/secrets/identity-blob.js";
import { openSealedIdentity } from "../../enclave/secrets/identity-source.js";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { parseSealedFile } from "../../host/transport/codec/sealed-file.js";
import { startMockKms, type MockKms } from "../../infra/dev/local-kms.js";
import { enclaveCommand } from "../../infra/cli/enclave.js";
import { hostCommand } from "../../infra/cli/host.js";
import { run } from "../../infra/cli/main.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";
import { captureStream, cliContext, deferred, freePort, type Captured } from "../helpers/cli-process.js";

const cliContextHere = (stdout: PassThrough, stderr: PassThrough) => cliContext(stdout, stderr, dir, now);

/**
 * Making and rotating the shared identity over the boot-provisioning
 * channel, end to end: the real `egw host --generate-identity` and `egw
 * enclave --dev --provision-listen` commands in this process (as in
 * provision-e2e.test.ts), the local KMS with a PCR policy, the simulated
 * NSM. The enclave makes the keys, seals them under a GenerateDataKey +
 * Recipient data key through the host's egress proxy, and answers with the
 * blob and public hashes; the host writes the new sealed-secrets file.
 * Replicas booted from that file then present the same attested identity.
 */
const PLAINTEXT = "sk-CANARYIDENTITYPROVKEY91c2";
const AWS_SECRET = "CANARYidentityAwsSecretKey/0123456789abcd";
const AWS_TOKEN = "CANARYidentitySessionToken+FwoGZXIvYXdzEBYaDH";
const CREDS = { accessKeyId: "AKIACANARYIDENTITY01", secretAccessKey: AWS_SECRET, sessionToken: AWS_TOKEN };
const TOKEN = "egw-identity-e2e-token";
/** The simulated NSM's PCR1: a fixed label, so the policy does not move when source files change. */
const PCR1 = new Uint8Array(createHash("sha384").update("enclave-gateway/dev/pcr1 simulated kernel and bootstrap", "utf8").digest());
const DAY = 24 * 3600_000;
/** Shifted to make an identity expire; KMS, the simulated NSM and the enclave share it. */
let offsetMs = 0;
const now = () => new Date(Date.now() + offsetMs);

let dir: string;
let stateDir: string;
let ca: DevCa;
let anchor: TrustAnchor;
let upstream: MockOpenAI;
const closers: (() => Promise<unknown>)[] = [];
/** Every output stream of every command run here, for the canary test. */
const outputs: { name: string; text: () => string }[] = [];
let sockets = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-idprov-"));
  stateDir = path.join(dir, "state");
  // The enclave command loads this same CA from --state-dir.
  ca = await loadOrCreateDevCa(stateDir, { now });
  anchor = trustAnchorFromPem(ca.rootPem, "development");
  upstream = await startMockOpenAI();
  closers.push(() => upstream.close());
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

function capture(name: string) {
  const captured = captureStream();
  outputs.push({ name, text: captured.text });
  return captured;
}

interface World {
  kms: MockKms;
  trustFile: string;
  opsFile: string;
  /** The same policy with an ephemeral identity: no shared identity may be made under it. */
  ephemeralTrustFile: string;
  /** A sealed-secrets file with one provider key and no identity, compact JSON. */
  sealedFile: string;
}

async function world(allowedPcrs: Record<number, Uint8Array>): Promise<World> {
  const kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs }, now });
  closers.push(() => kms.close());
  const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  const blob = (
    await operator.send(
      new EncryptCommand({
        KeyId: kms.keyArn,
        Plaintext: Buffer.from(PLAINTEXT),
        // Bound to the one provider that uses it (the mock upstream is http: development).
        EncryptionContext: { ...providerSecretContext("OPENAI_API_KEY", new URL(upstream.url).origin, { dev: true }) },
      }),
    )
  ).CiphertextBlob!;
  operator.destroy();
  const n = ++sockets;
  const trustFile = path.join(dir, `trust-policy-${n}.json`);
  const ephemeralTrustFile = path.join(dir, `trust-policy-ephemeral-${n}.json`);
  const opsFile = path.join(dir, `operations-${n}.json`);
  const sealedFile = path.join(dir, `sealed-${n}.json`);
  const policy = (identity: object) =>
    JSON.stringify({
      version: 1,
      providers: [{ name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" }],
      models: { gpt: { provider: "openai", model: "gpt-4o" } },
      secrets: { kmsKeyArn: kms.keyArn },
      identity,
    });
  // The identity is sealed under the key the trust policy names, and only that one.
  fs.writeFileSync(trustFile, policy({ mode: "sealed", kmsKeyArn: kms.keyArn }));
  fs.writeFileSync(ephemeralTrustFile, policy({ mode: "ephemeral" }));
  fs.writeFileSync(opsFile, JSON.stringify({ version: 1, clients: [{ name: "t", tokenSha256: hashToken(TOKEN), models: ["*"] }], limits: { maxRetries: 0 } }));
  fs.writeFileSync(sealedFile, JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: { OPENAI_API_KEY: Buffer.from(blob).toString("base64") } }));
  return { kms, trustFile, opsFile, ephemeralTrustFile, sealedFile };
}

interface Run {
  host: { out: Captured; err: Captured; code: number };
  enclave: { out: Captured; err: Captured; code: number };
}

/** `egw host --generate-identity …` first (its egress proxy must be up), then the enclave it provisions; both run to their exit. */
async function generate(w: World, input: string, out: string, extra: string[]): Promise<Run> {
  const provision = `unix://${path.join(dir, `provision-${++sockets}.sock`)}`;
  const hostOut = capture("host stdout");
  const hostErr = capture("host stderr");
  const hostDone = hostCommand(
    [
      "--generate-identity",
      "--provision",
      provision,
      "--trust-policy",
      w.trustFile,
      "--operations",
      w.opsFile,
      "--sealed-secrets",
      input,
      "--kms-endpoint",
      w.kms.endpoint,
      "--egress-listen",
      "tcp://127.0.0.1:0",
      "--allow-private",
      new URL(w.kms.endpoint).host,
      "--identity-out",
      out,
      "--provision-timeout",
      "60",
      ...extra,
    ],
    cliContextHere(hostOut.stream, hostErr.stream),
    { fetchCredentials: async () => CREDS },
  );
  const listening = await Promise.race([
    hostErr.waitFor((l) => l.event === "host.egress_listening", "the host's egress proxy"),
    hostDone.then((code) => {
      throw new Error(`egw host exited ${code} before listening:\n${hostErr.text()}`);
    }),
  ]);
  const egress = String(listening.endpoint).replace(/^tcp:/, "http:");
  const enclaveOut = capture("enclave stdout");
  const enclaveErr = capture("enclave stderr");
  const enclaveDone = enclaveCommand(
    ["--dev", "--state-dir", stateDir, "--provision-listen", provision, "--listen", "tcp://127.0.0.1:0", "--egress-proxy", egress, "--provision-timeout", "60"],
    cliContextHere(enclaveOut.stream, enclaveErr.stream),
    { stop: new Promise(() => {}) },
  );
  const [hostCode, enclaveCode] = await Promise.all([hostDone, enclaveDone]);
  return { host: { out: hostOut, err: hostErr, code: hostCode }, enclave: { out: enclaveOut, err: enclaveErr, code: enclaveCode } };
}

/** Boots a serving replica from a sealed-secrets file over the provisioning channel and returns its attested binding. */
async function bootReplica(w: World, sealedFile: string) {
  const provision = `unix://${path.join(dir, `provision-${++sockets}.sock`)}`;
  const gatewayPort = await freePort();
  const hostOut = capture("replica host stdout");
  const hostErr = capture("replica host stderr");
  const hostStop = deferred();
  const kmsHost = new URL(w.kms.endpoint).host;
  const hostDone = hostCommand(
    [
      "--listen",
      "tcp://127.0.0.1:0",
      "--enclave",
      `tcp://127.0.0.1:${gatewayPort}`,
      "--egress-listen",
      "tcp://127.0.0.1:0",
      "--trust-policy",
      w.trustFile,
      "--operations",
      w.opsFile,
      "--allow-private",
      new URL(upstream.url).host,
      "--allow-private",
      kmsHost,
      "--provision",
      provision,
      "--sealed-secrets",
      sealedFile,
      "--kms-endpoint",
      w.kms.endpoint,
      "--provision-timeout",
      "60",
    ],
    cliContextHere(hostOut.stream, hostErr.stream),
    { stop: hostStop.promise, fetchCredentials: async () => CREDS },
  );
  const ready = await hostOut.waitFor((l) => l.ready === true, "the replica host's ready line");
  const enclaveOut = capture("replica enclave stdout");
  const enclaveErr = capture("replica enclave stderr");
  const enclaveStop = deferred();
  const enclaveDone = enclaveCommand(
    [
      "--dev",
      "--state-dir",
      stateDir,
      "--provision-listen",
      provision,
      "--listen",
      `tcp://127.0.0.1:${gatewayPort}`,
      "--egress-proxy",
      String(ready.egress).replace(/^tcp:/, "http:"),
      "--provision-timeout",
      "60",
    ],
    cliContextHere(enclaveOut.stream, enclaveErr.stream),
    { stop: enclaveStop.promise },
  );
  const stop = async () => {
    enclaveStop.resolve();
    hostStop.resolve();
    return Promise.all([enclaveDone, hostDone]);
  };
  closers.push(stop);
  const status = await hostOut.waitFor((l) => l.provision !== undefined, "the replica's provision status");
  expect(status, hostErr.text() + enclaveErr.text()).toMatchObject({ provision: "ready" });
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  closers.push(() => dispatcher.close());
  const res = await request(`https://127.0.0.1:${gatewayPort}/v1/attestation?nonce=${"cd".repeat(16)}`, { dispatcher });
  expect(res.statusCode).toBe(200);
  const doc = new Uint8Array(await res.body.arrayBuffer());
  const verified = await verifyAttestation(doc, { currentDate: now(), expectedPcrs: { 1: PCR1 }, trustedRoots: [anchor], nonce: new Uint8Array(16).fill(0xcd) });
  return { status, binding: decodeBinding(verified.document.userData), stop };
}

/** Opens a written identity as an enclave of the measured image would (test only: this is what must never be printed). */
async function openOut(w: World, file: string): Promise<IdentityKeys> {
  const sealed = parseSealedFile(new Uint8Array(fs.readFileSync(file)));
  const kmsClient = createKmsClient({ region: w.kms.region, endpoint: w.kms.endpoint, credentials: w.kms.credentials });
  try {
    return await openSealedIdentity({
      blob: sealed.identity!,
      attester: new SimulatedNsm({ ca, now }),
      kmsClient,
      keyArn: sealed.keyId,
      dev: true,
      trustedRoots: [anchor],
      now,
    });
  } finally {
    kmsClient.destroy();
  }
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** The one stdout line of `egw host --generate-identity`. */
function summary(r: Run): Record<string, unknown> & { receiptKeys: { spkiSha256: string; notBefore: string; notAfter: string }[]; tlsSpkiSha256: string } {
  const lines = r.host.out.text().trim().split("\n");
  expect(lines, r.host.err.text()).toHaveLength(1);
  return JSON.parse(lines[0]!) as ReturnType<typeof summary>;
}

const opened: IdentityKeys[] = [];

describe("egw host --generate-identity → egw enclave --provision-listen", { timeout: 120_000 }, () => {
  let good: World;
  let first: string;
  let firstSummary: ReturnType<typeof summary>;
  let rotated: string;

  it("generates a first identity inside the enclave; the out file parses and keeps the provider keys", async () => {
    good = await world({ 1: PCR1 });
    first = path.join(dir, "with-identity.json");
    const before = good.kms.requests.length;
    const r = await generate(good, good.sealedFile, first, ["--validity-days", "30"]);
    expect(r.host.code, r.host.err.text() + r.enclave.err.text()).toBe(0);
    expect(r.enclave.code).toBe(0);
    firstSummary = summary(r);
    expect(firstSummary).toMatchObject({ provision: "identity", rotated: false, out: first });
    expect(firstSummary.receiptKeys).toHaveLength(1);
    const window = firstSummary.receiptKeys[0]!;
    expect(Date.parse(window.notAfter) - Date.parse(window.notBefore)).toBe(30 * DAY);
    // The enclave never served: it printed its public summary and exited.
    expect(r.enclave.out.lines().some((l) => l.ready === true)).toBe(false);
    expect(r.enclave.out.lines().at(-1)).toMatchObject({ identity: "generated", tlsSpkiSha256: firstSummary.tlsSpkiSha256 });
    // KMS saw GenerateDataKey with a Recipient (and a Decrypt: the enclave opens the new blob once), through the egress proxy, with the host's credentials.
    const calls = good.kms.requests.slice(before);
    expect(calls.map((c) => c.target)).toEqual(["TrentService.GenerateDataKey", "TrentService.Decrypt"]);
    expect(calls[0]!.body.Recipient).toBeDefined();
    expect(calls[0]!.authorization).toContain(`Credential=${CREDS.accessKeyId}/`);

    const input = parseSealedFile(new Uint8Array(fs.readFileSync(good.sealedFile)));
    const bytes = new Uint8Array(fs.readFileSync(first));
    const out = parseSealedFile(bytes);
    expect(out.keyId).toBe(input.keyId);
    expect(out.region).toBe(input.region);
    expect([...out.secrets.keys()]).toEqual([...input.secrets.keys()]);
    expect(hex(out.secrets.get("OPENAI_API_KEY")!)).toBe(hex(input.secrets.get("OPENAI_API_KEY")!));
    // 2-space JSON, fields in order, identity last.
    expect(Object.keys(JSON.parse(Buffer.from(bytes).toString()) as object)).toEqual(["version", "keyId", "region", "secrets", "identity"]);
    expect(Buffer.from(bytes).toString()).toMatch(/^\{\n {2}"version": 1,\n/);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);

    const keys = await openOut(good, first);
    opened.push(keys);
    expect(keys.retired).toEqual([]);
    expect(sha256(signingSpki(keys.signing.pkcs8))).toBe(window.spkiSha256);
  });

  it("two replicas booted from the out file over provisioning attest the same TLS SPKI and receipt key, as the summary said", async () => {
    const a = await bootReplica(good, first);
    const b = await bootReplica(good, first);
    for (const r of [a, b]) {
      expect(r.status.tlsSpkiSha256).toBe(firstSummary.tlsSpkiSha256);
      expect(hex(r.binding.tlsSpkiSha256)).toBe(firstSummary.tlsSpkiSha256);
      expect(r.binding.receiptKeys!.map((k) => sha256(k.spki))).toEqual([firstSummary.receiptKeys[0]!.spkiSha256]);
      expect(new Date(r.binding.receiptKeys![0]!.notAfter).toISOString()).toBe(firstSummary.receiptKeys[0]!.notAfter);
    }
    await Promise.all([a.stop(), b.stop()]);
  });

  it("rotates with an overlap: one retired key, the TLS key kept; --rotate-tls (in place) changes it", async () => {
    rotated = path.join(dir, "rotated.json");
    const r = await generate(good, first, rotated, ["--validity-days", "60", "--overlap-days", "1"]);
    expect(r.host.code, r.host.err.text() + r.enclave.err.text()).toBe(0);
    const s = summary(r);
    expect(s).toMatchObject({ provision: "identity", rotated: true, tlsSpkiSha256: firstSummary.tlsSpkiSha256 });
    expect(s.receiptKeys.map((k) => k.spkiSha256)).toEqual([expect.not.stringMatching(firstSummary.receiptKeys[0]!.spkiSha256), firstSummary.receiptKeys[0]!.spkiSha256]);
    // The old key's window now ends one day after the rotation (sooner than its own 30 days).
    const retiredEnd = Date.parse(s.receiptKeys[1]!.notAfter);
    expect(Math.abs(retiredEnd - (Date.now() + DAY))).toBeLessThan(60_000);
    const keys = await openOut(good, rotated);
    opened.push(keys);
    expect(keys.retired).toHaveLength(1);
    expect(sha256(keys.retired[0]!.spki)).toBe(firstSummary.receiptKeys[0]!.spkiSha256);
    expect(hex(keys.tlsPkcs8)).toBe(hex(opened[0]!.tlsPkcs8));

    // Emergency: overlap 0 and a new TLS key, written over its own input.
    const inPlace = path.join(dir, "in-place.json");
    fs.copyFileSync(rotated, inPlace);
    const e = await generate(good, inPlace, inPlace, ["--validity-days", "30", "--overlap-days", "0", "--rotate-tls"]);
    expect(e.host.code, e.host.err.text() + e.enclave.err.text()).toBe(0);
    const es = summary(e);
    expect(es.tlsSpkiSha256).not.toBe(firstSummary.tlsSpkiSha256);
    expect(es.receiptKeys).toHaveLength(3);
    const emergency = await openOut(good, inPlace);
    opened.push(emergency);
    expect(emergency.retired).toHaveLength(2);
    expect(emergency.retired[0]!.notAfter).toBeLessThanOrEqual(Date.now());
    expect(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("usage errors exit 2 before anything is sent: overlap missing for a rotation, overlap or --rotate-tls for a first identity, missing or stray flags", async () => {
    const ctx = () => cliContextHere(capture("usage stdout").stream, capture("usage stderr").stream);
    const base = [
      "host",
      "--generate-identity",
      "--provision",
      "unix:///nonexistent.sock",
      "--trust-policy",
      good.trustFile,
      "--operations",
      good.opsFile,
      "--egress-listen",
      "tcp://127.0.0.1:0",
    ];
    const out = path.join(dir, "never.json");
    expect(await run([...base, "--sealed-secrets", first, "--validity-days", "30", "--identity-out", out], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", "30", "--overlap-days", "1", "--identity-out", out], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", "30", "--rotate-tls", "--identity-out", out], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", "30"], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--identity-out", out], ctx())).toBe(2);
    for (const days of ["0", "1826", "1.5", "-1", "030", "x"]) {
      expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", days, "--identity-out", out], ctx())).toBe(2);
    }
    expect(await run([...base, "--sealed-secrets", first, "--validity-days", "30", "--overlap-days", "1826", "--identity-out", out], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", "30", "--identity-out", path.join(dir, "no-such-dir", "x.json")], ctx())).toBe(2);
    expect(await run([...base, "--sealed-secrets", good.sealedFile, "--validity-days", "30", "--identity-out", out, "--enclave", "tcp://127.0.0.1:9"], ctx())).toBe(2);
    expect(
      await run(
        [
          "host",
          "--generate-identity",
          "--trust-policy",
          good.trustFile,
          "--operations",
          good.opsFile,
          "--sealed-secrets",
          good.sealedFile,
          "--validity-days",
          "30",
          "--identity-out",
          out,
          "--egress-listen",
          "tcp://127.0.0.1:0",
        ],
        ctx(),
      ),
    ).toBe(2);
    // Both files are sent: either one missing is a usage error.
    expect(
      await run(
        [
          "host",
          "--generate-identity",
          "--provision",
          "unix:///nonexistent.sock",
          "--trust-policy",
          good.trustFile,
          "--egress-listen",
          "tcp://127.0.0.1:0",
          "--sealed-secrets",
          good.sealedFile,
          "--validity-days",
          "30",
          "--identity-out",
          out,
        ],
        ctx(),
      ),
    ).toBe(2);
    expect(
      await run(
        [
          "host",
          "--generate-identity",
          "--provision",
          "unix:///nonexistent.sock",
          "--operations",
          good.opsFile,
          "--egress-listen",
          "tcp://127.0.0.1:0",
          "--sealed-secrets",
          good.sealedFile,
          "--validity-days",
          "30",
          "--identity-out",
          out,
        ],
        ctx(),
      ),
    ).toBe(2);
    // A trust policy whose identity is ephemeral allows no shared identity (the enclave refuses too: ERR_IDENTITY_POLICY).
    const ephemeralErr = capture("ephemeral stderr");
    expect(
      await run(
        [
          "host",
          "--generate-identity",
          "--provision",
          "unix:///nonexistent.sock",
          "--trust-policy",
          good.ephemeralTrustFile,
          "--operations",
          good.opsFile,
          "--egress-listen",
          "tcp://127.0.0.1:0",
          "--sealed-secrets",
          good.sealedFile,
          "--validity-days",
          "30",
          "--identity-out",
          out,
        ],
        cliContextHere(capture("ephemeral stdout").stream, ephemeralErr.stream),
      ),
    ).toBe(2);
    expect(ephemeralErr.text()).toContain("its identity is ephemeral");
    // Identity flags without --generate-identity.
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--overlap-days", "1"], ctx())).toBe(2);
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--identity-out", out], ctx())).toBe(2);
    expect(fs.existsSync(out)).toBe(false);
  });

  it("rotating an expired identity is refused with ERR_IDENTITY_EXPIRED; nothing is written", async () => {
    const short = path.join(dir, "short.json");
    const r = await generate(good, good.sealedFile, short, ["--validity-days", "1"]);
    expect(r.host.code, r.host.err.text() + r.enclave.err.text()).toBe(0);
    offsetMs = 2 * DAY;
    try {
      const out = path.join(dir, "after-expiry.json");
      const e = await generate(good, short, out, ["--validity-days", "30", "--overlap-days", "1"]);
      expect(e.host.code).toBe(1);
      expect(e.enclave.code).toBe(1);
      expect(summary(e)).toMatchObject({ provision: "failed", code: "ERR_IDENTITY_EXPIRED" });
      expect(e.host.err.text()).toContain("egw host: identity generation failed: ERR_IDENTITY_EXPIRED");
      expect(fs.existsSync(out)).toBe(false);
    } finally {
      offsetMs = 0;
    }
  });

  it("KMS refusing the measurement (wrong PCR policy): ERR_KMS_RELEASE_DENIED, both exit 1, no out file", async () => {
    const bad = await world({ 0: new Uint8Array(48).fill(0x99) });
    const out = path.join(dir, "denied.json");
    const r = await generate(bad, bad.sealedFile, out, ["--validity-days", "30"]);
    expect(r.host.code).toBe(1);
    expect(r.enclave.code).toBe(1);
    expect(summary(r)).toMatchObject({ provision: "failed", code: "ERR_KMS_RELEASE_DENIED" });
    expect(r.enclave.err.lines().find((l) => l.event === "provision.failed")).toMatchObject({ level: "error", code: "ERR_KMS_RELEASE_DENIED" });
    expect(r.enclave.out.lines().some((l) => l.identity !== undefined || l.ready === true)).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("no identity private key, AWS secret key, session token or provider key appears in any output of either side", () => {
    expect(opened.length).toBeGreaterThanOrEqual(3);
    const canaries: { what: string; forms: string[] }[] = [];
    for (const [i, keys] of opened.entries()) {
      for (const [what, pkcs8] of [
        ["tls", keys.tlsPkcs8],
        ["signing", keys.signing.pkcs8],
      ] as const) {
        const d = Buffer.from(createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }).export({ format: "jwk" }).d!, "base64url");
        const der = Buffer.from(pkcs8);
        canaries.push({
          what: `identity ${i} ${what} key`,
          forms: [der.toString("base64"), der.toString("hex"), d.toString("hex"), d.toString("base64"), d.toString("base64url")],
        });
      }
    }
    for (const secret of [AWS_SECRET, AWS_TOKEN, PLAINTEXT]) {
      const b = Buffer.from(secret);
      canaries.push({ what: secret.slice(0, 16), forms: [secret, b.toString("base64"), b.toString("hex"), JSON.stringify(secret)] });
    }
    // Control: the outputs are real, and the public summary is in them.
    const all = outputs.map((o) => o.text()).join("\n");
    expect(all).toContain(firstSummary.tlsSpkiSha256);
    expect(all).toContain('"event":"identity.generated"');
    for (const o of outputs) {
      const text = o.text();
      for (const c of canaries) for (const form of c.forms) expect(text.includes(form), `${o.name} holds the ${c.what}`).toBe(false);
      expect(text, o.name).not.toContain("CANARY");
    }
  });
});
