import { isIPv4, isIPv6 } from "node:net";

/**
 * What kind of address an IP is, for the egress policy. Only "public" may be
 * dialled without an explicit allowPrivate rule. The tables follow the IANA
 * special-purpose registries (RFC 6890 and its updates); anything that is
 * not plainly global unicast is refused, so an unlisted corner of the
 * address space fails closed rather than open.
 */
export type AddressClass =
  | "public"
  | "unspecified"
  | "loopback"
  | "private"
  | "cgnat"
  | "link_local"
  | "metadata"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "unique_local"
  | "site_local"
  | "ipv4_mapped"
  | "ipv4_embedded"
  | "invalid";

type V4Range = readonly [prefix: string, bits: number, cls: AddressClass];

// Order matters: the first match wins, so specific entries come first.
const V4: readonly V4Range[] = [
  // Instance metadata (IMDS) and the ECS task metadata endpoint: credentials live there.
  ["169.254.169.254", 32, "metadata"],
  ["169.254.170.2", 32, "metadata"],
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "cgnat"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link_local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.0.2.0", 24, "documentation"],
  ["192.88.99.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["198.51.100.0", 24, "documentation"],
  ["203.0.113.0", 24, "documentation"],
  ["224.0.0.0", 4, "multicast"],
  ["255.255.255.255", 32, "broadcast"],
  ["240.0.0.0", 4, "reserved"],
];

type V6Range = readonly [prefix: string, bits: number, cls: AddressClass | "nat64"];

const V6: readonly V6Range[] = [
  ["fd00:ec2::254", 128, "metadata"],
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["::ffff:0:0", 96, "ipv4_mapped"],
  // NAT64 well-known prefix (RFC 6052): judged by the IPv4 address inside, below.
  ["64:ff9b::", 96, "nat64"],
  ["64:ff9b:1::", 48, "private"],
  ["100::", 64, "reserved"],
  // Teredo and 6to4 carry an IPv4 address that may be anything.
  ["2001::", 32, "ipv4_embedded"],
  ["2001:2::", 48, "benchmarking"],
  ["2001:db8::", 32, "documentation"],
  ["2002::", 16, "ipv4_embedded"],
  ["3fff::", 20, "documentation"],
  ["fc00::", 7, "unique_local"],
  ["fe80::", 10, "link_local"],
  ["fec0::", 10, "site_local"],
  ["ff00::", 8, "multicast"],
  // Global unicast is 2000::/3 (RFC 4291 §2.4); the rest is unassigned or reserved.
  ["2000::", 3, "public"],
  ["::", 0, "reserved"],
];

function v4Bytes(address: string): Uint8Array {
  return Uint8Array.from(address.split(".").map(Number));
}

/** 16 bytes of an IPv6 address already validated by net.isIPv6 (no zone id). */
function v6Bytes(address: string): Uint8Array {
  let text = address;
  const out = new Uint8Array(16);
  let tail: number[] = [];
  // Embedded dotted quad in the last 32 bits.
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const quad = v4Bytes(text.slice(lastColon + 1));
    tail = [(quad[0]! << 8) | quad[1]!, (quad[2]! << 8) | quad[3]!];
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length === 2) {
    out[12] = tail[0]! >> 8;
    out[13] = tail[0]! & 0xff;
    out[14] = tail[1]! >> 8;
    out[15] = tail[1]! & 0xff;
  }
  return out;
}

function inPrefix(addr: Uint8Array, prefix: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if ((addr[byte]! & mask) !== (prefix[byte]! & mask)) return false;
  }
  return true;
}

const V4_TABLE = V4.map(([p, bits, cls]) => [v4Bytes(p), bits, cls] as const);
const V6_TABLE = V6.map(([p, bits, cls]) => [v6Bytes(p), bits, cls] as const);

export function classifyAddress(address: string): AddressClass {
  if (isIPv4(address)) {
    const bytes = v4Bytes(address);
    for (const [prefix, bits, cls] of V4_TABLE) if (inPrefix(bytes, prefix, bits)) return cls;
    return "public";
  }
  if (isIPv6(address) && !address.includes("%")) {
    const bytes = v6Bytes(address);
    for (const [prefix, bits, cls] of V6_TABLE) {
      if (!inPrefix(bytes, prefix, bits)) continue;
      if (cls === "nat64") {
        // 64:ff9b::/96: the NAT64 gateway dials the embedded IPv4 address.
        return classifyAddress(Array.from(bytes.subarray(12)).join("."));
      }
      return cls;
    }
    return "reserved";
  }
  return "invalid";
}
