import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import fc from "fast-check";
import { createHash, randomBytes, webcrypto } from "node:crypto";
import type net from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { decodeProxyV2 } from "../../../host/transport/codec/proxy-v2.js";
import type { IngressRelay } from "../../../host/ingress/relay.js";
import { TransportError } from "../../../host/transport/errors.js";
import type { Transport } from "../../../host/transport/transport.js";
import { FakeEnclave, dial, echo, metricValue, outcome, readAll, recordingTransport, startRelay, until } from "./helpers.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const relays: IngressRelay[] = [];
const enclaves: FakeEnclave[] = [];
const clients: net.Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(relays.splice(0).map((r) => r.close({ deadlineMs: 100 })));
  await Promise.all(enclaves.splice(0).map((e) => e.kill()));
});

async function enclave(onSocket: (s: net.Socket) => void, host?: string): Promise<FakeEnclave> {
  const e = await new FakeEnclave(onSocket, host).start();
  enclaves.push(e);
  return e;
}
async function relayTo(port: number, overrides: Parameters<typeof startRelay>[1] = {}) {
  const r = await startRelay(port, overrides);
  relays.push(r.relay);
  return r;
}
async function client(port: number, host?: string): Promise<net.Socket> {
  const c = await dial(port, host);
  clients.push(c);
  return c;
}

describe("byte pipe", () => {
  it("carries random payloads both ways at once, unchanged, then closes cleanly", async () => {
    // The enclave stand-in sends its own payload and returns the SHA-256 of what it received.
    let toSend = Buffer.alloc(0);
    const e = await enclave((s) => {
      const hash = createHash("sha256");
      s.on("data", (c: Buffer) => hash.update(c));
      s.write(toSend);
      s.on("end", () => s.end(hash.digest()));
    });
    const { relay, port } = await relayTo(e.port);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300_000 }), fc.uint8Array({ maxLength: 300_000 }), async (up, down) => {
        toSend = Buffer.from(down);
        const c = await client(port);
        const received = readAll(c);
        c.end(up);
        const all = await received;
        expect(all.length).toBe(down.length + 32);
        expect(Buffer.compare(all.subarray(0, down.length), Buffer.from(down))).toBe(0);
        expect(all.subarray(down.length).toString("hex")).toBe(createHash("sha256").update(up).digest("hex"));
      }),
      { numRuns: 25 },
    );
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "closed" })).toBe(25);
  });

  it("counts bytes per direction in the metrics", async () => {
    const e = await enclave((s) => {
      s.resume();
      s.on("end", () => s.end(Buffer.alloc(700)));
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const reply = readAll(c);
    c.end(Buffer.alloc(1234));
    expect((await reply).length).toBe(700);
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_bytes_total", { direction: "client_to_enclave" })).toBe(1234);
    expect(await metricValue(relay, "egw_ingress_bytes_total", { direction: "enclave_to_client" })).toBe(700);
    const text = await relay.metrics.registry.metrics();
    expect(text).toMatch(/egw_ingress_connections_active 0/);
    expect(text).not.toMatch(/127\.0\.0\.1/);
  });

  it("reports live byte counts at scrape time while the connection is open", async () => {
    const e = await enclave(echo);
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    c.write(Buffer.alloc(5000));
    await until(async () => (await metricValue(relay, "egw_ingress_bytes_total", { direction: "enclave_to_client" })) === 5000);
    expect(relay.stats().active).toBe(1);
  });
});

async function selfSigned(): Promise<{ keyPem: string; certPem: string; fingerprint256: string }> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=relay-test-enclave",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "localhost" }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const certPem = cert.toString("pem");
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`,
    certPem,
    fingerprint256: new x509.X509Certificate(certPem).rawData
      ? createHash("sha256")
          .update(Buffer.from(new x509.X509Certificate(certPem).rawData))
          .digest("hex")
      : "",
  };
}

describe("TLS end to end through the relay", () => {
  it("the client sees the enclave's certificate, and no byte the relay handled contains the plaintext", async () => {
    const identity = await selfSigned();
    const promptCanary = `PROMPT-CANARY-${randomBytes(12).toString("hex")}`;
    const answerCanary = `ANSWER-CANARY-${randomBytes(12).toString("hex")}`;
    const enclaveSaw: Buffer[] = [];
    // The enclave stand-in: TLS terminates here, behind the relay.
    const tlsServer = tls.createServer({ key: identity.keyPem, cert: identity.certPem }, (s) => {
      s.on("data", (c: Buffer) => {
        enclaveSaw.push(c);
        if (Buffer.concat(enclaveSaw).includes("\n\n")) s.end(`HTTP/1.1 200 OK\r\n\r\n{"answer":"${answerCanary}"}`);
      });
      s.on("error", () => {});
    });
    // It reads the PROXY v2 header the relay sends first, then hands the rest to TLS.
    const e = await enclave((raw) => {
      let buffered = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const r = decodeProxyV2(buffered);
        if (r.status === "incomplete") return;
        raw.off("data", onData);
        raw.pause();
        raw.unshift(buffered.subarray(r.length));
        tlsServer.emit("connection", raw);
      };
      raw.on("data", onData);
    });
    const recorded: Buffer[] = [];
    const { port } = await relayTo(e.port, { transport: recordingTransport(recorded), proxyProtocol: true });

    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: identity.certPem });
    clients.push(socket);
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
    const peer = socket.getPeerCertificate();
    expect(peer.fingerprint256.replace(/:/g, "").toLowerCase()).toBe(identity.fingerprint256);
    expect(socket.authorized).toBe(true);
    const answer = readAll(socket);
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer client-token\r\n\r\n{"prompt":"${promptCanary}"}\n\n`);
    const body = (await answer).toString();
    expect(body).toContain(answerCanary);

    // Control: the canary really went through, so the assertion below can fail.
    expect(Buffer.concat(enclaveSaw).toString()).toContain(promptCanary);
    const wire = Buffer.concat(recorded);
    expect(wire.length).toBeGreaterThan(500);
    for (const canary of [promptCanary, answerCanary, "client-token"]) {
      for (const encoded of [
        canary,
        Buffer.from(canary).toString("base64").slice(0, 24),
        Buffer.from(canary).toString("hex"),
        Buffer.from(canary).toString("base64url").slice(0, 24),
      ]) {
        expect(wire.includes(encoded)).toBe(false);
        expect(wire.toString("latin1").toLowerCase().includes(encoded.toLowerCase())).toBe(false);
      }
    }
    tlsServer.close();
  });
});

describe("PROXY protocol v2", () => {
  async function headerSeen(host: string) {
    const first: Buffer[] = [];
    const e = await enclave((s) => s.on("data", (c: Buffer) => first.push(c)), host);
    const { port } = await relayTo(e.port, { proxyProtocol: true, listen: { kind: "tcp", host, port: 0 }, upstream: { kind: "tcp", host, port: e.port } });
    const c = await client(port, host);
    c.write("hello after the header");
    await until(() => Buffer.concat(first).length >= 16 + 22);
    const bytes = Buffer.concat(first);
    const decoded = decodeProxyV2(bytes);
    if (decoded.status !== "complete") throw new Error("incomplete header");
    expect(bytes.subarray(decoded.length).toString()).toBe("hello after the header");
    return { decoded, client: c, relayPort: port };
  }

  it("IPv4: the enclave learns the client's address and port, then gets the payload", async () => {
    const { decoded, client: c, relayPort } = await headerSeen("127.0.0.1");
    expect(decoded.header).toEqual({
      command: "proxy",
      transport: "stream",
      address: { family: "ipv4", sourceAddress: "127.0.0.1", sourcePort: c.localPort, destinationAddress: "127.0.0.1", destinationPort: relayPort },
      tlvs: [],
    });
    expect(decoded.length).toBe(28);
  });

  it("IPv6: the same over [::1]", async () => {
    const { decoded, client: c, relayPort } = await headerSeen("::1");
    expect(decoded.header.address).toEqual({ family: "ipv6", sourceAddress: "::1", sourcePort: c.localPort, destinationAddress: "::1", destinationPort: relayPort });
    expect(decoded.length).toBe(52);
  });

  it("is off unless asked: the first bytes the enclave sees are the client's", async () => {
    const first: Buffer[] = [];
    const e = await enclave((s) => s.on("data", (c: Buffer) => first.push(c)));
    const { port } = await relayTo(e.port);
    (await client(port)).write("\x16\x03\x01");
    await until(() => first.length > 0);
    expect(Buffer.concat(first).toString("latin1")).toBe("\x16\x03\x01");
  });
});

describe("half-close", () => {
  it("client FIN first: the enclave sees end, keeps sending, and the client still receives", async () => {
    const e = await enclave((s) => {
      s.resume();
      s.on("end", () => {
        s.write("after your FIN, ");
        setTimeout(() => s.end("still here"), 30);
      });
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const reply = readAll(c);
    c.end("bye");
    expect((await reply).toString()).toBe("after your FIN, still here");
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "closed" })).toBe(1);
  });

  it("enclave FIN first: the client sees end, keeps sending, and the enclave still receives", async () => {
    let got: Promise<Buffer> | undefined;
    const e = await enclave((s) => {
      got = readAll(s);
      s.end("server done");
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const reply = await readAll(c);
    expect(reply.toString()).toBe("server done");
    c.write("more from the client ");
    await new Promise((r) => setTimeout(r, 20));
    c.end("and the end");
    await until(() => got !== undefined);
    expect((await got!).toString()).toBe("more from the client and the end");
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "closed" })).toBe(1);
  });
});

describe("backpressure", () => {
  it("an enclave that stops reading stalls the client; the relay buffers no more than its socket high-water marks", async () => {
    let upstream: net.Socket | undefined;
    let receivedHash: Promise<string> | undefined;
    const e = await enclave((s) => {
      upstream = s;
      s.pause();
      receivedHash = new Promise((resolve) => {
        const hash = createHash("sha256");
        s.on("data", (c: Buffer) => hash.update(c));
        s.on("end", () => resolve(hash.digest("hex")));
      });
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const total = 64 * 1024 * 1024;
    const chunk = randomBytes(64 * 1024);
    const sent = createHash("sha256");
    let written = 0;
    let maxBuffered = 0;
    const writer = (async () => {
      while (written < total) {
        sent.update(chunk);
        written += chunk.length;
        if (!c.write(chunk)) await new Promise((r) => c.once("drain", r));
      }
      c.end();
    })();
    // Let everything between client and enclave fill up.
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < 20; i++) {
      maxBuffered = Math.max(maxBuffered, relay.stats().bufferedBytes);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(written).toBeLessThan(total / 4); // the client is held back, not absorbed by the relay
    expect(maxBuffered).toBeLessThanOrEqual(1024 * 1024);
    upstream!.resume();
    await writer;
    expect(await receivedHash!).toBe(sent.digest("hex"));
  }, 30_000);
});

describe("bulk through reused read buffers", () => {
  it("a client that reads in fits and starts gets every byte the enclave sends, in order", async () => {
    // The relay reads into one buffer per direction and stops reading while a
    // write from it is still queued: a stalling reader must not see bytes of
    // a later read overwrite those of an earlier one.
    const total = 48 * 1024 * 1024;
    const sent = createHash("sha256");
    const e = await enclave((s) => {
      s.resume();
      let left = total;
      let seq = 0;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, 1 + ((seq * 7919) % (200 * 1024)));
          const chunk = randomBytes(n);
          seq++;
          left -= n;
          sent.update(chunk);
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const got = createHash("sha256");
    let received = 0;
    let nextStall = 4 * 1024 * 1024;
    const done = new Promise<void>((resolve, reject) => {
      c.on("data", (chunk: Buffer) => {
        got.update(chunk);
        received += chunk.length;
        if (received >= nextStall) {
          nextStall += 4 * 1024 * 1024;
          c.pause();
          setTimeout(() => c.resume(), 20);
        }
      });
      c.on("end", resolve);
      c.on("error", reject);
    });
    c.end();
    await done;
    expect(received).toBe(total);
    expect(got.digest("hex")).toBe(sent.digest("hex"));
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_bytes_total", { direction: "enclave_to_client" })).toBe(total);
  }, 30_000);

  it("bytes the enclave sends before the relay wires the connection up arrive first, then the rest", async () => {
    const e = await enclave((s) => {
      s.write("banner;");
      s.on("data", (c: Buffer) => s.write(c));
      s.on("end", () => s.end());
    });
    const { port } = await relayTo(e.port);
    const c = await client(port);
    const reply = readAll(c);
    await new Promise((r) => setTimeout(r, 20));
    c.end("echo me");
    expect((await reply).toString()).toBe("banner;echo me");
  });
});

describe("resets", () => {
  it("client reset → the enclave side is reset too", async () => {
    let upstreamOutcome: Promise<string> | undefined;
    const e = await enclave((s) => {
      upstreamOutcome = outcome(s);
    });
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    c.write("x");
    await until(() => upstreamOutcome !== undefined);
    c.resetAndDestroy();
    expect(await upstreamOutcome!).toBe("ECONNRESET");
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "client_reset" })).toBe(1);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "client_error" })).toBe(1);
  });

  it("enclave reset → the client is reset too", async () => {
    const e = await enclave((s) => s.once("data", () => s.resetAndDestroy()));
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const how = outcome(c);
    c.write("x");
    expect(await how).toBe("ECONNRESET");
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "upstream_reset" })).toBe(1);
  });
});

describe("timeouts and limits", () => {
  it("an idle client is closed after idleTimeoutMs", async () => {
    const e = await enclave(echo);
    const { relay, port } = await relayTo(e.port, { limits: { idleTimeoutMs: 150 } });
    const c = await client(port);
    const start = Date.now();
    await outcome(c);
    const elapsed = Date.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2000);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "idle_timeout" })).toBe(1);
  });

  it("a client that trickles bytes the enclave never answers (slowloris) is cut at handshakeTimeoutMs", async () => {
    const e = await enclave((s) => s.resume()); // reads, never answers: a ClientHello that never completes
    const { relay, port } = await relayTo(e.port, { limits: { idleTimeoutMs: 10_000, handshakeTimeoutMs: 300 } });
    const c = await client(port);
    const timer = setInterval(() => c.writable && c.write("\x16"), 30);
    const start = Date.now();
    await outcome(c);
    clearInterval(timer);
    expect(Date.now() - start).toBeLessThan(2000);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "handshake_timeout" })).toBe(1);
  });

  it("the connection past maxConnections is closed at once and counted", async () => {
    const e = await enclave(echo);
    const { relay, port } = await relayTo(e.port, { limits: { maxConnections: 2 } });
    const a = await client(port);
    const b = await client(port);
    await until(() => relay.stats().active === 2);
    const c = await client(port);
    expect(await outcome(c)).not.toBe("timeout");
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "rejected_limit" })).toBe(1);
    // The two admitted ones still work.
    for (const s of [a, b]) {
      const r = readAll(s);
      s.end("ok");
      expect((await r).toString()).toBe("ok");
    }
  });

  it("refuses nonsensical limits at start", async () => {
    await expect(relayTo(1, { limits: { maxConnections: 0 } })).rejects.toMatchObject({ code: "ERR_OPTION_INVALID" });
    await expect(relayTo(1, { limits: { idleTimeoutMs: -5 } })).rejects.toMatchObject({ code: "ERR_OPTION_INVALID" });
    await expect(relayTo(1, { limits: { dialAttempts: 1.5 } })).rejects.toMatchObject({ code: "ERR_OPTION_INVALID" });
  });
});

describe("the enclave going away and coming back", () => {
  it("while the enclave is down, clients get a prompt close (bounded retries), not a hang", async () => {
    const e = await enclave(echo);
    const port0 = e.port;
    await e.kill();
    const { relay, port } = await relayTo(port0, { limits: { dialAttempts: 3, dialBackoffMs: 20, dialBackoffMaxMs: 40 } });
    const c = await client(port);
    const start = Date.now();
    await outcome(c);
    expect(Date.now() - start).toBeLessThan(1000);
    expect(await metricValue(relay, "egw_ingress_upstream_dial_failures_total")).toBe(3);
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "dial_refused" })).toBe(3);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "dial_failed" })).toBe(1);
  });

  it("a transport that cannot work at all (no vsock here) is not retried", async () => {
    const unsupported: Transport = {
      listen: (endpoint, onConnection, options) => import("../../../host/transport/transport.js").then((t) => t.nodeTransport.listen(endpoint, onConnection, options)),
      connect: () => Promise.reject(new TransportError("ERR_VSOCK_UNSUPPORTED", "no AF_VSOCK", { errno: "EAFNOSUPPORT" })),
    };
    const { relay, port } = await relayTo(1, { transport: unsupported, upstream: { kind: "vsock", cid: 16, port: 8443 } });
    await outcome(await client(port));
    expect(await metricValue(relay, "egw_ingress_upstream_dial_failures_total")).toBe(1);
    expect(await metricValue(relay, "egw_ingress_errors_total", { kind: "dial_unsupported" })).toBe(1);
  });

  it("enclave restart mid-stream: the stream in flight ends with an error, new connections reach the new enclave", async () => {
    const e = await enclave(echo);
    const { relay, port, logger } = await relayTo(e.port);
    const inflight = await client(port);
    const inflightOutcome = outcome(inflight);
    const pump = setInterval(() => inflight.writable && inflight.write(randomBytes(1024)), 5);
    await until(() => inflight.bytesRead > 10_000);
    await e.kill();
    expect(await inflightOutcome).toBe("ECONNRESET");
    clearInterval(pump);

    // Down: a client in this window gets closed.
    await outcome(await client(port));
    // Back on the same port.
    await e.start(e.port);
    const fresh = await client(port);
    const reply = readAll(fresh);
    fresh.end("new enclave");
    expect((await reply).toString()).toBe("new enclave");
    await until(() => relay.stats().active === 0);
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "upstream_error" })).toBe(1);
    expect(logger.lines.some((l) => l.event === "ingress.upstream_up")).toBe(true);
  });
});

describe("graceful shutdown", () => {
  it("stops accepting at once, lets open connections finish, and reports them drained", async () => {
    const e = await enclave(echo);
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    const reply = readAll(c);
    c.write("before ");
    await until(() => c.bytesRead >= 7);
    const closing = relay.close({ deadlineMs: 5000 });
    await new Promise((r) => setTimeout(r, 20));
    await expect(dial(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    c.end("after close()");
    expect((await reply).toString()).toBe("before after close()");
    expect(await closing).toEqual({ drained: 1, aborted: 0 });
  });

  it("cuts what is still open at the deadline", async () => {
    const e = await enclave(echo);
    const { relay, port } = await relayTo(e.port);
    const c = await client(port);
    c.write("x");
    await until(() => c.bytesRead === 1);
    const how = outcome(c);
    const start = Date.now();
    expect(await relay.close({ deadlineMs: 200 })).toEqual({ drained: 0, aborted: 1 });
    expect(Date.now() - start).toBeGreaterThanOrEqual(190);
    expect(await how).not.toBe("timeout");
    expect(await metricValue(relay, "egw_ingress_connections_total", { outcome: "shutdown" })).toBe(1);
  });
});

describe("logs", () => {
  it("carry ids, codes, counts and durations only", async () => {
    const e = await enclave((s) => s.on("data", () => s.end("secret-answer")));
    const { relay, port, logger } = await relayTo(e.port);
    const c = await client(port);
    const r = readAll(c);
    c.end("secret-prompt");
    await r;
    await until(() => relay.stats().active === 0);
    await relay.close();
    const allowed = new Set(["level", "event", "conn", "outcome", "code", "attempt", "ms", "up", "down", "active", "count", "endpoint"]);
    for (const line of logger.lines) for (const key of Object.keys(line)) expect(allowed.has(key)).toBe(true);
    const text = JSON.stringify(logger.lines);
    expect(text).not.toContain("secret");
    expect(logger.lines.find((l) => l.event === "ingress.close")).toMatchObject({ conn: "c1", outcome: "closed", up: 13, down: 13 });
  });
});
