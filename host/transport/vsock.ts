import type net from "node:net";
import { endianness } from "node:os";
import { TransportError } from "./errors.js";
import { VMADDR_CID_ANY, VMADDR_PORT_ANY, type VsockEndpoint } from "./endpoint.js";
import { AF_VSOCK, loadSocketSys } from "./ffi.js";
import { dialSockaddr, listenSockaddr, type DialOptions, type FdServer } from "./fd-socket.js";

/**
 * AF_VSOCK for Node, in-process: socket(2)/connect(2)/bind(2) through koffi,
 * then the connected or listening fd handed to libuv as a pipe handle (see
 * fd-socket.ts for why that works and what it relies on).
 *
 * Why this and not the alternatives (issue 4):
 *  - socat (VSOCK-LISTEN/VSOCK-CONNECT ↔ TCP loopback), as the AWS samples
 *    and most Node-on-Nitro setups do: one more process to supervise on each
 *    side, one more copy per byte through user space, `fork` per connection,
 *    and a loopback TCP port on the parent that any local process can reach,
 *    bypassing the relay's limits and metrics. Kept as the benchmark baseline.
 *  - npm addons (`node-vsock-linux-x64-gnu`, 0.0.x): a prebuilt x64-glibc
 *    binary only, so no Graviton parents and no musl enclave images, and
 *    a young native dependency in the trust path.
 *  - a native addon of our own: needs a compiler in the reproducible enclave
 *    image build; koffi is already a dependency (for /dev/nsm) and ships
 *    prebuilt for linux x64/arm64, glibc and musl.
 * What this costs: a Node-internal binding (pipe_wrap), pinned by tests.
 *
 * Production use on Nitro: the relay on the parent dials the enclave at
 * vsock://<enclave-cid>:<port> (the cid `nitro-cli describe-enclaves`
 * reports); the enclave listens on vsock://4294967295:<port> (any cid); the
 * host egress proxy listens on vsock://4294967295:<port> on the parent and
 * the enclave dials vsock://3:<port> (the parent is always cid 3 to an enclave).
 */

/**
 * struct sockaddr_vm (include/uapi/linux/vm_sockets.h), 16 bytes:
 *   0  u16 svm_family   (AF_VSOCK)
 *   2  u16 svm_reserved1
 *   4  u32 svm_port
 *   8  u32 svm_cid
 *  12  u8  svm_flags    (VMADDR_FLAG_TO_HOST; 0 here)
 *  13  u8  svm_zero[3]
 * All fields are host byte order (unlike sockaddr_in's port).
 */
export const SOCKADDR_VM_SIZE = 16;

export function encodeSockaddrVm(cid: number, port: number): Uint8Array {
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffff_ffff) throw new RangeError(`cid expected u32, got ${cid}`);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) throw new RangeError(`port expected u32, got ${port}`);
  const bytes = new Uint8Array(SOCKADDR_VM_SIZE);
  const view = new DataView(bytes.buffer);
  const le = endianness() === "LE";
  view.setUint16(0, AF_VSOCK, le);
  view.setUint32(4, port, le);
  view.setUint32(8, cid, le);
  return bytes;
}

export function decodeSockaddrVm(bytes: Uint8Array): { cid: number; port: number } {
  if (bytes.length < SOCKADDR_VM_SIZE) throw new RangeError(`sockaddr_vm expected ${SOCKADDR_VM_SIZE} bytes, got length=${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const le = endianness() === "LE";
  const family = view.getUint16(0, le);
  if (family !== AF_VSOCK) throw new RangeError(`sockaddr_vm expected family ${AF_VSOCK}, got ${family}`);
  return { port: view.getUint32(4, le), cid: view.getUint32(8, le) };
}

/** The layout koffi computes for the C declaration, for the ABI test (must match the constants above). */
export function sockaddrVmLayout(): { size: number; family: number; port: number; cid: number; flags: number } {
  const { koffi } = loadSocketSys();
  const type = koffi.struct({
    svm_family: "uint16_t",
    svm_reserved1: "uint16_t",
    svm_port: "uint32_t",
    svm_cid: "uint32_t",
    svm_flags: "uint8_t",
    svm_zero: koffi.array("uint8_t", 3),
  });
  return {
    size: koffi.sizeof(type),
    family: koffi.offsetof(type, "svm_family"),
    port: koffi.offsetof(type, "svm_port"),
    cid: koffi.offsetof(type, "svm_cid"),
    flags: koffi.offsetof(type, "svm_flags"),
  };
}

const describe = (cid: number, port: number) => `vsock://${cid}:${port}`;

/** Dials cid:port. Throws TransportError (ERR_VSOCK_UNSUPPORTED where the machine has no vsock). */
export function connectVsock(endpoint: VsockEndpoint, options: DialOptions): Promise<net.Socket> {
  const { cid, port } = endpoint;
  if (cid === VMADDR_CID_ANY) return Promise.reject(new TransportError("ERR_ENDPOINT_INVALID", `${describe(cid, port)}: cid ${VMADDR_CID_ANY} (any) can only be listened on`));
  if (port === VMADDR_PORT_ANY) return Promise.reject(new TransportError("ERR_ENDPOINT_INVALID", `${describe(cid, port)}: port ${VMADDR_PORT_ANY} (any) can only be listened on`));
  return dialSockaddr(AF_VSOCK, encodeSockaddrVm(cid, port), describe(cid, port), options);
}

export interface VsockServer {
  /** The bound endpoint, with the port the kernel chose when VMADDR_PORT_ANY was asked for. */
  readonly address: VsockEndpoint;
  close(): Promise<void>;
}

export function listenVsock(
  endpoint: VsockEndpoint,
  options: {
    backlog: number;
    pauseOnConnect: boolean;
    onConnection(socket: net.Socket, peer: { cid: number; port: number } | undefined): void;
    onAcceptError?(errno: string): void;
  },
): VsockServer {
  const server: FdServer = listenSockaddr(AF_VSOCK, encodeSockaddrVm(endpoint.cid, endpoint.port), describe(endpoint.cid, endpoint.port), {
    backlog: options.backlog,
    pauseOnConnect: options.pauseOnConnect,
    onConnection(socket, peer) {
      let decoded: { cid: number; port: number } | undefined;
      try {
        decoded = peer ? decodeSockaddrVm(peer) : undefined;
      } catch {
        decoded = undefined;
      }
      options.onConnection(socket, decoded);
    },
    ...(options.onAcceptError ? { onAcceptError: options.onAcceptError } : {}),
  });
  const bound = decodeSockaddrVm(server.sockaddr);
  return {
    address: { kind: "vsock", cid: endpoint.cid, port: bound.port },
    close: () => server.close(),
  };
}
