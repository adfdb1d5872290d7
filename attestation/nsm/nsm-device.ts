import { AttestationError } from "../errors.js";
import { loadLibc, type Koffi, type SysResult } from "./libc.js";
import { NSM_REQUEST_MAX_SIZE, NSM_RESPONSE_MAX_SIZE } from "./nsm-protocol.js";

/**
 * The raw channel to the Nitro Secure Module: one CBOR request in, one CBOR
 * response out. NsmAttester takes an NsmDevice so that tests drive it with a
 * fake; production uses openNsmDevice(), which does what the reference
 * driver does (aws-nitro-enclaves-nsm-api, src/driver/mod.rs) through FFI.
 */
export interface NsmDevice {
  /**
   * Sends one encoded request (1..4096 bytes) and returns the response bytes,
   * exactly as long as the driver reported. Throws AttestationError.
   * Not re-entrant: callers serialize calls (NsmAttester queues them).
   * Synchronous: the ioctl blocks the calling thread until the NSM answers,
   * normally within milliseconds; the kernel gives up after two minutes
   * (drivers/misc/nsm.c NSM_DEFAULT_TIMEOUT_MSECS) with ETIMEDOUT.
   */
  call(request: Uint8Array): Uint8Array;
  /** Releases the device. Idempotent; call() afterwards throws ERR_NSM_UNAVAILABLE. */
  close(): void;
}

export const NSM_DEVICE_PATH = "/dev/nsm";

// ─── ioctl ABI ───────────────────────────────────────────────────────────────

/**
 * The message passed to the ioctl. The reference driver declares it as two
 * `struct iovec` (src/driver/mod.rs `NsmMessage { request: IoSlice,
 * response: IoSliceMut }`); the kernel reads it as two `{ __u64 addr;
 * __u64 len; }` (Linux include/uapi/linux/nsm.h `struct nsm_raw`, and the
 * earlier out-of-tree driver's `struct nsm_message`). On the 64-bit ABIs
 * Nitro Enclaves run (x86_64, aarch64) both are 32 bytes with the same
 * offsets; the kernel refuses any other size (`_IOC_SIZE(cmd) != sizeof(raw)`
 * → EINVAL), so the loader checks it.
 */
export const NSM_MESSAGE_SIZE = 32;
export const NSM_IOCTL_MAGIC = 0x0a;

// Linux generic ioctl encoding (include/uapi/asm-generic/ioctl.h), which
// x86_64 and arm64 use: nr 8 bits, type 8 bits, size 14 bits, dir 2 bits.
const IOC_WRITE = 1;
const IOC_READ = 2;

/** `_IOWR(type, nr, size)`: the driver both reads the message and writes response.len back. */
export function iowr(type: number, nr: number, size: number): number {
  if (!Number.isInteger(size) || size < 0 || size >= 1 << 14) throw new RangeError(`ioctl size ${size} does not fit 14 bits`);
  return (((IOC_READ | IOC_WRITE) << 30) | (size << 16) | ((type & 0xff) << 8) | (nr & 0xff)) >>> 0;
}

/** `_IOWR(NSM_MAGIC, 0, struct nsm_raw)` = 0xC0200A00 (src/driver/mod.rs `request_code_readwrite!(NSM_IOCTL_MAGIC, 0, size_of::<NsmMessage>())`). */
export const NSM_IOCTL_REQUEST = iowr(NSM_IOCTL_MAGIC, 0, NSM_MESSAGE_SIZE);

// Linux open(2) flags, identical on x86_64 and arm64 (asm-generic/fcntl.h).
// O_RDWR as in nsm_init() (`OpenOptions::new().read(true).write(true)`);
// O_CLOEXEC as Rust's OpenOptions sets it, so children never inherit the fd.
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;

// ─── FFI binding (loaded on first use) ───────────────────────────────────────

type KoffiType = ReturnType<Koffi["struct"]>;

interface Ffi {
  koffi: Koffi;
  message: KoffiType;
  iovec: KoffiType;
  open(path: string, flags: number): SysResult;
  ioctl(fd: number, request: number, arg: bigint): SysResult;
  close(fd: number): SysResult;
  errnoName(errno: number): string;
}

let ffi: Ffi | undefined;

function unavailable(message: string, cause?: unknown): AttestationError {
  return new AttestationError("ERR_NSM_UNAVAILABLE", message, cause === undefined ? undefined : { cause });
}

/**
 * Loads koffi and libc on first use, so that importing this module on a
 * machine without koffi (or without Linux) never fails; only opening a device
 * does, with ERR_NSM_UNAVAILABLE.
 */
function loadFfi(): Ffi {
  if (ffi !== undefined) return ffi;
  const { koffi, libc, result, errnoName } = loadLibc(unavailable, "reaching /dev/nsm");

  // Anonymous types: koffi type names are process-global, and this binding
  // must not collide with anyone else's "iovec".
  const iovec = koffi.struct({ addr: "uint64_t", len: "uint64_t" });
  const message = koffi.struct({ request: iovec, response: iovec });
  if (koffi.sizeof(message) !== NSM_MESSAGE_SIZE || koffi.offsetof(message, "response") !== 16) {
    throw unavailable(`unsupported ABI: NSM message is ${koffi.sizeof(message)} bytes, expected ${NSM_MESSAGE_SIZE}`);
  }
  // open(2) and ioctl(2) are variadic in C; declaring them so makes koffi use
  // the variadic calling convention (on x86_64 it sets %al for the callee).
  // errno is read right after each call (src/driver/mod.rs reads
  // Errno::last() the same way).
  const open = libc.func("int open(const char *path, int flags, ...)");
  const ioctl = libc.func("int ioctl(int fd, unsigned long request, ...)");
  const close = libc.func("int close(int fd)");
  ffi = {
    koffi,
    message,
    iovec,
    open: (path, flags) => result(open(path, flags)),
    ioctl: (fd, request, arg) => result(ioctl(fd, request, "void *", arg)),
    close: (fd) => result(close(fd)),
    errnoName,
  };
  return ffi;
}

/** Offsets of the ioctl message as koffi lays it out; exported for the ABI tests. */
export function nsmMessageLayout(): {
  size: number;
  requestOffset: number;
  responseOffset: number;
  iovecSize: number;
  addrOffset: number;
  lenOffset: number;
} {
  const { koffi, message, iovec } = loadFfi();
  return {
    size: koffi.sizeof(message),
    requestOffset: koffi.offsetof(message, "request"),
    responseOffset: koffi.offsetof(message, "response"),
    iovecSize: koffi.sizeof(iovec),
    addrOffset: koffi.offsetof(iovec, "addr"),
    lenOffset: koffi.offsetof(iovec, "len"),
  };
}

function systemError(syscall: string, errno: number, name: string): Error {
  return Object.assign(new Error(`${syscall}: ${name}`), { syscall, errno, code: name });
}

function openError(path: string, errno: number, name: string): AttestationError {
  const cause = systemError("open", errno, name);
  switch (name) {
    case "ENOENT":
    case "ENODEV":
    case "ENXIO":
      return unavailable(`NSM device ${path} not found (${name}): not inside a Nitro Enclave, or the nsm driver is not loaded`, cause);
    case "EACCES":
    case "EPERM":
      return unavailable(`permission denied opening NSM device ${path} (${name})`, cause);
    default:
      return unavailable(`cannot open NSM device ${path} (${name})`, cause);
  }
}

/**
 * Maps an ioctl failure to a typed error. The kernel driver (Linux
 * drivers/misc/nsm.c, nsm_dev_ioctl) returns 0 or a negative errno:
 * EMSGSIZE for a request above NSM_REQUEST_MAX_SIZE (fill_req_raw), EINVAL
 * for a wrong command or message size, EFAULT for bad buffers, ETIMEDOUT when
 * the device does not answer within 2 minutes, EIO/ENODATA when the virtqueue
 * fails. The reference library folds all of these into
 * InputTooLarge/InternalError (src/driver/mod.rs nsm_process_request); we
 * keep the errno name in the message and the cause.
 */
function ioctlError(path: string, errno: number, name: string): AttestationError {
  const cause = { cause: systemError("ioctl", errno, name) };
  switch (name) {
    case "EMSGSIZE":
      return new AttestationError("ERR_NSM_REQUEST", `NSM driver refused the request as too large (${name})`, cause);
    case "EINVAL":
      return new AttestationError("ERR_NSM_REQUEST", `NSM driver refused the message (${name})`, cause);
    case "ENOTTY":
    case "EBADF":
      return new AttestationError("ERR_NSM_UNAVAILABLE", `${path} is not an NSM device (ioctl: ${name})`, cause);
    default:
      return new AttestationError("ERR_NSM_RESPONSE", `NSM ioctl failed (${name})`, cause);
  }
}

/**
 * One open /dev/nsm with its native buffers. The buffers live outside the JS
 * heap (koffi.alloc), so their addresses stay valid while the kernel uses
 * them; they are reused for every call, which is one reason calls must not
 * overlap. The kernel also serializes all NSM traffic behind one mutex
 * (drivers/misc/nsm.c `nsm->lock`), so overlapping calls would gain nothing.
 */
class KoffiNsmDevice implements NsmDevice {
  #fd: number;
  readonly #ffi: Ffi;
  readonly #path: string;
  readonly #messagePtr: bigint;
  readonly #requestPtr: bigint;
  readonly #responsePtr: bigint;
  readonly #requestView: Uint8Array;
  readonly #responseView: Uint8Array;

  constructor(ffi: Ffi, fd: number, path: string, pointers: { message: bigint; request: bigint; response: bigint }) {
    this.#ffi = ffi;
    this.#fd = fd;
    this.#path = path;
    this.#messagePtr = pointers.message;
    this.#requestPtr = pointers.request;
    this.#responsePtr = pointers.response;
    this.#requestView = new Uint8Array(ffi.koffi.view(pointers.request, NSM_REQUEST_MAX_SIZE));
    this.#responseView = new Uint8Array(ffi.koffi.view(pointers.response, NSM_RESPONSE_MAX_SIZE));
  }

  call(request: Uint8Array): Uint8Array {
    if (this.#fd < 0) throw unavailable(`NSM device ${this.#path} is closed`);
    if (!(request instanceof Uint8Array)) {
      throw new AttestationError("ERR_NSM_REQUEST", "NSM request expected Uint8Array");
    }
    // Checked here, not only in the encoder: the native request buffer is
    // exactly NSM_REQUEST_MAX_SIZE bytes. An empty request is refused by the
    // older driver (EINVAL) and is never a valid CBOR item.
    if (request.length === 0 || request.length > NSM_REQUEST_MAX_SIZE) {
      throw new AttestationError("ERR_NSM_REQUEST", `NSM request expected 1..${NSM_REQUEST_MAX_SIZE} bytes, got length=${request.length}`);
    }
    const { koffi } = this.#ffi;
    this.#requestView.set(request);
    this.#responseView.fill(0);
    // response.len is the buffer capacity on the way in and the response
    // length on the way out (drivers/misc/nsm.c parse_resp_raw: "Truncate any
    // message that does not fit", then copy_to_user of the whole struct).
    koffi.encode(this.#messagePtr, this.#ffi.message, {
      request: { addr: this.#requestPtr, len: request.length },
      response: { addr: this.#responsePtr, len: NSM_RESPONSE_MAX_SIZE },
    });
    try {
      const { rc, errno } = this.#ffi.ioctl(this.#fd, NSM_IOCTL_REQUEST, this.#messagePtr);
      if (rc !== 0) {
        // As src/driver/mod.rs nsm_ioctl: any non-zero status is a failure
        // described by errno.
        throw ioctlError(this.#path, errno, this.#ffi.errnoName(errno));
      }
      const out = koffi.decode(this.#messagePtr, this.#ffi.message) as { response: { len: number | bigint } };
      const length = out.response.len;
      // The kernel only ever shrinks len; anything larger is not a driver we know.
      if (length > NSM_RESPONSE_MAX_SIZE || length < 0) {
        throw new AttestationError("ERR_NSM_RESPONSE", `NSM driver reported a response of ${String(length)} bytes, buffer holds ${NSM_RESPONSE_MAX_SIZE}`);
      }
      // A copy: the native buffer is reused and wiped below.
      return this.#responseView.slice(0, Number(length));
    } finally {
      this.#requestView.fill(0, 0, request.length);
      this.#responseView.fill(0);
    }
  }

  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    // Marked closed first: a reused fd number must never receive our ioctl.
    this.#fd = -1;
    const { koffi } = this.#ffi;
    koffi.free(this.#messagePtr);
    koffi.free(this.#requestPtr);
    koffi.free(this.#responsePtr);
    // close(2) releases the fd even when it reports an error (Linux close(2),
    // "Dealing with error returns"), and nothing was written through it, so
    // there is nothing to retry or report.
    this.#ffi.close(fd);
  }
}

/**
 * Opens the NSM device (O_RDWR, as nsm_init() in src/driver/mod.rs).
 * Throws ERR_NSM_UNAVAILABLE when it is missing, not permitted, or when FFI
 * is unavailable on this machine.
 */
export function openNsmDevice(path: string = NSM_DEVICE_PATH): NsmDevice {
  if (typeof path !== "string" || path.length === 0 || path.includes("\0")) {
    throw unavailable("NSM device path expected a non-empty string");
  }
  const f = loadFfi();
  const { rc: fd, errno } = f.open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) throw openError(path, errno, f.errnoName(errno));

  const pointers: bigint[] = [];
  try {
    const message = f.koffi.alloc(f.message, 1) as bigint;
    pointers.push(message);
    const request = f.koffi.alloc("uint8_t", NSM_REQUEST_MAX_SIZE) as bigint;
    pointers.push(request);
    const response = f.koffi.alloc("uint8_t", NSM_RESPONSE_MAX_SIZE) as bigint;
    pointers.push(response);
    return new KoffiNsmDevice(f, fd, path, { message, request, response });
  } catch (cause) {
    for (const pointer of pointers) f.koffi.free(pointer);
    f.close(fd);
    throw unavailable("cannot allocate buffers for the NSM device", cause);
  }
}
