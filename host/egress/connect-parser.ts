import { isIPv6 } from "node:net";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * A strict, bounded, incremental parser for the head of an HTTP/1.1 CONNECT
 * request (RFC 9110 §9.3.6, RFC 9112 §3 and §5), the only thing the egress
 * proxy ever reads in the clear. Everything after the head is the enclave's
 * TLS and is never parsed.
 *
 * Decisions, each taken on purpose:
 *  - Line ends are CRLF only. A bare LF or a bare CR is rejected (RFC 9112
 *    §2.2 lets a recipient accept a bare LF; we do not, because our one client
 *    — undici inside the enclave — never sends one, and leniency is where
 *    request smuggling lives).
 *  - Empty lines before the request line (RFC 9112 §2.2 "SHOULD ignore") are
 *    rejected for the same reason.
 *  - The method is case-sensitive (RFC 9110 §9.1): `connect` is another
 *    method, and gets 405 like GET does.
 *  - The version must be exactly `HTTP/1.1`; another well-formed version gets
 *    505, anything else 400.
 *  - The target must be authority-form `host:port` (RFC 9112 §3.2.3): a DNS
 *    name, a dotted-quad IPv4 address or a bracketed IPv6 address, and a port
 *    1..65535 without leading zeros. No userinfo, no path, no query, no
 *    absolute-form, no IPv6 zone id. A name whose last label is numeric
 *    (`127.1`, `2130706433`, `0x7f.1`) is rejected: resolvers read those as
 *    IPv4 addresses (inet_aton), which would dodge the IP-literal rule.
 *  - Exactly one Host field is required (RFC 9112 §3.2: 400 when missing or
 *    repeated); it must name the target, with or without the port, because
 *    undici sends the origin's host (`api.openai.com`, no `:443`).
 *  - Transfer-Encoding and Content-Length are refused outright: a CONNECT
 *    request has no content (RFC 9110 §9.3.6), so either field can only be an
 *    attempt to make two parsers disagree on where the request ends.
 *  - obs-fold (a line that starts with SP or HTAB, RFC 9112 §5.2) is
 *    rejected; so is whitespace between a field name and its colon (§5.1).
 *  - NUL and other control characters are rejected the moment they arrive,
 *    so a client that skips the CONNECT and opens with a TLS ClientHello is
 *    answered at once instead of at the head timeout.
 *  - The parser returns the bytes that followed the head (`rest`); the proxy
 *    refuses a request that has any (see proxy.ts, "early data").
 *
 * Error messages are fixed per code and never quote the input.
 */

export type ConnectErrorCode =
  | "ERR_CONNECT_MALFORMED"
  | "ERR_CONNECT_LINE_TERMINATOR"
  | "ERR_CONNECT_CONTROL_CHAR"
  | "ERR_CONNECT_METHOD"
  | "ERR_CONNECT_VERSION"
  | "ERR_CONNECT_TARGET_FORM"
  | "ERR_CONNECT_TARGET_HOST"
  | "ERR_CONNECT_TARGET_PORT"
  | "ERR_CONNECT_OBS_FOLD"
  | "ERR_CONNECT_HOST_HEADER"
  | "ERR_CONNECT_BODY_HEADER"
  | "ERR_CONNECT_REQUEST_LINE_TOO_LONG"
  | "ERR_CONNECT_HEAD_TOO_LARGE"
  | "ERR_CONNECT_TOO_MANY_HEADERS"
  | "ERR_CONNECT_EARLY_DATA"
  | "ERR_CONNECT_HEAD_TIMEOUT";

export type ConnectErrorStatus = 400 | 405 | 408 | 414 | 431 | 505;

interface CodeInfo {
  status: ConnectErrorStatus;
  /** Metric label: bounded, content-free. */
  rule: string;
  message: string;
}

const CODES: Record<ConnectErrorCode, CodeInfo> = {
  ERR_CONNECT_MALFORMED: { status: 400, rule: "malformed", message: "CONNECT head is not well-formed" },
  ERR_CONNECT_LINE_TERMINATOR: { status: 400, rule: "line_terminator", message: "line ends must be CRLF; bare CR or LF refused" },
  ERR_CONNECT_CONTROL_CHAR: { status: 400, rule: "control_char", message: "control character in CONNECT head" },
  ERR_CONNECT_METHOD: { status: 405, rule: "method", message: "only the CONNECT method is served" },
  ERR_CONNECT_VERSION: { status: 505, rule: "version", message: "only HTTP/1.1 is served" },
  ERR_CONNECT_TARGET_FORM: { status: 400, rule: "target_form", message: "request target must be authority-form host:port" },
  ERR_CONNECT_TARGET_HOST: { status: 400, rule: "target_host", message: "request target host is not a DNS name or IP literal" },
  ERR_CONNECT_TARGET_PORT: { status: 400, rule: "target_port", message: "request target port must be 1..65535" },
  ERR_CONNECT_OBS_FOLD: { status: 400, rule: "obs_fold", message: "obs-fold line folding refused" },
  ERR_CONNECT_HOST_HEADER: { status: 400, rule: "host_header", message: "exactly one Host field naming the target is required" },
  ERR_CONNECT_BODY_HEADER: { status: 400, rule: "body_header", message: "Transfer-Encoding and Content-Length are refused on CONNECT" },
  ERR_CONNECT_REQUEST_LINE_TOO_LONG: { status: 414, rule: "request_line_too_long", message: "request line exceeds the limit" },
  ERR_CONNECT_HEAD_TOO_LARGE: { status: 431, rule: "head_too_large", message: "CONNECT head exceeds the size limit" },
  ERR_CONNECT_TOO_MANY_HEADERS: { status: 431, rule: "too_many_headers", message: "CONNECT head exceeds the header count limit" },
  ERR_CONNECT_EARLY_DATA: { status: 400, rule: "early_data", message: "bytes after the CONNECT head before the answer are refused" },
  ERR_CONNECT_HEAD_TIMEOUT: { status: 408, rule: "head_timeout", message: "CONNECT head not received in time" },
};

export class ConnectRequestError extends EgwError<ConnectErrorCode> {
  readonly status: ConnectErrorStatus;
  readonly rule: string;
  constructor(code: ConnectErrorCode) {
    const info = CODES[code];
    // A head that did not arrive in time may on a new connection; anything else is the client's request.
    super(code, info.message, code === "ERR_CONNECT_HEAD_TIMEOUT" ? "retry" : "fix-input");
    this.name = "ConnectRequestError";
    this.status = info.status;
    this.rule = info.rule;
  }
}

/** Every request-level rule label, for pre-initialising metrics. */
export const CONNECT_ERROR_RULES: readonly string[] = Object.values(CODES).map((c) => c.rule);

export interface ConnectTarget {
  /** Lower-case DNS name, dotted-quad IPv4, or canonical IPv6 without brackets. */
  host: string;
  port: number;
  kind: "dns" | "ipv4" | "ipv6";
  /** `host:port`, IPv6 in brackets: the form the allowlist is written in. */
  authority: string;
}

export interface ConnectRequest {
  target: ConnectTarget;
  /** Header field lines, Host included. */
  headerCount: number;
  /** Size of the head, request line to the final CRLF included. */
  headBytes: number;
}

export interface ConnectHeadLimits {
  /** Whole head, request line and final empty line included (431 beyond). */
  maxHeadBytes: number;
  /** Request line without its CRLF (414 beyond). */
  maxRequestLineBytes: number;
  /** Header field lines (431 beyond). */
  maxHeaders: number;
}

export const DEFAULT_CONNECT_HEAD_LIMITS: Readonly<ConnectHeadLimits> = Object.freeze({
  maxHeadBytes: 8192,
  maxRequestLineBytes: 1024,
  maxHeaders: 64,
});

export type ConnectHeadResult = { done: false } | { done: true; request: ConnectRequest /** bytes received after the head (a view into the last chunk) */; rest: Uint8Array };

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

// RFC 9110 §5.6.2 tchar.
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

function isCtlForbidden(b: number): boolean {
  // Every C0 control and DEL except HTAB, CR and LF, which are judged in context.
  return (b < 0x20 && b !== HTAB && b !== CR && b !== LF) || b === 0x7f;
}

function checkLimits(limits: ConnectHeadLimits): ConnectHeadLimits {
  for (const key of ["maxHeadBytes", "maxRequestLineBytes", "maxHeaders"] as const) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`"${key}" expected a positive integer, got ${String(v)}`);
  }
  return limits;
}

/**
 * Feed it the connection's bytes as they arrive; it answers `{ done: false }`
 * until the head is complete, then the parsed request and whatever followed.
 * It throws only ConnectRequestError, as soon as the bytes seen so far can no
 * longer start a valid head. Work is linear in the bytes received: each byte
 * is scanned once, each line parsed once. After it returns done or throws it
 * must not be fed again.
 */
export class ConnectHeadParser {
  readonly #limits: ConnectHeadLimits;
  readonly #buf: Buffer;
  #len = 0;
  #lineStart = 0;
  #lines = 0;
  #hostFields: string[] = [];
  #method: string | undefined;
  #target: ConnectTarget | undefined;
  #finished = false;

  constructor(limits: ConnectHeadLimits = DEFAULT_CONNECT_HEAD_LIMITS) {
    this.#limits = checkLimits({ ...limits });
    this.#buf = Buffer.alloc(this.#limits.maxHeadBytes);
  }

  push(chunk: Uint8Array): ConnectHeadResult {
    if (this.#finished) throw new Error("ConnectHeadParser: push after the head was complete or refused");
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#finished = true;
      throw err;
    }
  }

  #push(chunk: Uint8Array): ConnectHeadResult {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      const inRequestLine = this.#lines === 0;
      if (isCtlForbidden(b)) throw new ConnectRequestError("ERR_CONNECT_CONTROL_CHAR");
      const prev = this.#len > this.#lineStart ? this.#buf[this.#len - 1] : undefined;
      if (prev === CR && b !== LF) throw new ConnectRequestError("ERR_CONNECT_LINE_TERMINATOR");
      if (b === LF && prev !== CR) throw new ConnectRequestError("ERR_CONNECT_LINE_TERMINATOR");
      if (this.#len >= this.#limits.maxHeadBytes) {
        throw new ConnectRequestError(inRequestLine ? "ERR_CONNECT_REQUEST_LINE_TOO_LONG" : "ERR_CONNECT_HEAD_TOO_LARGE");
      }
      this.#buf[this.#len++] = b;
      if (b !== LF) {
        // The line so far, without a possible trailing CR.
        const lineLen = this.#len - this.#lineStart - (b === CR ? 1 : 0);
        if (inRequestLine && lineLen > this.#limits.maxRequestLineBytes) throw new ConnectRequestError("ERR_CONNECT_REQUEST_LINE_TOO_LONG");
        continue;
      }
      const line = this.#buf.subarray(this.#lineStart, this.#len - 2);
      this.#lineStart = this.#len;
      if (this.#onLine(line)) {
        this.#finished = true;
        const request: ConnectRequest = { target: this.#target!, headerCount: this.#lines - 2, headBytes: this.#len };
        return { done: true, request, rest: chunk.subarray(i + 1) };
      }
    }
    return { done: false };
  }

  /** Returns true at the empty line that ends the head. */
  #onLine(line: Buffer): boolean {
    const index = this.#lines++;
    if (index === 0) {
      this.#requestLine(line);
      return false;
    }
    if (line.length === 0) {
      this.#finish();
      return true;
    }
    if (index > this.#limits.maxHeaders) throw new ConnectRequestError("ERR_CONNECT_TOO_MANY_HEADERS");
    this.#fieldLine(line);
    return false;
  }

  #requestLine(line: Buffer): void {
    // RFC 9112 §3: method SP request-target SP HTTP-version, single spaces.
    const sp1 = line.indexOf(SP);
    if (sp1 <= 0) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    const sp2 = line.indexOf(SP, sp1 + 1);
    if (sp2 < 0 || sp2 === sp1 + 1 || line.indexOf(SP, sp2 + 1) >= 0) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    for (let i = 0; i < sp1; i++) if (!TCHAR[line[i]!]) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    const method = line.toString("latin1", 0, sp1);
    const rawTarget = line.subarray(sp1 + 1, sp2);
    const version = line.toString("latin1", sp2 + 1);
    // Only visible US-ASCII in a target (RFC 3986); HTAB or obs-text is junk.
    for (const c of rawTarget) if (c <= SP || c >= 0x7f) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    if (!/^HTTP\/[0-9]\.[0-9]$/.test(version)) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    if (method !== "CONNECT") throw new ConnectRequestError("ERR_CONNECT_METHOD");
    if (version !== "HTTP/1.1") throw new ConnectRequestError("ERR_CONNECT_VERSION");
    this.#method = method;
    this.#target = parseAuthority(rawTarget.toString("latin1"));
  }

  #fieldLine(line: Buffer): void {
    const first = line[0]!;
    if (first === SP || first === HTAB) throw new ConnectRequestError("ERR_CONNECT_OBS_FOLD");
    const colon = line.indexOf(0x3a);
    if (colon <= 0) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    // A field name is a token; whitespace before the colon is a 400 (RFC 9112 §5.1).
    for (let i = 0; i < colon; i++) if (!TCHAR[line[i]!]) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    // field-value: HTAB, SP, VCHAR, obs-text. Controls were refused on arrival.
    const name = line.toString("latin1", 0, colon).toLowerCase();
    if (name === "transfer-encoding" || name === "content-length") throw new ConnectRequestError("ERR_CONNECT_BODY_HEADER");
    if (name === "host") {
      const value = line.toString("latin1", colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      this.#hostFields.push(value);
    }
  }

  #finish(): void {
    if (this.#method === undefined || this.#target === undefined) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
    if (this.#hostFields.length !== 1) throw new ConnectRequestError("ERR_CONNECT_HOST_HEADER");
    if (!hostFieldNamesTarget(this.#hostFields[0]!, this.#target)) throw new ConnectRequestError("ERR_CONNECT_HOST_HEADER");
  }
}

function hostFieldNamesTarget(value: string, target: ConnectTarget): boolean {
  // Host = uri-host [ ":" port ] (RFC 9110 §7.2); without a port it names the target's.
  const hasPort = value.startsWith("[") ? value.includes("]:") : value.includes(":");
  try {
    return parseAuthority(hasPort ? value : `${value}:${target.port}`).authority === target.authority;
  } catch {
    return false;
  }
}

/** Parse the whole head at once; throws ConnectRequestError, or MALFORMED when the head is incomplete. */
export function parseConnectHead(bytes: Uint8Array, limits: ConnectHeadLimits = DEFAULT_CONNECT_HEAD_LIMITS): { request: ConnectRequest; rest: Uint8Array } {
  const result = new ConnectHeadParser(limits).push(bytes);
  if (!result.done) throw new ConnectRequestError("ERR_CONNECT_MALFORMED");
  return { request: result.request, rest: result.rest };
}

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
// WHATWG URL "ends in a number": inet_aton would read such a name as an address.
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;

/**
 * Parse `host:port` in authority-form (RFC 9112 §3.2.3). Used for request
 * targets, Host fields and allowlist entries alike, so all three agree on
 * one normal form: lower-case names, RFC 5952 IPv6 text.
 */
export function parseAuthority(value: string): ConnectTarget {
  // Userinfo, paths, queries, fragments, absolute- and asterisk-form.
  if (value.length === 0 || /[/?#@*\\]/.test(value)) throw new ConnectRequestError("ERR_CONNECT_TARGET_FORM");
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close < 0) throw new ConnectRequestError("ERR_CONNECT_TARGET_HOST");
    const inner = value.slice(1, close);
    const after = value.slice(close + 1);
    if (!after.startsWith(":")) throw new ConnectRequestError("ERR_CONNECT_TARGET_PORT");
    const port = parsePort(after.slice(1));
    // No zone id (RFC 6874 has no place in a proxy target), no IPvFuture.
    if (inner.includes("%") || !isIPv6(inner)) throw new ConnectRequestError("ERR_CONNECT_TARGET_HOST");
    // The WHATWG URL serializer produces the RFC 5952 canonical text.
    const host = new URL(`http://[${inner}]/`).hostname.slice(1, -1);
    return { host, port, kind: "ipv6", authority: `[${host}]:${port}` };
  }
  const colon = value.lastIndexOf(":");
  if (colon < 0) throw new ConnectRequestError("ERR_CONNECT_TARGET_PORT");
  const hostText = value.slice(0, colon);
  const port = parsePort(value.slice(colon + 1));
  // A second colon means unbracketed IPv6 or junk: not authority-form.
  if (hostText.includes(":")) throw new ConnectRequestError("ERR_CONNECT_TARGET_HOST");
  if (IPV4.test(hostText)) return { host: hostText, port, kind: "ipv4", authority: `${hostText}:${port}` };
  const host = hostText.toLowerCase();
  if (host.length === 0 || host.length > 253) throw new ConnectRequestError("ERR_CONNECT_TARGET_HOST");
  const labels = host.split(".");
  if (!labels.every((l) => LABEL.test(l)) || NUMERIC_LABEL.test(labels[labels.length - 1]!)) {
    throw new ConnectRequestError("ERR_CONNECT_TARGET_HOST");
  }
  return { host, port, kind: "dns", authority: `${host}:${port}` };
}

function parsePort(text: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) throw new ConnectRequestError("ERR_CONNECT_TARGET_PORT");
  return Number(text);
}

/** Serialize a CONNECT head (the inverse of parseConnectHead for valid input). */
export function formatConnectHead(target: { host: string; port: number }, fields: ReadonlyArray<readonly [string, string]> = []): string {
  const t = parseAuthority(`${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`);
  let head = `CONNECT ${t.authority} HTTP/1.1\r\nHost: ${t.authority}\r\n`;
  for (const [name, value] of fields) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}
