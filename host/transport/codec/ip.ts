import { isIPv4, isIPv6 } from "node:net";

/**
 * IP address text ⇄ bytes, for the PROXY v2 address block. Node validates
 * text (net.isIPv4/isIPv6) but has no public parser to bytes, and the
 * header needs the bytes; the reverse direction prints RFC 5952 canonical
 * text so that a decoded header compares equal however the sender wrote it.
 */

export function ipv4ToBytes(text: string): Uint8Array {
  if (!isIPv4(text)) throw new RangeError(`expected an IPv4 address, got ${JSON.stringify(text.slice(0, 64))}`);
  return Uint8Array.from(text.split(".").map(Number));
}

export function bytesToIpv4(bytes: Uint8Array): string {
  if (bytes.length !== 4) throw new RangeError(`IPv4 address expected 4 bytes, got length=${bytes.length}`);
  return Array.from(bytes).join(".");
}

export function ipv6ToBytes(text: string): Uint8Array {
  // Zone ids ("fe80::1%eth0") name an interface of one machine; the header has no room for them.
  const bare = text.split("%")[0] ?? "";
  if (!isIPv6(bare)) throw new RangeError(`expected an IPv6 address, got ${JSON.stringify(text.slice(0, 64))}`);
  let head = bare;
  let tail4: number[] = [];
  const lastColon = bare.lastIndexOf(":");
  if (bare.slice(lastColon + 1).includes(".")) {
    tail4 = Array.from(ipv4ToBytes(bare.slice(lastColon + 1)));
    head = bare.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::", "1:2::3.4.5.6" leaves "1:2::", "1:2:3:4:5:6:1.2.3.4" leaves "…6:"
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsWanted = tail4.length === 4 ? 6 : 8;
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16)));
  let groups: number[];
  const gap = head.indexOf("::");
  if (gap >= 0) {
    const left = parse(head.slice(0, gap));
    const right = parse(head.slice(gap + 2));
    groups = [...left, ...new Array<number>(groupsWanted - left.length - right.length).fill(0), ...right];
  } else {
    groups = parse(head);
  }
  if (groups.length !== groupsWanted) throw new RangeError(`IPv6 address ${JSON.stringify(text.slice(0, 64))} has ${groups.length} groups`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  out.set(tail4, 12);
  return out;
}

/** RFC 5952 §4 text: lower case, no leading zeros, the longest run (≥ 2) of zero groups as "::", first on a tie; IPv4-mapped as ::ffff:a.b.c.d (§5). */
export function bytesToIpv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`IPv6 address expected 16 bytes, got length=${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytesToIpv4(bytes.subarray(12))}`;
  }
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength && j - i >= 2) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** "::ffff:1.2.3.4" → "1.2.3.4" (what a dual-stack listener reports for an IPv4 client); anything else unchanged. */
export function unmapIpv4(text: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(text);
  return m && isIPv4(m[1]!) ? m[1]! : text;
}
