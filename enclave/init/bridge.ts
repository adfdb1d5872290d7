import type net from "node:net";
import { TransportError } from "../../host/transport/errors.js";
import type { Endpoint } from "../../host/transport/endpoint.js";
import { pump } from "../../host/transport/pump.js";
import { abortSocket, nodeTransport, type Transport } from "../../host/transport/transport.js";

/**
 * The enclave's vsock bridges: byte pipes inside the enclave between a vsock
 * socket and loopback. On Nitro the enclave's only network is vsock, while
 * the gateway serves TCP on 127.0.0.1; one bridge takes the host relay's
 * connections (vsock → the gateway's loopback port), another takes the
 * gateway's egress and KMS connections (loopback → the parent's egress proxy
 * over vsock). Both carry TLS records only and never look at them.
 *
 * Why not the host's ingress relay (host/ingress/relay.ts), which this used
 * to be: that is the untrusted side's program (PROXY protocol, prom-client
 * metrics, dial retries for an enclave that restarts), and the measured
 * image holds enclave code only (infra/deploy/image/allowlist.ts). What both share
 * is the transport (host/transport: AF_VSOCK through koffi, and the byte
 * pump), which is in the image's allowlist for exactly this file.
 *
 * Per connection: accept paused → dial the other side once (a bridge in the
 * enclave has nothing to wait for: loopback is up or the gateway is gone,
 * and the egress caller retries by its own policy, enclave/upstream.ts) →
 * the byte pump both ways (host/transport/pump.ts, the relay's and the
 * egress proxy's too: backpressure; a FIN becomes end(), i.e.
 * shutdown(SHUT_WR), on the other side, and the other direction keeps
 * flowing: the sockets are allowHalfOpen) → on an error or the idle timer
 * both sockets go, with a reset when one side reset. Bounded: connections
 * at once, the dial, the idle time.
 */

export interface BridgeLimits {
  /** Connections open at once; the next is closed at accept. */
  maxConnections: number;
  /** A connection with no byte in either direction for this long is closed. */
  idleTimeoutMs: number;
  /** Dialling the other side gives up after this long. */
  dialTimeoutMs: number;
}

/** The ingress relay's values for the same three limits, which this bridge inherited. */
export const DEFAULT_BRIDGE_LIMITS: Readonly<BridgeLimits> = Object.freeze({ maxConnections: 4096, idleTimeoutMs: 120_000, dialTimeoutMs: 2_000 });

export interface BridgeOptions {
  listen: Endpoint;
  upstream: Endpoint;
  limits?: BridgeLimits;
  transport?: Transport;
}

export interface Bridge {
  /** Where it listens (the kernel's port when 0 was asked for). */
  readonly address: Endpoint;
  /** Connections open now. */
  active(): number;
  /** Stops accepting and closes every open connection. */
  close(): Promise<void>;
}

function checkLimits(limits: BridgeLimits): void {
  for (const key of ["maxConnections", "idleTimeoutMs", "dialTimeoutMs"] as const) {
    const value = limits?.[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw new TransportError("ERR_OPTION_INVALID", `bridge limits.${key} expected a positive integer, got ${String(value)}`);
    }
  }
}

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const limits = { ...(options.limits ?? DEFAULT_BRIDGE_LIMITS) };
  checkLimits(limits);
  const transport = options.transport ?? nodeTransport;
  const open = new Set<{ end(reset: boolean): void }>();
  let closing = false;

  function onConnection(client: net.Socket): void {
    client.on("error", () => {});
    if (closing || open.size >= limits.maxConnections) {
      client.destroy();
      return;
    }
    let upstream: net.Socket | undefined;
    let done = false;
    const dial = new AbortController();
    const conn = {
      end(reset: boolean) {
        if (done) return;
        done = true;
        open.delete(conn);
        dial.abort();
        for (const socket of [client, upstream]) {
          if (socket === undefined) continue;
          if (reset) abortSocket(socket);
          else socket.destroy();
        }
      },
    };
    open.add(conn);
    // A reset (or any socket error) on one side becomes a reset on the other;
    // a clean close of both ends the connection without one.
    const onClose = () => {
      if (client.destroyed && (upstream === undefined || upstream.destroyed)) conn.end(false);
      else if (upstream !== undefined && (client.destroyed || upstream.destroyed)) {
        const gone = client.destroyed ? client : upstream;
        if (!(gone.readableEnded && gone.writableFinished)) conn.end(true);
      }
    };
    client.on("error", () => conn.end(true));
    client.on("close", onClose);
    client.setTimeout(limits.idleTimeoutMs, () => conn.end(false));
    transport.connect(options.upstream, { timeoutMs: limits.dialTimeoutMs, signal: dial.signal }).then(
      (socket) => {
        if (done) {
          socket.destroy();
          return;
        }
        upstream = socket;
        socket.on("error", () => conn.end(true));
        socket.on("close", onClose);
        socket.setTimeout(limits.idleTimeoutMs, () => conn.end(false));
        pump(client, socket);
        pump(socket, client);
      },
      // The other side is not there: the client gets a close, not a hang.
      () => conn.end(false),
    );
  }

  const server = await transport.listen(options.listen, onConnection, { pauseOnConnect: true });
  let closed: Promise<void> | undefined;
  return {
    address: server.address,
    active: () => open.size,
    close() {
      closed ??= (async () => {
        closing = true;
        await server.close();
        for (const conn of [...open]) conn.end(false);
      })();
      return closed;
    },
  };
}
