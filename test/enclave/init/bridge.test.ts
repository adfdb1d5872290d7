/**
 * The enclave's vsock bridges (enclave/init/bridge.ts), over TCP loopback:
 * the byte pipe, half-close, its limits and its shutdown are the same code
 * whatever the endpoint kind (this kernel has no vsock loopback to connect).
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startBridge, type Bridge } from "../../../enclave/init/bridge.js";
import { TransportError } from "../../../host/transport/errors.js";

const LOOPBACK = { kind: "tcp", host: "127.0.0.1", port: 0 } as const;
const cleanup: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** An upstream that echoes every byte and answers a FIN with its own, after the echo. */
async function echoServer(onSocket?: (s: net.Socket) => void): Promise<{ port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
    if (onSocket) onSocket(s);
    else s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

async function bridgeTo(port: number, limits = { maxConnections: 8, idleTimeoutMs: 5_000, dialTimeoutMs: 1_000 }): Promise<Bridge & { port: number }> {
  const bridge = await startBridge({ listen: LOOPBACK, upstream: { kind: "tcp", host: "127.0.0.1", port }, limits });
  cleanup.push(() => bridge.close());
  return Object.assign(bridge, { port: (bridge.address as { port: number }).port });
}

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
    cleanup.push(() => void s.destroy());
  });
}

/** Everything the socket receives until it closes, and how it closed. */
function drain(s: net.Socket): Promise<{ data: string; ended: boolean; error: string | undefined }> {
  return new Promise((resolve) => {
    let data = "";
    let ended = false;
    let error: string | undefined;
    s.on("data", (d: Buffer) => (data += d.toString()));
    s.on("end", () => {
      // Half-open test client: answer the FIN like a real peer would.
      ended = true;
      s.end();
    });
    s.on("error", (e: NodeJS.ErrnoException) => (error = e.code));
    s.on("close", () => resolve({ data, ended, error }));
  });
}

describe("startBridge", () => {
  it("pipes bytes both ways and forwards a FIN while the other direction still flows", async () => {
    const upstream = await echoServer();
    const bridge = await bridgeTo(upstream.port);
    const client = await dial(bridge.port);
    const done = drain(client);
    client.write("hello ");
    client.write(Buffer.alloc(256 * 1024, "x"));
    client.end("bye");
    const r = await done;
    expect(r.data).toBe(`hello ${"x".repeat(256 * 1024)}bye`);
    expect(r.ended).toBe(true);
    expect(r.error).toBeUndefined();
    await expect.poll(() => bridge.active()).toBe(0);
  });

  it("closes the client when the other side is not there, instead of hanging", async () => {
    const gone = await echoServer();
    const port = gone.port;
    await cleanup.pop()!();
    const bridge = await bridgeTo(port);
    const client = await dial(bridge.port);
    const r = await drain(client);
    expect(r.data).toBe("");
    expect(bridge.active()).toBe(0);
  });

  it("closes connections over maxConnections at accept", async () => {
    const upstream = await echoServer();
    const bridge = await bridgeTo(upstream.port, { maxConnections: 1, idleTimeoutMs: 5_000, dialTimeoutMs: 1_000 });
    const first = await dial(bridge.port);
    first.write("a");
    await new Promise<void>((r) => first.once("data", () => r()));
    const second = await dial(bridge.port);
    const r = await drain(second);
    expect(r.data).toBe("");
    expect(bridge.active()).toBe(1);
  });

  it("closes a connection that stays idle", async () => {
    const upstream = await echoServer();
    const bridge = await bridgeTo(upstream.port, { maxConnections: 8, idleTimeoutMs: 150, dialTimeoutMs: 1_000 });
    const client = await dial(bridge.port);
    const started = performance.now();
    await drain(client);
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    expect(bridge.active()).toBe(0);
    await expect.poll(() => upstream.sockets.size).toBe(0);
  });

  it("tears the client down when the upstream resets", async () => {
    const upstream = await echoServer((s) => s.once("data", () => s.resetAndDestroy()));
    const bridge = await bridgeTo(upstream.port);
    const client = await dial(bridge.port);
    const done = drain(client);
    client.write("x");
    const r = await done;
    expect(r.ended).toBe(false);
    expect(r.error).toBe("ECONNRESET");
    expect(bridge.active()).toBe(0);
  });

  it("close() stops accepting and ends open connections", async () => {
    const upstream = await echoServer();
    const bridge = await bridgeTo(upstream.port);
    const client = await dial(bridge.port);
    client.write("a");
    await new Promise<void>((r) => client.once("data", () => r()));
    const done = drain(client);
    await bridge.close();
    await done;
    expect(bridge.active()).toBe(0);
    await expect(dial(bridge.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it.each([
    [{ maxConnections: 0, idleTimeoutMs: 1, dialTimeoutMs: 1 }],
    [{ maxConnections: 1, idleTimeoutMs: -1, dialTimeoutMs: 1 }],
    [{ maxConnections: 1, idleTimeoutMs: 1, dialTimeoutMs: 1.5 }],
    [{ maxConnections: 1, idleTimeoutMs: 1 } as never],
  ])("refuses limits %j", async (limits) => {
    const err = await startBridge({ listen: LOOPBACK, upstream: LOOPBACK, limits }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ code: "ERR_OPTION_INVALID" });
  });
});
