import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { memoryLogger } from "../../../enclave/observability/log.js";
import {
  DEFAULT_PROVISION_LIMITS,
  encodeFrame,
  provisionedBoot,
  type ProvisionBundle,
  type ProvisionLimits,
  type ProvisionListen,
  type ProvisionOutcome,
} from "../../../enclave/provision/index.js";
import { decodeStatus, encodeBundle, type BootStatus } from "../../../host/provision/index.js";

/**
 * The enclave half of boot provisioning over real loopback sockets (the
 * same code runs on vsock on Nitro): one connection, one bounded bundle,
 * boot, one status; every failure logged by code, answered when possible,
 * and thrown so the process exits.
 */
const SECRET = "CANARYsecretAccessKey0123456789";
const creds = { accessKeyId: "AKIACANARY0000000001", secretAccessKey: SECRET };
const CONFIG = new TextEncoder().encode('{"version":1}');
const SEALED = new TextEncoder().encode('{"region":"us-east-1"}');
const READY = { configSha256: "a".repeat(64), policySha256: "c".repeat(64), tlsSpkiSha256: "b".repeat(64), port: 8443 };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A ProvisionListen on 127.0.0.1:0 that tells the test its port. */
function tcpListen(): { listen: ProvisionListen; port: Promise<number>; closed: () => boolean } {
  let resolvePort!: (p: number) => void;
  const port = new Promise<number>((r) => (resolvePort = r));
  let isClosed = false;
  const listen: ProvisionListen = (onConnection) =>
    new Promise((resolve) => {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onConnection);
      server.listen(0, "127.0.0.1", () => {
        resolvePort((server.address() as net.AddressInfo).port);
        resolve({
          close: async () => {
            isClosed = true;
            server.close();
          },
        });
      });
      cleanups.push(() => server.close());
    });
  return { listen, port, closed: () => isClosed };
}

/** Connects, writes `bytes` (then optionally stalls), and reads everything the enclave sends until it closes. */
async function exchange(port: number, bytes: Uint8Array, options: { end?: boolean } = {}): Promise<{ status: BootStatus | undefined; raw: Buffer }> {
  const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  cleanups.push(() => socket.destroy());
  await new Promise<void>((r) => socket.once("connect", () => r()));
  const chunks: Buffer[] = [];
  const done = new Promise<void>((r) => {
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => r());
    socket.once("close", () => r());
    socket.once("error", () => r());
  });
  socket.write(bytes);
  if (options.end) socket.end();
  await done;
  socket.end();
  const raw = Buffer.concat(chunks);
  return { raw, status: raw.length >= 4 ? decodeStatus(new Uint8Array(raw.subarray(4, 4 + raw.readUInt32BE(0)))) : undefined };
}

function run(limits: Partial<ProvisionLimits>, boot: (b: ProvisionBundle) => Promise<ProvisionOutcome<string>>) {
  const l = tcpListen();
  const log = memoryLogger();
  const result = provisionedBoot({ listen: l.listen, log, limits: { ...DEFAULT_PROVISION_LIMITS, ...limits }, boot });
  result.catch(() => {}); // observed by each test
  return { ...l, log, result };
}

const frame = (input: Parameters<typeof encodeBundle>[0]) => encodeFrame(encodeBundle(input));

describe("provisionedBoot", () => {
  it("boots from the bundle's exact bytes and answers ready on the same connection", async () => {
    let received: ProvisionBundle | undefined;
    const r = run({}, async (b) => {
      received = b;
      return { ready: READY, value: "booted" };
    });
    const { status } = await exchange(
      await r.port,
      frame({ trustPolicy: CONFIG, operations: CONFIG, sealedSecrets: SEALED, awsCredentials: creds, kmsEndpoint: "http://127.0.0.1:9" }),
    );
    expect(status).toEqual({ status: "ready", ...READY });
    expect(await r.result).toBe("booted");
    expect(Buffer.from(received!.trustPolicyBytes).equals(Buffer.from(CONFIG))).toBe(true);
    expect(received!.sealedSecrets).toEqual({ file: new Uint8Array(SEALED), credentials: creds, endpoint: "http://127.0.0.1:9" });
    expect(r.closed()).toBe(true);
    expect(r.log.lines.map((l) => JSON.parse(l).event)).toEqual(["provision.listening", "provision.connected", "provision.received", "provision.replied"]);
  });

  it("an identity request reaches the boot function, and its identity outcome is answered with an identity status", async () => {
    const IDENTITY = {
      identity: {
        dataKey: "AQID",
        iv: Buffer.alloc(12, 1).toString("base64"),
        sealed: Buffer.alloc(33, 2).toString("base64"),
        attestation: Buffer.alloc(20, 3).toString("base64"),
      },
      tlsSpkiSha256: "c".repeat(64),
      receiptKeys: [{ spkiSha256: "d".repeat(64), notBefore: "2030-01-01T00:00:00.000Z", notAfter: "2030-01-31T00:00:00.000Z" }],
    };
    let received: ProvisionBundle | undefined;
    const r = run({}, async (b) => {
      received = b;
      return { identity: IDENTITY, value: "generated" };
    });
    const { status } = await exchange(
      await r.port,
      frame({ trustPolicy: CONFIG, operations: CONFIG, sealedSecrets: SEALED, awsCredentials: creds, identity: { generate: { validityDays: 30, overlapDays: 2 } } }),
    );
    expect(status).toEqual({ status: "identity", ...IDENTITY });
    expect(await r.result).toBe("generated");
    expect(received!.identity).toEqual({ generate: { validityDays: 30, overlapDays: 2 } });
    expect(JSON.parse(r.log.lines.find((l) => l.includes("provision.received"))!).count).toBe(3);
  });

  it("a boot that fails (KMS refused) is answered with its stable code, logged by code, and thrown", async () => {
    const denied = Object.assign(new Error("sealed secrets: KMS refused to release OPENAI_API_KEY: AccessDeniedException (HTTP 400)"), { code: "ERR_KMS_RELEASE_DENIED" });
    const r = run({}, async () => {
      throw denied;
    });
    const { status } = await exchange(await r.port, frame({ trustPolicy: CONFIG, operations: CONFIG, sealedSecrets: SEALED, awsCredentials: creds }));
    expect(status).toEqual({ status: "failed", code: "ERR_KMS_RELEASE_DENIED", message: denied.message });
    await expect(r.result).rejects.toBe(denied);
    expect(r.log.lines.at(-1)).toContain('"event":"provision.failed"');
    expect(r.log.lines.at(-1)).toContain('"code":"ERR_KMS_RELEASE_DENIED"');
    expect(r.closed()).toBe(true);
  });

  it("never sends a credential back, whatever an error message says; an untyped error is ERR_BOOT_FAILED", async () => {
    const r1 = run({}, async () => {
      throw Object.assign(new Error(`signature mismatch for ${SECRET}`), { code: "ERR_KMS_RELEASE_DENIED" });
    });
    const a = await exchange(await r1.port, frame({ trustPolicy: CONFIG, operations: CONFIG, sealedSecrets: SEALED, awsCredentials: creds }));
    expect(a.status).toMatchObject({ status: "failed", code: "ERR_KMS_RELEASE_DENIED" });
    expect(a.raw.toString()).not.toContain(SECRET);
    await expect(r1.result).rejects.toThrow();
    const r2 = run({}, async () => {
      throw new TypeError("something internal");
    });
    const b = await exchange(await r2.port, frame({ trustPolicy: CONFIG, operations: CONFIG }));
    expect(b.status).toEqual({ status: "failed", code: "ERR_BOOT_FAILED", message: "the enclave failed to boot" });
    await expect(r2.result).rejects.toThrow(TypeError);
    expect([...r1.log.lines, ...r2.log.lines].join("\n")).not.toContain(SECRET);
  });

  it("a malformed bundle gets ERR_PROVISION_MALFORMED, the boot never runs, and the enclave does not stay listening", async () => {
    let booted = false;
    const r = run({}, async () => {
      booted = true;
      return { ready: READY, value: "x" };
    });
    const port = await r.port;
    const { status } = await exchange(port, encodeFrame(new TextEncoder().encode('{"version":2,"trustPolicy":"e30=","operations":"e30=","debug":1}')));
    expect(status).toMatchObject({ status: "failed", code: "ERR_PROVISION_MALFORMED" });
    await expect(r.result).rejects.toMatchObject({ code: "ERR_PROVISION_MALFORMED" });
    expect(booted).toBe(false);
    // Fail closed: no second chance on this enclave.
    await expect(new Promise((resolve, reject) => net.connect(port, "127.0.0.1").once("connect", resolve).once("error", reject))).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("an oversized bundle is refused from its length prefix, before its body is sent", async () => {
    const r = run({ maxBundleBytes: 1024 }, async () => ({ ready: READY, value: "x" }));
    const { status } = await exchange(await r.port, new Uint8Array([0, 0, 4, 1]));
    expect(status).toMatchObject({ status: "failed", code: "ERR_PROVISION_TOO_LARGE" });
    await expect(r.result).rejects.toMatchObject({ code: "ERR_PROVISION_TOO_LARGE" });
  });

  it("a slow host gets ERR_PROVISION_TIMEOUT once the read budget is spent", async () => {
    const r = run({ readTimeoutMs: 200 }, async () => ({ ready: READY, value: "x" }));
    const started = performance.now();
    const { status } = await exchange(await r.port, frame({ trustPolicy: CONFIG, operations: CONFIG }).subarray(0, 10));
    expect(status).toMatchObject({ status: "failed", code: "ERR_PROVISION_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(2000);
    await expect(r.result).rejects.toMatchObject({ code: "ERR_PROVISION_TIMEOUT" });
  });

  it("a host that hangs up mid-bundle is ERR_PROVISION_CLOSED", async () => {
    const r = run({}, async () => ({ ready: READY, value: "x" }));
    await exchange(await r.port, frame({ trustPolicy: CONFIG, operations: CONFIG }).subarray(0, 10), { end: true });
    await expect(r.result).rejects.toMatchObject({ code: "ERR_PROVISION_CLOSED" });
  });

  it("no host within the accept budget is ERR_PROVISION_TIMEOUT, and the listener is closed", async () => {
    const r = run({ acceptTimeoutMs: 150 }, async () => ({ ready: READY, value: "x" }));
    await r.port;
    await expect(r.result).rejects.toMatchObject({ code: "ERR_PROVISION_TIMEOUT" });
    expect(r.closed()).toBe(true);
    expect(r.log.lines.at(-1)).toContain('"code":"ERR_PROVISION_TIMEOUT"');
  });

  it("a second connection while the first is provisioning gets ERR_PROVISION_BUSY; the first still boots", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let bootStarted!: () => void;
    const started = new Promise<void>((r) => (bootStarted = r));
    const r = run({}, async () => {
      bootStarted();
      await gate;
      return { ready: READY, value: "first" };
    });
    const port = await r.port;
    const first = exchange(port, frame({ trustPolicy: CONFIG, operations: CONFIG }));
    await started;
    const second = await exchange(port, frame({ trustPolicy: CONFIG, operations: CONFIG }));
    expect(second.status).toMatchObject({ status: "failed", code: "ERR_PROVISION_BUSY" });
    release();
    expect((await first).status).toEqual({ status: "ready", ...READY });
    expect(await r.result).toBe("first");
    expect(r.log.lines.some((l) => l.includes("provision.extra_connection"))).toBe(true);
  });
});
