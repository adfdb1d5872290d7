import { EgwError, type EgwErrorAction } from "../../attestation/egw-error.js";

/**
 * Every failure of the transport layer is a TransportError with a stable
 * `code`; callers switch on `code`, never on the message. Messages name the
 * endpoint kind, the syscall and the errno name, never payload bytes (the
 * transport never sees plaintext anyway, only ciphertext it must not log).
 *
 * `action` says what the caller should do:
 *  - "fix-config": the endpoint string or an option is wrong; retrying is useless
 *  - "retry":      the peer is not there (yet); dial again later with backoff
 *  - "stop":       this machine cannot do it at all (no AF_VSOCK, no koffi)
 */
export type TransportErrorCode =
  | "ERR_ENDPOINT_INVALID"
  | "ERR_OPTION_INVALID"
  | "ERR_VSOCK_UNSUPPORTED"
  | "ERR_CONNECT_REFUSED"
  | "ERR_CONNECT_TIMEOUT"
  | "ERR_CONNECT_ABORTED"
  | "ERR_CONNECT_FAILED"
  | "ERR_LISTEN_FAILED";

export type TransportErrorAction = Extract<EgwErrorAction, "fix-config" | "retry" | "stop">;

const ACTION: Record<TransportErrorCode, TransportErrorAction> = {
  ERR_ENDPOINT_INVALID: "fix-config",
  ERR_OPTION_INVALID: "fix-config",
  ERR_VSOCK_UNSUPPORTED: "stop",
  ERR_CONNECT_REFUSED: "retry",
  ERR_CONNECT_TIMEOUT: "retry",
  ERR_CONNECT_ABORTED: "retry",
  ERR_CONNECT_FAILED: "retry",
  ERR_LISTEN_FAILED: "fix-config",
};

export class TransportError extends EgwError<TransportErrorCode, TransportErrorAction> {
  /** The errno name (ECONNREFUSED, EAFNOSUPPORT…) when a syscall failed. */
  readonly errno: string | undefined;

  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(code, message, ACTION[code], options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TransportError";
    this.errno = options?.errno;
  }
}

export function isTransportError(value: unknown): value is TransportError {
  return value instanceof TransportError;
}

/**
 * Maps a failed connect (Node's `err.code`, or an errno name from our own
 * syscalls) to a TransportError code. Refused and reset both mean "nobody
 * listens there": on vsock the peer's kernel answers a connect to a closed
 * port with a RST (net/vmw_vsock/virtio_transport_common.c
 * virtio_transport_reset_no_sock), which connect() reports as ECONNRESET.
 */
export function connectErrorCode(errno: string | undefined): TransportErrorCode {
  switch (errno) {
    case "ECONNREFUSED":
    case "ECONNRESET":
    case "ENOENT": // unix socket path missing
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "ERR_CONNECT_REFUSED";
    case "ETIMEDOUT":
      return "ERR_CONNECT_TIMEOUT";
    case "EAFNOSUPPORT":
    case "ENODEV":
    case "EPROTONOSUPPORT":
      return "ERR_VSOCK_UNSUPPORTED";
    default:
      return "ERR_CONNECT_FAILED";
  }
}
