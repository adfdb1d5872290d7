import { createRequire } from "node:module";
import type koffiModule from "koffi";
import { TransportError } from "./errors.js";

/**
 * The few libc socket calls that Node does not expose for families other
 * than AF_INET/AF_INET6/AF_UNIX, reached through koffi (the same FFI the
 * attestation module uses for /dev/nsm). Loaded on first use, so importing
 * the transport layer never fails on a machine without koffi or Linux; only
 * dialing or listening on vsock does, with ERR_VSOCK_UNSUPPORTED.
 *
 * Every call here is non-blocking: sockets are created with SOCK_NONBLOCK,
 * and poll() is only ever called with a zero timeout, so nothing ever holds
 * the event loop or a thread-pool thread.
 */

type Koffi = typeof koffiModule;

export interface SysResult {
  rc: number;
  /** errno right after the call; meaningful only when rc < 0. */
  errno: number;
}

export interface SocketSys {
  socket(domain: number, type: number, protocol: number): SysResult;
  connect(fd: number, addr: Uint8Array): SysResult;
  bind(fd: number, addr: Uint8Array): SysResult;
  listen(fd: number, backlog: number): SysResult;
  getsockname(fd: number, size: number): SysResult & { addr: Uint8Array };
  getpeername(fd: number, size: number): SysResult & { addr: Uint8Array };
  /** getsockopt(fd, SOL_SOCKET, SO_ERROR): the pending error of a non-blocking connect. */
  soError(fd: number): SysResult & { value: number };
  /** poll(2) on one fd with timeout 0: never blocks. */
  pollNow(fd: number, events: number): SysResult & { revents: number };
  close(fd: number): SysResult;
  errnoName(errno: number): string;
  koffi: Koffi;
}

// Linux values, identical on x86_64 and arm64 (the ABIs Nitro runs).
export const AF_INET = 2;
export const AF_VSOCK = 40;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_ERROR = 4;
export const POLLOUT = 0x4;

let sys: SocketSys | undefined;

function unsupported(message: string, cause?: unknown): TransportError {
  return new TransportError("ERR_VSOCK_UNSUPPORTED", message, cause === undefined ? undefined : { cause });
}

export function loadSocketSys(): SocketSys {
  if (sys !== undefined) return sys;
  if (process.platform !== "linux") throw unsupported(`vsock needs Linux (platform is ${process.platform})`);
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)("koffi") as Koffi;
  } catch (cause) {
    throw unsupported("the koffi FFI module could not be loaded, so AF_VSOCK sockets cannot be created", cause);
  }
  let libc: ReturnType<Koffi["load"]>;
  try {
    libc = koffi.load("libc.so.6");
  } catch {
    // musl (Alpine-based enclave images) has no libc.so.6; its symbols are in the process already.
    try {
      libc = koffi.load(null);
    } catch (cause) {
      throw unsupported("libc could not be loaded for socket calls", cause);
    }
  }
  // Anonymous struct: koffi type names are process-global.
  const pollfd = koffi.struct({ fd: "int", events: "short", revents: "short" });
  const socket = libc.func("int socket(int domain, int type, int protocol)");
  const connect = libc.func("int connect(int fd, const uint8_t *addr, uint32_t len)");
  const bind = libc.func("int bind(int fd, const uint8_t *addr, uint32_t len)");
  const listen = libc.func("int listen(int fd, int backlog)");
  const getsockname = libc.func("int getsockname(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)");
  const getpeername = libc.func("int getpeername(int fd, _Out_ uint8_t *addr, _Inout_ uint32_t *len)");
  const getsockopt = libc.func("int getsockopt(int fd, int level, int name, _Out_ int *value, _Inout_ uint32_t *len)");
  const poll = libc.func("poll", "int", [koffi.inout(koffi.pointer(pollfd)), "unsigned long", "int"]);
  const close = libc.func("int close(int fd)");

  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(koffi.os.errno)) {
    if (!names.has(value)) names.set(value, name);
  }
  // errno is read right after the call, before other native work can overwrite it.
  const result = (rc: unknown): SysResult => ({ rc: Number(rc), errno: koffi.errno() });
  const name = (fn: typeof getsockname) => (fd: number, size: number) => {
    const addr = new Uint8Array(size);
    const len = [size];
    const r = result(fn(fd, addr, len));
    return { ...r, addr: addr.subarray(0, Math.min(size, len[0] ?? 0)) };
  };

  sys = {
    koffi,
    socket: (domain, type, protocol) => result(socket(domain, type, protocol)),
    connect: (fd, addr) => result(connect(fd, addr, addr.length)),
    bind: (fd, addr) => result(bind(fd, addr, addr.length)),
    listen: (fd, backlog) => result(listen(fd, backlog)),
    getsockname: name(getsockname),
    getpeername: name(getpeername),
    soError: (fd) => {
      const value = [0];
      const r = result(getsockopt(fd, SOL_SOCKET, SO_ERROR, value, [4]));
      return { ...r, value: value[0] ?? 0 };
    },
    pollNow: (fd, events) => {
      const entry = { fd, events, revents: 0 };
      const r = result(poll(entry, 1, 0));
      return { ...r, revents: entry.revents };
    },
    close: (fd) => result(close(fd)),
    errnoName: (errno) => names.get(errno) ?? `errno ${errno}`,
  };
  return sys;
}
