import { createServer as createHttpsServer } from "node:https";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from "node:tls";
import { ProxyAgent, request } from "undici";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  closeServer,
  connectHead,
  listen,
  LOOPBACK,
  readAll,
  readHead,
  selfSignedCert,
  sendConnect,
  sleep,
  startEchoServer,
  startRecordingRelay,
  startTcpServer,
  startTestProxy,
  waitClose,
  waitFor,
  waitGone,
  type TestProxy,
  type TestServer,
} from "./helpers.js";

const proxies: TestProxy[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.proxy.close({ drainMs: 200 });
  for (const s of servers.splice(0)) await s.close();
});

async function proxyTo(port: number, limits: Parameters<typeof startTestProxy>[0]["limits"] = {}): Promise<TestProxy> {
  const p = await startTestProxy({
    rules: [{ host: "upstream.test", port, allowPrivate: true }],
    resolve: { "upstream.test": LOOPBACK },
    limits,
  });
  proxies.push(p);
  return p;
}

/** CONNECT through the proxy and return the tunnel socket after the 200. */
async function tunnel(p: TestProxy, port: number): Promise<Socket> {
  const res = await sendConnect(p.port, connectHead(`upstream.test:${port}`));
  expect(res.status).toBe(200);
  expect(res.head).toBe("HTTP/1.1 200 Connection Established");
  return res.socket;
}

describe("TLS end to end through the tunnel", () => {
  const PROMPT = "PROMPT-CANARY-7f3a9c1e-do-not-leak";
  const ANSWER = "ANSWER-CANARY-b41d2e88-do-not-leak";
  const KEY = "sk-canary-provider-key-0123456789abcdef";
  let cert: { keyPem: string; certPem: string };

  beforeAll(async () => {
    cert = await selfSignedCert(["upstream.test"]);
  });

  it("the client's TLS terminates at the provider; every byte the proxy read or wrote is free of the canaries", async () => {
    // Provider: a TLS server that answers a request line with a canary.
    const seenByProvider: string[] = [];
    const tlsServer = createTlsServer({ key: cert.keyPem, cert: cert.certPem }, (s) => {
      let got = "";
      s.on("data", (d: Buffer) => {
        got += d.toString();
        if (got.includes("\n")) {
          seenByProvider.push(got);
          s.end(`${ANSWER} for ${got.trim().length} bytes\n`);
        }
      });
      s.on("error", () => {});
    });
    const tlsPort = await listen(tlsServer);
    // Recorders on both sides of the proxy: what it read and wrote, byte for byte.
    const back = await startRecordingRelay(tlsPort);
    const p = await proxyTo(back.port);
    const front = await startRecordingRelay(p.port);
    try {
      const raw = connect({ host: "127.0.0.1", port: front.port });
      await new Promise((r) => raw.once("connect", r));
      raw.write(connectHead(`upstream.test:${back.port}`));
      const res = await readHead(raw);
      expect(res.status).toBe(200);
      const secure: TLSSocket = tlsConnect({ socket: raw, servername: "upstream.test", ca: cert.certPem });
      await new Promise<void>((resolve, reject) => {
        secure.once("secureConnect", () => resolve());
        secure.once("error", reject);
      });
      expect(secure.authorized).toBe(true);
      secure.write(`POST /v1/chat authorization=Bearer ${KEY} ${PROMPT}\n`);
      const answer = (await readAll(secure as unknown as Socket)).toString();
      expect(answer).toContain(ANSWER);
      secure.destroy();
      await waitFor(async () => (await p.metric("egw_egress_active_tunnels")) === 0, 2000, "the tunnel to close");

      // Control: the canaries were there in the clear at the two TLS ends.
      expect(seenByProvider.join("")).toContain(PROMPT);
      expect(seenByProvider.join("")).toContain(KEY);

      const records = {
        "client→proxy": Buffer.concat(front.forward),
        "proxy→client": Buffer.concat(front.backward),
        "proxy→provider": Buffer.concat(back.forward),
        "provider→proxy": Buffer.concat(back.backward),
      };
      // The recorders work: the CONNECT head and the 200 are visible in the clear.
      expect(records["client→proxy"].toString("latin1")).toContain(`CONNECT upstream.test:${back.port} HTTP/1.1`);
      expect(records["proxy→client"].toString("latin1")).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\n\x16\x03/);
      for (const [where, bytes] of Object.entries(records)) {
        expect(bytes.length, where).toBeGreaterThan(0);
        const asText = bytes.toString("latin1");
        for (const canary of [PROMPT, ANSWER, KEY]) {
          for (const encoded of [
            canary,
            Buffer.from(canary).toString("base64").slice(0, 24),
            Buffer.from(canary).toString("hex"),
            Buffer.from(canary).toString("base64url").slice(0, 24),
          ]) {
            expect(asText.includes(encoded), `${where} contains ${canary} (${encoded.slice(0, 8)}…)`).toBe(false);
            expect(bytes.toString("hex").includes(Buffer.from(canary).toString("hex")), `${where} hex`).toBe(false);
          }
        }
      }
      // The tunnel payload the proxy counted is exactly what crossed to and from the provider.
      expect(await p.metric("egw_egress_bytes_total", { direction: "upstream" })).toBe(records["proxy→provider"].length);
      expect(await p.metric("egw_egress_bytes_total", { direction: "downstream" })).toBe(records["provider→proxy"].length);
      expect(await p.metric("egw_egress_connections_total", { outcome: "tunnelled" })).toBe(1);
      // Logs: the matched entry and counts, no canary.
      const logs = JSON.stringify(p.logger.entries);
      for (const canary of [PROMPT, ANSWER, KEY]) expect(logs).not.toContain(canary);
      const close = p.logger.entries.find((e) => e.event === "egress.tunnel_close");
      expect(close?.fields).toMatchObject({ entry: `upstream.test:${back.port}`, bytesUp: records["proxy→provider"].length, bytesDown: records["provider→proxy"].length });
      for (const e of p.logger.entries) {
        for (const key of Object.keys(e.fields))
          expect(["conn", "status", "rule", "code", "outcome", "reason", "entry", "addressClass", "bytesUp", "bytesDown", "ms", "port", "count"]).toContain(key);
      }
    } finally {
      await front.close();
      await back.close();
      await closeServer(tlsServer);
    }
  });

  it("undici's ProxyAgent (the enclave's client) gets through to an HTTPS provider", async () => {
    const https = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
      res.setHeader("content-type", "text/plain");
      res.end(`hello ${req.method} ${req.url}`);
    });
    const httpsPort = await listen(https);
    const p = await proxyTo(httpsPort);
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${p.port}`, requestTls: { ca: cert.certPem } });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request(`https://upstream.test:${httpsPort}/v1/models?i=${i}`, { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe(`hello GET /v1/models?i=${i}`);
      }
      expect(await p.metric("egw_egress_connections_total", { outcome: "tunnelled" })).toBeGreaterThanOrEqual(1);
      // A target off the list fails in the client, with the proxy's status.
      await expect(request(`https://upstream.test:${httpsPort + 1}/`, { dispatcher: agent })).rejects.toThrow(/403/);
      expect(await p.metric("egw_egress_denials_total", { rule: "denied_port" })).toBe(1);
    } finally {
      await agent.close();
      await closeServer(https);
    }
  });
});

describe("half-close", () => {
  it("client → provider: the client's FIN reaches the provider, which can still answer", async () => {
    const server = await startTcpServer((s) => {
      let n = 0;
      s.on("data", (d: Buffer) => (n += d.length));
      s.on("end", () => s.end(`got ${n} bytes after your FIN`));
    });
    servers.push(server);
    const p = await proxyTo(server.port);
    const t = await tunnel(p, server.port);
    t.end("hello");
    expect((await readAll(t)).toString()).toBe("got 5 bytes after your FIN");
    await waitClose(t);
    await waitFor(async () => (await p.metric("egw_egress_active_tunnels")) === 0, 2000, "tunnel closed");
    expect(await p.metric("egw_egress_active_connections")).toBe(0);
  });

  it("provider → client: the provider's FIN reaches the client, which can still send", async () => {
    let received: Promise<string> = Promise.resolve("");
    const server = await startTcpServer((s) => {
      s.end("first and last words");
      received = new Promise((resolve) => {
        let got = "";
        s.on("data", (d: Buffer) => (got += d.toString()));
        s.on("end", () => resolve(got));
      });
    });
    servers.push(server);
    const p = await proxyTo(server.port);
    const t = await tunnel(p, server.port);
    expect((await readAll(t)).toString()).toBe("first and last words");
    // Our side is still open.
    expect(t.writable).toBe(true);
    t.end("said after the provider's FIN");
    await waitFor(() => server.accepted === 1, 1000, "server accept");
    expect(await received).toBe("said after the provider's FIN");
    await waitClose(t);
    await waitFor(async () => (await p.metric("egw_egress_active_tunnels")) === 0, 2000, "tunnel closed");
  });
});

describe("abrupt resets", () => {
  it("a client reset tears down the provider side", async () => {
    let serverSide: Socket | undefined;
    const server = await startTcpServer((s) => (serverSide = s));
    servers.push(server);
    const p = await proxyTo(server.port);
    const t = await tunnel(p, server.port);
    await waitFor(() => serverSide !== undefined, 1000, "accept");
    const gone = waitGone(serverSide!);
    t.resetAndDestroy();
    // The reset is passed on as a reset, not a clean FIN.
    expect(await gone).toBe("error");
    await waitFor(async () => (await p.metric("egw_egress_active_connections")) === 0, 2000, "proxy side closed");
    expect(await p.metric("egw_egress_errors_total", { kind: "client_error" })).toBe(1);
  });

  it("a provider reset tears down the client side", async () => {
    const server = await startTcpServer((s) => setTimeout(() => s.resetAndDestroy(), 20));
    servers.push(server);
    const p = await proxyTo(server.port);
    const t = await tunnel(p, server.port);
    expect(await waitGone(t)).toBe("error");
    await waitFor(async () => (await p.metric("egw_egress_active_connections")) === 0, 2000, "proxy side closed");
    expect(await p.metric("egw_egress_errors_total", { kind: "upstream_error" })).toBe(1);
  });
});

describe("idle timeout", () => {
  it("closes a tunnel with no traffic; traffic keeps it open", async () => {
    const echo = await startEchoServer();
    servers.push(echo);
    const p = await proxyTo(echo.port, { idleTimeoutMs: 250 });
    const busy = await tunnel(p, echo.port);
    const quiet = await tunnel(p, echo.port);
    const quietGone = waitGone(quiet);
    let busyClosed = false;
    void waitGone(busy).then(() => (busyClosed = true));
    const started = Date.now();
    for (let i = 0; i < 8; i++) {
      busy.write("x");
      await sleep(80);
    }
    expect(busyClosed).toBe(false);
    await quietGone;
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await p.metric("egw_egress_errors_total", { kind: "idle_timeout" })).toBe(1);
    busy.destroy();
  });
});

describe("backpressure", () => {
  const TOTAL = 96 * 1024 * 1024;

  /** Write TOTAL bytes as fast as the socket takes them; report progress. */
  function flood(s: Socket, progress: { written: number }): void {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (): void => {
      while (progress.written < TOTAL) {
        progress.written += chunk.length;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
      s.end();
    };
    pump();
  }

  it.each(["downstream", "upstream"] as const)(
    "a reader that stops does not make the proxy buffer (%s)",
    async (direction) => {
      const progress = { written: 0 };
      let serverSide: Socket | undefined;
      const server = await startTcpServer((s) => {
        serverSide = s;
        if (direction === "downstream") flood(s, progress);
        else s.pause();
      });
      servers.push(server);
      const p = await proxyTo(server.port);
      const t = await tunnel(p, server.port);
      await waitFor(() => serverSide !== undefined, 1000, "accept");
      const reader = direction === "downstream" ? t : serverSide!;
      if (direction === "upstream") flood(t, progress);
      // The reader reads nothing for a while; sample what the proxy holds.
      let maxBuffered = 0;
      const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, p.proxy.stats().bufferedBytes)), 5);
      const rssBefore = process.memoryUsage().rss;
      await sleep(800);
      const stalledAt = progress.written;
      await sleep(200);
      clearInterval(sampler);
      // The writer is stuck: only kernel socket buffers and the proxy's bounded
      // queue took anything (an unbounded proxy would have swallowed all 96 MiB
      // at loopback speed by now).
      expect(progress.written).toBe(stalledAt);
      expect(progress.written).toBeLessThan(32 * 1024 * 1024);
      // What the proxy itself queues: the socket high-water mark plus one read chunk, per direction.
      expect(maxBuffered).toBeLessThanOrEqual(256 * 1024);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(48 * 1024 * 1024);
      // Nothing lost: once the reader reads, every byte arrives.
      const all = await readAll(reader);
      expect(all.length).toBe(TOTAL);
      expect(await p.metric("egw_egress_bytes_total", { direction })).toBe(TOTAL);
      t.destroy();
    },
    30_000,
  );
});

describe("DNS at every connection", () => {
  it("calls the resolver once per connection and dials exactly the address it returned (no re-resolution)", async () => {
    // Two servers on one port, on two loopback addresses; the name flips between them.
    const a = await startTcpServer((s) => s.end("A"), "127.0.0.2");
    servers.push(a);
    const b = await startTcpServer((s) => s.end("B"), "127.0.0.3", a.port);
    servers.push(b);
    let n = 0;
    const p = await startTestProxy({
      rules: [{ host: "flip.test", port: a.port, allowPrivate: true }],
      resolve: { "flip.test": async () => [{ address: n++ % 2 === 0 ? "127.0.0.2" : "127.0.0.3", family: 4 }] },
    });
    proxies.push(p);
    const greetings: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await sendConnect(p.port, connectHead(`flip.test:${a.port}`));
      expect(res.status).toBe(200);
      greetings.push((await readAll(res.socket)).toString());
      res.socket.destroy();
    }
    expect(greetings).toEqual(["A", "B", "A", "B", "A", "B"]);
    expect(p.resolverCalls).toEqual(Array(6).fill("flip.test"));
  });

  it("falls back to the next vetted address when the first does not answer", async () => {
    const echo = await startTcpServer((s) => s.end("ok"), "127.0.0.4");
    servers.push(echo);
    const closed = await startTcpServer(() => {}, "127.0.0.5", echo.port);
    await closed.close();
    const p = await startTestProxy({
      rules: [{ host: "multi.test", port: echo.port, allowPrivate: true }],
      resolve: {
        "multi.test": [
          { address: "127.0.0.5", family: 4 },
          { address: "127.0.0.4", family: 4 },
        ],
      },
    });
    proxies.push(p);
    const res = await sendConnect(p.port, connectHead(`multi.test:${echo.port}`));
    expect(res.status).toBe(200);
    expect((await readAll(res.socket)).toString()).toBe("ok");
    expect(p.resolverCalls.length).toBe(1);
  });
});
