import fc from "fast-check";
import net from "node:net";
import tls from "node:tls";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { decodeProxyV2, encodeProxyV2, ProxyProtocolError, proxyClientAddress, readProxyV2 } from "../../host/transport/codec/proxy-v2.js";
import { configJson, CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";

/** The code a promise rejects with, or "resolved". */
async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyProtocolError);
    return (err as ProxyProtocolError).code;
  }
}

const decodeAddress = (bytes: Uint8Array) => {
  const r = decodeProxyV2(bytes);
  return r.status === "complete" ? { length: r.length, clientAddress: proxyClientAddress(r.header) } : null;
};

describe("the enclave reads the PROXY v2 header with the host's codec", () => {
  it("IPv4, IPv6, LOCAL and TLVs", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 40 }), (ip, port, tlv) => {
        const bytes = Buffer.from(
          encodeProxyV2({
            command: "proxy",
            address: { family: "ipv4", sourceAddress: ip, sourcePort: port, destinationAddress: "10.0.0.1", destinationPort: 443 },
            tlvs: tlv.length ? [{ type: 0xe0, value: tlv }] : [],
          }),
        );
        const parsed = decodeAddress(Buffer.concat([bytes, Buffer.from("after")]))!;
        expect(parsed.clientAddress).toBe(ip);
        expect(parsed.length).toBe(bytes.length);
      }),
    );
    const v6 = Buffer.from(
      encodeProxyV2({ command: "proxy", address: { family: "ipv6", sourceAddress: "2001:db8::7", sourcePort: 1, destinationAddress: "::1", destinationPort: 2 } }),
    );
    // RFC 5952 text, as the codec writes every IPv6 address (one spelling, one rate-limit key).
    expect(decodeAddress(v6)!.clientAddress).toBe("2001:db8::7");
    const local = Buffer.from(encodeProxyV2({ command: "local", address: { family: "unspec" } }));
    expect(decodeAddress(local)!.clientAddress).toBeNull();
  });

  it("asks for more bytes on a prefix, refuses junk", () => {
    const v4 = Buffer.from(
      encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: "1.2.3.4", sourcePort: 1, destinationAddress: "5.6.7.8", destinationPort: 2 } }),
    );
    for (let n = 0; n < v4.length; n++) expect(decodeAddress(v4.subarray(0, n))).toBeNull();
    expect(() => decodeProxyV2(Buffer.from([0x16, 0x03, 0x01]))).toThrow(ProxyProtocolError); // a TLS ClientHello
    const code = (bytes: Uint8Array) => {
      try {
        decodeProxyV2(bytes);
      } catch (err) {
        return (err as ProxyProtocolError).code;
      }
      return "accepted";
    };
    const v1 = Buffer.from(v4);
    v1[12] = 0x11;
    expect(code(v1)).toBe("ERR_PROXY_VERSION");
    const long = Buffer.from(v4);
    long.writeUInt16BE(2000, 14);
    expect(code(long)).toBe("ERR_PROXY_LENGTH");
  });

  it("readProxyV2 returns the header and puts the bytes after it back; a stall, a hang-up or junk is refused", async () => {
    const header = encodeProxyV2({
      command: "proxy",
      address: { family: "ipv4", sourceAddress: "203.0.113.7", sourcePort: 1, destinationAddress: "10.0.0.1", destinationPort: 443 },
    });
    const socket = new PassThrough() as unknown as net.Socket;
    const reading = readProxyV2(socket, 2_000);
    (socket as unknown as PassThrough).write(Buffer.concat([Buffer.from(header.subarray(0, 5))]));
    (socket as unknown as PassThrough).write(Buffer.concat([Buffer.from(header.subarray(5)), Buffer.from("hello")]));
    expect(proxyClientAddress(await reading)).toBe("203.0.113.7");
    expect(String(socket.read())).toBe("hello");

    const junk = new PassThrough();
    const refused = readProxyV2(junk as unknown as net.Socket, 2_000);
    junk.write(Buffer.from([0x16, 0x03, 0x01]));
    expect(await rejection(refused)).toBe("ERR_PROXY_SIGNATURE");

    const gone = new PassThrough();
    const closed = readProxyV2(gone as unknown as net.Socket, 2_000);
    gone.end(Buffer.from(header.subarray(0, 8)));
    expect(await rejection(closed)).toBe("ERR_PROXY_CLOSED");

    vi.useFakeTimers();
    try {
      const slow = new PassThrough();
      const stalled = readProxyV2(slow as unknown as net.Socket, 5_000);
      slow.write(Buffer.from(header.subarray(0, 8)));
      vi.advanceTimersByTime(4_999);
      let settled = false;
      void stalled.then(
        () => (settled = true),
        () => (settled = true),
      );
      await Promise.resolve();
      expect(settled).toBe(false);
      vi.advanceTimersByTime(1);
      expect(await rejection(stalled)).toBe("ERR_PROXY_TIMEOUT");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("an enclave behind a PROXY v2 relay", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ config: configJson({ proxyProtocol: true, limits: { ipRateLimitPerMinute: 3 } }) });
  });
  afterAll(async () => h?.close());

  function request(sourceAddress: string | null): Promise<number> {
    return new Promise((resolve, reject) => {
      const raw = net.connect(h.enclave.server.port!, "127.0.0.1", () => {
        if (sourceAddress !== null) {
          raw.write(encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress, sourcePort: 40000, destinationAddress: "127.0.0.1", destinationPort: 443 } }));
        }
        const socket = tls.connect({ socket: raw, ca: h.enclave.identity.tls.certPem, servername: "localhost" }, () => {
          const body = JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] });
          socket.write(
            `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${CLIENT_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
          );
        });
        let data = "";
        socket.on("data", (d) => (data += d.toString()));
        socket.on("end", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
        socket.on("error", () => resolve(0));
      });
      raw.on("error", reject);
    });
  }

  it("serves requests after the header, and limits per reported client address", async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push(await request("203.0.113.7"));
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    // Another address has its own budget.
    expect(await request("198.51.100.9")).toBe(200);
  });

  it("refuses a connection that does not start with the header", async () => {
    expect(await request(null)).toBe(0);
  });
});
