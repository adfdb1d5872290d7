import net from "node:net";
import { getSystemErrorName } from "node:util";
import { TransportError, connectErrorCode } from "./errors.js";
import { POLLOUT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, loadSocketSys, type SocketSys } from "./ffi.js";

/**
 * Turns kernel stream-socket fds that Node cannot classify into ordinary
 * net.Socket streams, and accepts connections on such a listening fd with
 * libuv doing the waiting.
 *
 * Why this is needed: `new net.Socket({ fd })` asks libuv's uv_guess_handle()
 * what the fd is, and that answers only for AF_INET/AF_INET6 (TCP) and
 * AF_UNIX (pipe); any other family, AF_VSOCK included, is UV_UNKNOWN_HANDLE
 * and Node throws ERR_INVALID_FD_TYPE (deps/uv/src/unix/core.c
 * uv_guess_handle; lib/net.js createHandle). libuv's pipe handle, however,
 * takes any connected stream socket: uv_pipe_open() only makes the fd
 * non-blocking and hands it to the generic stream code (read/write/
 * shutdown/accept4 on the fd), which is family-agnostic. So the fd goes
 * into a `Pipe` handle from Node's own pipe_wrap binding, and that handle
 * into `new net.Socket({ handle })`, exactly what net.Server does for every
 * accepted Unix connection. The result is a real net.Socket: backpressure,
 * half-close (shutdown(SHUT_WR)), pause/resume and destroy all behave as
 * for TCP, with zero extra copies and no extra process.
 *
 * The cost is reaching `process.binding("pipe_wrap")`, which Node keeps on
 * its allow-list of legacy bindings (lib/internal/bootstrap/realm.js
 * processBindingAllowList) but documents as deprecated (DEP0111, a warning
 * only under --pending-deprecation). The tests in
 * test/host/transport/fd-socket.test.ts run this exact path over AF_INET
 * fds created through FFI, so a Node upgrade that breaks it fails CI, not
 * production.
 */

interface PipeHandle {
  open(fd: number): number;
  listen(backlog: number): number;
  close(callback?: () => void): void;
  readonly fd: number;
  onconnection: ((status: number, client: PipeHandle | undefined) => void) | null;
}

interface PipeBinding {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number; SERVER: number };
}

let pipeBinding: PipeBinding | undefined;

function loadPipeBinding(): PipeBinding {
  if (pipeBinding !== undefined) return pipeBinding;
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding("pipe_wrap") as PipeBinding;
    if (typeof binding.Pipe !== "function" || typeof binding.constants?.SOCKET !== "number") throw new Error("pipe_wrap has an unexpected shape");
    pipeBinding = binding;
    return binding;
  } catch (cause) {
    throw new TransportError("ERR_VSOCK_UNSUPPORTED", `this Node.js (${process.version}) does not expose libuv pipe handles; fd-backed sockets cannot be wrapped`, { cause });
  }
}

function uvName(rc: number): string {
  try {
    return getSystemErrorName(rc);
  } catch {
    return `uv error ${rc}`;
  }
}

export interface WrapOptions {
  /** Keep the readable side paused until the caller resumes (net.Server's pauseOnConnect). */
  paused?: boolean;
}

/** Wraps a connected stream-socket fd. Takes ownership: the fd is closed on failure and with the socket. */
export function wrapConnectedFd(fd: number, options: WrapOptions = {}): net.Socket {
  const { Pipe, constants } = loadPipeBinding();
  const handle = new Pipe(constants.SOCKET);
  const rc = handle.open(fd);
  if (rc !== 0) {
    loadSocketSys().close(fd);
    throw new TransportError("ERR_CONNECT_FAILED", `cannot wrap socket fd (${uvName(rc)})`, { errno: uvName(rc) });
  }
  return socketFromHandle(handle, options);
}

function socketFromHandle(handle: PipeHandle, options: WrapOptions): net.Socket {
  // `handle` and `pauseOnCreate` are the options net.Server passes for each
  // accepted connection (lib/net.js onconnection); they are not in the
  // public typings.
  return new net.Socket({
    handle,
    readable: true,
    writable: true,
    allowHalfOpen: true,
    pauseOnCreate: options.paused === true,
  } as unknown as net.SocketConstructorOpts);
}

export interface DialOptions {
  /** Gives up after this long with ERR_CONNECT_TIMEOUT. */
  timeoutMs: number;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise<void>((resolve) => (ms <= 0 ? setImmediate(resolve) : setTimeout(resolve, ms)));

function closeQuietly(sys: SocketSys, fd: number): void {
  // close(2) releases the fd even when it reports an error (Linux close(2)).
  sys.close(fd);
}

/**
 * Dials `sockaddr` of `family` with a non-blocking connect(2) and returns
 * the connected socket. While the connect is in progress (EINPROGRESS) the
 * fd is polled with a zero timeout on a short back-off (next tick, then
 * 1, 2, 4 … 16 ms): no thread is ever blocked, and an enclave that answers
 * within a millisecond is seen within a millisecond.
 */
export async function dialSockaddr(family: number, sockaddr: Uint8Array, what: string, options: DialOptions): Promise<net.Socket> {
  const sys = loadSocketSys();
  if (options.signal?.aborted) throw new TransportError("ERR_CONNECT_ABORTED", `dial ${what} aborted`);
  const deadline = performance.now() + options.timeoutMs;
  const s = sys.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.rc < 0) {
    const errno = sys.errnoName(s.errno);
    const code = errno === "EAFNOSUPPORT" || errno === "EPROTONOSUPPORT" || errno === "EINVAL" ? "ERR_VSOCK_UNSUPPORTED" : "ERR_CONNECT_FAILED";
    throw new TransportError(
      code,
      `socket() for ${what} failed (${errno})${code === "ERR_VSOCK_UNSUPPORTED" ? ": this kernel has no such address family (vsock module not loaded, or not a VM)" : ""}`,
      { errno },
    );
  }
  const fd = s.rc;
  try {
    const c = sys.connect(fd, sockaddr);
    if (c.rc < 0) {
      const errno = sys.errnoName(c.errno);
      if (errno !== "EINPROGRESS") throw dialError(what, errno);
      let delay = 0;
      for (;;) {
        const p = sys.pollNow(fd, POLLOUT);
        if (p.rc > 0) break;
        if (p.rc < 0 && sys.errnoName(p.errno) !== "EINTR") throw dialError(what, sys.errnoName(p.errno));
        if (options.signal?.aborted) throw new TransportError("ERR_CONNECT_ABORTED", `dial ${what} aborted`);
        const left = deadline - performance.now();
        if (left <= 0) throw new TransportError("ERR_CONNECT_TIMEOUT", `dial ${what} timed out after ${options.timeoutMs} ms`, { errno: "ETIMEDOUT" });
        await sleep(Math.min(delay, left));
        delay = delay === 0 ? 1 : Math.min(delay * 2, 16);
      }
      const e = sys.soError(fd);
      if (e.rc < 0) throw dialError(what, sys.errnoName(e.errno));
      if (e.value !== 0) throw dialError(what, sys.errnoName(e.value));
    }
  } catch (err) {
    closeQuietly(sys, fd);
    throw err;
  }
  if (options.signal?.aborted) {
    closeQuietly(sys, fd);
    throw new TransportError("ERR_CONNECT_ABORTED", `dial ${what} aborted`);
  }
  return wrapConnectedFd(fd);
}

function dialError(what: string, errno: string): TransportError {
  const code = connectErrorCode(errno);
  const hint =
    code === "ERR_VSOCK_UNSUPPORTED"
      ? ": no transport reaches that address (ENODEV: no virtio-vsock/vhost-vsock device, or cid 1 without vsock_loopback)"
      : code === "ERR_CONNECT_REFUSED"
        ? ": nothing listens there"
        : "";
  return new TransportError(code, `dial ${what} failed (${errno})${hint}`, { errno });
}

export interface FdServer {
  /** The bound address as getsockname(2) returned it (raw sockaddr bytes). */
  readonly sockaddr: Uint8Array;
  /** The listening fd (for getsockname-style diagnostics only). */
  readonly fd: number;
  /** Stops accepting and closes the listening fd. Existing connections are untouched. */
  close(): Promise<void>;
}

export interface ListenFdOptions {
  backlog: number;
  pauseOnConnect: boolean;
  onConnection(socket: net.Socket, peer: Uint8Array | undefined): void;
  /** accept(2) failures (EMFILE…): the server keeps listening. */
  onAcceptError?(errno: string): void;
}

/**
 * Binds a non-blocking stream socket of `family` to `sockaddr` and accepts
 * connections through a libuv pipe handle, so libuv's own accept loop
 * (uv__server_io → accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)) does the waiting.
 */
export function listenSockaddr(family: number, sockaddr: Uint8Array, what: string, options: ListenFdOptions): FdServer {
  const sys = loadSocketSys();
  const { Pipe, constants } = loadPipeBinding();
  const s = sys.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.rc < 0) {
    const errno = sys.errnoName(s.errno);
    const code = errno === "EAFNOSUPPORT" || errno === "EPROTONOSUPPORT" ? "ERR_VSOCK_UNSUPPORTED" : "ERR_LISTEN_FAILED";
    throw new TransportError(code, `socket() for ${what} failed (${errno})`, { errno });
  }
  const fd = s.rc;
  const b = sys.bind(fd, sockaddr);
  if (b.rc < 0) {
    const errno = sys.errnoName(b.errno);
    closeQuietly(sys, fd);
    throw new TransportError("ERR_LISTEN_FAILED", `bind ${what} failed (${errno})`, { errno });
  }
  const bound = sys.getsockname(fd, sockaddr.length);
  if (bound.rc < 0) {
    closeQuietly(sys, fd);
    throw new TransportError("ERR_LISTEN_FAILED", `getsockname ${what} failed (${sys.errnoName(bound.errno)})`);
  }
  const handle = new Pipe(constants.SERVER);
  const opened = handle.open(fd);
  if (opened !== 0) {
    closeQuietly(sys, fd);
    throw new TransportError("ERR_LISTEN_FAILED", `cannot wrap listening fd for ${what} (${uvName(opened)})`, { errno: uvName(opened) });
  }
  handle.onconnection = (status, client) => {
    if (status < 0 || client === undefined) {
      options.onAcceptError?.(uvName(status));
      return;
    }
    const peer = sys.getpeername(client.fd, sockaddr.length);
    const socket = socketFromHandle(client, { paused: options.pauseOnConnect });
    options.onConnection(socket, peer.rc === 0 ? peer.addr : undefined);
  };
  const l = handle.listen(options.backlog);
  if (l !== 0) {
    handle.close();
    throw new TransportError("ERR_LISTEN_FAILED", `listen ${what} failed (${uvName(l)})`, { errno: uvName(l) });
  }
  let closed: Promise<void> | undefined;
  return {
    sockaddr: bound.addr,
    fd,
    close() {
      closed ??= new Promise<void>((resolve) => {
        handle.onconnection = null;
        handle.close(resolve);
      });
      return closed;
    },
  };
}
