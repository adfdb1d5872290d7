import { isIPv4, isIPv6 } from "node:net";
import { TransportError } from "./errors.js";

/**
 * One endpoint syntax for every place the host listens or dials:
 *
 *   vsock://<cid>:<port>   AF_VSOCK (vsock(7)); cid and port are decimal u32
 *   tcp://<host>:<port>    host is an IPv4 dotted quad, [IPv6] or a DNS name
 *   unix:///abs/path       a filesystem Unix socket
 *
 * Parsing is strict on purpose: the string comes from an operator's config,
 * and a typo must fail at start-up, not turn into a dial to somewhere else.
 * No percent-decoding, no defaults, no query or fragment, no leading zeros
 * (so "010" never means 8 or 10 depending on who reads it).
 */
export type Endpoint = VsockEndpoint | TcpEndpoint | UnixEndpoint;

export interface VsockEndpoint {
  kind: "vsock";
  /** Context id. 2 = the host (VMADDR_CID_HOST); Nitro gives the parent 3 and each enclave its own; 0xFFFFFFFF = any (listen only). */
  cid: number;
  /** Port, u32. 0xFFFFFFFF = any (listen only: the kernel picks one). */
  port: number;
}

export interface TcpEndpoint {
  kind: "tcp";
  /** Lower-case DNS name, dotted IPv4, or IPv6 without brackets. */
  host: string;
  /** 0 only for listen (the kernel picks a port). */
  port: number;
}

export interface UnixEndpoint {
  kind: "unix";
  /** Absolute path. */
  path: string;
}

/** vsock(7): VMADDR_CID_ANY / VMADDR_PORT_ANY, "bind to any". */
export const VMADDR_CID_ANY = 0xffff_ffff;
export const VMADDR_PORT_ANY = 0xffff_ffff;
/** vsock(7): the hypervisor/host side. */
export const VMADDR_CID_HOST = 2;

/** Longest accepted endpoint string; a real one is under 120 characters. */
export const ENDPOINT_MAX_LENGTH = 1024;
/** sockaddr_un.sun_path is 108 bytes on Linux, one of which is the NUL. */
export const UNIX_PATH_MAX_BYTES = 107;

const DECIMAL = /^(?:0|[1-9][0-9]{0,9})$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// C0 controls and DEL: no legitimate socket path needs them, and they make logs lie.
const CONTROL = /[\u0000-\u001f\u007f]/;

function invalid(value: string, why: string): TransportError {
  // The value is configuration, not content; it is still cut so that a
  // wrong paste of something large does not end up whole in a log line.
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return new TransportError("ERR_ENDPOINT_INVALID", `endpoint ${JSON.stringify(shown)}: ${why}`);
}

function decimal(text: string, max: number, value: string, what: string): number {
  if (!DECIMAL.test(text)) throw invalid(value, `${what} expected a decimal number without leading zeros, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n > max) throw invalid(value, `${what} expected 0..${max}, got ${n}`);
  return n;
}

function parseHost(text: string, value: string): string {
  if (text.startsWith("[")) {
    if (!text.endsWith("]")) throw invalid(value, "IPv6 host expected a closing ]");
    const inner = text.slice(1, -1);
    // No zone ids: "%eth0" names an interface of this machine, meaningless in a config shared across hosts.
    if (inner.includes("%") || !isIPv6(inner)) throw invalid(value, "host in [] expected an IPv6 address");
    return inner.toLowerCase();
  }
  if (text.length === 0) throw invalid(value, "host expected, got nothing");
  if (text.length > 253) throw invalid(value, `host expected at most 253 characters, got ${text.length}`);
  const host = text.toLowerCase();
  const labels = host.split(".");
  if (labels.every((label) => /^[0-9]+$/.test(label))) {
    // All-numeric: it is meant as an IPv4 address (RFC 3696 §2: a TLD is never all-numeric).
    if (!isIPv4(host) || labels.some((label) => label.length > 1 && label.startsWith("0"))) {
      throw invalid(value, "host expected a dotted-quad IPv4 address without leading zeros");
    }
    return host;
  }
  for (const label of labels) {
    if (!LABEL.test(label)) throw invalid(value, "host expected a DNS name (letters, digits, hyphens; labels of 1..63)");
  }
  return host;
}

/** Parses an endpoint string into a typed value. Throws TransportError ERR_ENDPOINT_INVALID. */
export function parseEndpoint(value: unknown): Endpoint {
  if (typeof value !== "string") throw new TransportError("ERR_ENDPOINT_INVALID", `endpoint expected a string, got ${value === null ? "null" : typeof value}`);
  if (value.length === 0) throw invalid(value, "empty");
  if (value.length > ENDPOINT_MAX_LENGTH) throw invalid(value, `expected at most ${ENDPOINT_MAX_LENGTH} characters, got ${value.length}`);

  const scheme = /^([a-z]+):\/\//.exec(value);
  if (!scheme) throw invalid(value, "expected vsock://<cid>:<port>, tcp://<host>:<port> or unix:///<path>");
  const rest = value.slice(scheme[0].length);
  switch (scheme[1]) {
    case "vsock": {
      const parts = rest.split(":");
      if (parts.length !== 2) throw invalid(value, "expected vsock://<cid>:<port>");
      const cid = decimal(parts[0]!, 0xffff_ffff, value, "cid");
      const port = decimal(parts[1]!, 0xffff_ffff, value, "port");
      return { kind: "vsock", cid, port };
    }
    case "tcp": {
      const colon = rest.lastIndexOf(":");
      if (colon < 0) throw invalid(value, "expected tcp://<host>:<port>");
      const hostText = rest.slice(0, colon);
      // An unbracketed IPv6 address would make the port ambiguous.
      if (!hostText.startsWith("[") && hostText.includes(":")) throw invalid(value, "IPv6 host expected in brackets: tcp://[::1]:443");
      const host = parseHost(hostText, value);
      const port = decimal(rest.slice(colon + 1), 65535, value, "port");
      return { kind: "tcp", host, port };
    }
    case "unix": {
      if (!rest.startsWith("/")) throw invalid(value, "expected an absolute path: unix:///run/egw.sock");
      // A socket is a file: "/" or ".../" names a directory.
      if (rest.endsWith("/")) throw invalid(value, "path expected to name a file, not a directory");
      if (CONTROL.test(rest)) throw invalid(value, "path expected no control characters");
      const bytes = Buffer.byteLength(rest, "utf8");
      if (bytes > UNIX_PATH_MAX_BYTES) throw invalid(value, `path expected at most ${UNIX_PATH_MAX_BYTES} bytes (sockaddr_un), got ${bytes}`);
      return { kind: "unix", path: rest };
    }
    default:
      throw invalid(value, `unknown scheme "${scheme[1]}"; expected vsock, tcp or unix`);
  }
}

/** The canonical string of an endpoint; parseEndpoint(formatEndpoint(e)) deep-equals e. */
export function formatEndpoint(endpoint: Endpoint): string {
  switch (endpoint.kind) {
    case "vsock":
      return `vsock://${endpoint.cid}:${endpoint.port}`;
    case "tcp":
      return `tcp://${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
    case "unix":
      return `unix://${endpoint.path}`;
  }
}
