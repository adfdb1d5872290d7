import { randomBytes } from "node:crypto";
import fs from "node:fs";
import type net from "node:net";
import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { FakeEnclave, dial, metricValue, outcome, readAll, startRelay, until } from "./helpers.js";

/**
 * Issue 4's fault run, on loopback: 1,000 concurrent connections, slowloris
 * clients, resets both ways, and an enclave restart mid-stream; afterwards
 * the relay still serves, holds no socket or fd it did not hold before,
 * and its heap is back near where it started.
 */

function gcNow(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === "function") return existing;
  // Not started with --expose-gc: V8 lets the flag be set at run time and
  // the function be picked up from a fresh context.
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

const handles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
const fds = () => fs.readdirSync("/proc/self/fd").length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Random bytes that start with "E": the enclave stand-in reads the first byte as a command. */
const echoPayload = (n: number) => Buffer.concat([Buffer.from("E"), randomBytes(n - 1)]);

async function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  const c = await dial(port);
  const reply = readAll(c);
  c.end(payload);
  return reply;
}

describe("relay under load and faults", () => {
  it("1,000 concurrent connections, slowloris, resets both ways, enclave restart — then serves, leaks nothing, memory back to baseline", async () => {
    // The enclave stand-in: echoes; a first byte "S" makes it read forever
    // without answering (a handshake that never completes); "R" makes it
    // reset the connection.
    const enclave = await new FakeEnclave((s) => {
      s.once("data", (first: Buffer) => {
        if (first[0] === 0x53) return s.resume();
        if (first[0] === 0x52) return s.resetAndDestroy();
        s.write(first);
        s.pipe(s);
      });
    }).start();
    const { relay, port } = await startRelay(enclave.port, {
      backlog: 4096,
      limits: { maxConnections: 1500, idleTimeoutMs: 800, handshakeTimeoutMs: 1500, dialTimeoutMs: 500, dialAttempts: 3, dialBackoffMs: 20, dialBackoffMaxMs: 100 },
    });
    const gc = gcNow();

    // Warm up lazily created state (timers lists, prom-client children), then take the baseline.
    for (let i = 0; i < 20; i++) await roundTrip(port, echoPayload(64));
    await until(() => relay.stats().active === 0);
    await sleep(50);
    gc();
    const baseline = { handles: handles(), fds: fds(), heap: process.memoryUsage().heapUsed };

    // ── 1,000 concurrent connections ────────────────────────────────────────
    const N = 1000;
    const sockets: net.Socket[] = [];
    for (let i = 0; i < N; i += 100) sockets.push(...(await Promise.all(Array.from({ length: 100 }, () => dial(port)))));
    await until(() => relay.stats().active === N, 20_000, "all 1000 relayed at once");
    expect(relay.stats().active).toBe(N);
    const payloads = sockets.map(() => echoPayload(64));
    const replies = await Promise.all(
      sockets.map((s, i) => {
        const reply = readAll(s);
        s.end(payloads[i]!);
        return reply;
      }),
    );
    replies.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true));
    await until(() => relay.stats().active === 0, 10_000, "1000 closed");

    // ── slowloris: silent clients (idle timeout) and tricklers (handshake timeout) ──
    const silent = await Promise.all(Array.from({ length: 50 }, () => dial(port)));
    const tricklers = await Promise.all(Array.from({ length: 50 }, () => dial(port)));
    const trickle = setInterval(() => {
      for (const t of tricklers) if (t.writable) t.write(t.bytesWritten === 0 ? "S" : "\x16");
    }, 100);
    const silentDone = Promise.all(silent.map(outcome));
    const trickleDone = Promise.all(tricklers.map(outcome));
    const start = Date.now();
    await silentDone;
    expect(Date.now() - start).toBeLessThan(5000);
    await trickleDone;
    clearInterval(trickle);
    expect(Date.now() - start).toBeLessThan(5000);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "idle_timeout" })).toBeGreaterThanOrEqual(50);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "handshake_timeout" })).toBeGreaterThanOrEqual(50);

    // ── abrupt resets, both directions ───────────────────────────────────────
    const clientResets = await Promise.all(Array.from({ length: 100 }, () => dial(port)));
    await Promise.all(
      clientResets.map(async (s) => {
        const first = new Promise((r) => s.once("data", r));
        s.write("hello");
        await first;
        s.resetAndDestroy();
      }),
    );
    const enclaveResets = await Promise.all(Array.from({ length: 100 }, () => dial(port)));
    const resetOutcomes = await Promise.all(
      enclaveResets.map((s) => {
        const how = outcome(s);
        s.write("R");
        return how;
      }),
    );
    expect(resetOutcomes.every((o) => o === "ECONNRESET")).toBe(true);
    await until(() => relay.stats().active === 0, 5000, "resets cleaned up");
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "client_reset" })).toBeGreaterThanOrEqual(100);
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "upstream_reset" })).toBeGreaterThanOrEqual(100);

    // ── enclave restart in the middle of streams ─────────────────────────────
    const streams = await Promise.all(Array.from({ length: 20 }, () => dial(port)));
    const streamOutcomes = Promise.all(streams.map(outcome));
    const pump = setInterval(() => {
      for (const s of streams) if (s.writable) s.write(echoPayload(512));
    }, 5);
    await until(() => streams.every((s) => s.bytesRead > 2048), 5000, "streams flowing");
    await enclave.kill();
    const outcomes = await streamOutcomes;
    clearInterval(pump);
    expect(outcomes.every((o) => o === "ECONNRESET" || o === "EPIPE")).toBe(true);
    // Down: clients are closed, not left hanging.
    const whileDown = await Promise.all(Array.from({ length: 10 }, () => dial(port).then(outcome)));
    expect(whileDown).toHaveLength(10);
    await enclave.start(enclave.port);
    const after = await Promise.all(Array.from({ length: 100 }, () => roundTrip(port, Buffer.from("after restart"))));
    expect(after.every((b) => b.toString() === "after restart")).toBe(true);

    // ── afterwards: nothing leaked ───────────────────────────────────────────
    await until(() => relay.stats().active === 0, 5000, "relay idle");
    await until(() => enclave.sockets.size === 0, 5000, "enclave idle");
    await until(() => handles() <= baseline.handles, 5000, `handles back to ${baseline.handles}`);
    await until(() => fds() <= baseline.fds, 5000, `fds back to ${baseline.fds}`);
    expect(relay.stats().bufferedBytes).toBe(0);
    expect(await metricValue(relay, "egw_ingress_connections_active")).toBe(0);

    let heap = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 5 && heap > baseline.heap + 16 * 1024 * 1024; i++) {
      await sleep(50);
      gc();
      heap = process.memoryUsage().heapUsed;
    }
    // Generous: the point is "no per-connection state left", which for 1,400
    // connections would be tens of MiB, not "exactly the same bytes".
    expect(heap - baseline.heap).toBeLessThan(16 * 1024 * 1024);

    const final = await roundTrip(port, Buffer.from("still serving"));
    expect(final.toString()).toBe("still serving");
    await relay.close({ deadlineMs: 1000 });
    await enclave.kill();
  }, 120_000);
});
