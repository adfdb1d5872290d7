import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { classifyAddress, type AddressClass } from "../../../host/egress/address-class.js";
import { parseAuthority } from "../../../host/egress/connect-parser.js";
import { createEgressPolicy, EgressConfigError, parseEgressRule, type ResolvedAddress, type Resolver } from "../../../host/egress/policy.js";

const PUBLIC_V4 = "93.184.215.14";
const PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c";

function fakeResolver(table: Record<string, ResolvedAddress[] | Error>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const entry = table[host];
    if (entry === undefined) throw Object.assign(new Error("ENOTFOUND"), { code: "ENOTFOUND" });
    if (entry instanceof Error) throw entry;
    return entry;
  };
  return Object.assign(fn, { calls });
}
const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });
const target = (authority: string) => parseAuthority(authority);

describe("classifyAddress", () => {
  it.each<[string, AddressClass]>([
    ["8.8.8.8", "public"],
    [PUBLIC_V4, "public"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["10.0.0.1", "private"],
    ["10.255.255.255", "private"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["100.128.0.0", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["169.254.169.254", "metadata"],
    ["169.254.170.2", "metadata"],
    ["169.254.169.253", "link_local"],
    ["169.254.0.1", "link_local"],
    ["172.15.255.255", "public"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.0", "public"],
    ["192.0.0.8", "reserved"],
    ["192.0.2.1", "documentation"],
    ["192.168.1.1", "private"],
    ["198.18.0.1", "benchmarking"],
    ["198.19.255.255", "benchmarking"],
    ["198.51.100.7", "documentation"],
    ["203.0.113.9", "documentation"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "broadcast"],
    [PUBLIC_V6, "public"],
    ["2a00:1450:4001:80b::200e", "public"],
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["::ffff:127.0.0.1", "ipv4_mapped"],
    ["::ffff:8.8.8.8", "ipv4_mapped"],
    ["::ffff:7f00:1", "ipv4_mapped"],
    ["::127.0.0.1", "reserved"],
    ["64:ff9b::8.8.8.8", "public"],
    ["64:ff9b::10.0.0.1", "private"],
    ["64:ff9b::169.254.169.254", "metadata"],
    ["64:ff9b:1::1", "private"],
    ["100::1", "reserved"],
    ["2001::1", "ipv4_embedded"],
    ["2001:db8::1", "documentation"],
    ["2002:c000:0204::1", "ipv4_embedded"],
    ["fc00::1", "unique_local"],
    ["fd12:3456::1", "unique_local"],
    ["fd00:ec2::254", "metadata"],
    ["fd00:ec2::253", "unique_local"],
    ["fe80::1", "link_local"],
    ["febf::1", "link_local"],
    ["fec0::1", "site_local"],
    ["ff02::1", "multicast"],
    ["4000::1", "reserved"],
    ["1::", "reserved"],
    ["fe80::1%eth0", "invalid"],
    ["not-an-ip", "invalid"],
    ["", "invalid"],
  ])("%s is %s", (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it("agrees with node:net BlockList on the private IPv4 ranges for any address", async () => {
    const { BlockList } = await import("node:net");
    const list = new BlockList();
    for (const [net, bits] of [
      ["10.0.0.0", 8],
      ["172.16.0.0", 12],
      ["192.168.0.0", 16],
      ["127.0.0.0", 8],
      ["169.254.0.0", 16],
      ["100.64.0.0", 10],
      ["224.0.0.0", 3],
      ["0.0.0.0", 8],
    ] as const) {
      list.addSubnet(net, bits, "ipv4");
    }
    fc.assert(
      fc.property(fc.ipV4(), (address) => {
        if (list.check(address, "ipv4")) expect(classifyAddress(address)).not.toBe("public");
      }),
      { numRuns: 5000 },
    );
  });

  it("never throws, whatever the string", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.ipV6(), fc.ipV4Extended()), (s) => void classifyAddress(s)));
  });
});

describe("egress policy decisions", () => {
  const resolver = fakeResolver({
    "api.openai.com": [v4(PUBLIC_V4), v6(PUBLIC_V6)],
    "internal.example": [v4("10.1.2.3")],
    "mixed.example": [v4(PUBLIC_V4), v4("192.168.0.7")],
    "metadata.example": [v4("169.254.169.254")],
    "metadata6.example": [v6("fd00:ec2::254")],
    "mapped.example": [v6("::ffff:127.0.0.1")],
    localhost: [v4("127.0.0.1"), v6("::1")],
    "servfail.example": new Error("SERVFAIL"),
  });
  const policy = createEgressPolicy({
    rules: [
      "api.openai.com:443",
      "internal.example:443",
      "mixed.example:443",
      "metadata.example:80",
      "metadata6.example:80",
      "mapped.example:443",
      "servfail.example:443",
      "missing.example:443",
      { host: "localhost", port: 8443, allowPrivate: true },
      { host: "127.0.0.1", port: 9000, allowPrivate: true },
      { host: "10.9.9.9", port: 443 },
      { host: PUBLIC_V4, port: 443 },
      { host: "::1", port: 9001, allowPrivate: true },
      { host: "169.254.169.254", port: 80, allowPrivate: true },
    ],
    resolver,
  });

  it.each([
    ["api.openai.com:443", { allowed: true, rule: "allowed", entry: "api.openai.com:443" }],
    ["API.OPENAI.COM:443", { allowed: true, rule: "allowed" }],
    ["evil.example:443", { allowed: false, rule: "denied_host", status: 403 }],
    ["openai.com:443", { allowed: false, rule: "denied_host", status: 403 }],
    ["x.api.openai.com:443", { allowed: false, rule: "denied_host", status: 403 }],
    ["api.openai.com:80", { allowed: false, rule: "denied_port", status: 403 }],
    ["api.openai.com:8443", { allowed: false, rule: "denied_port", status: 403 }],
    ["8.8.8.8:443", { allowed: false, rule: "ip_literal", status: 403 }],
    ["[2001:4860:4860::8888]:443", { allowed: false, rule: "ip_literal", status: 403 }],
    ["127.0.0.1:443", { allowed: false, rule: "denied_port", status: 403 }],
    ["127.0.0.2:9000", { allowed: false, rule: "ip_literal", status: 403 }],
    ["[::ffff:127.0.0.1]:9000", { allowed: false, rule: "ip_literal", status: 403 }],
    ["10.9.9.9:443", { allowed: false, rule: "private_address", status: 403, addressClass: "private" }],
    ["internal.example:443", { allowed: false, rule: "private_address", status: 403, addressClass: "private" }],
    ["mixed.example:443", { allowed: false, rule: "private_address", status: 403, addressClass: "private" }],
    ["metadata.example:80", { allowed: false, rule: "metadata_address", status: 403 }],
    ["metadata6.example:80", { allowed: false, rule: "metadata_address", status: 403 }],
    ["mapped.example:443", { allowed: false, rule: "private_address", status: 403, addressClass: "ipv4_mapped" }],
    ["servfail.example:443", { allowed: false, rule: "dns_failure", status: 502 }],
    ["missing.example:443", { allowed: false, rule: "dns_failure", status: 502 }],
    ["localhost:8443", { allowed: true, entry: "localhost:8443" }],
    ["127.0.0.1:9000", { allowed: true, entry: "127.0.0.1:9000" }],
    ["[0::1]:9001", { allowed: true, entry: "[::1]:9001" }],
    ["169.254.169.254:80", { allowed: true }],
    [`${PUBLIC_V4}:443`, { allowed: true }],
  ])("%s → %o", async (authority, expected) => {
    expect(await policy.decide(target(authority))).toMatchObject(expected);
  });

  it("hands back the resolver's own answer for the dial, in its order", async () => {
    const d = await policy.decide(target("api.openai.com:443"));
    expect(d).toMatchObject({ allowed: true, addresses: [v4(PUBLIC_V4), v6(PUBLIC_V6)] });
  });

  it("does not resolve IP literals, denied hosts or denied ports", async () => {
    const before = resolver.calls.length;
    await policy.decide(target("8.8.8.8:443"));
    await policy.decide(target("evil.example:443"));
    await policy.decide(target("api.openai.com:80"));
    await policy.decide(target("127.0.0.1:9000"));
    expect(resolver.calls.length).toBe(before);
  });

  it("resolves at every decision: no cache, and a changed answer changes the decision (rebinding)", async () => {
    let answer = [v4(PUBLIC_V4)];
    let calls = 0;
    const p = createEgressPolicy({
      rules: ["rebind.example:443"],
      resolver: async () => {
        calls++;
        return answer;
      },
    });
    expect(await p.decide(target("rebind.example:443"))).toMatchObject({ allowed: true, addresses: [v4(PUBLIC_V4)] });
    answer = [v4("127.0.0.1")];
    expect(await p.decide(target("rebind.example:443"))).toMatchObject({ allowed: false, rule: "private_address" });
    answer = [v4(PUBLIC_V4)];
    expect(await p.decide(target("rebind.example:443"))).toMatchObject({ allowed: true });
    expect(calls).toBe(3);
  });

  it.each<[string, unknown]>([
    ["an empty answer", []],
    ["not an array", { address: PUBLIC_V4, family: 4 }],
    ["a non-IP address", [{ address: "example.com", family: 4 }]],
    ["a wrong family", [{ address: PUBLIC_V4, family: 6 }]],
    ["a zone id", [{ address: "fe80::1%eth0", family: 6 }]],
    ["too many answers", Array.from({ length: 65 }, () => v4(PUBLIC_V4))],
    ["null", null],
  ])("a resolver answer with %s is a dns_failure", async (_name, answer) => {
    const p = createEgressPolicy({ rules: ["a.example:443"], resolver: async () => answer as ResolvedAddress[] });
    expect(await p.decide(target("a.example:443"))).toMatchObject({ allowed: false, rule: "dns_failure", status: 502 });
  });

  it("a resolver that throws synchronously is a dns_failure", async () => {
    const p = createEgressPolicy({
      rules: ["a.example:443"],
      resolver: () => {
        throw new Error("boom");
      },
    });
    expect(await p.decide(target("a.example:443"))).toMatchObject({ rule: "dns_failure" });
  });

  it("a resolver slower than the caller's signal is a dns_timeout (504)", async () => {
    const p = createEgressPolicy({ rules: ["slow.example:443"], resolver: () => new Promise(() => {}) });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    expect(await p.decide(target("slow.example:443"), { signal: ac.signal })).toMatchObject({ allowed: false, rule: "dns_timeout", status: 504 });
  });

  it("an empty allowlist denies everything", async () => {
    const p = createEgressPolicy({ rules: [], resolver: fakeResolver({}) });
    expect(await p.decide(target("api.openai.com:443"))).toMatchObject({ rule: "denied_host" });
    expect(await p.decide(target("127.0.0.1:443"))).toMatchObject({ rule: "ip_literal" });
  });
});

describe("egress rules", () => {
  it("normalizes entries", () => {
    const p = createEgressPolicy({ rules: ["API.example.com:443", { host: "[2001:DB8::1]", port: 443 }, { host: "2001:db8::2", port: 443 }], resolver: fakeResolver({}) });
    expect(p.entries).toEqual(["api.example.com:443", "[2001:db8::1]:443", "[2001:db8::2]:443"]);
  });

  it.each<[string, unknown]>([
    ["no port", "api.example.com"],
    ["a wildcard", "*.example.com:443"],
    ["a URL", "https://api.example.com:443"],
    ["a path", "api.example.com:443/v1"],
    ["port 0", { host: "a.example", port: 0 }],
    ["a non-integer port", { host: "a.example", port: 44.3 }],
    ["a bad host", { host: "a_b", port: 443 }],
    ["a numeric last label", "127.1:443"],
    ["allowPrivate not a boolean", { host: "a.example", port: 443, allowPrivate: "yes" }],
    ["null", null],
  ])("rejects a rule with %s", (_name, rule) => {
    expect(() => createEgressPolicy({ rules: [rule as string], resolver: fakeResolver({}) })).toThrow(EgressConfigError);
  });

  it("rejects a duplicate entry, however it is spelled", () => {
    expect(() => createEgressPolicy({ rules: ["a.example:443", "A.EXAMPLE:443"], resolver: fakeResolver({}) })).toThrow(/listed twice/);
  });

  it("rejects rules that are not an array", () => {
    expect(() => createEgressPolicy({ rules: undefined as unknown as string[] })).toThrow(EgressConfigError);
  });

  it("parseEgressRule", () => {
    expect(parseEgressRule("[::1]:80")).toEqual({ host: "::1", port: 80 });
    expect(parseEgressRule("kms.eu-west-1.amazonaws.com:443")).toEqual({ host: "kms.eu-west-1.amazonaws.com", port: 443 });
  });
});
