import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { openAttestedConnection, parseGatewayOrigin } from "../../attestation/client/connection.js";
import { clientErrorAnswer } from "../../attestation/client/error-response.js";
import { ClientError } from "../../attestation/client/errors.js";
import type { AttestedPeer } from "../../attestation/client/peer.js";
import { resolvePolicy, type ClientPolicy, type ResolvedPolicy } from "../../attestation/client/policy.js";
import { receiptSseBlock } from "../../attestation/receipt.js";
import { createVerifiedFetch, type VerifiedFetch } from "../../attestation/client/verified-fetch.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { loadCliPolicy, manifestRejection, matchedRelease, POLICY_FLAGS, releaseLine, stepLines, trustWord, unconstrained, type CliPolicy } from "./verify.js";

/**
 * `egw proxy --upstream <url> [--policy file [--policy-pubkey pem | --policy-pubkey-sha256 hex] [--policy-sig file]
 *           [--policy-min-sequence n]] [--dev-root pem] [--listen 127.0.0.1:8787]`
 *
 * A plain-HTTP proxy on loopback for tools that cannot verify (curl,
 * Python's openai, LangChain): every request goes to the gateway through
 * createVerifiedFetch, so over an attested connection, and every answer is
 * passed on only if its receipt verifies.
 *
 *  - Non-streamed answers are checked before a byte is passed on; a failure
 *    becomes the verifying client's local error answer, in the surface's
 *    own shape (attestation/client/error-response.ts: 406, x-should-retry:
 *    false, x-egw-client-error, "CODE: reason"; a transient failure such as
 *    an unreachable gateway is a 502 with x-should-retry: true), exactly
 *    what createVerifiedFetch hands an SDK. Never the gateway's bytes.
 *  - GET /healthz passes through over an attested connection, unsigned (the
 *    gateway signs no receipt outside /v1), marked x-egw-verified
 *    "attestation; no receipt …"; at most 64 KiB.
 *  - Streams pass through as they arrive, event by event, except the
 *    terminal event (`[DONE]`, `message_stop`), which is held until the
 *    receipt at the stream's end verifies. Verified, the held event and the
 *    receipt block follow (the caller gets the gateway's bytes unchanged);
 *    refused, an in-stream error event in the surface's format takes the
 *    held event's place and the connection is cut without the final chunk,
 *    so a client that stops at `[DONE]` never reports success.
 *  - Answers the gateway refused before reading the body (404 unknown path,
 *    401, 413, 429: receipt body_read false) are passed on with the
 *    gateway's status and error body once their receipt verifies.
 *  - Response headers say what was verified: x-egw-verified
 *    (`attestation+receipt; trust=constrained`, or
 *    `attestation+receipt-at-end-of-stream; trust=…`, with
 *    `trust=UNCONSTRAINED` when the policy's trust is "any" or the enclave
 *    attests no trust policy), x-egw-measurement (manifest label, or
 *    "unchecked"), x-egw-root (production / development),
 *    x-egw-receipt-id, x-egw-upstream (the receipt's upstream origin, for
 *    non-streamed answers: a stream's receipt comes after its headers;
 *    "none" when no upstream answered), x-egw-tls-spki-sha256,
 *    x-egw-config-sha256, x-egw-policy-sha256 (absent for an enclave that
 *    attests no trust policy).
 *  - The trust policy is read and checked on every attested connection
 *    before a request byte is sent; a receipt naming an upstream outside
 *    it, or outside the allowed origins, is refused (406).
 *
 * Loopback only: it speaks plain HTTP, and a Host header that is not
 * loopback is refused (DNS rebinding).
 *
 * With a pinned manifest signing key, a manifest whose signature is missing
 * or wrong stops the proxy before it listens (ERR_MANIFEST_SIGNATURE, exit 1);
 * so does a manifest that has expired (ERR_MANIFEST_EXPIRED) or is older
 * than --policy-min-sequence (ERR_MANIFEST_ROLLBACK).
 *
 * The manifest is read once, at start. When its `expires` time comes while
 * the proxy runs, the proxy keeps listening but forwards nothing more: every
 * request is answered 406 with x-egw-error ERR_MANIFEST_EXPIRED, without a
 * byte sent to the gateway (the verified fetch refuses before choosing a
 * connection, so connections attested earlier are not reused either). It
 * does not exit, so a supervisor does not restart it into the same refusal
 * in a loop; restart it with the current manifest.
 */
export interface ProxyOptions {
  upstream: string;
  policy: ClientPolicy;
  host: string;
  port: number;
  now?: () => Date;
  /** One line per request, no content. */
  log?: (line: string) => void;
  maxRequestBytes?: number;
}

export interface RunningProxy {
  url: string;
  port: number;
  verifiedFetch: VerifiedFetch;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
  "content-length",
  "proxy-connection",
  "proxy-authorization",
  "expect",
]);
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:[\]]+):(\d{1,5})$/.exec(value);
  if (!match) throw new UsageError(`--listen "${value}" must be host:port, e.g. 127.0.0.1:8787`);
  const host = match[1]!;
  const port = Number(match[2]);
  if (port > 65535) throw new UsageError(`--listen port ${port} is not a port`);
  if (!isLoopbackHost(host)) throw new UsageError(`--listen ${host}: the proxy speaks plain HTTP and listens on loopback only (127.0.0.1, ::1, localhost)`);
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port };
}

/** A header value that is always valid: visible ASCII, else percent-encoded. */
function headerSafe(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text);
}

function verifiedHeaders(peer: AttestedPeer): Record<string, string> {
  return {
    ...(peer.policySha256 !== null && { "x-egw-policy-sha256": Buffer.from(peer.policySha256).toString("hex") }),
    "x-egw-measurement": peer.measurement === null ? "unchecked" : headerSafe(peer.measurement),
    "x-egw-root": peer.result.root.production ? "production" : "development",
    "x-egw-tls-spki-sha256": Buffer.from(peer.tlsSpkiSha256).toString("hex"),
    "x-egw-config-sha256": Buffer.from(peer.configSha256).toString("hex"),
  };
}

async function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | null> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > max) return null;
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export async function startVerifyingProxy(options: ProxyOptions): Promise<RunningProxy> {
  const upstream = parseGatewayOrigin(options.upstream).origin;
  const verifiedFetch = createVerifiedFetch({ baseURL: upstream, policy: options.policy, ...(options.now && { now: options.now }), keepReceipts: 0 });
  // Only to say what was checked; the verified fetch resolved (and checks) its own copy.
  const resolved: ResolvedPolicy = resolvePolicy(options.policy, (options.now ?? (() => new Date()))());
  const maxRequestBytes = options.maxRequestBytes ?? 32 * 1024 * 1024;
  const log = options.log ?? (() => {});
  let port = options.port;

  /**
   * An answer of the proxy's own, never gateway bytes: the verifying
   * client's local error answer (attestation/client/error-response.ts: 406
   * for a refusal, 502 for a transient failure, x-should-retry,
   * x-egw-client-error, the surface's error body "CODE: reason"), the same
   * as createVerifiedFetch gives an SDK. `status` overrides it for the
   * proxy's own checks of the local request (403, 400, 413).
   */
  function fail(res: ServerResponse, path: string, code: string, message: string, options: { retry?: boolean; status?: number } = {}): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const answer = clientErrorAnswer(path, code, message, options.retry ?? false, options.status);
    res.writeHead(answer.status, { ...answer.headers, "x-egw-verified": "failed", "x-egw-error": code });
    res.end(answer.body);
  }

  /** GET /healthz: over an attested connection, but unsigned (the gateway signs no receipt outside /v1). */
  async function health(res: ServerResponse, path: string, signal: AbortSignal): Promise<void> {
    let answer;
    try {
      answer = await verifiedFetch.healthz({ signal });
    } catch (err) {
      const refused = err instanceof ClientError;
      log(`GET ${path} → ${refused ? err.code : "ERR_UPSTREAM"}`);
      if (refused) fail(res, path, err.code, err.message, { retry: err.action === "retry" });
      else fail(res, path, "ERR_UPSTREAM", "the gateway could not be reached", { retry: true });
      return;
    }
    const bytes = new Uint8Array(await answer.response.arrayBuffer());
    res.writeHead(answer.response.status, {
      "content-type": answer.response.headers.get("content-type") ?? "application/json",
      "content-length": String(bytes.length),
      ...verifiedHeaders(answer.peer),
      "x-egw-verified": `attestation; no receipt (the gateway signs none for ${path}); trust=${trustWord(answer.peer, resolved)}`,
    });
    res.end(bytes);
    log(`GET ${path} → ${answer.response.status} (attested connection, unsigned)`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? "/";
    // Logged without its query: Google's `?key=<client token>` must not reach a log line.
    const logged = path.replace(/\?.*$/s, "");
    const method = req.method ?? "GET";
    const hostHeader = (req.headers.host ?? "").replace(/:\d+$/, "");
    if (!isLoopbackHost(hostHeader)) {
      fail(res, path, "ERR_ORIGIN", "requests must be addressed to a loopback host", { status: 403 });
      return;
    }
    if (!path.startsWith("/")) {
      fail(res, path, "ERR_ORIGIN", "absolute-form request targets are not proxied; send requests to this proxy as if it were the gateway", { status: 400 });
      return;
    }
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    if (method === "GET" && (path === "/healthz" || path.startsWith("/healthz?"))) {
      await health(res, "/healthz", abort.signal);
      return;
    }
    const body = await readBody(req, maxRequestBytes);
    if (body === null) {
      fail(res, path, "ERR_REQUEST_TOO_LARGE", `request body over ${maxRequestBytes} bytes`, { status: 413 });
      return;
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
    }

    let exchange;
    try {
      exchange = await verifiedFetch.exchange(`${upstream}${path}`, {
        method,
        headers,
        ...(method !== "GET" && method !== "HEAD" && { body }),
        signal: abort.signal,
      });
    } catch (err) {
      // Never the gateway's bytes: the local answer for the code (406, or 502 when transient).
      if (!(err instanceof ClientError)) {
        log(`${method} ${logged} → 502 ERR_UPSTREAM`);
        fail(res, path, "ERR_UPSTREAM", "the gateway could not be reached", { retry: true });
        return;
      }
      const message = err.code === "ERR_MANIFEST_EXPIRED" ? `nothing was sent: ${err.message}; restart the proxy with the current manifest` : err.message;
      const retry = err.action === "retry";
      log(`${method} ${logged} → ${retry ? 502 : 406} ${err.code}`);
      fail(res, path, err.code, message, { retry });
      return;
    }
    const { response, peer } = exchange;
    const outHeaders: Record<string, string | string[]> = {};
    response.headers.forEach((value, name) => {
      if (HOP_BY_HOP.has(name)) return;
      if (name === "set-cookie" || name === "x-egw-client-error") return;
      outHeaders[name] = value;
    });
    const cookies = response.headers.getSetCookie();
    if (cookies.length > 0) outHeaders["set-cookie"] = cookies;
    Object.assign(outHeaders, verifiedHeaders(peer));

    if (!/^text\/event-stream/i.test(response.headers.get("content-type") ?? "")) {
      const bytes = new Uint8Array(await response.arrayBuffer());
      const verified = await exchange.receipt;
      outHeaders["x-egw-verified"] = `attestation+receipt; trust=${trustWord(peer, resolved)}`;
      outHeaders["x-egw-receipt-id"] = headerSafe(verified.claims.id);
      outHeaders["x-egw-upstream"] = verified.claims.upstream ? headerSafe(verified.claims.upstream.origin) : "none";
      outHeaders["content-length"] = String(bytes.length);
      res.writeHead(response.status, outHeaders);
      res.end(bytes);
      log(`${method} ${logged} → ${response.status} verified (receipt ${verified.claims.id})`);
      return;
    }

    outHeaders["x-egw-verified"] = `attestation+receipt-at-end-of-stream; trust=${trustWord(peer, resolved)}`;
    res.writeHead(response.status, outHeaders);
    res.flushHeaders();
    // The verified fetch holds the stream's terminal event ([DONE],
    // message_stop …) until the receipt verifies, and on failure sends the
    // surface's error event in its place before the body errors
    // (attestation/client/stream-terminal.ts).
    let lastWrite: Promise<void> = Promise.resolve();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        lastWrite = new Promise<void>((resolve) => res.write(chunk, () => resolve()));
        if (res.writableNeedDrain) await new Promise<void>((resolve) => res.once("drain", resolve).once("close", resolve));
        if (res.destroyed) return;
      }
      const verified = await exchange.receipt;
      // Verified: the receipt block goes on too, so the caller gets the
      // gateway's bytes unchanged and can keep the receipt.
      res.end(receiptSseBlock(verified.receipt));
      log(`${method} ${logged} → ${response.status} stream verified (receipt ${verified.claims.id})`);
    } catch (err) {
      const code = err instanceof ClientError ? err.code : "ERR_UPSTREAM";
      log(`${method} ${logged} → stream REFUSED ${code}`);
      if (res.destroyed) return;
      // The error event is out; now a cut without the final chunk: the body
      // is visibly incomplete to every HTTP client, even one past [DONE].
      await lastWrite;
      res.destroy();
    }
  }

  const server = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) fail(res, req.url ?? "/", "ERR_PROXY", "internal proxy error", { status: 500 });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const hostPart = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${hostPart}:${port}`,
    port,
    verifiedFetch,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await verifiedFetch.close();
    },
  };
}

export async function proxyCommand(args: string[], ctx: CliContext, options: { signal?: AbortSignal } = {}): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    ...POLICY_FLAGS,
    upstream: { type: "string" },
    listen: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("proxy takes no positional arguments");
  if (values.upstream === undefined) throw new UsageError("proxy needs --upstream <https://gateway:port>");
  let upstream: string;
  try {
    upstream = parseGatewayOrigin(values.upstream).origin;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const listen = parseListen(values.listen ?? "127.0.0.1:8787");
  let loaded: CliPolicy;
  try {
    loaded = await loadCliPolicy(values, ctx);
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    print(ctx.stdout, manifestRejection(err, values, false, `egw proxy: ${upstream} REFUSED`));
    return EXIT.rejected;
  }
  const { policy, resolved, source } = loaded;

  // Attest once up front, so a gateway that fails is reported now rather
  // than as 502s later. Each proxied connection is attested again.
  try {
    const first = await openAttestedConnection({ origin: upstream, policy: resolved, now: ctx.now });
    first.socket.destroy();
    const m = first.peer.measurement === null ? "measurements NOT checked (no --policy)" : `measurement "${first.peer.measurement}"`;
    print(
      ctx.stderr,
      `egw proxy: ${upstream} attested: ${first.peer.result.moduleId}, ${m}, root ${first.peer.result.root.name}${first.peer.result.root.production ? "" : " (DEVELOPMENT)"}`,
    );
    const t = first.peer.trust;
    print(
      ctx.stderr,
      `egw proxy: trust policy ${t ? `sha256 ${Buffer.from(t.sha256).toString("hex")}, upstream origins ${t.origins.join(", ")}, identity ${t.policy.identity.mode}` : "none attested"}`,
    );
    const open = unconstrained(first.peer, resolved);
    if (open.length > 0) print(ctx.stderr, `egw proxy: UNCONSTRAINED: ${open.join(", ")}`);
    const release = matchedRelease(loaded.manifest, first.peer.measurement);
    if (release) print(ctx.stderr, `egw proxy:${releaseLine(release)}`);
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    print(ctx.stdout, [`egw proxy: ${upstream} REFUSED`, `  policy: ${source}`, ...stepLines(err.steps), `REJECTED ${err.code}`, `  ${err.message}`].join("\n"));
    return EXIT.rejected;
  }

  const proxy = await startVerifyingProxy({
    upstream,
    policy,
    host: listen.host,
    port: listen.port,
    now: ctx.now,
    log: (line) => print(ctx.stderr, `egw proxy: ${line}`),
  });
  print(ctx.stdout, `egw proxy: listening on ${proxy.url} → ${upstream} (${source})`);
  print(ctx.stdout, `  e.g. OPENAI_BASE_URL=${proxy.url}/v1, or curl ${proxy.url}/v1/models -H "authorization: Bearer $TOKEN"; health: curl ${proxy.url}/healthz`);

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    if (options.signal) {
      if (options.signal.aborted) return stop();
      options.signal.addEventListener("abort", stop, { once: true });
    } else {
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    }
  });
  await proxy.close();
  print(ctx.stderr, "egw proxy: stopped");
  return EXIT.ok;
}
