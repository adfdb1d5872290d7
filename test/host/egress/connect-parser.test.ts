import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConnectHeadParser,
  ConnectRequestError,
  DEFAULT_CONNECT_HEAD_LIMITS,
  formatConnectHead,
  parseAuthority,
  parseConnectHead,
  type ConnectErrorCode,
  type ConnectHeadResult,
} from "../../../host/egress/connect-parser.js";

const enc = (s: string): Buffer => Buffer.from(s, "latin1");
const head = (line: string, ...fields: string[]): string => `${line}\r\n${fields.map((f) => `${f}\r\n`).join("")}\r\n`;

function codeOf(bytes: Uint8Array | string, limits = DEFAULT_CONNECT_HEAD_LIMITS): ConnectErrorCode | "ok" | "incomplete" {
  const parser = new ConnectHeadParser(limits);
  try {
    return parser.push(typeof bytes === "string" ? enc(bytes) : bytes).done ? "ok" : "incomplete";
  } catch (err) {
    if (err instanceof ConnectRequestError) return err.code;
    throw err;
  }
}

describe("CONNECT head: valid", () => {
  it.each([
    ["a DNS name", head("CONNECT api.openai.com:443 HTTP/1.1", "Host: api.openai.com:443"), "api.openai.com", 443, "dns"],
    ["upper case names are normalized", head("CONNECT API.OpenAI.com:443 HTTP/1.1", "host: api.openai.COM:443"), "api.openai.com", 443, "dns"],
    [
      "Host without the port (undici sends the origin's host)",
      head("CONNECT kms.eu-west-1.amazonaws.com:443 HTTP/1.1", "host: kms.eu-west-1.amazonaws.com", "connection: close", "proxy-connection: keep-alive"),
      "kms.eu-west-1.amazonaws.com",
      443,
      "dns",
    ],
    ["IPv4", head("CONNECT 127.0.0.1:8443 HTTP/1.1", "Host: 127.0.0.1:8443"), "127.0.0.1", 8443, "ipv4"],
    ["IPv6 in brackets, canonicalized", head("CONNECT [0:0::0001]:1 HTTP/1.1", "Host: [::1]:1"), "::1", 1, "ipv6"],
    ["port 65535, OWS around the Host value", head("CONNECT x.example:65535 HTTP/1.1", "Host: \t x.example:65535 \t"), "x.example", 65535, "dns"],
    ["single-label name", head("CONNECT localhost:80 HTTP/1.1", "Host: localhost"), "localhost", 80, "dns"],
    ["obs-text in an unrelated field value", head("CONNECT a.b:1 HTTP/1.1", "Host: a.b:1", "X-Note: caf\xe9"), "a.b", 1, "dns"],
  ])("%s", (_name, text, host, port, kind) => {
    const { request, rest } = parseConnectHead(enc(text));
    expect(request.target).toMatchObject({ host, port, kind });
    expect(request.headBytes).toBe(text.length);
    expect(rest.length).toBe(0);
  });

  it("hands back the bytes after the head, never parsing them", () => {
    const first = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443");
    const { request, rest } = parseConnectHead(enc(`${first}CONNECT b.example:443 HTTP/1.1\r\n\r\n`));
    expect(request.target.authority).toBe("a.example:443");
    expect(Buffer.from(rest).toString("latin1")).toBe("CONNECT b.example:443 HTTP/1.1\r\n\r\n");
  });

  it("waits for the empty line: a head cut anywhere is incomplete, not an error", () => {
    const text = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443", "User-Agent: t");
    for (let cut = 0; cut < text.length; cut++) expect(codeOf(text.slice(0, cut))).toBe("incomplete");
  });

  it("formatConnectHead produces what the parser accepts", () => {
    const text = formatConnectHead({ host: "fe80::1", port: 443 }, [["User-Agent", "egw"]]);
    expect(text).toBe("CONNECT [fe80::1]:443 HTTP/1.1\r\nHost: [fe80::1]:443\r\nUser-Agent: egw\r\n\r\n");
    expect(parseConnectHead(enc(text)).request.target.authority).toBe("[fe80::1]:443");
  });
});

describe("CONNECT head: refused, each with its code and status", () => {
  const H = "Host: a.example:443";
  const cases: Array<[string, string, ConnectErrorCode, number]> = [
    ["GET", head("GET / HTTP/1.1", "Host: a"), "ERR_CONNECT_METHOD", 405],
    ["POST absolute-form", head("POST http://a.example/ HTTP/1.1", "Host: a.example"), "ERR_CONNECT_METHOD", 405],
    ["lower-case connect", head("connect a.example:443 HTTP/1.1", H), "ERR_CONNECT_METHOD", 405],
    ["mixed-case Connect", head("Connect a.example:443 HTTP/1.1", H), "ERR_CONNECT_METHOD", 405],
    ["CONNECTX", head("CONNECTX a.example:443 HTTP/1.1", H), "ERR_CONNECT_METHOD", 405],
    ["method with a bad char", head("CON(NECT a.example:443 HTTP/1.1", H), "ERR_CONNECT_MALFORMED", 400],
    ["two spaces", head("CONNECT  a.example:443 HTTP/1.1", H), "ERR_CONNECT_MALFORMED", 400],
    ["tab separator", head("CONNECT\ta.example:443 HTTP/1.1", H), "ERR_CONNECT_MALFORMED", 400],
    ["trailing space", head("CONNECT a.example:443 HTTP/1.1 ", H), "ERR_CONNECT_MALFORMED", 400],
    ["no version", head("CONNECT a.example:443", H), "ERR_CONNECT_MALFORMED", 400],
    ["HTTP/1.0", head("CONNECT a.example:443 HTTP/1.0", H), "ERR_CONNECT_VERSION", 505],
    ["HTTP/2.0", head("CONNECT a.example:443 HTTP/2.0", H), "ERR_CONNECT_VERSION", 505],
    ["lower-case version", head("CONNECT a.example:443 http/1.1", H), "ERR_CONNECT_MALFORMED", 400],
    ["leading empty line", `\r\n${head("CONNECT a.example:443 HTTP/1.1", H)}`, "ERR_CONNECT_MALFORMED", 400],
    ["absolute-form", head("CONNECT http://a.example:443/ HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["origin-form", head("CONNECT /a HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["asterisk-form", head("CONNECT * HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["path after authority", head("CONNECT a.example:443/x HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["query", head("CONNECT a.example:443?x HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["userinfo", head("CONNECT user:pw@a.example:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["backslash", head("CONNECT a.example\\:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_FORM", 400],
    ["no port", head("CONNECT a.example HTTP/1.1", "Host: a.example"), "ERR_CONNECT_TARGET_PORT", 400],
    ["empty port", head("CONNECT a.example: HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["port 0", head("CONNECT a.example:0 HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["port 65536", head("CONNECT a.example:65536 HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["port with leading zero", head("CONNECT a.example:0443 HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["port with sign", head("CONNECT a.example:+443 HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["unbracketed IPv6", head("CONNECT ::1:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["IPv6 zone id", head("CONNECT [fe80::1%25eth0]:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["IPv6 without port", head("CONNECT [::1] HTTP/1.1", H), "ERR_CONNECT_TARGET_PORT", 400],
    ["bad IPv6", head("CONNECT [::g]:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["short IPv4 (inet_aton reads it)", head("CONNECT 127.1:443 HTTP/1.1", "Host: 127.1:443"), "ERR_CONNECT_TARGET_HOST", 400],
    ["decimal IPv4", head("CONNECT 2130706433:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["hex IPv4", head("CONNECT 0x7f.0.0.1:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["octal-looking IPv4", head("CONNECT 127.0.0.01:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["underscore", head("CONNECT a_b.example:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["trailing dot", head("CONNECT a.example.:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["empty label", head("CONNECT a..example:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["label of 64", head(`CONNECT ${"a".repeat(64)}.example:443 HTTP/1.1`, H), "ERR_CONNECT_TARGET_HOST", 400],
    ["percent-encoded host", head("CONNECT a%2eexample:443 HTTP/1.1", H), "ERR_CONNECT_TARGET_HOST", 400],
    ["obs-fold", head("CONNECT a.example:443 HTTP/1.1", H, "X-A: 1", " folded"), "ERR_CONNECT_OBS_FOLD", 400],
    ["obs-fold with tab", head("CONNECT a.example:443 HTTP/1.1", H, "\tfolded"), "ERR_CONNECT_OBS_FOLD", 400],
    ["whitespace before the first field", head("CONNECT a.example:443 HTTP/1.1", " Host: a.example:443"), "ERR_CONNECT_OBS_FOLD", 400],
    ["space before colon", head("CONNECT a.example:443 HTTP/1.1", "Host : a.example:443"), "ERR_CONNECT_MALFORMED", 400],
    ["field without colon", head("CONNECT a.example:443 HTTP/1.1", H, "Junk"), "ERR_CONNECT_MALFORMED", 400],
    ["empty field name", head("CONNECT a.example:443 HTTP/1.1", H, ": x"), "ERR_CONNECT_MALFORMED", 400],
    ["missing Host", head("CONNECT a.example:443 HTTP/1.1", "User-Agent: t"), "ERR_CONNECT_HOST_HEADER", 400],
    ["two Host fields, same value", head("CONNECT a.example:443 HTTP/1.1", H, H), "ERR_CONNECT_HOST_HEADER", 400],
    ["two Host fields, conflicting", head("CONNECT a.example:443 HTTP/1.1", H, "Host: b.example:443"), "ERR_CONNECT_HOST_HEADER", 400],
    ["Host names another host", head("CONNECT a.example:443 HTTP/1.1", "Host: b.example:443"), "ERR_CONNECT_HOST_HEADER", 400],
    ["Host names another port", head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:444"), "ERR_CONNECT_HOST_HEADER", 400],
    ["Host is junk", head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443/x"), "ERR_CONNECT_HOST_HEADER", 400],
    ["empty Host", head("CONNECT a.example:443 HTTP/1.1", "Host:"), "ERR_CONNECT_HOST_HEADER", 400],
    ["Transfer-Encoding", head("CONNECT a.example:443 HTTP/1.1", H, "Transfer-Encoding: chunked"), "ERR_CONNECT_BODY_HEADER", 400],
    ["Content-Length", head("CONNECT a.example:443 HTTP/1.1", H, "Content-Length: 0"), "ERR_CONNECT_BODY_HEADER", 400],
    ["content-length, odd case", head("CONNECT a.example:443 HTTP/1.1", H, "cOnTeNt-LeNgTh: 5"), "ERR_CONNECT_BODY_HEADER", 400],
    ["bare LF ending a field", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\n\r\n", "ERR_CONNECT_LINE_TERMINATOR", 400],
    ["bare LF head", "CONNECT a.example:443 HTTP/1.1\nHost: a.example:443\n\n", "ERR_CONNECT_LINE_TERMINATOR", 400],
    ["bare CR inside a value", head("CONNECT a.example:443 HTTP/1.1", H, "X: a\rb"), "ERR_CONNECT_LINE_TERMINATOR", 400],
    ["NUL in a value", head("CONNECT a.example:443 HTTP/1.1", H, "X: a\0b"), "ERR_CONNECT_CONTROL_CHAR", 400],
    ["DEL in the target", head("CONNECT a.exa\x7fmple:443 HTTP/1.1", H), "ERR_CONNECT_CONTROL_CHAR", 400],
    ["ESC in a name", head("CONNECT a.example:443 HTTP/1.1", H, "X\x1b: 1"), "ERR_CONNECT_CONTROL_CHAR", 400],
    ["obs-text in the target", head("CONNECT a.ex\xe9mple:443 HTTP/1.1", H), "ERR_CONNECT_MALFORMED", 400],
  ];
  it.each(cases)("%s", (_name, text, code, status) => {
    let err: unknown;
    try {
      parseConnectHead(enc(text));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConnectRequestError);
    expect(err).toMatchObject({ code, status });
  });

  it("a TLS ClientHello instead of a CONNECT is refused at its first byte", () => {
    expect(codeOf(Uint8Array.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toBe("ERR_CONNECT_CONTROL_CHAR");
  });

  it("a request line over the limit is 414 before its end arrives", () => {
    const parser = new ConnectHeadParser({ ...DEFAULT_CONNECT_HEAD_LIMITS, maxRequestLineBytes: 64 });
    expect(parser.push(enc("CONNECT "))).toEqual({ done: false });
    expect(() => parser.push(enc("a".repeat(100)))).toThrow(expect.objectContaining({ code: "ERR_CONNECT_REQUEST_LINE_TOO_LONG", status: 414 }));
  });

  it("a head over maxHeadBytes is 431 before its end arrives", () => {
    const parser = new ConnectHeadParser({ maxHeadBytes: 256, maxRequestLineBytes: 128, maxHeaders: 64 });
    parser.push(enc("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"));
    expect(() => parser.push(enc(`X-Big: ${"x".repeat(300)}`))).toThrow(expect.objectContaining({ code: "ERR_CONNECT_HEAD_TOO_LARGE", status: 431 }));
  });

  it("a head of exactly maxHeadBytes passes; one byte more is 431", () => {
    const base = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443", "X: ");
    const limits = { maxHeadBytes: 200, maxRequestLineBytes: 100, maxHeaders: 8 };
    const fill = "y".repeat(200 - base.length);
    const exact = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443", `X: ${fill}`);
    expect(exact.length).toBe(200);
    expect(codeOf(exact, limits)).toBe("ok");
    const over = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443", `X: ${fill}y`);
    expect(codeOf(over, limits)).toBe("ERR_CONNECT_HEAD_TOO_LARGE");
  });

  it("more header fields than maxHeaders is 431", () => {
    const limits = { ...DEFAULT_CONNECT_HEAD_LIMITS, maxHeaders: 4 };
    const fields = ["Host: a.example:443", "A: 1", "B: 2", "C: 3"];
    expect(codeOf(head("CONNECT a.example:443 HTTP/1.1", ...fields), limits)).toBe("ok");
    expect(codeOf(head("CONNECT a.example:443 HTTP/1.1", ...fields, "D: 4"), limits)).toBe("ERR_CONNECT_TOO_MANY_HEADERS");
  });

  it("the message never quotes the input", () => {
    try {
      parseConnectHead(enc(head("CONNECT secret-canary.example:443 HTTP/1.1", "Host: other-canary.example:443")));
    } catch (err) {
      expect(String((err as Error).message)).not.toMatch(/canary/);
      return;
    }
    throw new Error("expected a refusal");
  });

  it("refuses to be fed after it finished", () => {
    const parser = new ConnectHeadParser();
    parser.push(enc(head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443")));
    expect(() => parser.push(enc("x"))).toThrow(/after the head/);
  });

  it("rejects unusable limits", () => {
    expect(() => new ConnectHeadParser({ maxHeadBytes: 0, maxRequestLineBytes: 1, maxHeaders: 1 })).toThrow(TypeError);
  });
});

describe("parseAuthority", () => {
  it.each([
    ["api.openai.com:443", "api.openai.com:443", "dns"],
    ["KMS.us-east-1.amazonaws.com:443", "kms.us-east-1.amazonaws.com:443", "dns"],
    ["[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443", "ipv6"],
    ["[::ffff:127.0.0.1]:80", "[::ffff:7f00:1]:80", "ipv6"],
    ["10.0.0.1:80", "10.0.0.1:80", "ipv4"],
    ["xn--bcher-kva.example:443", "xn--bcher-kva.example:443", "dns"],
    ["1a.example:443", "1a.example:443", "dns"],
  ])("%s → %s", (input, authority, kind) => {
    expect(parseAuthority(input)).toMatchObject({ authority, kind });
  });
});

// ---------------------------------------------------------------- properties

/** Feed bytes in the given pieces; return the outcome as a comparable value. */
function feed(bytes: Uint8Array, cuts: number[]): { outcome: string; authority?: string; rest?: string } {
  const parser = new ConnectHeadParser();
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  try {
    for (const to of [...points, bytes.length]) {
      if (to < from) continue;
      const r: ConnectHeadResult = parser.push(bytes.subarray(from, to));
      // Bytes after the head are the caller's; collect them as the proxy would.
      if (r.done) return { outcome: "ok", authority: r.request.target.authority, rest: Buffer.concat([r.rest, bytes.subarray(to)]).toString("hex") };
      from = to;
    }
    return { outcome: "incomplete" };
  } catch (err) {
    if (err instanceof ConnectRequestError) return { outcome: err.code };
    throw err;
  }
}

const tokenChar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split(""));
const fieldName = fc.string({ unit: tokenChar, minLength: 1, maxLength: 20 }).filter((n) => !["host", "content-length", "transfer-encoding"].includes(n.toLowerCase()));
const fieldValue = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }).map((v) => v.trim());
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const dnsName = fc.tuple(fc.array(label, { minLength: 0, maxLength: 4 }), fc.stringMatching(/^[a-z]([a-z0-9-]{0,8}[a-z0-9])?$/)).map(([labels, tld]) => [...labels, tld].join("."));
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const host = fc.oneof(dnsName, ipv4, ipv6);
const port = fc.integer({ min: 1, max: 65535 });

describe("CONNECT head: properties", () => {
  it("random bytes, cut anywhere, only ever yield the typed error, and the cuts do not change the outcome", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        const whole = feed(bytes, []);
        expect(feed(bytes, cuts)).toEqual(whole);
      }),
      { numRuns: 2000 },
    );
  });

  it("near-valid heads (valid prefix + random junk) also only yield the typed error", () => {
    const prefix = fc.constantFrom("CONNECT ", "CONNECT a.example:443 HTTP/1.1\r\n", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n");
    const junk = fc.string({ unit: fc.constantFrom("\r", "\n", " ", "\t", ":", "a", "H", "o", "s", "t", "\0", "[", "]", "@", "/", "\xff"), maxLength: 60 });
    fc.assert(
      fc.property(prefix, junk, fc.array(fc.nat(), { maxLength: 4 }), (p, j, cuts) => {
        const bytes = enc(p + j);
        expect(feed(bytes, cuts)).toEqual(feed(bytes, []));
      }),
      { numRuns: 3000 },
    );
  });

  it("round trip: every valid head parses to its target, whatever else it carries, in any chunking", () => {
    fc.assert(
      fc.property(
        host,
        port,
        fc.array(fc.tuple(fieldName, fieldValue), { maxLength: 10 }),
        fc.nat({ max: 11 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        (h, p, fields, hostAt, hostWithPort, cuts) => {
          const bracketed = h.includes(":") ? `[${h}]` : h;
          const authority = `${bracketed}:${p}`;
          const all = [...fields.map(([n, v]) => `${n}: ${v}`)];
          all.splice(Math.min(hostAt, all.length), 0, `Host: ${hostWithPort ? authority : bracketed}`);
          const text = head(`CONNECT ${authority} HTTP/1.1`, ...all);
          const expected = parseAuthority(authority).authority;
          expect(feed(enc(text), cuts)).toEqual({ outcome: "ok", authority: expected, rest: "" });
          const { request } = parseConnectHead(enc(text));
          expect(request.target.port).toBe(p);
          expect(request.headerCount).toBe(all.length);
          // format ∘ parse is the identity on the target.
          expect(parseConnectHead(enc(formatConnectHead(request.target))).request.target).toEqual(request.target);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("any one forbidden mutation of a valid head is refused with its code", () => {
    const mutation = fc.constantFrom(
      ["\0", "ERR_CONNECT_CONTROL_CHAR"] as const,
      ["\x01", "ERR_CONNECT_CONTROL_CHAR"] as const,
      ["\x7f", "ERR_CONNECT_CONTROL_CHAR"] as const,
      ["\n", "ERR_CONNECT_LINE_TERMINATOR"] as const,
      ["\r", "ERR_CONNECT_LINE_TERMINATOR"] as const,
    );
    fc.assert(
      fc.property(dnsName, port, fc.nat(), mutation, (h, p, at, [byte, code]) => {
        const text = head(`CONNECT ${h}:${p} HTTP/1.1`, `Host: ${h}:${p}`);
        // Anywhere before the final empty line.
        const i = at % (text.length - 4);
        const mutated = text.slice(0, i) + byte + text.slice(i);
        expect(feed(enc(mutated), []).outcome).toBe(code);
      }),
      { numRuns: 2000 },
    );
  });

  it("parsing time is linear: 8 KiB fed one byte at a time costs about what one push does", () => {
    const text = head("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443", ...Array.from({ length: 60 }, (_, i) => `X-${i}: ${"v".repeat(100)}`));
    const bytes = enc(text);
    expect(bytes.length).toBeLessThan(8192);
    const t0 = performance.now();
    for (let k = 0; k < 50; k++) new ConnectHeadParser().push(bytes);
    const whole = performance.now() - t0;
    const t1 = performance.now();
    for (let k = 0; k < 50; k++) {
      const parser = new ConnectHeadParser();
      for (let i = 0; i < bytes.length; i++) parser.push(bytes.subarray(i, i + 1));
    }
    const bytewise = performance.now() - t1;
    // Quadratic rescanning would be ~100x; allow generous noise.
    expect(bytewise).toBeLessThan(Math.max(whole * 20, 200));
  });
});
