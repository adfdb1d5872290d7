import { isIPv4, isIPv6, type Socket } from "node:net";
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes, unmapIpv4 } from "./ip.js";
import { EgwError } from "../../../attestation/egw-error.js";

/**
 * PROXY protocol version 2 (HAProxy, doc/proxy-protocol.txt §2.2), the
 * binary header a relay sends before any payload so that the server learns
 * the client's address. The host relay encodes (proxyHeaderForConnection);
 * the enclave decodes (readProxyV2), with this same file. The decoder is
 * strict: it accepts exactly the combinations §2.2 lists, bounds the total
 * size, and checks that TLVs fill the declared length exactly. The enclave
 * reads the address only for per-address rate limiting: it is the
 * untrusted host's claim, so nothing else depends on it.
 *
 *   bytes 0..11  signature \r\n\r\n\0\r\nQUIT\n
 *   byte  12     version (high nibble, must be 2) | command (0 LOCAL, 1 PROXY)
 *   byte  13     family (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) | transport (0 UNSPEC, 1 STREAM, 2 DGRAM)
 *   bytes 14..15 length of what follows, big-endian
 *   then         INET: src(4) dst(4) sport(2) dport(2) = 12; INET6: 16+16+2+2 = 36;
 *                UNIX: src(108) dst(108) = 216; then TLVs {type u8, length u16be, value}
 */

export const PROXY_V2_SIGNATURE = Uint8Array.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
export const PROXY_V2_FIXED_LENGTH = 16;
/**
 * Default bound on a whole header. The relay's own headers are 28 or 52
 * bytes; 16 + 216 (UNIX addresses) plus room for a few TLVs (AWS NLB adds
 * a VPC endpoint id, ~30 bytes) stays well under this.
 */
export const PROXY_V2_DEFAULT_MAX_LENGTH = 1024;

const ADDRESS_LENGTH = { ipv4: 12, ipv6: 36, unix: 216 } as const;
const UNIX_PATH_FIELD = 108;

export type ProxyTransport = "unspec" | "stream" | "dgram";

export type ProxyAddress =
  | { family: "unspec" }
  | { family: "ipv4" | "ipv6"; sourceAddress: string; sourcePort: number; destinationAddress: string; destinationPort: number }
  | { family: "unix"; sourcePath: string; destinationPath: string };

export interface ProxyTlv {
  type: number;
  value: Uint8Array;
}

export interface ProxyHeader {
  /** "local": the connection was made by the proxy itself (health check); the receiver uses the real endpoints. */
  command: "local" | "proxy";
  transport: ProxyTransport;
  address: ProxyAddress;
  tlvs: ProxyTlv[];
}

export type ProxyProtocolErrorCode =
  | "ERR_PROXY_SIGNATURE"
  | "ERR_PROXY_VERSION"
  | "ERR_PROXY_COMMAND"
  | "ERR_PROXY_FAMILY"
  | "ERR_PROXY_LENGTH"
  | "ERR_PROXY_TLV"
  | "ERR_PROXY_INPUT"
  | "ERR_PROXY_TIMEOUT" // readProxyV2: no whole header in time
  | "ERR_PROXY_CLOSED"; // readProxyV2: the connection ended or failed before a whole header

export class ProxyProtocolError extends EgwError<ProxyProtocolErrorCode> {
  constructor(code: ProxyProtocolErrorCode, message: string) {
    // Bytes that are not a header §2.2 allows, or values it cannot carry.
    super(code, message, "fix-input");
    this.name = "ProxyProtocolError";
  }
}

// ─── encode ──────────────────────────────────────────────────────────────────

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyProtocolError("ERR_PROXY_INPUT", `${what} expected an integer 0..65535, got ${port}`);
}

/** Encodes a header. Throws ProxyProtocolError ERR_PROXY_INPUT for values the format cannot carry. */
export function encodeProxyV2(header: { command: "local" | "proxy"; address: ProxyAddress; transport?: ProxyTransport; tlvs?: ProxyTlv[] }): Uint8Array {
  const { address } = header;
  const transport: ProxyTransport = header.transport ?? (address.family === "unspec" ? "unspec" : "stream");
  if ((address.family === "unspec") !== (transport === "unspec")) {
    throw new ProxyProtocolError("ERR_PROXY_INPUT", `family ${address.family} with transport ${transport} is not a combination §2.2 allows`);
  }
  let block: Uint8Array;
  let familyNibble: number;
  switch (address.family) {
    case "unspec":
      familyNibble = 0;
      block = new Uint8Array(0);
      break;
    case "ipv4":
    case "ipv6": {
      checkPort(address.sourcePort, "sourcePort");
      checkPort(address.destinationPort, "destinationPort");
      const toBytes = address.family === "ipv4" ? ipv4ToBytes : ipv6ToBytes;
      let src: Uint8Array;
      let dst: Uint8Array;
      try {
        src = toBytes(address.sourceAddress);
        dst = toBytes(address.destinationAddress);
      } catch (err) {
        throw new ProxyProtocolError("ERR_PROXY_INPUT", (err as Error).message);
      }
      familyNibble = address.family === "ipv4" ? 1 : 2;
      block = new Uint8Array(ADDRESS_LENGTH[address.family]);
      block.set(src, 0);
      block.set(dst, src.length);
      const view = new DataView(block.buffer);
      view.setUint16(src.length * 2, address.sourcePort);
      view.setUint16(src.length * 2 + 2, address.destinationPort);
      break;
    }
    case "unix": {
      familyNibble = 3;
      block = new Uint8Array(ADDRESS_LENGTH.unix);
      for (const [i, path] of [address.sourcePath, address.destinationPath].entries()) {
        const bytes = Buffer.from(path, "utf8");
        if (bytes.length >= UNIX_PATH_FIELD || bytes.includes(0)) throw new ProxyProtocolError("ERR_PROXY_INPUT", `unix path expected < ${UNIX_PATH_FIELD} bytes without NUL`);
        block.set(bytes, i * UNIX_PATH_FIELD);
      }
      break;
    }
  }
  const tlvs = header.tlvs ?? [];
  let tlvLength = 0;
  for (const tlv of tlvs) {
    if (!Number.isInteger(tlv.type) || tlv.type < 0 || tlv.type > 255) throw new ProxyProtocolError("ERR_PROXY_INPUT", `TLV type expected 0..255, got ${tlv.type}`);
    tlvLength += 3 + tlv.value.length;
  }
  const bodyLength = block.length + tlvLength;
  if (bodyLength > 0xffff) throw new ProxyProtocolError("ERR_PROXY_INPUT", `header body expected at most 65535 bytes, got ${bodyLength}`);
  const out = new Uint8Array(PROXY_V2_FIXED_LENGTH + bodyLength);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20 | (header.command === "proxy" ? 1 : 0);
  out[13] = (familyNibble << 4) | { unspec: 0, stream: 1, dgram: 2 }[transport];
  const view = new DataView(out.buffer);
  view.setUint16(14, bodyLength);
  out.set(block, PROXY_V2_FIXED_LENGTH);
  let at = PROXY_V2_FIXED_LENGTH + block.length;
  for (const tlv of tlvs) {
    out[at] = tlv.type;
    view.setUint16(at + 1, tlv.value.length);
    out.set(tlv.value, at + 3);
    at += 3 + tlv.value.length;
  }
  return out;
}

/**
 * The header for one relayed TCP connection, from the addresses the
 * listening socket reports. A dual-stack listener reports IPv4 clients as
 * ::ffff:a.b.c.d; those become INET. When the two ends are of different
 * families (possible only with odd listener setups) the IPv4 one is mapped
 * into IPv6, since §2.2 carries one family for both. Unknown addresses give
 * PROXY + UNSPEC, which tells the receiver to use the connection's own.
 */
export function proxyHeaderForConnection(peer: {
  address?: string | undefined;
  port?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}): Uint8Array {
  const { port, localPort } = peer;
  if (peer.address === undefined || peer.localAddress === undefined || port === undefined || localPort === undefined) {
    return encodeProxyV2({ command: "proxy", address: { family: "unspec" } });
  }
  const src = unmapIpv4(peer.address);
  const dst = unmapIpv4(peer.localAddress);
  if (isIPv4(src) && isIPv4(dst)) {
    return encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress: src, sourcePort: port, destinationAddress: dst, destinationPort: localPort } });
  }
  const as6 = (a: string) => (isIPv4(a) ? `::ffff:${a}` : a);
  if ((isIPv4(src) || isIPv6(src)) && (isIPv4(dst) || isIPv6(dst))) {
    return encodeProxyV2({ command: "proxy", address: { family: "ipv6", sourceAddress: as6(src), sourcePort: port, destinationAddress: as6(dst), destinationPort: localPort } });
  }
  return encodeProxyV2({ command: "proxy", address: { family: "unspec" } });
}

// ─── decode ──────────────────────────────────────────────────────────────────

export type ProxyDecodeResult =
  | { status: "incomplete" /** total bytes needed to make progress, when known */; needed: number }
  | { status: "complete"; header: ProxyHeader /** bytes the header took; payload starts here */; length: number };

const FAMILY_TRANSPORT: Record<number, [ProxyAddress["family"], ProxyTransport]> = {
  0: ["unspec", "unspec"],
  17: ["ipv4", "stream"],
  18: ["ipv4", "dgram"],
  33: ["ipv6", "stream"],
  34: ["ipv6", "dgram"],
  49: ["unix", "stream"],
  50: ["unix", "dgram"],
};

function unixPath(field: Uint8Array): string {
  const nul = field.indexOf(0);
  return Buffer.from(field.subarray(0, nul < 0 ? field.length : nul)).toString("utf8");
}

/**
 * Decodes a header at the start of `bytes`. Returns "incomplete" while more
 * bytes are needed (and the ones present are a valid prefix), so a receiver
 * can call it on each chunk; throws ProxyProtocolError as soon as the bytes
 * cannot be a valid header, including a signature mismatch in the first
 * few bytes (a client that speaks TLS directly is refused at once, not
 * after a timeout).
 */
export function decodeProxyV2(bytes: Uint8Array, options: { maxLength?: number } = {}): ProxyDecodeResult {
  const maxLength = options.maxLength ?? PROXY_V2_DEFAULT_MAX_LENGTH;
  const prefix = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < prefix; i++) {
    if (bytes[i] !== PROXY_V2_SIGNATURE[i]) throw new ProxyProtocolError("ERR_PROXY_SIGNATURE", `not a PROXY v2 header (signature mismatch at byte ${i})`);
  }
  if (bytes.length >= 13) {
    const version = bytes[12]! >> 4;
    if (version !== 2) throw new ProxyProtocolError("ERR_PROXY_VERSION", `PROXY header version expected 2, got ${version}`);
    const command = bytes[12]! & 0x0f;
    if (command > 1) throw new ProxyProtocolError("ERR_PROXY_COMMAND", `PROXY v2 command expected 0 (LOCAL) or 1 (PROXY), got ${command}`);
  }
  if (bytes.length >= 14 && !(bytes[13]! in FAMILY_TRANSPORT)) {
    throw new ProxyProtocolError("ERR_PROXY_FAMILY", `PROXY v2 family/transport byte 0x${bytes[13]!.toString(16).padStart(2, "0")} is not one §2.2 allows`);
  }
  if (bytes.length < PROXY_V2_FIXED_LENGTH) return { status: "incomplete", needed: PROXY_V2_FIXED_LENGTH };

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const bodyLength = view.getUint16(14);
  const total = PROXY_V2_FIXED_LENGTH + bodyLength;
  if (total > maxLength) throw new ProxyProtocolError("ERR_PROXY_LENGTH", `PROXY v2 header expected at most ${maxLength} bytes, declares ${total}`);
  const command = (bytes[12]! & 0x0f) === 1 ? "proxy" : "local";
  const [family, transport] = FAMILY_TRANSPORT[bytes[13]!]!;
  // §2.2: the address block must be at least as long as the family needs.
  if (command === "proxy" && family !== "unspec" && bodyLength < ADDRESS_LENGTH[family]) {
    throw new ProxyProtocolError("ERR_PROXY_LENGTH", `PROXY v2 ${family} needs ${ADDRESS_LENGTH[family]} address bytes, length is ${bodyLength}`);
  }
  if (bytes.length < total) return { status: "incomplete", needed: total };

  const body = bytes.subarray(PROXY_V2_FIXED_LENGTH, total);
  if (command === "local") {
    // §2.2: for LOCAL the receiver discards the whole protocol block, family included.
    return { status: "complete", header: { command, transport: "unspec", address: { family: "unspec" }, tlvs: [] }, length: total };
  }
  let address: ProxyAddress;
  let at: number;
  switch (family) {
    case "unspec":
      address = { family };
      at = 0;
      break;
    case "ipv4":
    case "ipv6": {
      const size = family === "ipv4" ? 4 : 16;
      const toText = family === "ipv4" ? bytesToIpv4 : bytesToIpv6;
      const bodyView = new DataView(body.buffer, body.byteOffset, body.length);
      address = {
        family,
        sourceAddress: toText(body.subarray(0, size)),
        destinationAddress: toText(body.subarray(size, size * 2)),
        sourcePort: bodyView.getUint16(size * 2),
        destinationPort: bodyView.getUint16(size * 2 + 2),
      };
      at = ADDRESS_LENGTH[family];
      break;
    }
    case "unix":
      address = { family, sourcePath: unixPath(body.subarray(0, UNIX_PATH_FIELD)), destinationPath: unixPath(body.subarray(UNIX_PATH_FIELD, UNIX_PATH_FIELD * 2)) };
      at = ADDRESS_LENGTH.unix;
      break;
  }
  const tlvs: ProxyTlv[] = [];
  while (at < body.length) {
    if (body.length - at < 3) throw new ProxyProtocolError("ERR_PROXY_TLV", `PROXY v2 TLV header truncated at offset ${at}`);
    const type = body[at]!;
    const length = (body[at + 1]! << 8) | body[at + 2]!;
    if (at + 3 + length > body.length)
      throw new ProxyProtocolError("ERR_PROXY_TLV", `PROXY v2 TLV 0x${type.toString(16)} declares ${length} bytes, ${body.length - at - 3} remain`);
    tlvs.push({ type, value: body.slice(at + 3, at + 3 + length) });
    at += 3 + length;
  }
  return { status: "complete", header: { command, transport, address, tlvs }, length: total };
}

// ─── read from a socket (the enclave) ───────────────────────────────────────

/**
 * The client address a header reports: the source of a PROXY command over
 * INET or INET6, else null (LOCAL is the relay's own connection; UNSPEC
 * and UNIX carry no IP to learn).
 */
export function proxyClientAddress(header: ProxyHeader): string | null {
  const { address } = header;
  if (header.command !== "proxy" || (address.family !== "ipv4" && address.family !== "ipv6")) return null;
  return address.sourceAddress;
}

/**
 * Reads the header from a fresh, paused socket within `timeoutMs`, puts any
 * bytes after it back, and returns it. Bounded: at most `maxLength` bytes
 * are buffered before the header must be complete; a connection that does
 * not start with the signature fails at its first differing byte.
 */
export function readProxyV2(socket: Socket, timeoutMs: number, options: { maxLength?: number } = {}): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new ProxyProtocolError("ERR_PROXY_TIMEOUT", "PROXY v2 header not received in time")), timeoutMs);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let decoded: ProxyDecodeResult;
      try {
        decoded = decodeProxyV2(buf, options);
      } catch (err) {
        return done(err as Error);
      }
      if (decoded.status === "complete") done(null, decoded.header, buf.subarray(decoded.length));
    };
    const onEnd = () => done(new ProxyProtocolError("ERR_PROXY_CLOSED", "connection closed before the PROXY v2 header"));
    function done(err: Error | null, header?: ProxyHeader, rest?: Buffer) {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onEnd);
      socket.pause();
      if (err) return reject(err);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(header!);
    }
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onEnd);
    socket.resume();
  });
}
