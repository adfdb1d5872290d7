import type { Duplex } from "node:stream";
import { ClientError } from "./errors.js";

/**
 * One HTTP/1.1 request and its response on a socket that stays open and
 * unread afterwards, so the attested connection can be handed on to the
 * HTTP client (undici) that carries the caller's requests.
 *
 * Deliberately small and strict (RFC 9112): a status line, header fields
 * without obsolete line folding, and a body delimited by Content-Length or
 * chunked coding (chunk extensions ignored, trailers refused). Anything
 * else, a "Connection: close", or any byte after the response is a protocol
 * error: the socket could not be reused safely.
 */
export interface Http1Response {
  status: number;
  /** Lower-case field names; repeated fields keep every value. */
  headers: Map<string, string[]>;
  body: Uint8Array;
}

export interface ExchangeLimits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  timeoutMs: number;
}

const CRLF2 = Buffer.from("\r\n\r\n");
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function protocolError(message: string): ClientError {
  return new ClientError("ERR_ATTESTATION_PROTOCOL", `attestation response: ${message}`);
}

function parseHead(head: string): { status: number; headers: Map<string, string[]> } {
  const lines = head.split("\r\n");
  const statusLine = /^HTTP\/1\.1 (\d{3})(?: [^\r\n]*)?$/.exec(lines[0] ?? "");
  if (!statusLine) throw protocolError("not an HTTP/1.1 status line");
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw protocolError("malformed header field");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) throw protocolError("control character in a header value");
    const key = name.toLowerCase();
    headers.set(key, [...(headers.get(key) ?? []), value]);
  }
  return { status: Number(statusLine[1]), headers };
}

type BodyState = { kind: "length"; remaining: number } | { kind: "chunked" };

/** Decodes a complete chunked body at the start of `buf`; null while incomplete. */
function decodeChunked(buf: Buffer, max: number): { body: Buffer; used: number } | null {
  const parts: Buffer[] = [];
  let total = 0;
  let at = 0;
  for (;;) {
    const eol = buf.indexOf("\r\n", at);
    if (eol < 0) {
      if (buf.length - at > 64) throw protocolError("chunk size line too long");
      return null;
    }
    const sizeText = buf.subarray(at, eol).toString("latin1").split(";")[0]!.trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw protocolError("malformed chunk size");
    const size = parseInt(sizeText, 16);
    at = eol + 2;
    if (size === 0) {
      if (buf.length < at + 2) return null;
      if (buf[at] !== 0x0d || buf[at + 1] !== 0x0a) throw protocolError("trailer fields are not accepted");
      return { body: Buffer.concat(parts), used: at + 2 };
    }
    total += size;
    if (total > max) throw protocolError(`body over ${max} bytes`);
    if (buf.length < at + size + 2) return null;
    parts.push(buf.subarray(at, at + size));
    if (buf[at + size] !== 0x0d || buf[at + size + 1] !== 0x0a) throw protocolError("chunk not followed by CRLF");
    at += size + 2;
  }
}

/**
 * Writes `request` and reads exactly one response. On success the socket
 * holds no buffered bytes and no listener of ours, in paused mode, ready for
 * the next owner; on failure the caller destroys it.
 */
export function exchangeHttp1(socket: Duplex, request: string, limits: ExchangeLimits): Promise<Http1Response> {
  return new Promise<Http1Response>((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let head: { status: number; headers: Map<string, string[]> } | undefined;
    let bodyStart = 0;
    let state: BodyState | undefined;
    let settled = false;

    const timer = setTimeout(() => finish(new ClientError("ERR_ATTESTATION_UNAVAILABLE", `attestation response not complete within ${limits.timeoutMs} ms`)), limits.timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("readable", onReadable);
      socket.off("error", onError);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
    };
    function finish(err: Error | null, value?: Http1Response) {
      if (settled) return;
      settled = true;
      cleanup();
      if (err) reject(err);
      else resolve(value!);
    }
    const onError = (err: Error) =>
      finish(new ClientError("ERR_CONNECT", `connection failed during attestation (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err }));
    const onEnd = () => finish(new ClientError("ERR_ATTESTATION_UNAVAILABLE", "the gateway closed the connection during attestation"));

    function step(): void {
      if (!head) {
        const end = buf.indexOf(CRLF2);
        if (end < 0) {
          if (buf.length > limits.maxHeaderBytes) throw protocolError(`header block over ${limits.maxHeaderBytes} bytes`);
          return;
        }
        if (end > limits.maxHeaderBytes) throw protocolError(`header block over ${limits.maxHeaderBytes} bytes`);
        head = parseHead(buf.subarray(0, end).toString("latin1"));
        bodyStart = end + 4;
        if (head.status < 200) throw protocolError(`unexpected interim status ${head.status}`);
        const connection = (head.headers.get("connection") ?? []).join(",").toLowerCase();
        if (/(^|,)\s*close\s*(,|$)/.test(connection)) throw protocolError("the gateway will close the connection; it cannot carry requests");
        const te = head.headers.get("transfer-encoding");
        const cl = head.headers.get("content-length");
        if (te && cl) throw protocolError("both Transfer-Encoding and Content-Length");
        if (te) {
          if (te.length !== 1 || te[0]!.toLowerCase() !== "chunked") throw protocolError("unsupported Transfer-Encoding");
          state = { kind: "chunked" };
        } else if (cl && cl.length === 1 && /^\d{1,9}$/.test(cl[0]!)) {
          const length = Number(cl[0]);
          if (length > limits.maxBodyBytes) throw protocolError(`body of ${length} bytes is over ${limits.maxBodyBytes}`);
          state = { kind: "length", remaining: length };
        } else {
          throw protocolError("no usable Content-Length");
        }
      }
      const rest = buf.subarray(bodyStart);
      let body: Buffer;
      let used: number;
      if (state!.kind === "length") {
        const length = (state as { remaining: number }).remaining;
        if (rest.length < length) return;
        body = rest.subarray(0, length);
        used = length;
      } else {
        const decoded = decodeChunked(rest, limits.maxBodyBytes);
        if (!decoded) return;
        ({ body, used } = decoded);
      }
      if (rest.length !== used) throw protocolError("bytes after the response");
      finish(null, { status: head.status, headers: head.headers, body: new Uint8Array(body) });
    }

    function onReadable(): void {
      if (settled) return;
      try {
        // read() empties the internal buffer and keeps the socket in paused mode.
        for (let chunk = socket.read() as Buffer | null; !settled && chunk !== null; chunk = settled ? null : (socket.read() as Buffer | null)) {
          buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
          if (buf.length > limits.maxHeaderBytes + limits.maxBodyBytes + 4096) throw protocolError("response too large");
          step();
        }
      } catch (err) {
        finish(err as Error);
      }
    }

    socket.on("readable", onReadable);
    socket.on("error", onError);
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.write(request, (err) => {
      if (err) onError(err);
    });
  });
}
