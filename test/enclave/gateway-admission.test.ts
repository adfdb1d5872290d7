import net from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ATTEST_PROOF_HEADER, attestProofHeader } from "../../attestation/attest-proof.js";
import { openAttestedConnection, resolvePolicy } from "../../attestation/client/index.js";
import { encodeProxyV2 } from "../../host/transport/codec/proxy-v2.js";
import { configJson, CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";

/**
 * Admission before the body (issue 11 §6), through the real TLS server:
 * refusals are answered from the headers, the body is never read, and what
 * is read is bounded in bytes (per request and in flight) and in time.
 */
const MiB = 1024 * 1024;

interface RawRequest {
  socket: TLSSocket;
  /** Everything the server sent, once it closed the connection. */
  response: Promise<string>;
  /** Resolves with the status line's code as soon as it arrives. */
  status: Promise<number>;
  written(): number;
  /** Writes `bytes` of body (spaces), respecting backpressure; stops when the server closes. */
  send(bytes: number): Promise<void>;
}

function rawRequest(h: Harness, head: string, proxyAddress?: string): RawRequest {
  const raw = net.connect(h.enclave.server.port!, "127.0.0.1");
  if (proxyAddress) {
    raw.write(
      encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: proxyAddress, sourcePort: 40000, destinationAddress: "127.0.0.1", destinationPort: 443 } }),
    );
  }
  const socket = tls.connect({ socket: raw, ca: h.enclave.identity.tls.certPem, servername: "localhost" });
  socket.write(head);
  let written = 0;
  let text = "";
  let closed = false;
  let onStatus: (n: number) => void = () => {};
  const status = new Promise<number>((r) => (onStatus = r));
  const response = new Promise<string>((resolve) => {
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) onStatus(Number(m[1]));
    });
    const end = () => {
      closed = true;
      onStatus(0);
      resolve(text);
    };
    socket.on("close", end);
    socket.on("error", () => {});
  });
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  return {
    socket,
    response,
    status,
    written: () => written,
    async send(bytes: number) {
      while (bytes > 0 && !closed) {
        const n = Math.min(bytes, chunk.length);
        bytes -= n;
        written += n;
        if (!socket.write(chunk.subarray(0, n))) {
          await new Promise<void>((r) => {
            const done = () => {
              socket.off("drain", done);
              socket.off("close", done);
              r();
            };
            socket.on("drain", done);
            socket.on("close", done);
          });
        }
      }
    },
  };
}

const chatHead = (contentLength: number, token = CLIENT_TOKEN, extra = "") =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\n` +
  `content-length: ${contentLength}\r\nconnection: close\r\n${extra}\r\n`;
const chatJson = Buffer.from(JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }));

/** Bytes the server read from each connection (raw TLS bytes), recorded when the connection closes. */
function serverBytesRead(h: Harness): number[] {
  const read: number[] = [];
  h.enclave.server.server.on("secureConnection", (s: TLSSocket) => {
    s.on("close", () => read.push(s.bytesRead));
  });
  return read;
}

describe("admission before the body", () => {
  let h: Harness;
  let read: number[];
  beforeAll(async () => {
    h = await startHarness({ config: configJson({ limits: { maxBodyBytes: 8 * MiB, maxInFlightBodyBytes: 12 * MiB } }) });
    read = serverBytesRead(h);
  });
  afterAll(async () => h?.close());

  it("unauthenticated uploads of large bodies are answered 401 from the headers; the enclave reads none of the bodies", async () => {
    const N = 16;
    const declared = 8 * MiB; // a size the gateway accepts from a client it knows
    const uploads = Array.from({ length: N }, () => rawRequest(h, chatHead(declared, "wrong-token")));
    const sending = uploads.map((u) => u.send(declared));
    const responses = await Promise.all(uploads.map((u) => u.response));
    await Promise.all(sending);
    for (const text of responses) {
      expect(text).toMatch(/^HTTP\/1\.1 401 /);
      expect(text.toLowerCase()).toContain("connection: close");
      expect(text).toContain('"code":"invalid_api_key"');
    }
    // Server side: at most a few TLS records past the headers per connection, never the body.
    await new Promise((r) => setTimeout(r, 50));
    expect(read.length).toBeGreaterThanOrEqual(N);
    for (const bytes of read.slice(-N)) expect(bytes).toBeLessThan(1 * MiB);
  });

  it("in-flight body budget: an upload beyond it gets 503 overloaded at once; the one within it is served", async () => {
    const big = 8 * MiB;
    const first = rawRequest(h, chatHead(big));
    await first.send(1024); // reserves 8 MiB from its Content-Length, and holds its slot
    await new Promise((r) => setTimeout(r, 100));
    const second = rawRequest(h, chatHead(big));
    void second.send(big);
    const refused = await second.response;
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused.toLowerCase()).toContain("retry-after: 1");
    expect(refused.toLowerCase()).toContain("connection: close");
    expect(refused).toContain('"code":"overloaded"');
    expect(second.written()).toBeLessThan(big);
    // The first finishes its body (valid JSON padded with spaces) and is served.
    first.socket.write(chatJson);
    await first.send(big - 1024 - chatJson.length);
    expect(await first.response).toMatch(/^HTTP\/1\.1 200 /);
    // Its bytes were given back: a small request within the budget is served.
    const after = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: chatJson,
    });
    expect(after.status).toBe(200);
  });

  it("a body without Content-Length is counted against the budget as it arrives", async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${CLIENT_TOKEN}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`;
    const holder = rawRequest(h, chatHead(8 * MiB));
    await holder.send(1024); // 8 of 12 MiB reserved
    await new Promise((r) => setTimeout(r, 100));
    const chunked = rawRequest(h, head);
    const piece = Buffer.alloc(256 * 1024, 0x20);
    for (let i = 0; i < 24 && !chunked.socket.destroyed; i++) {
      chunked.socket.write(`${piece.length.toString(16)}\r\n`);
      chunked.socket.write(piece);
      chunked.socket.write("\r\n");
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await chunked.response).toMatch(/^HTTP\/1\.1 503 /);
    holder.socket.destroy();
    await holder.response;
  });
});

describe("a slow body", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ config: configJson({ limits: { bodyTimeoutMs: 300 } }) });
  });
  afterAll(async () => h?.close());

  it("that does not arrive within bodyTimeoutMs gets 408 request_timeout and the connection is closed", async () => {
    const started = Date.now();
    const slow = rawRequest(h, chatHead(4096));
    await slow.send(100); // then nothing more
    const text = await slow.response;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"request_timeout"');
    expect(text.toLowerCase()).toContain("connection: close");
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("limits hold before and after auth (PROXY v2 addresses)", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      config: configJson({
        proxyProtocol: true,
        limits: { ipRateLimitPerMinute: 3, rateLimitPerMinute: 2, attestationPerSecond: 2, attestationPerAddressPerSecond: 1 },
      }),
    });
  });
  afterAll(async () => h?.close());

  async function chat(address: string, token = CLIENT_TOKEN): Promise<number> {
    const r = rawRequest(h, chatHead(chatJson.length, token), address);
    r.socket.write(chatJson);
    return r.status;
  }

  it("unauthenticated requests spend their address's budget: after it, even a valid token from there is 429", async () => {
    expect([await chat("203.0.113.1", "bad"), await chat("203.0.113.1", "bad"), await chat("203.0.113.1", "bad")]).toEqual([401, 401, 401]);
    expect(await chat("203.0.113.1")).toBe(429);
  });

  it("after auth, the per-token limit holds across addresses", async () => {
    expect([await chat("198.51.100.1"), await chat("198.51.100.2"), await chat("198.51.100.3")]).toEqual([200, 200, 429]);
  });

  it("fresh attestation: one address gets its burst only; a proven request still gets a document; the verifying client proves", async () => {
    const attest = (address: string, nonceHex: string, proof?: string) =>
      rawRequest(h, `GET /v1/attestation?nonce=${nonceHex} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${proof ? `${ATTEST_PROOF_HEADER}: ${proof}\r\n` : ""}\r\n`, address).status;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push(await attest("192.0.2.1", `${"ab".repeat(31)}0${i}`));
    expect(statuses).toEqual([200, 429, 429, 429]); // the open share is 1/s here; the address's burst 2
    // Other addresses cannot drain the reserved share either.
    expect(await attest("192.0.2.2", `${"ab".repeat(31)}10`)).toBe(429);
    // A wrong proof counts as none.
    expect(await attest("192.0.2.3", `${"ab".repeat(31)}11`, attestProofHeader("not-the-token", new Uint8Array(Buffer.from(`${"ab".repeat(31)}11`, "hex"))))).toBe(429);
    // A proven request from a fresh connection of the verifying client: the reserved share serves it.
    const raw = net.connect(h.enclave.server.port!, "127.0.0.1");
    raw.write(encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: "192.0.2.1", sourcePort: 1, destinationAddress: "127.0.0.1", destinationPort: 443 } }));
    const relay = net.createServer((c) => {
      c.pipe(raw);
      raw.pipe(c);
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    try {
      const origin = `https://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
      const attested = await openAttestedConnection({
        origin,
        policy: resolvePolicy({ measurements: "any", trust: "any", trustedRoots: [h.anchor] }),
        now: () => new Date(),
        proofToken: CLIENT_TOKEN,
      });
      expect(attested.peer).toBeDefined();
      attested.socket.destroy();
    } finally {
      raw.destroy();
      relay.close();
    }
  });
});
