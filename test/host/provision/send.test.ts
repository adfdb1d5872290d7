import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeStatus } from "../../../enclave/provision/index.js";
import { encodeBundle, encodeFrame, ProvisionError, sendBundle, type ProvisionClock } from "../../../host/provision/index.js";
import { nodeTransport, TransportError, type Transport } from "../../../host/transport/index.js";
import { freePort } from "../../helpers/cli-process.js";

/**
 * The host half: dial with bounded backoff until the enclave listens, send
 * once, wait (bounded) for one status. Enclaves are played by plain
 * loopback servers here; test/infra/provision-e2e.test.ts uses the real one.
 */
const BUNDLE = encodeBundle({ trustPolicy: new TextEncoder().encode('{"version":1}'), operations: new TextEncoder().encode('{"version":1}') });
const READY = { status: "ready", configSha256: "c".repeat(64), policySha256: "e".repeat(64), tlsSpkiSha256: "d".repeat(64), port: 8443 } as const;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A fake enclave: reads the whole bundle frame, then does `then` with the socket. */
async function fakeEnclave(then: (socket: net.Socket, bundle: Buffer) => void, port = 0): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on("error", () => {});
    let buf = Buffer.alloc(0);
    socket.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 4 && buf.length === 4 + buf.readUInt32BE(0)) then(socket, buf.subarray(4));
    });
  });
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

const tcp = (port: number) => ({ kind: "tcp" as const, host: "127.0.0.1", port });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ProvisionError);
    return (err as ProvisionError).code;
  }
  throw new Error("expected a rejection");
}

describe("sendBundle", () => {
  it("sends the bundle frame once and returns the enclave's ready status", async () => {
    let got: Buffer | undefined;
    const e = await fakeEnclave((s, b) => {
      got = Buffer.from(b);
      s.end(encodeStatus(READY));
    });
    const lines: string[] = [];
    const status = await sendBundle({
      endpoint: tcp(e.port),
      transport: nodeTransport,
      bundle: BUNDLE,
      deadlineMs: 5000,
      log: { log: (_l, ev, f) => lines.push(JSON.stringify({ ev, ...f })) },
    });
    expect(status).toEqual(READY);
    expect(got!.equals(Buffer.from(BUNDLE))).toBe(true);
    expect(e.connections()).toBe(1);
    expect(lines.at(-1)).toContain(`"configSha256":"${"c".repeat(64)}"`);
    expect(lines.at(-1)).toContain(`"policySha256":"${"e".repeat(64)}"`);
  });

  it("returns a failed status as an answer, not an error", async () => {
    const e = await fakeEnclave((s) => s.end(encodeStatus({ status: "failed", code: "ERR_KMS_RELEASE_DENIED", message: "KMS refused" })));
    expect(await sendBundle({ endpoint: tcp(e.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 5000 })).toEqual({
      status: "failed",
      code: "ERR_KMS_RELEASE_DENIED",
      message: "KMS refused",
    });
  });

  it("returns an identity status when one was asked for, and refuses the other success (ERR_PROVISION_MALFORMED)", async () => {
    const identity = {
      status: "identity" as const,
      identity: {
        dataKey: "AQID",
        iv: Buffer.alloc(12, 1).toString("base64"),
        sealed: Buffer.alloc(40, 2).toString("base64"),
        attestation: Buffer.alloc(20, 3).toString("base64"),
      },
      tlsSpkiSha256: "d".repeat(64),
      receiptKeys: [{ spkiSha256: "e".repeat(64), notBefore: "2030-01-01T00:00:00.000Z", notAfter: "2030-02-01T00:00:00.000Z" }],
    };
    const lines: string[] = [];
    const e = await fakeEnclave((s) => s.end(encodeStatus(identity)));
    expect(
      await sendBundle({
        endpoint: tcp(e.port),
        transport: nodeTransport,
        bundle: BUNDLE,
        deadlineMs: 5000,
        expect: "identity",
        log: { log: (_l, ev, f) => lines.push(JSON.stringify({ ev, ...f })) },
      }),
    ).toEqual(identity);
    // The log names the hash and the count, never the blob.
    expect(lines.at(-1)).toContain('"ev":"provision.identity"');
    expect(lines.join("\n")).not.toContain(identity.identity.sealed);
    const asked = await fakeEnclave((s) => s.end(encodeStatus(identity)));
    expect(await codeOf(sendBundle({ endpoint: tcp(asked.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 5000 }))).toBe("ERR_PROVISION_MALFORMED");
    const ready = await fakeEnclave((s) => s.end(encodeStatus(READY)));
    expect(await codeOf(sendBundle({ endpoint: tcp(ready.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 5000, expect: "identity" }))).toBe("ERR_PROVISION_MALFORMED");
  });

  it("retries while the enclave is still booting, then provisions it", async () => {
    const port = await freePort();
    const later = new Promise<void>((resolve) => setTimeout(() => void fakeEnclave((s) => s.end(encodeStatus(READY)), port).then(() => resolve()), 400));
    const attempts: number[] = [];
    const status = await sendBundle({
      endpoint: tcp(port),
      transport: nodeTransport,
      bundle: BUNDLE,
      deadlineMs: 5000,
      retry: { dialTimeoutMs: 500, backoffMs: 50, backoffMaxMs: 100 },
      log: { log: (_l, ev, f) => ev === "provision.dial_failed" && attempts.push(f!.attempt!) },
    });
    await later;
    expect(status).toEqual(READY);
    expect(attempts.length).toBeGreaterThanOrEqual(2);
  });

  it("gives up at the deadline when no enclave listens (ERR_PROVISION_DEADLINE)", async () => {
    const port = await freePort();
    const started = performance.now();
    expect(await codeOf(sendBundle({ endpoint: tcp(port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 400 }))).toBe("ERR_PROVISION_DEADLINE");
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(2000);
  });

  it("backs off exponentially up to the cap, and every wait fits in the deadline (injected clock)", async () => {
    let t = 0;
    const sleeps: number[] = [];
    const clock: ProvisionClock = { now: () => t, sleep: async (ms) => void (sleeps.push(ms), (t += ms)) };
    const refusing: Transport = {
      listen: () => Promise.reject(new Error("unused")),
      connect: async (_e, o) => {
        t += 5; // each dial costs a little time
        expect(o.timeoutMs).toBeLessThanOrEqual(2000);
        throw new TransportError("ERR_CONNECT_REFUSED", "refused", { errno: "ECONNRESET" });
      },
    };
    expect(await codeOf(sendBundle({ endpoint: { kind: "vsock", cid: 16, port: 9000 }, transport: refusing, bundle: BUNDLE, deadlineMs: 10_000, clock }))).toBe(
      "ERR_PROVISION_DEADLINE",
    );
    expect(sleeps.slice(0, 7)).toEqual([100, 200, 400, 800, 1600, 2000, 2000]);
    expect(t).toBeLessThanOrEqual(10_000 + 5);
  });

  it("does not retry what retrying cannot fix (no AF_VSOCK)", async () => {
    let dials = 0;
    const unsupported: Transport = {
      listen: () => Promise.reject(new Error("unused")),
      connect: async () => {
        dials++;
        throw new TransportError("ERR_VSOCK_UNSUPPORTED", "no vsock", { errno: "EAFNOSUPPORT" });
      },
    };
    await expect(sendBundle({ endpoint: { kind: "vsock", cid: 16, port: 9000 }, transport: unsupported, bundle: BUNDLE, deadlineMs: 5000 })).rejects.toMatchObject({
      code: "ERR_VSOCK_UNSUPPORTED",
    });
    expect(dials).toBe(1);
  });

  it("an enclave that closes without a status is ERR_PROVISION_CLOSED, and the bundle is not sent twice", async () => {
    const e = await fakeEnclave((s) => s.destroy());
    expect(await codeOf(sendBundle({ endpoint: tcp(e.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 3000 }))).toBe("ERR_PROVISION_CLOSED");
    expect(e.connections()).toBe(1);
  });

  it("no status before the deadline is ERR_PROVISION_TIMEOUT", async () => {
    const e = await fakeEnclave(() => {});
    expect(await codeOf(sendBundle({ endpoint: tcp(e.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 300 }))).toBe("ERR_PROVISION_TIMEOUT");
  });

  it("a malformed or oversized status is refused", async () => {
    const bad = await fakeEnclave((s) => s.end(encodeFrame(new TextEncoder().encode('{"status":"ready","configSha256":"x"}'))));
    expect(await codeOf(sendBundle({ endpoint: tcp(bad.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 3000 }))).toBe("ERR_PROVISION_MALFORMED");
    const big = await fakeEnclave((s) => s.end(Buffer.from([0, 0x10, 0, 0])));
    expect(await codeOf(sendBundle({ endpoint: tcp(big.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 3000 }))).toBe("ERR_PROVISION_TOO_LARGE");
  });

  it("stops when aborted (SIGTERM while provisioning)", async () => {
    const e = await fakeEnclave(() => {});
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    expect(await codeOf(sendBundle({ endpoint: tcp(e.port), transport: nodeTransport, bundle: BUNDLE, deadlineMs: 5000, signal: abort.signal }))).toBe("ERR_PROVISION_ABORTED");
  });
});
