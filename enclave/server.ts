import { createAdaptorServer } from "@hono/node-server";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
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
}): Promise<RunningServer> {
  const server = createAdaptorServer({
    fetch: options.app.fetch,
    createServer,
    serverOptions: {
      key: options.identity.tls.keyPem,
      cert: options.identity.tls.certPem,
      minVersion: "TLSv1.2",
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
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = () => {
      server.off("error", reject);
      resolve();
    };
    if (options.listen.kind === "tcp") server.listen(options.listen.port, options.listen.host, done);
    else server.listen(options.listen.path, done);
  });
  const address = server.address();
  return {
    server,
    port: address && typeof address === "object" ? (address as AddressInfo).port : undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive sockets would hold close() open; streams in flight finish first.
        server.closeIdleConnections?.();
      }),
  };
}
