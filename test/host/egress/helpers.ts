import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import { readdirSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Registry as PromRegistry, type Registry } from "prom-client";
import type { EgressLogFields, EgressLogger, EgressLogLevel } from "../../../host/egress/log.js";
import type { ResolvedAddress, Resolver } from "../../../host/egress/policy.js";
import { DEFAULT_EGRESS_LIMITS, startEgressProxy, type EgressLimits, type EgressProxyOptions, type RunningEgressProxy } from "../../../host/egress/proxy.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A self-signed P-256 server certificate for the given DNS names, made fresh in memory. */
export async function selfSignedCert(names: string[]): Promise<{ keyPem: string; certPem: string }> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: `CN=${names[0] ?? "test"}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: "dns" as const, value }))),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`,
    certPem: cert.toString("pem"),
  };
}

export async function listen(server: Server, host = "127.0.0.1", port = 0, backlog = 2048): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, backlog }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}

/** A plain TCP server that counts its connections, for "the dial never happened" assertions. */
export interface TestServer {
  server: Server;
  port: number;
  accepted: number;
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startTcpServer(onSocket: (socket: Socket) => void, host = "127.0.0.1", port = 0): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true });
  const ts: TestServer = {
    server,
    port: 0,
    accepted: 0,
    sockets,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on("connection", (socket) => {
    ts.accepted++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
    onSocket(socket);
  });
  ts.port = await listen(server, host, port);
  return ts;
}

/** Echo server: every byte back, and a FIN back after the client's FIN. */
export function startEchoServer(): Promise<TestServer> {
  return startTcpServer((socket) => {
    socket.pipe(socket);
  });
}

export interface ConnectResponse {
  status: number;
  head: string;
  socket: Socket;
  /** Bytes received with the response head (already unshifted back into `socket`). */
  rest: Buffer;
}

/** Read a response head from a socket; the socket is paused afterwards. */
export function readHead(socket: Socket, timeoutMs = 5000): Promise<{ status: number; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("error", onError);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no response head within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      done();
      socket.pause();
      const head = buf.subarray(0, end).toString("latin1");
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? NaN);
      resolve({ status, head, rest: buf.subarray(end + 4) });
    };
    const onEnd = (): void => {
      done();
      reject(new Error(`connection ended before a response head (${buf.length} bytes)`));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", onError);
    socket.resume();
  });
}

/**
 * Open a TCP connection, write `request` (string or bytes, optionally in
 * pieces), and read the response head. Resolves with the status and the
 * socket (paused, still open unless the proxy closed it).
 */
export async function sendConnect(port: number, request: string | Buffer | Array<string | Buffer>, options: { timeoutMs?: number } = {}): Promise<ConnectResponse> {
  const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  socket.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const head = readHead(socket, options.timeoutMs);
  for (const piece of Array.isArray(request) ? request : [request]) socket.write(piece);
  try {
    const res = await head;
    // Whatever came with the head is tunnel payload: give it back to the stream.
    if (res.rest.length > 0) socket.unshift(res.rest);
    return { ...res, socket };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

export function connectHead(authority: string, ...fields: string[]): string {
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${fields.map((f) => `${f}\r\n`).join("")}\r\n`;
}

/** Read everything until the peer's FIN. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
    socket.resume();
  });
}

/** Read until `n` bytes arrived. */
export function readBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        socket.off("data", onData);
        socket.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.resume();
  });
}

export function waitClose(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.once("close", () => resolve());
  });
}

/** The peer is gone: FIN, reset or close, whichever comes first. */
export function waitGone(socket: Socket): Promise<"end" | "error" | "close"> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve("close");
    socket.once("end", () => resolve("end"));
    socket.once("error", () => resolve("error"));
    socket.once("close", () => resolve("close"));
    socket.resume();
  });
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val));
  return hit?.value ?? 0;
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function memoryLogger(): EgressLogger & { entries: Array<{ level: EgressLogLevel; event: string; fields: EgressLogFields }> } {
  const entries: Array<{ level: EgressLogLevel; event: string; fields: EgressLogFields }> = [];
  return {
    entries,
    log(level, event, fields = {}) {
      entries.push({ level, event, fields });
    },
  };
}

/**
 * A TCP relay that records every byte in each direction: placed on either
 * side of the proxy, it shows exactly what the proxy read and wrote.
 */
export interface RecordingRelay {
  port: number;
  /** Bytes from the connecting side towards the target. */
  forward: Buffer[];
  /** Bytes from the target back to the connecting side. */
  backward: Buffer[];
  close(): Promise<void>;
}

export async function startRecordingRelay(targetPort: number): Promise<RecordingRelay> {
  const forward: Buffer[] = [];
  const backward: Buffer[] = [];
  const ts = await startTcpServer((a) => {
    const b = connect({ host: "127.0.0.1", port: targetPort, allowHalfOpen: true });
    b.on("error", () => a.destroy());
    a.on("error", () => b.destroy());
    a.on("data", (c: Buffer) => {
      forward.push(Buffer.from(c));
      b.write(c);
    });
    b.on("data", (c: Buffer) => {
      backward.push(Buffer.from(c));
      a.write(c);
    });
    a.on("end", () => b.end());
    b.on("end", () => a.end());
    a.on("close", () => b.destroy());
    b.on("close", () => a.destroy());
  });
  return { port: ts.port, forward, backward, close: () => ts.close() };
}

export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

// ------------------------------------------------------------------ proxy

export interface TestProxy {
  proxy: RunningEgressProxy;
  port: number;
  registry: PromRegistry;
  logger: ReturnType<typeof memoryLogger>;
  resolverCalls: string[];
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** A resolver from a table; unknown names fail like NXDOMAIN. Records every call. */
export function tableResolver(table: Record<string, ResolvedAddress[] | (() => Promise<ResolvedAddress[]>)>, calls: string[]): Resolver {
  return async (host) => {
    calls.push(host);
    const entry = table[host];
    if (entry === undefined) throw Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" });
    return typeof entry === "function" ? entry() : entry;
  };
}

export async function startTestProxy(options: {
  rules: EgressProxyOptions["rules"];
  resolve?: Record<string, ResolvedAddress[] | (() => Promise<ResolvedAddress[]>)>;
  limits?: Partial<EgressLimits>;
  backlog?: number;
}): Promise<TestProxy> {
  const registry = new PromRegistry();
  const logger = memoryLogger();
  const resolverCalls: string[] = [];
  const proxy = await startEgressProxy({
    listen: { host: "127.0.0.1", port: 0, ...(options.backlog !== undefined && { backlog: options.backlog }) },
    rules: options.rules,
    resolver: tableResolver(options.resolve ?? {}, resolverCalls),
    limits: { ...DEFAULT_EGRESS_LIMITS, headTimeoutMs: 2000, connectTimeoutMs: 2000, idleTimeoutMs: 10_000, ...options.limits },
    registry,
    logger,
  });
  return {
    proxy,
    port: proxy.port!,
    registry,
    logger,
    resolverCalls,
    metric: (name, labels) => metricValue(registry, name, labels),
  };
}

export const LOOPBACK: ResolvedAddress[] = [{ address: "127.0.0.1", family: 4 }];
