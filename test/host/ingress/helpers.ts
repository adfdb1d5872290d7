import net from "node:net";
import { startIngressRelay, type IngressLimits, type IngressRelay, type IngressRelayOptions } from "../../../host/ingress/relay.js";
import { memoryIngressLogger } from "../../../host/ingress/log.js";
import { nodeTransport, type Transport } from "../../../host/transport/transport.js";

export const TEST_LIMITS: IngressLimits = {
  maxConnections: 2000,
  idleTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  dialTimeoutMs: 1_000,
  dialAttempts: 3,
  dialBackoffMs: 20,
  dialBackoffMaxMs: 100,
};

/** A TCP server standing in for the enclave, on a fixed port so that it can be killed and restarted there. */
export class FakeEnclave {
  server: net.Server | undefined;
  readonly sockets = new Set<net.Socket>();
  port = 0;
  accepted = 0;
  constructor(
    private readonly onSocket: (socket: net.Socket) => void,
    private readonly host = "127.0.0.1",
  ) {}

  async start(port = this.port): Promise<this> {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.accepted++;
      this.sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => this.sockets.delete(socket));
      this.onSocket(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: this.host, port, backlog: 4096 }, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** The enclave dies: every connection reset, the listener gone. */
  async kill(): Promise<void> {
    for (const s of this.sockets) s.resetAndDestroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export const echo = (socket: net.Socket) => socket.pipe(socket);

/**
 * Wraps a transport so that every byte the relay handles, from either side, is recorded:
 * its writes always, its reads too where they come as 'data' events (the relay's
 * onread mode has none, and forwards each read as a write).
 */
export function recordingTransport(record: Buffer[], inner: Transport = nodeTransport): Transport {
  const tap = (socket: net.Socket) => {
    // readableFlowing stays false for paused sockets: a 'data' listener does not start the flow.
    socket.on("data", (chunk: Buffer) => record.push(Buffer.from(chunk)));
    const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
    (socket as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
      const chunk = args[0];
      if (chunk instanceof Uint8Array) record.push(Buffer.from(chunk));
      return write(...args);
    };
    return socket;
  };
  return {
    listen: (endpoint, onConnection, options) => inner.listen(endpoint, (socket, peer) => onConnection(tap(socket), peer), options),
    connect: async (endpoint, options) => tap(await inner.connect(endpoint, options)),
  };
}

export async function startRelay(upstreamPort: number, overrides: Partial<Omit<IngressRelayOptions, "limits">> & { limits?: Partial<IngressLimits> } = {}) {
  const logger = memoryIngressLogger();
  const relay: IngressRelay = await startIngressRelay({
    listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
    upstream: { kind: "tcp", host: "127.0.0.1", port: upstreamPort },
    proxyProtocol: false,
    logger,
    ...overrides,
    limits: { ...TEST_LIMITS, ...overrides.limits },
  });
  const address = relay.address;
  if (address.kind !== "tcp") throw new Error("expected a tcp relay");
  return { relay, logger, port: address.port, host: address.host };
}

export function dial(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true }, () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

/** Resolves when the socket is closed, with how: "end" (FIN seen), "error" (code) or "close". */
export function outcome(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let ended = false;
    let error: string | undefined;
    socket.on("end", () => {
      ended = true;
      socket.end();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? "error"));
    socket.on("close", () => resolve(error ?? (ended ? "end" : "close")));
    socket.resume();
  });
}

export function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      if (await predicate()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    void tick();
  });
}

export async function metricValue(relay: IngressRelay, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metrics = await relay.metrics.registry.getMetricsAsJSON();
  const metric = metrics.find((m) => m.name === name);
  if (!metric) return 0;
  let sum = 0;
  for (const v of metric.values as Array<{ value: number; labels: Record<string, string | number> }>) {
    if (Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) sum += v.value;
  }
  return sum;
}
