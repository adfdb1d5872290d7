import type net from "node:net";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * The enclave's side of PROXY protocol v2 (HAProxy proxy-protocol.txt §2.2):
 * when the runtime config says the host relay sends one, every connection
 * starts with this binary header, before TLS. The enclave reads it only to
 * learn the client address for per-address rate limiting; the address is
 * the untrusted host's claim, so nothing else depends on it.
 *
 * A small decoder of its own rather than host/ingress's: the enclave image
 * carries enclave/ and attestation/ only (the host's code is outside its
 * measured TCB). test/enclave/proxy-header.test.ts checks the two agree.
 */
const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const MAX_HEADER = 1024;

export class ProxyHeaderError extends EgwError<"ERR_PROXY_HEADER"> {
  override readonly name = "ProxyHeaderError";
  constructor(message: string) {
    super("ERR_PROXY_HEADER", message, "reject");
  }
}

/** Parses a complete header; returns null if more bytes are needed. */
export function parseProxyV2(buf: Buffer): { length: number; clientAddress: string | null } | null {
  const n = Math.min(buf.length, SIGNATURE.length);
  if (!buf.subarray(0, n).equals(SIGNATURE.subarray(0, n))) throw new ProxyHeaderError("connection does not start with a PROXY v2 header");
  if (buf.length < 16) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError("PROXY header is not version 2");
  const command = verCmd & 0x0f;
  if (command > 1) throw new ProxyHeaderError("PROXY v2 command is neither LOCAL nor PROXY");
  const length = 16 + buf.readUInt16BE(14);
  if (length > MAX_HEADER) throw new ProxyHeaderError(`PROXY v2 header longer than ${MAX_HEADER} bytes`);
  if (buf.length < length) return null;
  if (command === 0) return { length, clientAddress: null }; // LOCAL: the relay's own connection
  const family = buf[13]! >> 4;
  const body = buf.subarray(16, length);
  if (family === 1) {
    if (body.length < 12) throw new ProxyHeaderError("PROXY v2 INET block is short");
    return { length, clientAddress: `${body[0]}.${body[1]}.${body[2]}.${body[3]}` };
  }
  if (family === 2) {
    if (body.length < 36) throw new ProxyHeaderError("PROXY v2 INET6 block is short");
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { length, clientAddress: groups.join(":") };
  }
  return { length, clientAddress: null }; // UNSPEC or UNIX: no IP to learn
}

/**
 * Reads the header from a fresh, paused socket within `timeoutMs`, puts any
 * bytes after it back, and returns the client address. Bounded: at most
 * 1 KiB is read before the header must be complete.
 */
export function readProxyV2(socket: net.Socket, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new ProxyHeaderError("PROXY v2 header not received in time")), timeoutMs);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      let parsed: ReturnType<typeof parseProxyV2>;
      try {
        parsed = parseProxyV2(buf);
      } catch (err) {
        return done(err as Error);
      }
      if (parsed === null) {
        if (buf.length >= MAX_HEADER) done(new ProxyHeaderError("PROXY v2 header incomplete"));
        return;
      }
      const rest = buf.subarray(parsed.length);
      done(null, parsed.clientAddress, rest);
    };
    const onEnd = () => done(new ProxyHeaderError("connection closed before the PROXY v2 header"));
    function done(err: Error | null, address?: string | null, rest?: Buffer) {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onEnd);
      socket.pause();
      if (err) return reject(err);
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(address ?? null);
    }
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onEnd);
    socket.resume();
  });
}
