import type net from "node:net";
import { TransportError, isTransportError } from "../transport/errors.js";
import { formatEndpoint, type Endpoint } from "../transport/endpoint.js";
import { pump } from "../transport/pump.js";
import { abortSocket, nodeTransport, type Peer, type Transport, type TransportServer } from "../transport/transport.js";
import { silentLogger, type IngressLogger } from "./log.js";
import { createIngressMetrics, type ConnectionOutcome, type ErrorKind, type IngressMetrics } from "./metrics.js";
import { proxyHeaderForConnection } from "../transport/codec/proxy-v2.js";

/**
 * The ingress relay: accepts client connections (normally TCP :443) and
 * pipes their bytes, untouched, to the enclave's TLS endpoint (vsock on
 * Nitro). TLS terminates inside the enclave; this process only ever holds
 * ciphertext, and never parses it, not even the ClientHello's SNI.
 *
 * Per connection:
 *   accept (paused: nothing is read before there is somewhere to put it)
 *   → optional PROXY v2 header to the enclave, so it learns the client address
 *   → dial the enclave, with bounded retries and backoff
 *   → pipe both ways with the byte pump (host/transport/pump.ts):
 *     backpressure (each direction reads into one reused buffer and stops
 *     reading while a write from it is still queued, so at most one read's
 *     worth is held per direction) and half-close (FIN from
 *     one side becomes shutdown(SHUT_WR) on the other; the other direction
 *     keeps flowing)
 *   → close when both directions are done, or on a reset (propagated as a
 *     reset), a timeout, or the drain deadline at shutdown.
 *
 * The relay dials the enclave for every client connection, so an enclave
 * restart needs nothing from either side: connections in flight end with
 * an error, and the next client dials the new enclave.
 */

export interface IngressLimits {
  /** Client connections open at once; the next is closed at accept (outcome rejected_limit). */
  maxConnections: number;
  /** A connection with no byte in either direction for this long is closed. */
  idleTimeoutMs: number;
  /**
   * Time from accept until the first byte arrives from the enclave (for TLS,
   * its ServerHello), dial and retries included. Bounds clients that connect
   * and never complete a ClientHello (slowloris), and clients waiting on an
   * enclave that is down.
   */
  handshakeTimeoutMs: number;
  /** One dial attempt to the enclave gives up after this long. */
  dialTimeoutMs: number;
  /** Dial attempts per client connection (≥ 1), within handshakeTimeoutMs. */
  dialAttempts: number;
  /** Delay before the second attempt; doubles per attempt up to dialBackoffMaxMs. */
  dialBackoffMs: number;
  dialBackoffMaxMs: number;
}

/** Defaults an operator can start from; every one is explicit in the config that uses it. */
export const DEFAULT_INGRESS_LIMITS: Readonly<IngressLimits> = Object.freeze({
  maxConnections: 4096,
  idleTimeoutMs: 120_000,
  handshakeTimeoutMs: 10_000,
  dialTimeoutMs: 2_000,
  dialAttempts: 4,
  dialBackoffMs: 50,
  dialBackoffMaxMs: 1_000,
});

export interface IngressRelayOptions {
  /** Where clients connect, e.g. tcp://0.0.0.0:443. */
  listen: Endpoint;
  /** The enclave's TLS endpoint, e.g. vsock://16:8443. */
  upstream: Endpoint;
  limits: IngressLimits;
  /** Send a PROXY protocol v2 header (HAProxy proxy-protocol.txt §2.2) before any client byte. */
  proxyProtocol: boolean;
  /** listen(2) backlog. */
  backlog?: number;
  transport?: Transport;
  metrics?: IngressMetrics;
  logger?: IngressLogger;
}

export interface IngressStats {
  active: number;
  /** Bytes held in user space by all connections right now (stream buffers both ways). */
  bufferedBytes: number;
}

export interface IngressRelay {
  /** Where it listens (with the kernel-chosen port when 0 was asked for). */
  readonly address: Endpoint;
  readonly metrics: IngressMetrics;
  stats(): IngressStats;
  /**
   * Stops accepting at once, lets open connections finish, and cuts those
   * still open at the deadline. Resolves when every connection is gone.
   */
  close(options?: { deadlineMs?: number }): Promise<{ drained: number; aborted: number }>;
}

function checkLimits(limits: IngressLimits): void {
  const positive = ["maxConnections", "idleTimeoutMs", "handshakeTimeoutMs", "dialTimeoutMs", "dialAttempts", "dialBackoffMaxMs"] as const;
  for (const key of positive) {
    const value = limits?.[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw new TransportError("ERR_OPTION_INVALID", `limits.${key} expected a positive integer, got ${String(value)}`);
    }
  }
  if (typeof limits.dialBackoffMs !== "number" || !Number.isInteger(limits.dialBackoffMs) || limits.dialBackoffMs < 0) {
    throw new TransportError("ERR_OPTION_INVALID", `limits.dialBackoffMs expected an integer ≥ 0, got ${String(limits.dialBackoffMs)}`);
  }
}

function dialErrorKind(err: unknown): ErrorKind {
  if (!isTransportError(err)) return "dial_error";
  switch (err.code) {
    case "ERR_CONNECT_REFUSED":
      return "dial_refused";
    case "ERR_CONNECT_TIMEOUT":
      return "dial_timeout";
    case "ERR_VSOCK_UNSUPPORTED":
      return "dial_unsupported";
    default:
      return "dial_error";
  }
}

function socketErrorKind(side: "client" | "upstream", err: NodeJS.ErrnoException): ErrorKind {
  const reset = err.code === "ECONNRESET" || err.code === "EPIPE";
  if (side === "client") return reset ? "client_reset" : "client_error";
  return reset ? "upstream_reset" : "upstream_error";
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

class Connection {
  upstream: net.Socket | undefined;
  done = false;
  reportedUp = 0;
  reportedDown = 0;
  readonly dial = new AbortController();
  handshakeTimer: NodeJS.Timeout | undefined;
  readonly startedAt = performance.now();
  constructor(
    readonly id: string,
    readonly client: net.Socket,
    readonly peer: Peer,
  ) {}
  get up(): number {
    return this.client.bytesRead;
  }
  get down(): number {
    return this.upstream?.bytesRead ?? 0;
  }
  buffered(): number {
    const c = this.client;
    const u = this.upstream;
    return c.readableLength + c.writableLength + (u ? u.readableLength + u.writableLength : 0);
  }
}

export async function startIngressRelay(options: IngressRelayOptions): Promise<IngressRelay> {
  checkLimits(options.limits);
  const limits = { ...options.limits };
  const transport = options.transport ?? nodeTransport;
  const metrics = options.metrics ?? createIngressMetrics();
  const logger = options.logger ?? silentLogger;
  const upstreamText = formatEndpoint(options.upstream);
  const connections = new Set<Connection>();
  let nextId = 1;
  let closing = false;
  let consecutiveDialFailures = 0;
  let drainWaiters: Array<() => void> = [];

  const flushBytes = (conn: Connection) => {
    const up = conn.up;
    const down = conn.down;
    if (up > conn.reportedUp) metrics.bytes.inc({ direction: "client_to_enclave" }, up - conn.reportedUp);
    if (down > conn.reportedDown) metrics.bytes.inc({ direction: "enclave_to_client" }, down - conn.reportedDown);
    conn.reportedUp = up;
    conn.reportedDown = down;
  };
  // Byte counters come from the sockets' own totals at scrape and at close:
  // no per-chunk work on the hot path.
  metrics.setBytesCollector(() => {
    for (const conn of connections) flushBytes(conn);
  });

  function finish(conn: Connection, outcome: ConnectionOutcome, how: "graceful" | "destroy" | "reset"): void {
    if (conn.done) return;
    conn.done = true;
    clearTimeout(conn.handshakeTimer);
    conn.dial.abort();
    const { client, upstream } = conn;
    if (how === "reset") {
      abortSocket(client);
      if (upstream) abortSocket(upstream);
    } else if (how === "destroy") {
      client.destroy();
      upstream?.destroy();
    }
    flushBytes(conn);
    connections.delete(conn);
    metrics.active.dec();
    metrics.connections.inc({ outcome });
    logger.log(outcome === "closed" ? "debug" : "info", "ingress.close", {
      conn: conn.id,
      outcome,
      ms: Math.round(performance.now() - conn.startedAt),
      up: conn.up,
      down: conn.down,
    });
    if (connections.size === 0 && drainWaiters.length > 0) {
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  async function dial(conn: Connection): Promise<net.Socket | undefined> {
    const deadline = conn.startedAt + limits.handshakeTimeoutMs;
    let backoff = limits.dialBackoffMs;
    for (let attempt = 1; attempt <= limits.dialAttempts; attempt++) {
      const left = deadline - performance.now();
      if (conn.done || left <= 0) return undefined;
      try {
        const socket = await transport.connect(options.upstream, { timeoutMs: Math.max(1, Math.min(limits.dialTimeoutMs, left)), signal: conn.dial.signal });
        if (consecutiveDialFailures > 0) {
          logger.log("info", "ingress.upstream_up", { count: consecutiveDialFailures, endpoint: upstreamText });
          consecutiveDialFailures = 0;
        }
        return socket;
      } catch (err) {
        if (conn.done) return undefined;
        metrics.upstreamDialFailures.inc();
        metrics.errors.inc({ kind: dialErrorKind(err) });
        consecutiveDialFailures++;
        const code = isTransportError(err) ? err.code : "ERR_UNKNOWN";
        // One line when the enclave goes away, then only debug lines until it is back.
        logger.log(consecutiveDialFailures === 1 ? "warn" : "debug", "ingress.dial_failed", { conn: conn.id, attempt, code, endpoint: upstreamText });
        // A wrong endpoint or a machine without vsock will not heal by retrying.
        if (isTransportError(err) && err.action !== "retry") return undefined;
        if (attempt < limits.dialAttempts) {
          await sleep(Math.min(backoff, Math.max(0, deadline - performance.now())), conn.dial.signal);
          backoff = Math.min(backoff * 2, limits.dialBackoffMaxMs);
        }
      }
    }
    return undefined;
  }

  function onConnection(client: net.Socket, peer: Peer): void {
    // An error before the handlers below are attached must not crash the process.
    client.on("error", () => {});
    if (closing || connections.size >= limits.maxConnections) {
      metrics.connections.inc({ outcome: closing ? "shutdown" : "rejected_limit" });
      logger.log("warn", "ingress.rejected", { outcome: closing ? "shutdown" : "rejected_limit", active: connections.size });
      client.destroy();
      return;
    }
    const conn = new Connection(`c${nextId++}`, client, peer);
    connections.add(conn);
    metrics.active.inc();

    client.on("error", (err: NodeJS.ErrnoException) => {
      if (conn.done) return;
      metrics.errors.inc({ kind: socketErrorKind("client", err) });
      finish(conn, "client_error", "reset");
    });
    client.setTimeout(limits.idleTimeoutMs, () => finish(conn, "idle_timeout", "destroy"));
    client.on("close", () => onClose(conn));
    conn.handshakeTimer = setTimeout(() => finish(conn, "handshake_timeout", "destroy"), limits.handshakeTimeoutMs);

    void dial(conn).then((upstream) => {
      if (upstream === undefined) {
        // Every attempt failed (or the client is already gone): the client gets a close, not a hang.
        finish(conn, conn.done ? "closed" : "dial_failed", "destroy");
        return;
      }
      if (conn.done) {
        upstream.destroy();
        return;
      }
      conn.upstream = upstream;
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        if (conn.done) return;
        metrics.errors.inc({ kind: socketErrorKind("upstream", err) });
        finish(conn, "upstream_error", "reset");
      });
      upstream.setTimeout(limits.idleTimeoutMs, () => finish(conn, "idle_timeout", "destroy"));
      upstream.on("close", () => onClose(conn));
      if (options.proxyProtocol) {
        const p = conn.peer;
        upstream.write(proxyHeaderForConnection(p.kind === "tcp" ? { address: p.address, port: p.port, localAddress: p.localAddress, localPort: p.localPort } : {}));
      }
      // Backpressure both ways, and a FIN from one side becomes end()
      // (shutdown(SHUT_WR)) on the other.
      pump(client, upstream);
      pump(upstream, client, { onFirstByte: () => clearTimeout(conn.handshakeTimer) });
    });
  }

  function onClose(conn: Connection): void {
    if (conn.done) return;
    const { client, upstream } = conn;
    const cleanly = (s: net.Socket) => s.readableEnded && s.writableFinished;
    if (client.destroyed && (upstream === undefined || upstream.destroyed)) {
      finish(conn, !cleanly(client) ? "client_error" : upstream !== undefined && !cleanly(upstream) ? "upstream_error" : "closed", "graceful");
      return;
    }
    // One side is gone. If it finished both directions, the other side has
    // its FIN and is flushing; its idle timer bounds that. Otherwise the
    // side went away without a FIN: tear the other down too.
    const gone = client.destroyed ? client : upstream;
    if (gone !== undefined && !cleanly(gone)) finish(conn, gone === client ? "client_error" : "upstream_error", "reset");
  }

  const server: TransportServer = await transport.listen(options.listen, onConnection, {
    pauseOnConnect: true,
    ...(options.backlog !== undefined ? { backlog: options.backlog } : {}),
    onAcceptError(errno) {
      metrics.errors.inc({ kind: "accept_error" });
      logger.log("error", "ingress.accept_failed", { code: errno });
    },
  });
  logger.log("info", "ingress.listen", { endpoint: formatEndpoint(server.address) });

  let closed: Promise<{ drained: number; aborted: number }> | undefined;
  return {
    address: server.address,
    metrics,
    stats() {
      let bufferedBytes = 0;
      for (const conn of connections) bufferedBytes += conn.buffered();
      return { active: connections.size, bufferedBytes };
    },
    close(closeOptions = {}) {
      closed ??= (async () => {
        closing = true;
        const deadlineMs = closeOptions.deadlineMs ?? 30_000;
        const open = connections.size;
        logger.log("info", "ingress.shutdown", { active: open, ms: deadlineMs });
        await server.close();
        let aborted = 0;
        if (connections.size > 0) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            new Promise<void>((resolve) => drainWaiters.push(resolve)),
            new Promise<void>((resolve) => {
              timer = setTimeout(resolve, deadlineMs);
            }),
          ]);
          clearTimeout(timer);
          for (const conn of [...connections]) {
            aborted++;
            finish(conn, "shutdown", "destroy");
          }
        }
        logger.log("info", "ingress.stopped", { count: open - aborted, active: aborted });
        return { drained: open - aborted, aborted };
      })();
      return closed;
    },
  };
}
