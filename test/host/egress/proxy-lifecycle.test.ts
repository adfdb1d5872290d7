import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex, PassThrough } from "node:stream";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { createEgressMetrics } from "../../../host/egress/metrics.js";
import { createEgressProxy, DEFAULT_EGRESS_LIMITS, startEgressProxy } from "../../../host/egress/proxy.js";
import {
  connectHead,
  LOOPBACK,
  metricValue,
  openFds,
  readAll,
  readBytes,
  readHead,
  sendConnect,
  sleep,
  startEchoServer,
  startTcpServer,
  startTestProxy,
  waitFor,
  waitGone,
  type TestProxy,
  type TestServer,
} from "./helpers.js";

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function echoProxy(limits: Parameters<typeof startTestProxy>[0]["limits"] = {}, backlog?: number): Promise<{ p: TestProxy; echo: TestServer }> {
  const echo = await startEchoServer();
  cleanup.push(() => echo.close());
  const p = await startTestProxy({
    rules: [{ host: "upstream.test", port: echo.port, allowPrivate: true }],
    resolve: { "upstream.test": LOOPBACK },
    limits,
    ...(backlog !== undefined && { backlog }),
  });
  cleanup.push(() => p.proxy.close({ drainMs: 200 }));
  return { p, echo };
}

describe("many concurrent tunnels", () => {
  it("1,000 tunnels at once each echo their own bytes; afterwards no socket or descriptor is left", async () => {
    const N = 1000;
    const { p, echo } = await echoProxy({ maxConnections: 2 * N }, 2048);
    // Warm up so lazily opened descriptors (timers, DNS…) are in the baseline.
    const warm = await sendConnect(p.port, connectHead(`upstream.test:${echo.port}`));
    warm.socket.end();
    await readAll(warm.socket);
    await waitFor(async () => (await p.metric("egw_egress_active_connections")) === 0, 5000, "warm-up closed");
    const fdsBefore = openFds();

    const results = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const res = await sendConnect(p.port, connectHead(`upstream.test:${echo.port}`), { timeoutMs: 20_000 });
        if (res.status !== 200) return `status ${res.status}`;
        const payload = Buffer.alloc(2048, `tunnel-${i}-`);
        res.socket.end(payload);
        const back = await readAll(res.socket);
        res.socket.destroy();
        return back.equals(payload) ? "ok" : `mismatch ${back.length}`;
      }),
    );
    expect(results.filter((r) => r !== "ok")).toEqual([]);
    expect(await p.metric("egw_egress_connections_total", { outcome: "tunnelled" })).toBe(N + 1);
    expect(await p.metric("egw_egress_bytes_total", { direction: "upstream" })).toBe(N * 2048);
    expect(await p.metric("egw_egress_bytes_total", { direction: "downstream" })).toBe(N * 2048);
    await waitFor(async () => (await p.metric("egw_egress_active_connections")) === 0 && (await p.metric("egw_egress_active_tunnels")) === 0, 10_000, "all tunnels closed");
    expect(p.proxy.stats()).toEqual({ connections: 0, tunnels: 0, bufferedBytes: 0 });
    await waitFor(() => openFds() <= fdsBefore + 2, 5000, `descriptors back to baseline (${fdsBefore})`);
  }, 60_000);
});

describe("close() drains", () => {
  it("stops accepting, answers 503 to connections still in their head, and lets open tunnels finish", async () => {
    const { p, echo } = await echoProxy();
    const res = await sendConnect(p.port, connectHead(`upstream.test:${echo.port}`));
    expect(res.status).toBe(200);
    const t = res.socket;
    // A connection mid-head when the close begins.
    const half = connect({ host: "127.0.0.1", port: p.port });
    half.on("error", () => {});
    await new Promise((r) => half.once("connect", r));
    half.write("CONNECT upstream.test");
    await waitFor(() => p.proxy.stats().connections === 2, 1000, "both connections seen");

    let closed = false;
    const closing = p.proxy.close({ drainMs: 5000 }).then(() => (closed = true));
    expect((await readHead(half)).status).toBe(503);
    half.destroy();
    // No new connections.
    await expect(sendConnect(p.port, connectHead(`upstream.test:${echo.port}`))).rejects.toThrow(/ECONNREFUSED/);
    // The open tunnel still works, and close() waits for it.
    t.write("still here");
    expect((await readBytes(t, 10)).toString()).toBe("still here");
    await sleep(100);
    expect(closed).toBe(false);
    t.end();
    await readAll(t);
    await closing;
    expect(closed).toBe(true);
    expect(await p.metric("egw_egress_denials_total", { rule: "shutting_down" })).toBe(1);
    expect(await p.metric("egw_egress_connections_total", { outcome: "shutdown" })).toBe(1);
    expect(await p.metric("egw_egress_errors_total", { kind: "drain_timeout" })).toBe(0);
  });

  it("destroys tunnels still open at the drain deadline", async () => {
    const { p, echo } = await echoProxy();
    const res = await sendConnect(p.port, connectHead(`upstream.test:${echo.port}`));
    const gone = waitGone(res.socket);
    const started = Date.now();
    await p.proxy.close({ drainMs: 200 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
    expect(Date.now() - started).toBeLessThan(2000);
    await gone;
    expect(await p.metric("egw_egress_errors_total", { kind: "drain_timeout" })).toBe(1);
    expect(await p.metric("egw_egress_active_connections")).toBe(0);
  });

  it("resolves at once when idle", async () => {
    const { p } = await echoProxy();
    const started = Date.now();
    await p.proxy.close({ drainMs: 5000 });
    expect(Date.now() - started).toBeLessThan(500);
  });
});

describe("listeners and configuration", () => {
  it("listens on a Unix socket", async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    const dir = mkdtempSync(join(tmpdir(), "egw-egress-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "egress.sock");
    const proxy = await startEgressProxy({
      listen: { path },
      rules: [{ host: "upstream.test", port: echo.port, allowPrivate: true }],
      resolver: async () => LOOPBACK,
      limits: DEFAULT_EGRESS_LIMITS,
    });
    cleanup.push(() => proxy.close({ drainMs: 100 }));
    expect(proxy.port).toBeUndefined();
    const s = connect({ path, allowHalfOpen: true });
    s.write(connectHead(`upstream.test:${echo.port}`));
    expect((await readHead(s)).status).toBe(200);
    s.end("over unix");
    expect((await readAll(s)).toString()).toBe("over unix");
    // A provider reset reaches a Unix-socket client as a close (no RST exists there), without a crash.
    const resetting = await startTcpServer((sock) => setTimeout(() => sock.resetAndDestroy(), 10));
    cleanup.push(() => resetting.close());
    const proxy2 = await startEgressProxy({
      listen: { path: `${path}.2` },
      rules: [{ host: "upstream.test", port: resetting.port, allowPrivate: true }],
      resolver: async () => LOOPBACK,
      limits: DEFAULT_EGRESS_LIMITS,
    });
    cleanup.push(() => proxy2.close({ drainMs: 100 }));
    const u = connect({ path: `${path}.2`, allowHalfOpen: true });
    u.write(connectHead(`upstream.test:${resetting.port}`));
    expect((await readHead(u)).status).toBe(200);
    await waitGone(u);
    await waitFor(() => proxy2.stats().connections === 0, 2000, "the unix client closed");
  });

  it("serves a server the caller made (a transport's), and closes it", async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const registry = new Registry();
    const proxy = await startEgressProxy({
      listen: { server },
      rules: [{ host: "upstream.test", port: echo.port, allowPrivate: true }],
      resolver: async () => LOOPBACK,
      limits: DEFAULT_EGRESS_LIMITS,
      metrics: createEgressMetrics(registry),
    });
    expect(proxy.port).toBeGreaterThan(0);
    const res = await sendConnect(proxy.port!, connectHead(`upstream.test:${echo.port}`));
    expect(res.status).toBe(200);
    res.socket.end("x");
    await readAll(res.socket);
    await proxy.close({ drainMs: 1000 });
    expect(server.listening).toBe(false);
    expect(await metricValue(registry, "egw_egress_connections_total", { outcome: "tunnelled" })).toBe(1);
    // One registry can hold the egress metrics next to others; the exposition is Prometheus text.
    const text = await registry.metrics();
    expect(text).toContain('egw_egress_connections_total{outcome="tunnelled"} 1');
    expect(text).toContain("# TYPE egw_egress_active_connections gauge");
  });

  it("handle() serves any Duplex, so a transport without a net.Server can plug in", async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    const proxy = createEgressProxy({
      rules: [{ host: "upstream.test", port: echo.port, allowPrivate: true }],
      resolver: async () => LOOPBACK,
      limits: DEFAULT_EGRESS_LIMITS,
    });
    cleanup.push(() => proxy.close({ drainMs: 100 }));
    // A pair of PassThroughs stands in for a socket: we write into `toProxy`, read from `fromProxy`.
    const toProxy = new PassThrough();
    const fromProxy = new PassThrough();
    const duplex = new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk, _enc, cb) {
        fromProxy.write(chunk, cb);
      },
      final(cb) {
        fromProxy.end();
        cb();
      },
    });
    toProxy.on("data", (c) => duplex.push(c));
    toProxy.on("end", () => duplex.push(null));
    proxy.handle(duplex);
    toProxy.write(connectHead(`upstream.test:${echo.port}`));
    const chunks: Buffer[] = [];
    fromProxy.on("data", (c: Buffer) => chunks.push(c));
    await waitFor(() => Buffer.concat(chunks).includes("\r\n\r\n"), 2000, "the 200");
    expect(Buffer.concat(chunks).toString()).toBe("HTTP/1.1 200 Connection Established\r\n\r\n");
    toProxy.end("through a duplex");
    await new Promise((r) => fromProxy.once("end", r));
    expect(Buffer.concat(chunks).toString()).toBe("HTTP/1.1 200 Connection Established\r\n\r\nthrough a duplex");
  });

  it.each([
    ["no limits", undefined],
    ["a missing limit", { ...DEFAULT_EGRESS_LIMITS, idleTimeoutMs: undefined }],
    ["a zero limit", { ...DEFAULT_EGRESS_LIMITS, maxConnections: 0 }],
    ["a fractional limit", { ...DEFAULT_EGRESS_LIMITS, headTimeoutMs: 1.5 }],
  ])("refuses to start with %s", (_name, limits) => {
    expect(() => createEgressProxy({ rules: [], limits: limits as never })).toThrow(TypeError);
  });

  it("refuses to start with a bad rule", () => {
    expect(() => createEgressProxy({ rules: ["*.openai.com:443"], limits: DEFAULT_EGRESS_LIMITS })).toThrow(/egress rule/);
  });

  it("fails to start, not silently, when the port is taken", async () => {
    const echo = await startEchoServer();
    cleanup.push(() => echo.close());
    await expect(startEgressProxy({ listen: { host: "127.0.0.1", port: echo.port }, rules: [], limits: DEFAULT_EGRESS_LIMITS })).rejects.toThrow(/EADDRINUSE/);
  });
});
