import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TransportError } from "../../../host/transport/errors.js";
import { ENDPOINT_MAX_LENGTH, formatEndpoint, parseEndpoint, type Endpoint } from "../../../host/transport/endpoint.js";

function expectInvalid(value: unknown): TransportError {
  try {
    parseEndpoint(value);
  } catch (err) {
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).code).toBe("ERR_ENDPOINT_INVALID");
    expect((err as TransportError).action).toBe("fix-config");
    return err as TransportError;
  }
  throw new Error(`expected ${JSON.stringify(value)} to be refused`);
}

describe("parseEndpoint", () => {
  it.each<[string, Endpoint]>([
    ["vsock://16:5000", { kind: "vsock", cid: 16, port: 5000 }],
    ["vsock://3:8000", { kind: "vsock", cid: 3, port: 8000 }],
    ["vsock://0:0", { kind: "vsock", cid: 0, port: 0 }],
    ["vsock://4294967295:4294967295", { kind: "vsock", cid: 0xffffffff, port: 0xffffffff }],
    ["tcp://127.0.0.1:443", { kind: "tcp", host: "127.0.0.1", port: 443 }],
    ["tcp://0.0.0.0:0", { kind: "tcp", host: "0.0.0.0", port: 0 }],
    ["tcp://[::1]:8443", { kind: "tcp", host: "::1", port: 8443 }],
    ["tcp://[2001:DB8::1]:65535", { kind: "tcp", host: "2001:db8::1", port: 65535 }],
    ["tcp://[::ffff:10.0.0.1]:1", { kind: "tcp", host: "::ffff:10.0.0.1", port: 1 }],
    ["tcp://Enclave.Local:443", { kind: "tcp", host: "enclave.local", port: 443 }],
    ["tcp://localhost:80", { kind: "tcp", host: "localhost", port: 80 }],
    ["tcp://a-b.c1.example:80", { kind: "tcp", host: "a-b.c1.example", port: 80 }],
    ["unix:///run/egw/enclave.sock", { kind: "unix", path: "/run/egw/enclave.sock" }],
    ["unix:///tmp/with space:and?query#frag", { kind: "unix", path: "/tmp/with space:and?query#frag" }],
    [`unix:///${"a".repeat(106)}`, { kind: "unix", path: `/${"a".repeat(106)}` }],
  ])("%s", (text, expected) => {
    expect(parseEndpoint(text)).toEqual(expected);
    expect(parseEndpoint(formatEndpoint(expected))).toEqual(expected);
  });

  it.each([
    "",
    "vsock://",
    "vsock://16",
    "vsock://16:",
    "vsock://:5000",
    "vsock://016:5000",
    "vsock://16:05000",
    "vsock://4294967296:1",
    "vsock://1:4294967296",
    "vsock://-1:1",
    "vsock://+1:1",
    "vsock://0x10:1",
    "vsock://16:5000/",
    "vsock://16:5000:1",
    "vsock://a:1",
    "vsock://1 :1",
    "vsock://1.0:1",
    "tcp://",
    "tcp://:80",
    "tcp://host",
    "tcp://host:",
    "tcp://host:65536",
    "tcp://host:080",
    "tcp://host:-1",
    "tcp://host:80/",
    "tcp://host:80?x=1",
    "tcp://::1:80",
    "tcp://[::1]",
    "tcp://[::1:80",
    "tcp://[fe80::1%eth0]:80",
    "tcp://[1.2.3.4]:80",
    "tcp://[::g]:80",
    "tcp://999.1.1.1:80",
    "tcp://01.2.3.4:80",
    "tcp://1.2.3:80",
    "tcp://1.2.3.4.5:80",
    "tcp://-a.com:1",
    "tcp://a-.com:1",
    "tcp://a_b.com:1",
    "tcp://a..b:1",
    "tcp://.a:1",
    "tcp://a.:1",
    `tcp://${"a".repeat(64)}.com:1`,
    `tcp://${Array(64).fill("abc").join(".")}:1`,
    "tcp://user@host:1",
    "tcp://hôst:1",
    "unix://relative/path",
    "unix://",
    "unix:///",
    "unix:///a\u0000b",
    "unix:///a\nb",
    `unix:///${"a".repeat(107)}`,
    `unix:///${"é".repeat(54)}`,
    "TCP://host:1",
    "Vsock://1:1",
    "udp://host:1",
    "http://host:80",
    " tcp://host:1",
    "tcp://host:1 ",
    "tcp:/host:1",
    "tcp:host:1",
    "x".repeat(ENDPOINT_MAX_LENGTH + 1),
  ])("refuses %j", (text) => {
    expectInvalid(text);
  });

  it.each([undefined, null, 42, {}, ["tcp://a:1"], new Uint8Array(3)])("refuses a non-string (%s)", (value) => {
    expectInvalid(value);
  });

  it("names the offending part and cuts long values in the message", () => {
    expect(expectInvalid("tcp://host:99999").message).toMatch(/port expected 0\.\.65535, got 99999/);
    const long = `tcp://${"a".repeat(500)}:1`;
    expect(expectInvalid(long).message.length).toBeLessThan(300);
  });
});

const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
const dnsName = fc
  .array(label, { minLength: 1, maxLength: 4 })
  .map((labels) => labels.join("."))
  .filter((name) => !name.split(".").every((l) => /^[0-9]+$/.test(l)));
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6().map((a) => a.toLowerCase());
const endpointArb: fc.Arbitrary<Endpoint> = fc.oneof(
  fc.record({ kind: fc.constant("vsock" as const), cid: fc.nat({ max: 0xffffffff }), port: fc.nat({ max: 0xffffffff }) }),
  fc.record({ kind: fc.constant("tcp" as const), host: fc.oneof(dnsName, ipv4, ipv6), port: fc.nat({ max: 65535 }) }),
  fc.record({
    kind: fc.constant("unix" as const),
    path: fc
      .array(fc.stringMatching(/^[A-Za-z0-9._ -]{1,12}$/), { minLength: 1, maxLength: 6 })
      .map((parts) => `/${parts.join("/")}`)
      .filter((p) => Buffer.byteLength(p) <= 107),
  }),
);

describe("parseEndpoint properties", () => {
  it("format then parse is the identity on every valid endpoint", () => {
    fc.assert(
      fc.property(endpointArb, (endpoint) => {
        expect(parseEndpoint(formatEndpoint(endpoint))).toEqual(endpoint);
      }),
      { numRuns: 2000 },
    );
  });

  it("any string either parses to a value that formats back to itself, or fails with ERR_ENDPOINT_INVALID", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.tuple(fc.constantFrom("vsock://", "tcp://", "unix://", "tcp://[", "unix:///"), fc.string({ maxLength: 40 })).map(([a, b]) => a + b),
      endpointArb.chain((e) => fc.nat({ max: 40 }).chain((cut) => fc.constant(formatEndpoint(e).slice(0, cut)))),
    );
    fc.assert(
      fc.property(text, (value) => {
        let parsed: Endpoint;
        try {
          parsed = parseEndpoint(value);
        } catch (err) {
          expect(err).toBeInstanceOf(TransportError);
          expect((err as TransportError).code).toBe("ERR_ENDPOINT_INVALID");
          return;
        }
        expect(parseEndpoint(formatEndpoint(parsed))).toEqual(parsed);
      }),
      { numRuns: 5000 },
    );
  });

  it("runs in time linear in the input (no regex blow-up on long near-valid input)", () => {
    const time = (n: number) => {
      const value = `tcp://${"a-".repeat(n)}:1`.slice(0, ENDPOINT_MAX_LENGTH);
      const start = performance.now();
      for (let i = 0; i < 200; i++) {
        try {
          parseEndpoint(value);
        } catch {
          // expected
        }
      }
      return performance.now() - start;
    };
    time(100);
    expect(time(500)).toBeLessThan(250);
  });
});
