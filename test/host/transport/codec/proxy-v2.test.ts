import fc from "fast-check";
import { isIPv6 } from "node:net";
import { describe, expect, it } from "vitest";
import { bytesToIpv6, ipv4ToBytes, ipv6ToBytes, unmapIpv4 } from "../../../../host/transport/codec/ip.js";
import {
  PROXY_V2_DEFAULT_MAX_LENGTH,
  ProxyProtocolError,
  decodeProxyV2,
  encodeProxyV2,
  proxyHeaderForConnection,
  type ProxyAddress,
  type ProxyHeader,
} from "../../../../host/transport/codec/proxy-v2.js";

const hex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));
const SIG = "0d0a0d0a000d0a515549540a";

function complete(bytes: Uint8Array): { header: ProxyHeader; length: number } {
  const r = decodeProxyV2(bytes);
  if (r.status !== "complete") throw new Error("expected a complete header");
  return r;
}

function expectCode(bytes: Uint8Array, code: string, options?: { maxLength?: number }): void {
  try {
    decodeProxyV2(bytes, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ProxyProtocolError);
    expect((err as ProxyProtocolError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe("PROXY v2 vectors (HAProxy proxy-protocol.txt §2.2)", () => {
  // Captured from HAProxy sending to netcat: TCP over IPv4, 172.19.0.1:42578 → 172.19.0.3:80, then "GET /".
  const haproxy = hex(`${SIG} 21 11 000c ac130001 ac130003 a652 0050 474554202f`);

  it("decodes HAProxy's own header and leaves the payload after it", () => {
    const { header, length } = complete(haproxy);
    expect(length).toBe(28);
    expect(header).toEqual({
      command: "proxy",
      transport: "stream",
      address: { family: "ipv4", sourceAddress: "172.19.0.1", sourcePort: 42578, destinationAddress: "172.19.0.3", destinationPort: 80 },
      tlvs: [],
    });
    expect(Buffer.from(haproxy.subarray(length)).toString()).toBe("GET /");
  });

  it("encodes the same bytes HAProxy sent", () => {
    const bytes = encodeProxyV2({
      command: "proxy",
      address: { family: "ipv4", sourceAddress: "172.19.0.1", sourcePort: 42578, destinationAddress: "172.19.0.3", destinationPort: 80 },
    });
    expect(Buffer.from(bytes).toString("hex")).toBe(Buffer.from(haproxy.subarray(0, 28)).toString("hex"));
  });

  it("IPv6: 0x21 family byte, 36 address bytes, 52 in all", () => {
    const bytes = encodeProxyV2({ command: "proxy", address: { family: "ipv6", sourceAddress: "2001:db8::1", sourcePort: 1, destinationAddress: "::1", destinationPort: 443 } });
    expect(Buffer.from(bytes).toString("hex")).toBe(`${SIG}2121002420010db800000000000000000000000100000000000000000000000000000001000101bb`);
    expect(complete(bytes).header.address).toEqual({ family: "ipv6", sourceAddress: "2001:db8::1", sourcePort: 1, destinationAddress: "::1", destinationPort: 443 });
  });

  it("LOCAL: 0x20, and the receiver discards whatever address block follows", () => {
    expect(Buffer.from(encodeProxyV2({ command: "local", address: { family: "unspec" } })).toString("hex")).toBe(`${SIG}20000000`);
    const withBlock = hex(`${SIG} 20 11 000c ac130001 ac130003 a652 0050`);
    expect(complete(withBlock)).toEqual({ status: "complete", header: { command: "local", transport: "unspec", address: { family: "unspec" }, tlvs: [] }, length: 28 });
  });

  it("PROXY + UNSPEC (addresses unknown) and TLVs after the addresses", () => {
    expect(Buffer.from(encodeProxyV2({ command: "proxy", address: { family: "unspec" } })).toString("hex")).toBe(`${SIG}21000000`);
    // PP2_TYPE_AUTHORITY (0x02) "a", then PP2_TYPE_NOOP (0x04) empty.
    const bytes = hex(`${SIG} 21 11 0013 01020304 05060708 0001 0002 02 0001 61 04 0000`);
    const { header } = complete(bytes);
    expect(header.tlvs).toEqual([
      { type: 2, value: new Uint8Array([0x61]) },
      { type: 4, value: new Uint8Array(0) },
    ]);
  });

  it("UNIX stream addresses are 2 × 108 bytes, NUL-padded", () => {
    const bytes = encodeProxyV2({ command: "proxy", address: { family: "unix", sourcePath: "/run/a.sock", destinationPath: "/run/b.sock" } });
    expect(bytes.length).toBe(16 + 216);
    expect(bytes[13]).toBe(0x31);
    expect(complete(bytes).header.address).toEqual({ family: "unix", sourcePath: "/run/a.sock", destinationPath: "/run/b.sock" });
  });
});

describe("PROXY v2 decoder is strict and bounded", () => {
  it.each<[string, string, string]>([
    ["TLS ClientHello instead of a header", "160301", "ERR_PROXY_SIGNATURE"],
    ["PROXY v1 text", "50524f5859", "ERR_PROXY_SIGNATURE"],
    ["signature off by one bit", `${SIG.slice(0, -2)}0b 21 11 000c`, "ERR_PROXY_SIGNATURE"],
    ["version 1 nibble", `${SIG} 11 11 000c`, "ERR_PROXY_VERSION"],
    ["version 3", `${SIG} 31`, "ERR_PROXY_VERSION"],
    ["command 2", `${SIG} 22 11 000c`, "ERR_PROXY_COMMAND"],
    ["command 0xf", `${SIG} 2f`, "ERR_PROXY_COMMAND"],
    ["family 4", `${SIG} 21 41 000c`, "ERR_PROXY_FAMILY"],
    ["INET with transport 3", `${SIG} 21 13 000c`, "ERR_PROXY_FAMILY"],
    ["UNSPEC family with STREAM", `${SIG} 21 01 0000`, "ERR_PROXY_FAMILY"],
    ["INET with STREAM-less 0x10", `${SIG} 21 10 000c`, "ERR_PROXY_FAMILY"],
    ["INET with 11 address bytes", `${SIG} 21 11 000b 0102030405060708090a0b`, "ERR_PROXY_LENGTH"],
    ["INET6 with 12 address bytes", `${SIG} 21 21 000c 0102030405060708090a0b0c`, "ERR_PROXY_LENGTH"],
    ["UNIX with 215 bytes", `${SIG} 21 31 00d7`, "ERR_PROXY_LENGTH"],
    ["length beyond the bound", `${SIG} 21 11 ffff`, "ERR_PROXY_LENGTH"],
    ["TLV header truncated", `${SIG} 21 11 000e 01020304 05060708 0001 0002 0200`, "ERR_PROXY_TLV"],
    ["TLV value overruns", `${SIG} 21 11 0010 01020304 05060708 0001 0002 02 0005 61`, "ERR_PROXY_TLV"],
  ])("%s → %s", (_name, bytes, code) => {
    expectCode(hex(bytes), code);
  });

  it("honours a smaller maxLength", () => {
    const bytes = encodeProxyV2({ command: "proxy", address: { family: "ipv6", sourceAddress: "::1", sourcePort: 1, destinationAddress: "::1", destinationPort: 2 } });
    expectCode(bytes, "ERR_PROXY_LENGTH", { maxLength: 51 });
    expect(decodeProxyV2(bytes, { maxLength: 52 }).status).toBe("complete");
    expect(PROXY_V2_DEFAULT_MAX_LENGTH).toBeGreaterThanOrEqual(16 + 216);
  });

  it("every proper prefix of a valid header is 'incomplete', never an error", () => {
    const bytes = encodeProxyV2({
      command: "proxy",
      address: { family: "ipv4", sourceAddress: "1.2.3.4", sourcePort: 5, destinationAddress: "6.7.8.9", destinationPort: 10 },
      tlvs: [{ type: 0xe0, value: new Uint8Array(7) }],
    });
    for (let n = 0; n < bytes.length; n++) {
      const r = decodeProxyV2(bytes.subarray(0, n));
      expect(r.status).toBe("incomplete");
    }
    expect(decodeProxyV2(bytes).status).toBe("complete");
  });

  it("random bytes: a ProxyProtocolError or a result, never anything else, and a complete result never claims more bytes than given", () => {
    const prefixed = fc
      .tuple(fc.constantFrom(0x20, 0x21, 0x22, 0x11), fc.constantFrom(0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x13), fc.uint8Array({ maxLength: 300 }))
      .map(([v, f, rest]) => new Uint8Array([...hex(SIG), v, f, ...rest]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), prefixed), (bytes) => {
        try {
          const r = decodeProxyV2(bytes);
          if (r.status === "complete") expect(r.length).toBeLessThanOrEqual(bytes.length);
          else expect(r.needed).toBeGreaterThan(bytes.length);
        } catch (err) {
          expect(err).toBeInstanceOf(ProxyProtocolError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

const port = fc.nat({ max: 65535 });
const v6text = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(bytesToIpv6);
const addressArb: fc.Arbitrary<ProxyAddress> = fc.oneof(
  fc.constant({ family: "unspec" as const }),
  fc.record({ family: fc.constant("ipv4" as const), sourceAddress: fc.ipV4(), sourcePort: port, destinationAddress: fc.ipV4(), destinationPort: port }),
  fc.record({ family: fc.constant("ipv6" as const), sourceAddress: v6text, sourcePort: port, destinationAddress: v6text, destinationPort: port }),
  fc.record({ family: fc.constant("unix" as const), sourcePath: fc.stringMatching(/^\/[a-z0-9/._-]{0,100}$/), destinationPath: fc.stringMatching(/^\/[a-z0-9/._-]{0,100}$/) }),
);
const tlvs = fc.array(fc.record({ type: fc.nat({ max: 255 }), value: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 5 });

describe("PROXY v2 properties", () => {
  it("decode(encode(h)) = h for PROXY headers of every family, with TLVs, followed by any payload", () => {
    fc.assert(
      fc.property(addressArb, tlvs, fc.uint8Array({ maxLength: 64 }), (address, tlvList, payload) => {
        const encoded = encodeProxyV2({ command: "proxy", address, tlvs: tlvList });
        const withPayload = new Uint8Array([...encoded, ...payload]);
        const r = decodeProxyV2(withPayload);
        expect(r.status).toBe("complete");
        if (r.status !== "complete") return;
        expect(r.length).toBe(encoded.length);
        expect(r.header).toEqual({ command: "proxy", transport: address.family === "unspec" ? "unspec" : "stream", address, tlvs: tlvList });
      }),
      { numRuns: 2000 },
    );
  });

  it("encode refuses what the format cannot carry", () => {
    const bad: Array<Parameters<typeof encodeProxyV2>[0]> = [
      { command: "proxy", address: { family: "ipv4", sourceAddress: "::1", sourcePort: 1, destinationAddress: "1.2.3.4", destinationPort: 1 } },
      { command: "proxy", address: { family: "ipv6", sourceAddress: "1.2.3.4", sourcePort: 1, destinationAddress: "::1", destinationPort: 1 } },
      { command: "proxy", address: { family: "ipv4", sourceAddress: "1.2.3.4", sourcePort: 65536, destinationAddress: "1.2.3.4", destinationPort: 1 } },
      { command: "proxy", address: { family: "ipv4", sourceAddress: "1.2.3.4", sourcePort: -1, destinationAddress: "1.2.3.4", destinationPort: 1 } },
      { command: "proxy", address: { family: "unix", sourcePath: "x".repeat(108), destinationPath: "/" } },
      { command: "proxy", address: { family: "unspec" }, transport: "stream" },
      { command: "proxy", address: { family: "unspec" }, tlvs: [{ type: 256, value: new Uint8Array(0) }] },
      { command: "proxy", address: { family: "unspec" }, tlvs: [{ type: 1, value: new Uint8Array(65533) }] },
    ];
    for (const header of bad) expect(() => encodeProxyV2(header)).toThrow(ProxyProtocolError);
  });
});

describe("proxyHeaderForConnection", () => {
  const decode = (bytes: Uint8Array) => complete(bytes).header.address;
  it("IPv4 client on an IPv4 listener", () => {
    expect(decode(proxyHeaderForConnection({ address: "203.0.113.7", port: 50000, localAddress: "10.0.0.5", localPort: 443 }))).toEqual({
      family: "ipv4",
      sourceAddress: "203.0.113.7",
      sourcePort: 50000,
      destinationAddress: "10.0.0.5",
      destinationPort: 443,
    });
  });
  it("IPv4 client on a dual-stack listener (::ffff:a.b.c.d) becomes INET", () => {
    expect(decode(proxyHeaderForConnection({ address: "::ffff:203.0.113.7", port: 1, localAddress: "::ffff:10.0.0.5", localPort: 443 }))).toMatchObject({
      family: "ipv4",
      sourceAddress: "203.0.113.7",
      destinationAddress: "10.0.0.5",
    });
  });
  it("IPv6 client", () => {
    expect(decode(proxyHeaderForConnection({ address: "2001:DB8:0:0:0:0:0:7", port: 2, localAddress: "2001:db8::5", localPort: 443 }))).toEqual({
      family: "ipv6",
      sourceAddress: "2001:db8::7",
      sourcePort: 2,
      destinationAddress: "2001:db8::5",
      destinationPort: 443,
    });
  });
  it("mixed families map the IPv4 side into IPv6", () => {
    expect(decode(proxyHeaderForConnection({ address: "2001:db8::7", port: 2, localAddress: "10.0.0.5", localPort: 443 }))).toMatchObject({
      family: "ipv6",
      destinationAddress: "::ffff:10.0.0.5",
    });
  });
  it("unknown addresses give PROXY + UNSPEC", () => {
    expect(complete(proxyHeaderForConnection({})).header).toEqual({ command: "proxy", transport: "unspec", address: { family: "unspec" }, tlvs: [] });
  });
});

describe("IP text ⇄ bytes", () => {
  it("bytesToIpv6 is RFC 5952 text that parses back to the same bytes (and matches the WHATWG URL serializer)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, mapped) => {
        if (mapped) bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0);
        const text = bytesToIpv6(bytes);
        expect(isIPv6(text)).toBe(true);
        expect(Array.from(ipv6ToBytes(text))).toEqual(Array.from(bytes));
        if (!mapped) expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
      }),
      { numRuns: 3000 },
    );
  });

  it("ipv6ToBytes reads every spelling fast-check generates", () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
        expect(Array.from(ipv6ToBytes(text))).toEqual(Array.from(ipv6ToBytes(canonical)));
      }),
      { numRuns: 3000 },
    );
  });

  it.each(["1.2.3", "256.0.0.1", "::g", "1:2:3:4:5:6:7:8:9", ""])("refuses %j", (text) => {
    expect(() => (text.includes(":") ? ipv6ToBytes(text) : ipv4ToBytes(text))).toThrow(RangeError);
  });

  it("unmapIpv4", () => {
    expect(unmapIpv4("::ffff:1.2.3.4")).toBe("1.2.3.4");
    expect(unmapIpv4("::FFFF:1.2.3.4")).toBe("1.2.3.4");
    expect(unmapIpv4("::1")).toBe("::1");
    expect(unmapIpv4("1.2.3.4")).toBe("1.2.3.4");
  });
});
