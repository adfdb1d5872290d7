import fc from "fast-check";
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProxyHeaderError, parseProxyV2 } from "../../enclave/http/proxy-header.js";
import { encodeProxyV2 } from "../../host/ingress/proxy-protocol.js";
import { configJson, CLIENT_TOKEN, startHarness, type Harness } from "../helpers/enclave-harness.js";

describe("the enclave's PROXY v2 decoder agrees with the host's encoder", () => {
  it("IPv4, IPv6, LOCAL and TLVs", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 1, max: 65535 }), fc.uint8Array({ maxLength: 40 }), (ip, port, tlv) => {
        const bytes = Buffer.from(
          encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: ip, sourcePort: port, destinationAddress: "10.0.0.1", destinationPort: 443 }, tlvs: tlv.length ? [{ type: 0xe0, value: tlv }] : [] }),
        );
        const parsed = parseProxyV2(Buffer.concat([bytes, Buffer.from("after")]))!;
        expect(parsed.clientAddress).toBe(ip);
        expect(parsed.length).toBe(bytes.length);
      }),
    );
    const v6 = Buffer.from(encodeProxyV2({ command: "proxy", address: { family: "ipv6", sourceAddress: "2001:db8::7", sourcePort: 1, destinationAddress: "::1", destinationPort: 2 } }));
    expect(parseProxyV2(v6)!.clientAddress).toBe("2001:db8:0:0:0:0:0:7");
    const local = Buffer.from(encodeProxyV2({ command: "local", address: { family: "unspec" } }));
    expect(parseProxyV2(local)!.clientAddress).toBeNull();
  });

  it("asks for more bytes on a prefix, refuses junk", () => {
    const v4 = Buffer.from(encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: "1.2.3.4", sourcePort: 1, destinationAddress: "5.6.7.8", destinationPort: 2 } }));
    for (let n = 0; n < v4.length; n++) expect(parseProxyV2(v4.subarray(0, n))).toBeNull();
    expect(() => parseProxyV2(Buffer.from([0x16, 0x03, 0x01]))).toThrow(ProxyHeaderError); // a TLS ClientHello
    const v1 = Buffer.from(v4);
    v1[12] = 0x11;
    expect(() => parseProxyV2(v1)).toThrow(/version 2/);
    const long = Buffer.from(v4);
    long.writeUInt16BE(2000, 14);
    expect(() => parseProxyV2(long)).toThrow(/longer/);
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
          socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${CLIENT_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
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
