import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { exchangeHttp1 } from "../../../attestation/client/http1-exchange.js";

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server that answers the first request with `reply` (written in the given pieces). */
async function exchange(reply: string | Buffer | (string | Buffer)[], limits = { maxHeaderBytes: 1024, maxBodyBytes: 256, timeoutMs: 500 }) {
  const server = net.createServer((socket) => {
    socket.once("data", () => {
      for (const piece of Array.isArray(reply) ? reply : [reply]) socket.write(piece);
    });
    socket.on("error", () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  try {
    const res = await exchangeHttp1(socket, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", limits);
    return { res, socket };
  } finally {
    setTimeout(() => socket.destroy(), 50);
  }
}

describe("exchangeHttp1", () => {
  it("reads a Content-Length response and leaves the socket clean and paused", async () => {
    const { res, socket } = await exchange(["HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\nhe", "llo"]);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-a")).toEqual(["1", "2"]);
    expect(Buffer.from(res.body).toString()).toBe("hello");
    expect(socket.listenerCount("readable")).toBe(0);
    expect(socket.readableLength).toBe(0);
  });

  it("reads a chunked response", async () => {
    const { res } = await exchange("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    expect(Buffer.from(res.body).toString()).toBe("hello");
  });

  const refused: [string, string | Buffer | (string | Buffer)[], string][] = [
    ["not HTTP/1.1", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["no length", "HTTP/1.1 200 OK\r\n\r\nabc", "ERR_ATTESTATION_PROTOCOL"],
    ["both length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "ERR_ATTESTATION_PROTOCOL"],
    ["body over the limit", "HTTP/1.1 200 OK\r\nContent-Length: 257\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["chunked over the limit", `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n101\r\n${"a".repeat(257)}\r\n0\r\n\r\n`, "ERR_ATTESTATION_PROTOCOL"],
    ["trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["bytes after the response", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "ERR_ATTESTATION_PROTOCOL"],
    ["header block too large", `HTTP/1.1 200 OK\r\nX: ${"a".repeat(2000)}\r\n\r\n`, "ERR_ATTESTATION_PROTOCOL"],
    ["obsolete folding", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["interim response", "HTTP/1.1 100 Continue\r\n\r\n", "ERR_ATTESTATION_PROTOCOL"],
    ["a half response then silence", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", "ERR_ATTESTATION_UNAVAILABLE"],
  ];
  for (const [name, reply, code] of refused) {
    it(`refuses ${name}: ${code}`, async () => {
      await expect(exchange(reply)).rejects.toMatchObject({ name: "ClientError", code });
    });
  }

  it("a connection closed mid-response is ERR_ATTESTATION_UNAVAILABLE", async () => {
    const server = net.createServer((socket) => socket.once("data", () => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    await expect(exchangeHttp1(socket, "GET / HTTP/1.1\r\n\r\n", { maxHeaderBytes: 1024, maxBodyBytes: 256, timeoutMs: 2000 })).rejects.toMatchObject({
      code: "ERR_ATTESTATION_UNAVAILABLE",
    });
    socket.destroy();
  });
});
