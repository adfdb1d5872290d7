import { EgwError } from "../../attestation/egw-error.js";

/**
 * Every failure of the enclave's early init (bringing up loopback) is an
 * InitError with a stable `code`; callers switch on `code`. Messages name
 * the interface, the syscall and the errno name.
 *
 * All of them mean "stop": an enclave whose loopback is down cannot serve,
 * because `egw enclave` listens on 127.0.0.1 behind its vsock bridge, so the
 * caller exits and the enclave stops instead of booting half-working.
 */
export type InitErrorCode =
  | "ERR_LOOPBACK_UNSUPPORTED" // not Linux, or koffi / libc cannot be loaded
  | "ERR_LOOPBACK_NAME" // the interface name is empty, longer than IFNAMSIZ - 1, or not plain ASCII
  | "ERR_LOOPBACK_NO_INTERFACE" // no interface by that name (ENODEV, ENXIO)
  | "ERR_LOOPBACK_NOT_LOOPBACK" // the interface exists but lacks IFF_LOOPBACK: refused, never brought up
  | "ERR_LOOPBACK_PERMISSION" // EPERM / EACCES: changing flags or addresses needs CAP_NET_ADMIN
  | "ERR_LOOPBACK_SYSCALL" // any other socket(2) / ioctl(2) failure
  | "ERR_LOOPBACK_UNREACHABLE"; // the interface is up, but a TCP connection to 127.0.0.1 failed

export class InitError extends EgwError<InitErrorCode> {
  override readonly name = "InitError";
  /** The errno name (ENODEV, EPERM…) when a syscall failed. */
  readonly errno: string | undefined;
  /** The syscall or ioctl that failed (e.g. "ioctl(SIOCSIFFLAGS)"). */
  readonly syscall: string | undefined;

  constructor(code: InitErrorCode, message: string, options?: { cause?: unknown; errno?: string; syscall?: string }) {
    super(code, message, "stop", options?.cause === undefined ? undefined : { cause: options.cause });
    this.errno = options?.errno;
    this.syscall = options?.syscall;
  }
}

export function isInitError(value: unknown): value is InitError {
  return value instanceof InitError;
}
