import { connect as netConnect, createServer, type AddressInfo, type LookupFunction, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Registry } from "prom-client";
import { ConnectHeadParser, ConnectRequestError, DEFAULT_CONNECT_HEAD_LIMITS, type ConnectHeadLimits, type ConnectRequest } from "./connect-parser.js";
import { silentLogger, type EgressLogger } from "./log.js";
import { createEgressMetrics, type ConnectionOutcome, type EgressMetrics, type ErrorKind } from "./metrics.js";
import { createEgressPolicy, type EgressPolicy, type EgressRule, type ResolvedAddress, type Resolver } from "./policy.js";
import { pump } from "../transport/pump.js";

/**
 * The host's egress proxy: an HTTP CONNECT proxy (RFC 9110 §9.3.6) through
 * which the enclave reaches providers and KMS. The enclave's TLS runs end to
 * end through the tunnel, so all this process sees is the CONNECT head and
 * ciphertext.
 *
 * One connection's life:
 *  1. head    — bytes go through ConnectHeadParser until the empty line, under
 *               headTimeoutMs (slowloris gets 408).
 *  2. decide  — policy: allowlist, DNS at this connection, address checks;
 *               then dial a vetted address. resolve + dial together are
 *               bounded by connectTimeoutMs (504).
 *  3. tunnel  — `200 Connection Established`, then bytes both ways with
 *               backpressure, half-close and an idle timeout.
 *
 * Early data (the smuggling policy). HTTP/1.1 lets a client pipeline, so a
 * head may be followed by more bytes before we answer: a second request
 * (`CONNECT a…\r\n\r\nCONNECT b…`), or a TLS ClientHello sent optimistically.
 * We never parse those bytes, and we do not forward them either: any byte
 * that arrives after the head and before our answer is written — in the
 * head's own chunk or later, while DNS and the dial run — refuses the
 * connection with 400 (rule `early_data`), and the dial is abandoned. Our
 * client (undici) waits for the 200 before it sends anything, so the rule
 * costs nothing and leaves exactly one request per connection, ever. After
 * the 200 everything is opaque tunnel payload.
 *
 * A client that sends its FIN before our answer (a head followed by
 * shutdown(SHUT_WR)) is treated as gone: the dial is abandoned and the
 * connection counted as aborted, since a tunnel that can only flow one way
 * from its first byte is not one the enclave ever asks for.
 *
 * Refusals are answered with a status, `Connection: close` and a
 * Proxy-Status field (RFC 9209) naming the rule; then the proxy ends its side
 * and discards whatever the client still sends for a short linger, so the
 * kernel does not answer unread bytes with a RST that would swallow the
 * status line.
 */

export interface EgressLimits extends ConnectHeadLimits {
  /** Open client connections in any phase; beyond it new ones get 503. */
  maxConnections: number;
  /** From accept to the end of the CONNECT head (408). */
  headTimeoutMs: number;
  /** DNS resolution plus the TCP connect to the provider (504). */
  connectTimeoutMs: number;
  /** A tunnel with no byte in either direction for this long is closed. */
  idleTimeoutMs: number;
}

export const DEFAULT_EGRESS_LIMITS: Readonly<EgressLimits> = Object.freeze({
  ...DEFAULT_CONNECT_HEAD_LIMITS,
  maxConnections: 1024,
  headTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  // Long enough for a model that thinks for minutes before its first token.
  idleTimeoutMs: 300_000,
});

/** The most one tunnel direction holds in flight: a socket's usual read, so a stalled reader costs the proxy little. */
const TUNNEL_READ_BYTES = 64 * 1024;

/** How long a refused connection may keep sending before it is destroyed. */
const LINGER_MS = 1_000;

const EARLY_DATA_RULE = new ConnectRequestError("ERR_CONNECT_EARLY_DATA").rule;
const HEAD_TIMEOUT_RULE = new ConnectRequestError("ERR_CONNECT_HEAD_TIMEOUT").rule;

function discard(): void {}

/** Pass an abort on as an abort: a TCP RST where the stream can send one, else a plain destroy. */
function reset(stream: Duplex): void {
  if (stream.destroyed) return;
  const socket = stream as Partial<Socket>;
  if (typeof socket.resetAndDestroy === "function") {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // Not TCP (a Unix socket has no RST): fall through to destroy.
    }
  }
  stream.destroy();
}

export interface EgressProxyOptions {
  /** Allowlist; `"host:port"` entries or rule objects. Empty denies everything. */
  rules: ReadonlyArray<EgressRule | string>;
  /** Called at every connection to a DNS name. Default: dns.promises.lookup, all answers. */
  resolver?: Resolver;
  /** Required, every field: a missing limit is a configuration error, not "no limit". */
  limits: EgressLimits;
  /** Metrics to record into; or a registry to create them in; default a new registry. */
  metrics?: EgressMetrics;
  registry?: Registry;
  logger?: EgressLogger;
}

export interface EgressStats {
  /** Open connections in any phase. */
  connections: number;
  tunnels: number;
  /** Bytes queued in the proxy's socket write buffers across all tunnels. */
  bufferedBytes: number;
}

export interface EgressProxy {
  /**
   * Serve one accepted connection: any transport's Duplex (TCP, Unix, a
   * vsock bridge). The proxy sets `allowHalfOpen` on it and owns it from here.
   */
  handle(socket: Duplex): void;
  stats(): EgressStats;
  readonly metrics: EgressMetrics;
  readonly policy: EgressPolicy;
  /**
   * Stop: connections not yet tunnelling get 503; tunnels may finish for up
   * to drainMs (default 30 s), then are destroyed. Resolves when every
   * connection is closed.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

/** `backlog` is the kernel accept queue (default 511); raise it for bursts of connects. */
export type EgressListen = { host: string; port: number; backlog?: number } | { path: string; backlog?: number } | { server: Server };

export interface RunningEgressProxy extends EgressProxy {
  /** TCP port when listening on TCP, else undefined. */
  readonly port: number | undefined;
  readonly address: AddressInfo | string | null;
}

const ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";

const REASON: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

// RFC 9209 §2.3 proxy error types.
const PROXY_ERROR: Record<string, string> = {
  denied_host: "http_request_denied",
  denied_port: "http_request_denied",
  ip_literal: "http_request_denied",
  private_address: "destination_ip_prohibited",
  metadata_address: "destination_ip_prohibited",
  dns_failure: "dns_error",
  dns_timeout: "dns_timeout",
  connect_refused: "connection_refused",
  connect_unreachable: "destination_ip_unroutable",
  connect_failed: "destination_unavailable",
  connect_timeout: "connection_timeout",
  max_connections: "proxy_internal_error",
  shutting_down: "proxy_internal_error",
};

function errorResponse(status: number, rule: string): string {
  const type = PROXY_ERROR[rule] ?? "http_request_error";
  return (
    `HTTP/1.1 ${status} ${REASON[status] ?? "Error"}\r\n` +
    "Connection: close\r\nContent-Length: 0\r\n" +
    (status === 405 ? "Allow: CONNECT\r\n" : "") +
    `Proxy-Status: egw-egress; error=${type}; details="${rule}"\r\n\r\n`
  );
}

// The dial gets an IP address; should net.connect ever want DNS, refuse.
const noLookup: LookupFunction = (_hostname, _options, callback) => {
  callback(Object.assign(new Error("egress proxy dials vetted addresses only"), { code: "EGW_NO_LOOKUP" }), "", 4);
};

function checkLimits(limits: EgressLimits | undefined): EgressLimits {
  if (typeof limits !== "object" || limits === null) throw new TypeError("egress proxy: limits are required (see DEFAULT_EGRESS_LIMITS)");
  const keys = ["maxConnections", "headTimeoutMs", "connectTimeoutMs", "idleTimeoutMs", "maxHeadBytes", "maxRequestLineBytes", "maxHeaders"] as const;
  for (const key of keys) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < 1) throw new TypeError(`egress proxy: limits.${key} expected a positive integer, got ${String(v)}`);
  }
  return { ...limits };
}

type Phase = "head" | "establishing" | "tunnel" | "refused";

interface Conn {
  id: number;
  client: Duplex;
  phase: Phase;
  upstream?: Socket;
  abort?: AbortController;
  refuse(status: number, rule: string, outcome: ConnectionOutcome): void;
}

export function createEgressProxy(options: EgressProxyOptions): EgressProxy {
  const limits = checkLimits(options.limits);
  const policy = createEgressPolicy({ rules: options.rules, ...(options.resolver && { resolver: options.resolver }) });
  const metrics = options.metrics ?? createEgressMetrics(options.registry);
  const logger = options.logger ?? silentLogger;
  const upBytes = metrics.bytes.labels({ direction: "upstream" });
  const downBytes = metrics.bytes.labels({ direction: "downstream" });

  const open = new Set<Conn>();
  let nextId = 1;
  let closing = false;
  let drained: (() => void) | undefined;

  function handle(client: Duplex): void {
    if (client.destroyed) return;
    // Half-close is ours to manage: never let the stream end its side by itself.
    client.allowHalfOpen = true;
    (client as Partial<Socket>).setNoDelay?.(true);
    const startedAt = performance.now();
    let settled = false;
    let headTimer: NodeJS.Timeout | undefined;
    let lingerTimer: NodeJS.Timeout | undefined;
    const conn: Conn = { id: nextId++, client, phase: "head", refuse };
    open.add(conn);
    metrics.active.inc();

    function settle(outcome: ConnectionOutcome): void {
      if (settled) return;
      settled = true;
      metrics.connections.inc({ outcome });
    }

    client.on("error", (err: NodeJS.ErrnoException) => {
      // After a refusal the client's reset is expected; count only live errors.
      if (conn.phase !== "refused") metrics.errors.inc({ kind: "client_error" });
      logger.log("debug", "egress.client_error", { conn: conn.id, code: err.code ?? "unknown" });
      if (conn.upstream) reset(conn.upstream);
    });
    client.once("close", () => {
      clearTimeout(headTimer);
      clearTimeout(lingerTimer);
      conn.abort?.abort("client");
      settle("aborted");
      open.delete(conn);
      metrics.active.dec();
      if (open.size === 0) drained?.();
    });

    function refuse(status: number, rule: string, outcome: ConnectionOutcome): void {
      if (conn.phase === "refused" || conn.phase === "tunnel") return;
      conn.phase = "refused";
      clearTimeout(headTimer);
      conn.abort?.abort("refused");
      settle(outcome);
      metrics.denials.inc({ rule });
      logger.log("info", "egress.refused", { conn: conn.id, status, rule, outcome, ms: Math.round(performance.now() - startedAt) });
      client.off("data", onHeadData);
      client.off("data", onEarlyData);
      client.off("end", onEarlyEnd);
      if (client.destroyed) return;
      if (!client.writable) {
        client.destroy();
        return;
      }
      client.end(errorResponse(status, rule));
      // Read and drop until the client closes (its FIN plus our flushed end
      // close the socket), or until the linger runs out.
      client.on("data", discard);
      client.resume();
      lingerTimer = setTimeout(() => client.destroy(), LINGER_MS);
    }

    function onEarlyData(): void {
      refuse(400, EARLY_DATA_RULE, "rejected");
    }
    function onEarlyEnd(): void {
      // The client gave up (FIN) before our answer: nothing to answer.
      settle("aborted");
      client.destroy();
    }
    function onHeadData(chunk: Buffer): void {
      let result;
      try {
        result = parser.push(chunk);
      } catch (err) {
        if (err instanceof ConnectRequestError) return refuse(err.status, err.rule, "rejected");
        throw err;
      }
      if (!result.done) return;
      clearTimeout(headTimer);
      client.off("data", onHeadData);
      if (result.rest.length > 0) return onEarlyData();
      client.on("data", onEarlyData);
      conn.phase = "establishing";
      establish(result.request).catch((err: unknown) => {
        metrics.errors.inc({ kind: "internal" });
        logger.log("error", "egress.internal_error", { conn: conn.id, code: (err as NodeJS.ErrnoException)?.code ?? "unknown" });
        refuse(500, "internal_error", "error");
      });
    }

    if (closing) return refuse(503, "shutting_down", "shutdown");
    if (open.size > limits.maxConnections) return refuse(503, "max_connections", "overloaded");

    const parser = new ConnectHeadParser(limits);
    headTimer = setTimeout(() => refuse(408, HEAD_TIMEOUT_RULE, "rejected"), limits.headTimeoutMs);
    client.on("data", onHeadData);
    client.on("end", onEarlyEnd);

    async function establish(request: ConnectRequest): Promise<void> {
      const ac = new AbortController();
      conn.abort = ac;
      const timer = setTimeout(() => ac.abort("timeout"), limits.connectTimeoutMs);
      try {
        const decision = await policy.decide(request.target, { signal: ac.signal });
        if (conn.phase !== "establishing") return;
        if (!decision.allowed) {
          logger.log("debug", "egress.policy", { conn: conn.id, rule: decision.rule, ...(decision.addressClass && { addressClass: decision.addressClass }) });
          return refuse(decision.status, decision.rule, "denied");
        }
        const dialed = await dial(decision.addresses, request.target.port, ac.signal);
        if (conn.phase !== "establishing") {
          if (!("error" in dialed)) dialed.destroy();
          return;
        }
        if ("error" in dialed) {
          metrics.errors.inc({ kind: dialed.error });
          return refuse(dialed.error === "connect_timeout" ? 504 : 502, dialed.error, "upstream_failed");
        }
        tunnel(dialed, decision.entry);
      } finally {
        clearTimeout(timer);
      }
    }

    function tunnel(upstream: Socket, entry: string): void {
      conn.phase = "tunnel";
      conn.upstream = upstream;
      client.off("data", onEarlyData);
      client.off("end", onEarlyEnd);
      settle("tunnelled");
      metrics.tunnels.inc();
      const openedAt = performance.now();
      logger.log("info", "egress.tunnel_open", { conn: conn.id, entry, ms: Math.round(openedAt - startedAt) });
      client.write(ESTABLISHED);

      let up = 0;
      let down = 0;
      let reason = "closed";
      const idle = setTimeout(() => {
        reason = "idle_timeout";
        metrics.errors.inc({ kind: "idle_timeout" });
        client.destroy();
        upstream.destroy();
      }, limits.idleTimeoutMs);

      // The byte pump (host/transport/pump.ts): a direction stops reading
      // while its last read is still queued, so the proxy holds at most one
      // read (TUNNEL_READ_BYTES) per direction. Half-close: a FIN from one
      // side becomes a FIN to the other; the other direction keeps flowing
      // until its own FIN.
      pump(client, upstream, {
        maxReadBytes: TUNNEL_READ_BYTES,
        onBytes: (n) => {
          up += n;
          upBytes.inc(n);
          idle.refresh();
        },
      });
      pump(upstream, client, {
        maxReadBytes: TUNNEL_READ_BYTES,
        onBytes: (n) => {
          down += n;
          downBytes.inc(n);
          idle.refresh();
        },
      });
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        metrics.errors.inc({ kind: "upstream_error" });
        logger.log("debug", "egress.upstream_error", { conn: conn.id, code: err.code ?? "unknown" });
        reason = "upstream_error";
        reset(client);
      });
      // A normal close means both FINs went through and our writes flushed;
      // the other side then closes by itself once its own writes flush. An
      // abnormal one (reset, destroy) takes the other side down, as does a
      // close while the other side could still send (nobody left to read it).
      let closed = 0;
      const onClose = (other: Duplex) => (hadError: boolean) => {
        if (hadError || !other.readableEnded) other.destroy();
        if (++closed < 2) return;
        clearTimeout(idle);
        metrics.tunnels.dec();
        logger.log("info", "egress.tunnel_close", { conn: conn.id, entry, reason, bytesUp: up, bytesDown: down, ms: Math.round(performance.now() - openedAt) });
      };
      client.once("close", onClose(upstream));
      upstream.once("close", onClose(client));
    }
  }

  function stats(): EgressStats {
    let tunnels = 0;
    let bufferedBytes = 0;
    for (const c of open) {
      if (c.phase !== "tunnel") continue;
      tunnels++;
      bufferedBytes += c.client.writableLength + (c.upstream?.writableLength ?? 0);
    }
    return { connections: open.size, tunnels, bufferedBytes };
  }

  async function close(closeOptions: { drainMs?: number } = {}): Promise<void> {
    const drainMs = closeOptions.drainMs ?? 30_000;
    closing = true;
    for (const c of open) if (c.phase === "head" || c.phase === "establishing") c.refuse(503, "shutting_down", "shutdown");
    if (open.size > 0) {
      const allClosed = new Promise<void>((resolve) => {
        drained = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), drainMs);
      });
      const result = await Promise.race([allClosed, deadline]);
      clearTimeout(timer);
      if (result === "timeout") {
        for (const c of open) {
          if (c.phase === "tunnel") metrics.errors.inc({ kind: "drain_timeout" });
          c.client.destroy();
          c.upstream?.destroy();
        }
        if (open.size > 0) await allClosed;
      }
    }
    logger.log("info", "egress.closed", {});
  }

  return { handle, stats, close, metrics, policy };
}

/** Try the vetted addresses in order until one connects; the signal bounds the whole attempt. */
async function dial(addresses: readonly ResolvedAddress[], port: number, signal: AbortSignal): Promise<Socket | { error: ErrorKind }> {
  let last: ErrorKind = "connect_failed";
  for (const { address, family } of addresses) {
    if (signal.aborted) return { error: "connect_timeout" };
    try {
      return await dialOne(address, family, port, signal);
    } catch (err) {
      if (signal.aborted) return { error: "connect_timeout" };
      const code = (err as NodeJS.ErrnoException).code;
      last = code === "ECONNREFUSED" ? "connect_refused" : code === "ENETUNREACH" || code === "EHOSTUNREACH" ? "connect_unreachable" : "connect_failed";
    }
  }
  return { error: last };
}

function dialOne(address: string, family: 4 | 6, port: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: address, port, family, lookup: noLookup, allowHalfOpen: true, noDelay: true });
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error("aborted"));
    };
    const onError = (err: Error): void => {
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(err);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", onError);
    socket.once("connect", () => {
      signal.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/**
 * Listen and serve. `{ host, port }` is TCP, `{ path }` a Unix socket;
 * `{ server }` hands over a server the caller created and put to listening
 * (a transport's): the proxy serves its connections and closes it on close().
 */
export async function startEgressProxy(options: EgressProxyOptions & { listen: EgressListen }): Promise<RunningEgressProxy> {
  const proxy = createEgressProxy(options);
  const listen = options.listen;
  let server: Server;
  if ("server" in listen) {
    server = listen.server;
  } else {
    server = createServer({ allowHalfOpen: true, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const done = (): void => {
        server.off("error", reject);
        resolve();
      };
      if ("path" in listen) server.listen({ path: listen.path, backlog: listen.backlog ?? 511 }, done);
      else server.listen({ port: listen.port, host: listen.host, backlog: listen.backlog ?? 511 }, done);
    });
  }
  server.on("connection", proxy.handle);
  // Errors on the listening socket after start (EMFILE on accept…) must not crash the host.
  server.on("error", () => proxy.metrics.errors.inc({ kind: "accept_error" }));
  const address = server.address();
  (options.logger ?? silentLogger).log("info", "egress.listen", typeof address === "object" && address ? { port: address.port } : {});

  return {
    ...proxy,
    port: typeof address === "object" && address ? address.port : undefined,
    address,
    async close(closeOptions) {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.off("connection", proxy.handle);
      await proxy.close(closeOptions);
      await serverClosed;
    },
  };
}
