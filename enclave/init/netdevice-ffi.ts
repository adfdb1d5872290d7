import { createRequire } from "node:module";
import type koffiModule from "koffi";
import { InitError } from "./errors.js";

/**
 * socket(2), ioctl(2) and close(2) through koffi, the FFI the project already
 * ships for /dev/nsm (attestation/nsm/nsm-device.ts) and vsock
 * (host/transport/ffi.ts). enclave/ must not import host/, so the few lines
 * that load libc are repeated here rather than shared.
 *
 * Why FFI and not `ip link set lo up`: iproute2 (or busybox) would be one
 * more package in the measured image, with its own update cadence, for one
 * ioctl. Loaded on first use, so importing this module never fails on a
 * machine without koffi or Linux; only calling it does, with
 * ERR_LOOPBACK_UNSUPPORTED.
 */

export interface SysResult {
  rc: number;
  /** errno right after the call; meaningful only when rc < 0. */
  errno: number;
}

/** What bringUpLoopback needs from the kernel; tests pass a fake. */
export interface NetdeviceSys {
  socket(domain: number, type: number, protocol: number): SysResult;
  /** ioctl(fd, request, ifreq): the kernel reads and writes `ifreq` in place. */
  ioctl(fd: number, request: number, ifreq: Uint8Array): SysResult;
  close(fd: number): SysResult;
  errnoName(errno: number): string;
}

type Koffi = typeof koffiModule;

let sys: NetdeviceSys | undefined;

function unsupported(message: string, cause?: unknown): InitError {
  return new InitError("ERR_LOOPBACK_UNSUPPORTED", message, cause === undefined ? undefined : { cause });
}

export function loadNetdeviceSys(): NetdeviceSys {
  if (sys !== undefined) return sys;
  if (process.platform !== "linux") throw unsupported(`bringing up loopback needs Linux (platform is ${process.platform})`);
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)("koffi") as Koffi;
  } catch (cause) {
    throw unsupported("the koffi FFI module could not be loaded, so the loopback interface cannot be configured", cause);
  }
  let libc: ReturnType<Koffi["load"]>;
  try {
    libc = koffi.load("libc.so.6");
  } catch {
    // musl has no libc.so.6; its symbols are already in the process.
    try {
      libc = koffi.load(null);
    } catch (cause) {
      throw unsupported("libc could not be loaded for the loopback ioctls", cause);
    }
  }
  const socket = libc.func("int socket(int domain, int type, int protocol)");
  // ioctl(2) is variadic in C; declared so, koffi uses the variadic calling
  // convention, and a Uint8Array argument is passed as a pointer to its own
  // memory, so the kernel's writes (SIOCGIFFLAGS) land in it.
  const ioctl = libc.func("int ioctl(int fd, unsigned long request, ...)");
  const close = libc.func("int close(int fd)");

  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(koffi.os.errno)) {
    if (!names.has(value)) names.set(value, name);
  }
  // errno is read right after the call, before other native work can overwrite it.
  const result = (rc: unknown): SysResult => ({ rc: Number(rc), errno: koffi.errno() });
  sys = {
    socket: (domain, type, protocol) => result(socket(domain, type, protocol)),
    ioctl: (fd, request, ifreq) => result(ioctl(fd, request, "uint8_t *", ifreq)),
    close: (fd) => result(close(fd)),
    errnoName: (errno) => names.get(errno) ?? `errno ${errno}`,
  };
  return sys;
}
