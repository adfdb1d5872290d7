import { loadLibc, type SysResult } from "../../attestation/nsm/libc.js";
import { InitError } from "./errors.js";

/**
 * socket(2), ioctl(2) and close(2) through koffi, the FFI the project already
 * ships for /dev/nsm, with the same libc loader (attestation/nsm/libc.ts).
 *
 * Why FFI and not `ip link set lo up`: iproute2 (or busybox) would be one
 * more package in the measured image, with its own update cadence, for one
 * ioctl. Loaded on first use, so importing this module never fails on a
 * machine without koffi or Linux; only calling it does, with
 * ERR_LOOPBACK_UNSUPPORTED.
 */

export type { SysResult };

/** What bringUpLoopback needs from the kernel; tests pass a fake. */
export interface NetdeviceSys {
  socket(domain: number, type: number, protocol: number): SysResult;
  /** ioctl(fd, request, ifreq): the kernel reads and writes `ifreq` in place. */
  ioctl(fd: number, request: number, ifreq: Uint8Array): SysResult;
  close(fd: number): SysResult;
  errnoName(errno: number): string;
}

let sys: NetdeviceSys | undefined;

function unsupported(message: string, cause?: unknown): InitError {
  return new InitError("ERR_LOOPBACK_UNSUPPORTED", message, cause === undefined ? undefined : { cause });
}

export function loadNetdeviceSys(): NetdeviceSys {
  if (sys !== undefined) return sys;
  const { libc, result, errnoName } = loadLibc(unsupported, "bringing up the loopback interface");
  const socket = libc.func("int socket(int domain, int type, int protocol)");
  // ioctl(2) is variadic in C; declared so, koffi uses the variadic calling
  // convention, and a Uint8Array argument is passed as a pointer to its own
  // memory, so the kernel's writes (SIOCGIFFLAGS) land in it.
  const ioctl = libc.func("int ioctl(int fd, unsigned long request, ...)");
  const close = libc.func("int close(int fd)");
  sys = {
    socket: (domain, type, protocol) => result(socket(domain, type, protocol)),
    ioctl: (fd, request, ifreq) => result(ioctl(fd, request, "uint8_t *", ifreq)),
    close: (fd) => result(close(fd)),
    errnoName,
  };
  return sys;
}
