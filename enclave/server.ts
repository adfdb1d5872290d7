import { createAdaptorServer } from "@hono/node-server";
import { createServer, type Server } from "node:https";
import net, { type AddressInfo } from "node:net";
import { proxyClientAddress, readProxyV2 } from "../host/transport/codec/proxy-v2.js";
import { CLIENT_ADDRESS } from "./http/proxy-header.js";
import type { Hono } from "hono";
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

export async function startHttpsServer(options: {
  app: Hono;
  identity: EnclaveIdentity;
  listen: ListenEndpoint;
  limits: Pick<Limits, "maxHeaderBytes" | "maxConnections">;
  /** Every connection starts with a PROXY v2 header from the host relay. */
  proxyProtocol?: boolean;
}): Promise<RunningServer> {
  const server = createAdaptorServer({
    fetch: options.app.fetch,
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
  if (options.listen.kind === "vsock") throw new Error("the HTTPS server listens on tcp or unix; bridge vsock to it (egw enclave does)");
  const listen = options.listen;
  // With PROXY v2, a plain TCP listener reads the header first, then hands
  // the socket to the HTTPS server, which runs TLS over the rest.
  const listener: net.Server = options.proxyProtocol
    ? net.createServer({ pauseOnConnect: true }, (socket) => {
        readProxyV2(socket, 5_000).then(
          (header) => {
            (socket as unknown as Record<symbol, string | null>)[CLIENT_ADDRESS] = proxyClientAddress(header);
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
