import { connect } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  connectHead,
  LOOPBACK,
  readHead,
  sendConnect,
  sleep,
  startEchoServer,
  startTcpServer,
  startTestProxy,
  waitClose,
  waitFor,
  type TestProxy,
  type TestServer,
} from "./helpers.js";

/**
 * Every refusal the issue names, over a real socket: the status line, the
 * Proxy-Status rule, the metric increments, and that no dial happened.
 */

let upstream: TestServer;
let closedPort: number;
const proxies: TestProxy[] = [];

beforeAll(async () => {
  upstream = await startEchoServer();
  const closed = await startTcpServer(() => {});
  closedPort = closed.port;
  await closed.close();
});
afterAll(async () => {
  await upstream.close();
});
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.proxy.close({ drainMs: 100 });
});

async function proxyFor(limits: Parameters<typeof startTestProxy>[0]["limits"] = {}): Promise<TestProxy> {
  const p = await startTestProxy({
    rules: [
      { host: "upstream.test", port: upstream.port, allowPrivate: true },
      { host: "closed.test", port: closedPort, allowPrivate: true },
      `internal.test:${upstream.port}`,
      "imds.test:80",
      "imds6.test:80",
      "nxdomain.test:443",
      "slow.test:443",
      "10.0.0.1:443",
      "169.254.169.254:80",
      "[fd00:ec2::254]:80",
    ],
    resolve: {
      "upstream.test": LOOPBACK,
      "closed.test": LOOPBACK,
      // Same loopback server, but the rule does not allow private addresses.
      "internal.test": LOOPBACK,
      "imds.test": [{ address: "169.254.169.254", family: 4 }],
      "imds6.test": [{ address: "fd00:ec2::254", family: 6 }],
      "slow.test": () => new Promise(() => {}),
    },
    limits: { headTimeoutMs: 400, connectTimeoutMs: 300, ...limits },
  });
  proxies.push(p);
  return p;
}

const up = (): string => `upstream.test:${upstream.port}`;

interface Case {
  name: string;
  request: () => string | Buffer | Array<string | Buffer>;
  status: number;
  rule: string;
  outcome: "denied" | "rejected" | "upstream_failed";
  resolves?: number;
  errorKind?: string;
}

const cases: Case[] = [
  // Policy
  { name: "denied host", request: () => connectHead("evil.test:443"), status: 403, rule: "denied_host", outcome: "denied", resolves: 0 },
  { name: "denied port on an allowed host", request: () => connectHead("upstream.test:1"), status: 403, rule: "denied_port", outcome: "denied", resolves: 0 },
  { name: "IP literal (IPv4) of the allowed upstream", request: () => connectHead(`127.0.0.1:${upstream.port}`), status: 403, rule: "ip_literal", outcome: "denied", resolves: 0 },
  { name: "IP literal (IPv6)", request: () => connectHead(`[::1]:${upstream.port}`), status: 403, rule: "ip_literal", outcome: "denied", resolves: 0 },
  { name: "IPv4-mapped IPv6 literal", request: () => connectHead(`[::ffff:127.0.0.1]:${upstream.port}`), status: 403, rule: "ip_literal", outcome: "denied", resolves: 0 },
  { name: "listed private-range literal without allowPrivate", request: () => connectHead("10.0.0.1:443"), status: 403, rule: "private_address", outcome: "denied", resolves: 0 },
  {
    name: "DNS name that resolves to a private address",
    request: () => connectHead(`internal.test:${upstream.port}`),
    status: 403,
    rule: "private_address",
    outcome: "denied",
    resolves: 1,
  },
  { name: "DNS name that resolves to the metadata address", request: () => connectHead("imds.test:80"), status: 403, rule: "metadata_address", outcome: "denied", resolves: 1 },
  {
    name: "DNS name that resolves to the IPv6 metadata address",
    request: () => connectHead("imds6.test:80"),
    status: 403,
    rule: "metadata_address",
    outcome: "denied",
    resolves: 1,
  },
  { name: "listed metadata literal without allowPrivate", request: () => connectHead("169.254.169.254:80"), status: 403, rule: "metadata_address", outcome: "denied", resolves: 0 },
  {
    name: "listed IPv6 metadata literal without allowPrivate",
    request: () => connectHead("[fd00:ec2::254]:80"),
    status: 403,
    rule: "metadata_address",
    outcome: "denied",
    resolves: 0,
  },
  { name: "DNS failure", request: () => connectHead("nxdomain.test:443"), status: 502, rule: "dns_failure", outcome: "denied", resolves: 1 },
  { name: "DNS timeout", request: () => connectHead("slow.test:443"), status: 504, rule: "dns_timeout", outcome: "denied", resolves: 1 },
  {
    name: "allowed, but the provider refuses the connection",
    request: () => connectHead(`closed.test:${closedPort}`),
    status: 502,
    rule: "connect_refused",
    outcome: "upstream_failed",
    resolves: 1,
    errorKind: "connect_refused",
  },
  // Smuggling and framing
  {
    name: "pipelined second request in the same write",
    request: () => connectHead(up()) + connectHead("evil.test:443"),
    status: 400,
    rule: "early_data",
    outcome: "rejected",
    resolves: 0,
  },
  {
    name: "pipelined GET in the same write",
    request: () => `${connectHead(up())}GET / HTTP/1.1\r\nHost: x\r\n\r\n`,
    status: 400,
    rule: "early_data",
    outcome: "rejected",
    resolves: 0,
  },
  {
    name: "ClientHello sent optimistically with the head",
    request: () => Buffer.concat([Buffer.from(connectHead(up())), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05])]),
    status: 400,
    rule: "early_data",
    outcome: "rejected",
    resolves: 0,
  },
  { name: "Transfer-Encoding", request: () => connectHead(up(), "Transfer-Encoding: chunked"), status: 400, rule: "body_header", outcome: "rejected", resolves: 0 },
  { name: "Content-Length", request: () => connectHead(up(), "Content-Length: 5"), status: 400, rule: "body_header", outcome: "rejected", resolves: 0 },
  { name: "absolute-form target", request: () => `CONNECT http://${up()}/ HTTP/1.1\r\nHost: ${up()}\r\n\r\n`, status: 400, rule: "target_form", outcome: "rejected", resolves: 0 },
  { name: "userinfo in the target", request: () => `CONNECT u:p@${up()} HTTP/1.1\r\nHost: ${up()}\r\n\r\n`, status: 400, rule: "target_form", outcome: "rejected", resolves: 0 },
  { name: "obs-fold", request: () => connectHead(up(), "X-A: 1", " folded"), status: 400, rule: "obs_fold", outcome: "rejected", resolves: 0 },
  { name: "bare LF line ends", request: () => `CONNECT ${up()} HTTP/1.1\nHost: ${up()}\n\n`, status: 400, rule: "line_terminator", outcome: "rejected", resolves: 0 },
  { name: "NUL in a field", request: () => connectHead(up(), "X-A: a\0b"), status: 400, rule: "control_char", outcome: "rejected", resolves: 0 },
  { name: "duplicate Host", request: () => connectHead(up(), "Host: evil.test:443"), status: 400, rule: "host_header", outcome: "rejected", resolves: 0 },
  {
    name: "Host naming another target",
    request: () => `CONNECT ${up()} HTTP/1.1\r\nHost: evil.test:443\r\n\r\n`,
    status: 400,
    rule: "host_header",
    outcome: "rejected",
    resolves: 0,
  },
  { name: "oversize head", request: () => connectHead(up(), `X-Big: ${"x".repeat(9000)}`), status: 431, rule: "head_too_large", outcome: "rejected", resolves: 0 },
  {
    name: "too many fields",
    request: () => connectHead(up(), ...Array.from({ length: 70 }, (_, i) => `X-${i}: 1`)),
    status: 431,
    rule: "too_many_headers",
    outcome: "rejected",
    resolves: 0,
  },
  {
    name: "oversize request line",
    request: () => `CONNECT ${"a".repeat(2000)}.test:443 HTTP/1.1\r\n\r\n`,
    status: 414,
    rule: "request_line_too_long",
    outcome: "rejected",
    resolves: 0,
  },
  { name: "GET", request: () => "GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n", status: 405, rule: "method", outcome: "rejected", resolves: 0 },
  {
    name: "POST absolute-form (plain forward proxying)",
    request: () => `POST http://${up()}/ HTTP/1.1\r\nHost: ${up()}\r\nContent-Length: 0\r\n\r\n`,
    status: 405,
    rule: "method",
    outcome: "rejected",
    resolves: 0,
  },
  { name: "lower-case connect", request: () => `connect ${up()} HTTP/1.1\r\nHost: ${up()}\r\n\r\n`, status: 405, rule: "method", outcome: "rejected", resolves: 0 },
  { name: "HTTP/1.0", request: () => `CONNECT ${up()} HTTP/1.0\r\nHost: ${up()}\r\n\r\n`, status: 505, rule: "version", outcome: "rejected", resolves: 0 },
  {
    name: "TLS ClientHello without CONNECT",
    request: () => Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
    status: 400,
    rule: "control_char",
    outcome: "rejected",
    resolves: 0,
  },
  {
    name: "head split across many writes, then smuggled bytes",
    request: () => [...connectHead(up()).split(""), "X"],
    status: 400,
    rule: "early_data",
    outcome: "rejected",
    resolves: 0,
  },
];

describe("egress proxy refusals: status, rule, metrics, no dial", () => {
  it.each(cases)("$name → $status $rule", async (c) => {
    const p = await proxyFor();
    const acceptedBefore = upstream.accepted;
    const res = await sendConnect(p.port, c.request());
    expect(res.status).toBe(c.status);
    expect(res.head).toMatch(/\r\nConnection: close\r\n/);
    expect(res.head).toContain(`details="${c.rule}"`);
    if (c.status === 405) expect(res.head).toMatch(/\r\nAllow: CONNECT(\r\n|$)/);
    // The proxy closes: FIN after the status (readable ends).
    const ended = new Promise<void>((resolve) => res.socket.once("end", () => resolve()));
    res.socket.resume();
    await ended;
    res.socket.destroy();

    expect(await p.metric("egw_egress_denials_total", { rule: c.rule })).toBe(1);
    expect(await p.metric("egw_egress_connections_total", { outcome: c.outcome })).toBe(1);
    if (c.errorKind) expect(await p.metric("egw_egress_errors_total", { kind: c.errorKind })).toBe(1);
    expect(await p.metric("egw_egress_connections_total", { outcome: "tunnelled" })).toBe(0);
    expect(await p.metric("egw_egress_bytes_total", { direction: "upstream" })).toBe(0);
    if (c.resolves !== undefined) expect(p.resolverCalls.length).toBe(c.resolves);
    // Denied or malformed requests never reach the allowed upstream.
    expect(upstream.accepted).toBe(acceptedBefore);
    // Logs carry the rule, never the target the client asked for.
    const logs = JSON.stringify(p.logger.entries);
    expect(logs).toContain(c.rule);
    expect(logs).not.toMatch(/evil\.test|imds|internal\.test|nxdomain|slow\.test/);
  });

  it("bytes that arrive after the head, while DNS runs, are refused as early data and the dial is abandoned", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const p = await startTestProxy({
      rules: [{ host: "upstream.test", port: upstream.port, allowPrivate: true }],
      resolve: { "upstream.test": async () => (await gate, LOOPBACK) },
    });
    proxies.push(p);
    const acceptedBefore = upstream.accepted;
    const s = connect({ host: "127.0.0.1", port: p.port });
    s.on("error", () => {});
    s.write(connectHead(up()));
    await waitFor(() => p.resolverCalls.length === 1, 2000, "the resolver call");
    // A second request, pipelined after the first but before any answer.
    s.write(connectHead("evil.test:443"));
    const res = readHead(s);
    await sleep(30);
    release();
    expect((await res).status).toBe(400);
    expect((await res).head).toContain('details="early_data"');
    await sleep(50);
    expect(upstream.accepted).toBe(acceptedBefore);
    expect(await p.metric("egw_egress_denials_total", { rule: "early_data" })).toBe(1);
    expect(await p.metric("egw_egress_connections_total", { outcome: "rejected" })).toBe(1);
    s.destroy();
  });

  it("slowloris: a head trickled a byte at a time is cut at the head timeout with 408", async () => {
    const p = await proxyFor({ headTimeoutMs: 300 });
    const started = Date.now();
    const res = await new Promise<{ status: number; at: number }>((resolve, reject) => {
      {
        const s = connect({ host: "127.0.0.1", port: p.port });
        const text = connectHead(up());
        let i = 0;
        const drip = setInterval(() => {
          if (i < text.length - 1 && !s.destroyed) s.write(text[i++]!);
        }, 40);
        let buf = "";
        s.on("data", (d: Buffer) => {
          buf += d.toString("latin1");
          if (buf.includes("\r\n\r\n")) {
            clearInterval(drip);
            resolve({ status: Number(buf.slice(9, 12)), at: Date.now() });
            s.destroy();
          }
        });
        s.on("error", (e) => {
          clearInterval(drip);
          reject(e);
        });
      }
    });
    expect(res.status).toBe(408);
    // Cut at the timeout, not when (or if) the trickle would have finished.
    expect(res.at - started).toBeLessThan(1500);
    expect(await p.metric("egw_egress_denials_total", { rule: "head_timeout" })).toBe(1);
    expect(await p.metric("egw_egress_connections_total", { outcome: "rejected" })).toBe(1);
  });

  it("an idle connection that never sends a byte is cut at the head timeout too", async () => {
    const p = await proxyFor({ headTimeoutMs: 200 });
    const res = await sendConnect(p.port, []);
    expect(res.status).toBe(408);
    res.socket.destroy();
  });

  it("beyond maxConnections, a new connection gets 503 at once", async () => {
    const p = await proxyFor({ maxConnections: 2 });
    const held = [connect({ host: "127.0.0.1", port: p.port }), connect({ host: "127.0.0.1", port: p.port })];
    for (const s of held) s.on("error", () => {});
    await new Promise((r) => setTimeout(r, 100));
    const res = await sendConnect(p.port, connectHead(up()));
    expect(res.status).toBe(503);
    expect(res.head).toContain('details="max_connections"');
    expect(await p.metric("egw_egress_connections_total", { outcome: "overloaded" })).toBe(1);
    res.socket.destroy();
    for (const s of held) s.destroy();
    await Promise.all(held.map(waitClose));
    // Capacity comes back.
    await new Promise((r) => setTimeout(r, 50));
    const again = await sendConnect(p.port, connectHead(up()));
    expect(again.status).toBe(200);
    again.socket.destroy();
  });

  it("a client that leaves before the answer is counted as aborted, and the dial is abandoned", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const p = await startTestProxy({
      rules: [{ host: "upstream.test", port: upstream.port, allowPrivate: true }],
      resolve: { "upstream.test": async () => (await gate, LOOPBACK) },
    });
    proxies.push(p);
    const acceptedBefore = upstream.accepted;
    const s = connect({ host: "127.0.0.1", port: p.port }, () => s.end(connectHead(up())));
    s.on("error", () => {});
    s.resume();
    await waitClose(s);
    release();
    await sleep(50);
    expect(upstream.accepted).toBe(acceptedBefore);
    expect(await p.metric("egw_egress_connections_total", { outcome: "aborted" })).toBe(1);
    expect(await p.metric("egw_egress_active_connections")).toBe(0);
  });
});
