import { createRequire } from "node:module";
import type koffiModule from "koffi";

/**
 * koffi and libc, loaded on first use, for the code that talks to the
 * kernel directly: /dev/nsm (nsm-device.ts) and the enclave's loopback
 * bring-up (enclave/init). host/transport/ffi.ts keeps its own copy:
 * host/ imports nothing of the trusted side.
 *
 * `fail` turns each failure into the caller's own typed error, so a missing
 * koffi or libc reads as "NSM unavailable" in one place and "loopback
 * unsupported" in the other.
 */
export type Koffi = typeof koffiModule;
export type KoffiLibrary = ReturnType<Koffi["load"]>;

export interface SysResult {
  rc: number;
  /** errno right after the call; meaningful only when the call failed. */
  errno: number;
}

export interface Libc {
  koffi: Koffi;
  libc: KoffiLibrary;
  /** Wraps a raw return value with errno, read right after the call, before other native work can overwrite it. */
  result(rc: unknown): SysResult;
  errnoName(errno: number): string;
}

export function loadLibc(fail: (message: string, cause?: unknown) => Error, purpose: string): Libc {
  if (process.platform !== "linux") throw fail(`${purpose} needs Linux (platform is ${process.platform})`);
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)("koffi") as Koffi;
  } catch (cause) {
    throw fail(`the koffi FFI module could not be loaded, so ${purpose} is not possible`, cause);
  }
  let libc: KoffiLibrary;
  try {
    libc = koffi.load("libc.so.6");
  } catch {
    // musl (e.g. Alpine-based images) has no libc.so.6; the symbols are then
    // already in the process, which load(null) reaches via dlopen(NULL).
    try {
      libc = koffi.load(null);
    } catch (cause) {
      throw fail(`libc could not be loaded for ${purpose}`, cause);
    }
  }
  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(koffi.os.errno)) {
    if (!names.has(value)) names.set(value, name);
  }
  return {
    koffi,
    libc,
    result: (rc) => ({ rc: Number(rc), errno: koffi.errno() }),
    errnoName: (errno) => names.get(errno) ?? `errno ${errno}`,
  };
}
