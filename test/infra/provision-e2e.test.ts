import { EncryptCommand } from "@aws-sdk/client-kms";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { hashToken } from "../../enclave/auth.js";
import { attestedConfigHash, attestedPolicyHash } from "../../enclave/boot.js";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { startMockKms, type MockKms } from "../../infra/dev/local-kms.js";
import { enclaveCommand } from "../../infra/cli/enclave.js";
import { hostCommand } from "../../infra/cli/host.js";
import { run } from "../../infra/cli/main.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";
import { captureStream, cliContext, deferred, freePort, type Captured } from "../helpers/cli-process.js";

const cliContextHere = (stdout: PassThrough, stderr: PassThrough) => cliContext(stdout, stderr, dir, now);

/**
 * Boot provisioning end to end, with the real `egw host` and `egw enclave
 * --dev` commands running in this process (as subprocesses they would need
 * a fresh dist/ build; the code path is the same): the host starts its
 * relay and egress proxy, dials the enclave's provisioning endpoint until it
 * listens, hands it the trust policy and operations files, the KMS-sealed provider key and
 * (fake) instance-role credentials; the enclave releases the key from a
 * local KMS through the host's egress proxy with its simulated-NSM
 * attestation, and answers with its status.
 */
const PLAINTEXT = "sk-CANARYPROVISIONEDKEY7f3a";
const AWS_SECRET = "CANARYawsSecretAccessKey/0123456789abcdef";
const AWS_TOKEN = "CANARYsessionToken+FwoGZXIvYXdzEBYaDH";
const CREDS = { accessKeyId: "AKIACANARYPROVISION1", secretAccessKey: AWS_SECRET, sessionToken: AWS_TOKEN };
const TOKEN = "egw-provision-e2e-token";
/** The simulated NSM's PCR1: a fixed label, so a KMS policy on it does not move when source files change. */
const PCR1 = new Uint8Array(createHash("sha384").update("enclave-gateway/dev/pcr1 simulated kernel and bootstrap", "utf8").digest());
const now = () => new Date();

let dir: string;
let stateDir: string;
let anchor: TrustAnchor;
const closers: (() => Promise<unknown>)[] = [];
let sockets = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-prov-"));
  stateDir = path.join(dir, "state");
  // The enclave command loads this same CA from --state-dir.
  const ca = await loadOrCreateDevCa(stateDir, { now });
  anchor = trustAnchorFromPem(ca.rootPem, "development");
});
afterAll(async () => {
  for (const c of closers.reverse()) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A captured output stream with helpers to wait for a JSON line. */

interface Stack {
  kms: MockKms;
  upstream: MockOpenAI;
  trustBytes: Uint8Array;
  opsBytes: Uint8Array;
  sealedBytes: Uint8Array;
  host: { out: Captured; err: Captured; done: Promise<number>; stop: () => void };
  enclave: { out: Captured; err: Captured; done: Promise<number>; stop: () => void };
  regions: string[];
  gatewayPort: number;
}

/** Host first (it retries until the enclave listens), then the enclave, as systemd would start them. */
async function startStack(allowedPcrs: Record<number, Uint8Array>): Promise<Stack> {
  const kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs }, now });
  closers.push(() => kms.close());
  const upstream = await startMockOpenAI();
  closers.push(() => upstream.close());
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
  const sealedBytes = new Uint8Array(
    Buffer.from(JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: { OPENAI_API_KEY: Buffer.from(blob).toString("base64") } })),
  );
  const upstreamHost = new URL(upstream.url).host;
  const kmsHost = new URL(kms.endpoint).host;
  // Pretty-printed on purpose: the enclave must attest these bytes, not a re-serialisation.
  // No egress list anywhere: the host derives its allowlist from this policy, as the enclave does.
  const trustBytes = new TextEncoder().encode(
    `${JSON.stringify(
      {
        version: 1,
        providers: [{ name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" }],
        models: { gpt: { provider: "openai", model: "gpt-4o" } },
        secrets: { kmsKeyArn: kms.keyArn },
        identity: { mode: "ephemeral" },
      },
      null,
      2,
    )}\n`,
  );
  const opsBytes = new TextEncoder().encode(
    `${JSON.stringify({ version: 1, clients: [{ name: "t", tokenSha256: hashToken(TOKEN), models: ["*"] }], limits: { maxRetries: 0 } }, null, 2)}\n`,
  );
  const trustFile = path.join(dir, `trust-policy-${n}.json`);
  const opsFile = path.join(dir, `operations-${n}.json`);
  const sealedFile = path.join(dir, `sealed-${n}.json`);
  fs.writeFileSync(trustFile, trustBytes);
  fs.writeFileSync(opsFile, opsBytes);
  fs.writeFileSync(sealedFile, sealedBytes);
  const provision = `unix://${path.join(dir, `provision-${n}.sock`)}`;
  const gatewayPort = await freePort();
  const regions: string[] = [];

  const hostOut = captureStream();
  const hostErr = captureStream();
  const hostStop = deferred();
  const hostDone = hostCommand(
    [
      "--listen",
      "tcp://127.0.0.1:0",
      "--enclave",
      `tcp://127.0.0.1:${gatewayPort}`,
      "--egress-listen",
      "tcp://127.0.0.1:0",
      "--trust-policy",
      trustFile,
      "--operations",
      opsFile,
      "--allow-private",
      upstreamHost,
      "--allow-private",
      kmsHost,
      "--metrics-listen",
      "tcp://127.0.0.1:0",
      "--provision",
      provision,
      "--sealed-secrets",
      sealedFile,
      "--kms-endpoint",
      kms.endpoint,
      "--provision-timeout",
      "60",
    ],
    cliContextHere(hostOut.stream, hostErr.stream),
    {
      stop: hostStop.promise,
      fetchCredentials: async (region) => {
        regions.push(region);
        return CREDS;
      },
    },
  );
  const hostReady = await hostOut.waitFor((l) => l.ready === true, "the host's ready line");
  const egress = String(hostReady.egress).replace(/^tcp:/, "http:");

  const enclaveOut = captureStream();
  const enclaveErr = captureStream();
  const enclaveStop = deferred();
  const enclaveDone = enclaveCommand(
    ["--dev", "--state-dir", stateDir, "--provision-listen", provision, "--listen", `tcp://127.0.0.1:${gatewayPort}`, "--egress-proxy", egress, "--provision-timeout", "60"],
    cliContextHere(enclaveOut.stream, enclaveErr.stream),
    { stop: enclaveStop.promise },
  );
  const stack: Stack = {
    kms,
    upstream,
    trustBytes,
    opsBytes,
    sealedBytes,
    regions,
    gatewayPort,
    host: { out: hostOut, err: hostErr, done: hostDone, stop: hostStop.resolve },
    enclave: { out: enclaveOut, err: enclaveErr, done: enclaveDone, stop: enclaveStop.resolve },
  };
  closers.push(async () => {
    stack.enclave.stop();
    stack.host.stop();
    await Promise.allSettled([enclaveDone, hostDone]);
  });
  return stack;
}

function encodings(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString("base64"), b.toString("base64url"), b.toString("hex"), JSON.stringify(s)];
}

function expectNoCanary(stack: Stack): void {
  const logs = [stack.host.out.text(), stack.host.err.text(), stack.enclave.out.text(), stack.enclave.err.text()];
  for (const [i, log] of logs.entries()) {
    for (const canary of [AWS_SECRET, AWS_TOKEN, PLAINTEXT]) {
      for (const form of encodings(canary))
        expect(log.includes(form), `${["host stdout", "host stderr", "enclave stdout", "enclave stderr"][i]} holds ${canary.slice(0, 16)}…`).toBe(false);
    }
    expect(log).not.toContain("CANARY");
  }
}

describe("boot provisioning: egw host --provision → egw enclave --provision-listen", () => {
  let stack: Stack;
  let hostStatus: Record<string, unknown>;

  it("the host provisions a fresh enclave and gets ready with the config and policy hashes the enclave attests", async () => {
    stack = await startStack({ 1: PCR1 });
    hostStatus = await stack.host.out.waitFor((l) => l.provision !== undefined, "the host's provision status");
    expect(hostStatus).toMatchObject({ provision: "ready", port: stack.gatewayPort });
    const enclaveReady = await stack.enclave.out.waitFor((l) => l.ready === true, "the enclave's ready line");
    expect(enclaveReady.configSha256).toBe(hostStatus.configSha256);
    expect(enclaveReady.policySha256).toBe(hostStatus.policySha256);
    expect(enclaveReady.tlsSpkiSha256).toBe(hostStatus.tlsSpkiSha256);
    // The region came from the trust policy's key ARN; credentials were asked for once.
    expect(stack.regions).toEqual([stack.kms.region]);
    // Exactly the bytes handed in: the attested hashes cover the pretty-printed files and the sealed file.
    expect(hostStatus.configSha256).toBe(Buffer.from(attestedConfigHash(stack.trustBytes, stack.opsBytes, stack.sealedBytes)).toString("hex"));
    expect(hostStatus.policySha256).toBe(Buffer.from(attestedPolicyHash(stack.trustBytes)).toString("hex"));

    // What a client sees through the host relay: a document with that config hash, bound to that TLS key.
    const relay = String((stack.host.out.lines().find((l) => l.ready === true) ?? {}).listen).replace(/^tcp:/, "https:");
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    closers.push(() => dispatcher.close());
    const res = await request(`${relay}/v1/attestation?nonce=${"ab".repeat(16)}`, { dispatcher });
    expect(res.statusCode).toBe(200);
    const doc = new Uint8Array(await res.body.arrayBuffer());
    const verified = await verifyAttestation(doc, { currentDate: now(), expectedPcrs: { 1: PCR1 }, trustedRoots: [anchor], nonce: new Uint8Array(16).fill(0xab) });
    const binding = decodeBinding(verified.document.userData);
    expect(Buffer.from(binding.configSha256).toString("hex")).toBe(hostStatus.configSha256);
    expect(Buffer.from(binding.policySha256!).toString("hex")).toBe(hostStatus.policySha256);
    expect(Buffer.from(binding.tlsSpkiSha256).toString("hex")).toBe(hostStatus.tlsSpkiSha256);
  }, 90_000);

  it("the sealed key was released to the enclave and used upstream; the host signed nothing itself", async () => {
    const relay = String((stack.host.out.lines().find((l) => l.ready === true) ?? {}).listen).replace(/^tcp:/, "https:");
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    closers.push(() => dispatcher.close());
    const res = await request(`${relay}/v1/chat/completions`, {
      method: "POST",
      dispatcher,
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    // Controls for the canary test below: the plaintext and the credentials really went through.
    expect(stack.upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${PLAINTEXT}`);
    const decrypt = stack.kms.requests.find((r) => r.target === "TrentService.Decrypt")!;
    expect(decrypt.authorization).toContain(`Credential=${CREDS.accessKeyId}/`);
    expect(decrypt.body.Recipient).toBeDefined();
  }, 30_000);

  it('exposes egw_enclave_boot_status{state="ready"} on the host\'s metrics endpoint', async () => {
    const metrics = String((stack.host.out.lines().find((l) => l.ready === true) ?? {}).metrics).replace(/^tcp:/, "http:");
    const text = await (await fetch(`${metrics}/metrics`)).text();
    expect(text).toContain('egw_enclave_boot_status{state="ready"} 1');
    expect(text).toContain('egw_enclave_boot_status{state="failed"} 0');
  });

  it("neither side logs the AWS secret key, the session token or the released plaintext", async () => {
    // Control: both sides did log the provisioning, by hash and code.
    expect(stack.enclave.err.text()).toContain('"event":"provision.received"');
    expect(stack.enclave.err.text()).toContain('"event":"secrets.released"');
    expect(stack.host.err.text()).toContain(`"configSha256":"${String(hostStatus.configSha256)}"`);
    expectNoCanary(stack);
  });

  it("both stop cleanly", async () => {
    stack.enclave.stop();
    stack.host.stop();
    expect(await stack.enclave.done).toBe(0);
    expect(await stack.host.done).toBe(0);
  }, 30_000);

  it("KMS refusing the release (wrong PCR policy): the host gets ERR_KMS_RELEASE_DENIED and both exit 1; the enclave never serves", async () => {
    const s = await startStack({ 0: new Uint8Array(48).fill(0x99) });
    expect(await s.enclave.done).toBe(1);
    expect(await s.host.done).toBe(1);
    const status = s.host.out.lines().find((l) => l.provision !== undefined);
    expect(status).toMatchObject({ provision: "failed", code: "ERR_KMS_RELEASE_DENIED" });
    expect(s.host.err.text()).toContain("egw host: enclave boot failed: ERR_KMS_RELEASE_DENIED");
    const failed = s.enclave.err.lines().find((l) => l.event === "provision.failed");
    expect(failed).toMatchObject({ level: "error", code: "ERR_KMS_RELEASE_DENIED" });
    expect(s.enclave.out.lines().some((l) => l.ready === true)).toBe(false);
    // Nothing listens where the gateway would have.
    await expect(new Promise((resolve, reject) => net.connect(s.gatewayPort, "127.0.0.1").once("connect", resolve).once("error", reject))).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
    expectNoCanary(s);
  }, 90_000);
});

describe("boot provisioning: failures on one side", () => {
  it("the enclave gives up on a host that never comes (ERR_PROVISION_TIMEOUT), exit 1", async () => {
    const out = captureStream();
    const err = captureStream();
    const started = Date.now();
    const code = await enclaveCommand(
      ["--dev", "--state-dir", stateDir, "--provision-listen", "tcp://127.0.0.1:0", "--provision-timeout", "1", "--listen", "tcp://127.0.0.1:0"],
      cliContextHere(out.stream, err.stream),
    );
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(out.lines()[0]).toMatchObject({ provision: "listening" });
    expect(err.lines().find((l) => l.event === "provision.failed")).toMatchObject({ code: "ERR_PROVISION_TIMEOUT" });
  }, 30_000);

  it("the host gives up when no enclave listens before its deadline (ERR_PROVISION_DEADLINE), exit 1", async () => {
    const trust = path.join(dir, "plain-trust.json");
    const ops = path.join(dir, "plain-ops.json");
    fs.writeFileSync(
      trust,
      JSON.stringify({ version: 1, providers: [{ name: "local", kind: "local" }], models: { local: { provider: "local", model: "local" } }, identity: { mode: "ephemeral" } }),
    );
    fs.writeFileSync(ops, JSON.stringify({ version: 1, clients: [] }));
    const out = captureStream();
    const err = captureStream();
    const started = Date.now();
    const code = await hostCommand(
      [
        "--listen",
        "tcp://127.0.0.1:0",
        "--enclave",
        "tcp://127.0.0.1:9",
        "--trust-policy",
        trust,
        "--operations",
        ops,
        "--provision",
        `unix://${path.join(dir, "nobody.sock")}`,
        "--provision-timeout",
        "1",
      ],
      cliContextHere(out.stream, err.stream),
      { stop: new Promise(() => {}), fetchCredentials: () => Promise.reject(new Error("not needed without sealed secrets")) },
    );
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(out.lines().find((l) => l.provision !== undefined)).toMatchObject({ provision: "failed", code: "ERR_PROVISION_DEADLINE" });
  }, 30_000);

  /** Starts the real enclave command and returns where it listens for provisioning. */
  async function waitingEnclave() {
    const out = captureStream();
    const err = captureStream();
    const done = enclaveCommand(
      ["--dev", "--state-dir", stateDir, "--provision-listen", "tcp://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"],
      cliContextHere(out.stream, err.stream),
    );
    const listening = await out.waitFor((l) => l.provision === "listening", "the provisioning listener");
    const port = Number(/:(\d+)$/.exec(String(listening.endpoint))![1]);
    return { out, err, done, port };
  }

  /** Sends raw bytes and returns the enclave's status frame, parsed. */
  async function rawExchange(port: number, bytes: Uint8Array): Promise<Record<string, unknown>> {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.once("close", () => resolve());
      socket.once("error", () => resolve());
      socket.write(bytes);
    });
    const raw = Buffer.concat(chunks);
    return JSON.parse(raw.subarray(4, 4 + raw.readUInt32BE(0)).toString()) as Record<string, unknown>;
  }

  it("a malformed bundle is answered with ERR_PROVISION_MALFORMED and the enclave exits 1 (fail closed, no retry)", async () => {
    const e = await waitingEnclave();
    const body = Buffer.from(JSON.stringify({ version: 2, trustPolicy: "e30=", operations: "e30=", config: "e30=" }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
    expect(await rawExchange(e.port, frame)).toMatchObject({ status: "failed", code: "ERR_PROVISION_MALFORMED" });
    expect(await e.done).toBe(1);
    expect(e.out.lines().some((l) => l.ready === true)).toBe(false);
  }, 30_000);

  it("an oversized bundle is answered with ERR_PROVISION_TOO_LARGE from its length prefix, and the enclave exits 1", async () => {
    const e = await waitingEnclave();
    expect(await rawExchange(e.port, new Uint8Array([0x10, 0, 0, 0]))).toMatchObject({ status: "failed", code: "ERR_PROVISION_TOO_LARGE" });
    expect(await e.done).toBe(1);
  }, 30_000);

  it("a trust policy the enclave refuses comes back as ERR_TRUST_POLICY_INVALID; operations it refuses as ERR_CONFIG", async () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const goodTrust = JSON.stringify({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } });
    const goodOps = JSON.stringify({ version: 1, clients: [] });
    for (const [trust, ops, code] of [
      ['{"version":1,"providers":"no"}', goodOps, "ERR_TRUST_POLICY_INVALID"],
      [goodTrust, '{"version":1,"clients":[],"egressAllowlist":["evil.example:443"]}', "ERR_CONFIG"],
    ] as const) {
      const e = await waitingEnclave();
      const body = Buffer.from(JSON.stringify({ version: 2, trustPolicy: b64(trust), operations: b64(ops) }));
      const length = Buffer.alloc(4);
      length.writeUInt32BE(body.length);
      expect(await rawExchange(e.port, Buffer.concat([length, body]))).toMatchObject({ status: "failed", code });
      expect(await e.done).toBe(1);
    }
  }, 60_000);

  it("usage errors: provisioning and files are mutually exclusive on the enclave; host flags need --provision", async () => {
    const ctx = () => cliContextHere(new PassThrough(), captureStream().stream);
    expect(await run(["enclave", "--dev", "--provision-listen", "tcp://127.0.0.1:0", "--trust-policy", "x.json"], ctx())).toBe(2);
    expect(await run(["enclave", "--dev", "--provision-listen", "tcp://127.0.0.1:0", "--operations", "x.json"], ctx())).toBe(2);
    expect(await run(["enclave", "--dev", "--provision-listen", "tcp://127.0.0.1:0", "--sealed-secrets", "s.json"], ctx())).toBe(2);
    expect(await run(["enclave", "--dev", "--provision-listen", "tcp://127.0.0.1:0"], { ...ctx(), env: { EGW_TRUST_POLICY: "x.json" } })).toBe(2);
    expect(await run(["enclave", "--dev", "--provision-listen", "tcp://127.0.0.1:0", "--provision-timeout", "0"], ctx())).toBe(2);
    expect(await run(["enclave", "--dev", "--trust-policy", "x.json", "--operations", "o.json", "--provision-timeout", "5"], ctx())).toBe(2);
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--sealed-secrets", "s.json"], ctx())).toBe(2);
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--provision", "vsock://16:9000"], ctx())).toBe(2);
    // Provisioning sends both files: one alone is a usage error.
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--provision", "vsock://16:9000", "--trust-policy", "t.json"], ctx())).toBe(2);
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--provision", "vsock://16:9000", "--operations", "o.json"], ctx())).toBe(2);
    expect(
      await run(
        [
          "host",
          "--enclave",
          "tcp://127.0.0.1:9",
          "--provision",
          "vsock://16:9000",
          "--trust-policy",
          "t.json",
          "--operations",
          "o.json",
          "--kms-endpoint",
          "https://kms.example.com",
        ],
        ctx(),
      ),
    ).toBe(2);
    // The old single file is gone.
    expect(await run(["host", "--enclave", "tcp://127.0.0.1:9", "--config", "c.json"], ctx())).toBe(2);
  });
});
