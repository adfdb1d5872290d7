import { createAdaptorServer, type Http2Bindings, type HttpBindings } from "@hono/node-server";
import { createServer, type Server } from "node:https";
import net, { type AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { GatewayBindings } from "./http/gateway-env.js";
import { readProxyV2 } from "./http/proxy-header.js";
import type { EnclaveIdentity } from "./identity.js";
import type { ListenEndpoint } from "./listen.js";
import type { Limits } from "./runtime-config.js";

/**
 * HTTPS only: there is no plaintext listener. TLS terminates here, inside
 * the enclave, with the key generated at boot; the host relay forwards
 * ciphertext. Node's own limits bound headers, slow requests and idle
 * connections.
 */
export interface RunningServer {
  server: Server;
  /** The bound port (tcp) — useful when 0 was asked for. */
  port: number | undefined;
  close(): Promise<void>;
}

/** What the server runs: the gateway app's fetch (enclave/gateway.ts), given the bindings below. */
export interface ServedApp {
  fetch(request: Request, env: GatewayBindings): Response | Promise<Response>;
}

export async function startHttpsServer(options: {
  app: ServedApp;
  identity: EnclaveIdentity;
  listen: ListenEndpoint;
  limits: Pick<Limits, "maxHeaderBytes" | "maxConnections">;
  /** Every connection starts with a PROXY v2 header from the host relay. */
  proxyProtocol?: boolean;
}): Promise<RunningServer> {
  if (options.proxyProtocol && options.listen.kind === "unix") {
    // Relay addresses are matched to TLS connections by their TCP endpoint (relayAddresses below).
    throw new Error("PROXY v2 needs a tcp listener: a unix socket gives no endpoint to match the relay's address to its connection");
  }
  const relay = options.proxyProtocol ? relayAddresses() : undefined;
  const app = options.app;
  const server = createAdaptorServer({
    // HTTP/1.1 over node:https, so the bindings are HttpBindings. The relay's
    // address goes to the app explicitly, beside them.
    fetch: relay
      ? (request: Request, env: HttpBindings | Http2Bindings) => {
          const { incoming, outgoing } = env as HttpBindings;
          return app.fetch(request, { incoming, outgoing, relayAddress: relay.of(incoming.socket as TLSSocket) });
        }
      : (request: Request, env: HttpBindings | Http2Bindings) => app.fetch(request, env as HttpBindings),
    createServer,
    serverOptions: {
      key: options.identity.tls.keyPem,
      cert: options.identity.tls.certPem,
      // TLS 1.3 only (RFC 8446): no renegotiation, no static-RSA or CBC suites for a host to push a client down to.
      minVersion: "TLSv1.3",
      maxHeaderSize: options.limits.maxHeaderBytes,
      // Slowloris: the whole header block within 20 s; bodies within 5 min.
      headersTimeout: 20_000,
      requestTimeout: 300_000,
      keepAliveTimeout: 65_000,
      // A TLS handshake that does not finish in 10 s is dropped.
      handshakeTimeout: 10_000,
    },
  }) as unknown as Server;
  server.maxConnections = options.limits.maxConnections;
  relay?.follow(server);
  if (options.listen.kind === "vsock") throw new Error("the HTTPS server listens on tcp or unix; bridge vsock to it (egw enclave does)");
  const listen = options.listen;
  // With PROXY v2, a plain TCP listener reads the header first, then hands
  // the socket to the HTTPS server, which runs TLS over the rest.
  const listener: net.Server = options.proxyProtocol
    ? net.createServer({ pauseOnConnect: true }, (socket) => {
        readProxyV2(socket, 5_000).then(
          (address) => {
            relay!.arrived(socket, address);
            server.emit("connection", socket);
          },
          () => socket.destroy(),
        );
      })
    : server;
  if (options.proxyProtocol) listener.maxConnections = options.limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    const done = () => {
      listener.off("error", reject);
      resolve();
    };
    if (listen.kind === "tcp") listener.listen(listen.port, listen.host, done);
    else listener.listen(listen.path, done);
  });
  const address = listener.address();
  return {
    server,
    port: address && typeof address === "object" ? (address as AddressInfo).port : undefined,
    close: () =>
      new Promise<void>((resolve) => {
        let pending = listener === server ? 1 : 2;
        const one = () => {
          if (--pending === 0) resolve();
        };
        if (listener !== server) listener.close(one);
        server.close(one);
        // Idle keep-alive sockets would hold close() open; streams in flight finish first.
        server.closeIdleConnections?.();
      }),
  };
}

/**
 * The address each connection's PROXY v2 header reported, found again from
 * the TLS socket a request arrives on. Node does not say which TCP socket a
 * server-side TLS socket runs over, but both have the same peer endpoint
 * (the relay's side of the connection, unique while it is open): the
 * address waits under that endpoint until the TLS handshake is done, then
 * sits beside the TLS socket itself.
 */
function relayAddresses() {
  const pending = new Map<string, string | null>();
  const bySocket = new WeakMap<TLSSocket, string | null>();
  const endpoint = (s: net.Socket) => `${s.remoteAddress}|${s.remotePort}`;
  return {
    arrived(socket: net.Socket, address: string | null): void {
      const key = endpoint(socket);
      pending.set(key, address);
      socket.once("close", () => pending.delete(key));
    },
    follow(server: Server): void {
      // Before the HTTP layer's own listener, so the address is in place before any request is parsed.
      server.prependListener("secureConnection", (tlsSocket: TLSSocket) => {
        const key = endpoint(tlsSocket);
        const address = pending.get(key);
        pending.delete(key);
        if (address !== undefined) bySocket.set(tlsSocket, address);
      });
    },
    of(socket: TLSSocket): string | null {
      return bySocket.get(socket) ?? null;
    },
  };
}
