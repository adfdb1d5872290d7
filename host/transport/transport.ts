import net from "node:net";
import { TransportError, connectErrorCode } from "./errors.js";
import { formatEndpoint, type Endpoint } from "./endpoint.js";
import { connectVsock, listenVsock } from "./vsock.js";

/**
 * One interface over the three kinds of endpoint. Every socket it hands out
 * is a net.Socket with allowHalfOpen set (a relay must be able to forward a
 * FIN in one direction while bytes still flow in the other) and, for TCP,
 * Nagle off (the relay forwards TLS records; batching them only adds
 * latency).
 */
export interface ConnectOptions {
  /** The whole dial, DNS included, gives up after this long with ERR_CONNECT_TIMEOUT. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ListenOptions {
  /** listen(2) backlog; default 511 (Node's default). */
  backlog?: number;
  /** Accepted sockets start paused, so no byte is read before the caller has somewhere to put it. */
  pauseOnConnect?: boolean;
  /** accept(2) failures such as EMFILE; the server keeps listening. */
  onAcceptError?(errno: string): void;
}

/** Who connected, as far as the transport knows: metadata only. */
export type Peer =
  | { kind: "tcp"; address: string; port: number; localAddress: string; localPort: number }
  | { kind: "vsock"; cid: number; port: number }
  | { kind: "unix" }
  | { kind: "unknown" };

export type OnConnection = (socket: net.Socket, peer: Peer) => void;

export interface TransportServer {
  /** Where it actually listens (the kernel's port when 0 / VMADDR_PORT_ANY was asked for). */
  readonly address: Endpoint;
  /** Stops accepting. Connections already accepted are the caller's to close. */
  close(): Promise<void>;
}

export interface Transport {
  listen(endpoint: Endpoint, onConnection: OnConnection, options?: ListenOptions): Promise<TransportServer>;
  connect(endpoint: Endpoint, options: ConnectOptions): Promise<net.Socket>;
}

const DEFAULT_BACKLOG = 511;

function checkTimeout(timeoutMs: unknown): void {
  if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new TransportError("ERR_OPTION_INVALID", `timeoutMs expected a positive number, got ${String(timeoutMs)}`);
  }
}

function nodeConnect(endpoint: Extract<Endpoint, { kind: "tcp" | "unix" }>, options: ConnectOptions): Promise<net.Socket> {
  const what = formatEndpoint(endpoint);
  return new Promise<net.Socket>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new TransportError("ERR_CONNECT_ABORTED", `dial ${what} aborted`));
      return;
    }
    const socket =
      endpoint.kind === "tcp"
        ? net.connect({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true, noDelay: true })
        : net.connect({ path: endpoint.path, allowHalfOpen: true });
    const fail = (error: TransportError) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      const errno = err.code;
      fail(new TransportError(connectErrorCode(errno), `dial ${what} failed (${errno ?? "unknown"})`, { cause: err, ...(errno ? { errno } : {}) }));
    };
    const onAbort = () => fail(new TransportError("ERR_CONNECT_ABORTED", `dial ${what} aborted`));
    const timer = setTimeout(
      () => fail(new TransportError("ERR_CONNECT_TIMEOUT", `dial ${what} timed out after ${options.timeoutMs} ms`, { errno: "ETIMEDOUT" })),
      options.timeoutMs,
    );
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    function cleanup() {
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      options.signal?.removeEventListener("abort", onAbort);
    }
    socket.once("error", onError);
    socket.once("connect", onConnect);
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function nodeListen(endpoint: Extract<Endpoint, { kind: "tcp" | "unix" }>, onConnection: OnConnection, options: ListenOptions): Promise<TransportServer> {
  const what = formatEndpoint(endpoint);
  return new Promise<TransportServer>((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: options.pauseOnConnect === true, noDelay: endpoint.kind === "tcp" });
    server.on("connection", (socket: net.Socket) => {
      const peer: Peer =
        endpoint.kind === "unix"
          ? { kind: "unix" }
          : socket.remoteAddress !== undefined && socket.remotePort !== undefined && socket.localAddress !== undefined && socket.localPort !== undefined
            ? { kind: "tcp", address: socket.remoteAddress, port: socket.remotePort, localAddress: socket.localAddress, localPort: socket.localPort }
            : { kind: "unknown" };
      onConnection(socket, peer);
    });
    const onListenError = (err: NodeJS.ErrnoException) => {
      const errno = err.code ?? "unknown";
      reject(new TransportError("ERR_LISTEN_FAILED", `listen ${what} failed (${errno})`, { cause: err, errno }));
    };
    server.once("error", onListenError);
    const target = endpoint.kind === "tcp" ? { host: endpoint.host, port: endpoint.port } : { path: endpoint.path };
    server.listen({ ...target, backlog: options.backlog ?? DEFAULT_BACKLOG }, () => {
      server.off("error", onListenError);
      // After listening, 'error' only reports accept(2) failures; net.Server keeps listening.
      server.on("error", (err: NodeJS.ErrnoException) => options.onAcceptError?.(err.code ?? "unknown"));
      const bound = server.address();
      const address: Endpoint = endpoint.kind === "tcp" && bound !== null && typeof bound === "object" ? { kind: "tcp", host: bound.address, port: bound.port } : endpoint;
      let closed: Promise<void> | undefined;
      resolve({
        address,
        close() {
          closed ??= new Promise<void>((done) => {
            // net.Server.close() calls back only once every accepted socket
            // has closed; the caller drains or destroys those, so resolve as
            // soon as the listening socket itself is gone.
            server.close();
            setImmediate(done);
          });
          return closed;
        },
      });
    });
  });
}

export const nodeTransport: Transport = {
  listen(endpoint, onConnection, options = {}) {
    if (endpoint.kind === "vsock") {
      try {
        const server = listenVsock(endpoint, {
          backlog: options.backlog ?? DEFAULT_BACKLOG,
          pauseOnConnect: options.pauseOnConnect === true,
          onConnection: (socket, peer) => onConnection(socket, peer ? { kind: "vsock", ...peer } : { kind: "unknown" }),
          ...(options.onAcceptError ? { onAcceptError: options.onAcceptError } : {}),
        });
        return Promise.resolve(server);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return nodeListen(endpoint, onConnection, options);
  },
  connect(endpoint, options) {
    try {
      checkTimeout(options?.timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
    if (endpoint.kind === "vsock") return connectVsock(endpoint, options);
    return nodeConnect(endpoint, options);
  },
};

/** listen() on the real transports. */
export const listen: Transport["listen"] = (endpoint, onConnection, options) => nodeTransport.listen(endpoint, onConnection, options);
/** connect() on the real transports. */
export const connect: Transport["connect"] = (endpoint, options) => nodeTransport.connect(endpoint, options);

/**
 * Tears a socket down with a TCP RST where the socket is TCP (so the peer
 * sees a reset, not a clean end, exactly as the other side failed), and a
 * plain destroy otherwise (pipe-backed sockets: Unix and vsock).
 */
export function abortSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  const reset = (socket as net.Socket & { resetAndDestroy?: () => net.Socket }).resetAndDestroy;
  if (typeof reset === "function") {
    try {
      reset.call(socket);
      return;
    } catch {
      // ERR_INVALID_HANDLE_TYPE (not TCP) or already closing: fall through.
    }
  }
  socket.destroy();
}

/** Receives `n` bytes at the start of `buffer`; return false to stop reading until socket.resume(). */
export type ReadCallback = (n: number, buffer: Buffer) => boolean;

interface HandleWithUserBuffer {
  reading?: boolean;
  readStop?(): number;
  useUserBuffer?(buffer: Uint8Array): void;
}

function ownSymbol(socket: net.Socket, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(socket).find((s) => s.description === description);
}

/**
 * Switches an open, not yet consumed socket to Node's `onread` mode (the
 * net.Socket `onread: { buffer, callback }` option, which net.Server has no
 * way to pass to accepted sockets): the kernel's bytes land directly in the
 * caller's reused buffer and go to `callback`, with no per-read allocation
 * and no stream machinery. `buffer` is asked for the buffer of the next read
 * after every read. 'end', 'error', 'close', bytesRead, the idle timer,
 * pause() and resume() keep working as documented for `onread`; there are no
 * 'data' events.
 *
 * Uses the same internals the constructor option sets (lib/net.js Socket,
 * kBuffer/kBufferCb/kBufferGen, handle.useUserBuffer). Returns false, and
 * changes nothing, when they are not there or the socket has already
 * buffered or ended its readable side; the caller then reads the usual way.
 */
export function readIntoBuffer(socket: net.Socket, buffer: () => Buffer, callback: ReadCallback): boolean {
  const handle = (socket as unknown as { _handle?: HandleWithUserBuffer | null })._handle;
  const kBuffer = ownSymbol(socket, "kBuffer");
  const kBufferCb = ownSymbol(socket, "kBufferCb");
  const kBufferGen = ownSymbol(socket, "kBufferGen");
  const s = socket as unknown as Record<symbol, unknown>;
  if (
    !handle ||
    typeof handle.useUserBuffer !== "function" ||
    typeof handle.readStop !== "function" ||
    kBuffer === undefined ||
    kBufferCb === undefined ||
    kBufferGen === undefined ||
    s[kBuffer] !== null ||
    socket.destroyed ||
    socket.connecting ||
    socket.readableEnded ||
    socket.readableLength > 0
  ) {
    return false;
  }
  if (handle.reading) {
    handle.reading = false;
    handle.readStop();
  }
  // A read that completed before readStop() went into the stream buffer.
  if (socket.readableLength > 0) return false;
  const first = buffer();
  s[kBuffer] = first;
  s[kBufferCb] = callback;
  s[kBufferGen] = buffer;
  handle.useUserBuffer(first);
  return true;
}
