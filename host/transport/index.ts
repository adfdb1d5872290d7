/**
 * host/transport: where the untrusted host listens and what it dials.
 *
 * One endpoint syntax, parsed strictly at start-up (endpoint.ts):
 *   vsock://<cid>:<port>   production on Nitro: the relay dials the enclave's cid
 *   tcp://<host>:<port>    development, tests, and the public side (:443)
 *   unix:///<path>         development and tests
 *
 * One interface (transport.ts): `listen(endpoint, onConnection, options)`
 * → `{ address, close() }` and `connect(endpoint, { timeoutMs, signal })`
 * → a net.Socket with allowHalfOpen. Errors are TransportError with a
 * stable `code` and an `action` (fix-config / retry / stop).
 *
 * Vsock, and why this way (details in vsock.ts and fd-socket.ts): Node has
 * no AF_VSOCK, and `new net.Socket({ fd })` refuses a vsock fd
 * (ERR_INVALID_FD_TYPE: libuv's uv_guess_handle only knows INET/INET6/UNIX).
 * So socket(2)/connect(2)/bind(2) go through koffi (already a dependency for
 * /dev/nsm, prebuilt for x64/arm64, glibc/musl), non-blocking, and the fd is
 * handed to libuv as a pipe handle, which accepts any stream socket: the
 * result is an ordinary net.Socket (backpressure, half-close, destroy) in
 * the same process, with no extra copy and no helper process. It relies on
 * Node's legacy `process.binding("pipe_wrap")` (allow-listed, DEP0111
 * documentation-only); the fd-socket tests run that exact path over AF_INET
 * so a Node upgrade that breaks it fails CI. Rejected: a socat bridge (one
 * more supervised process per side, a fork and an extra user-space copy per
 * connection, and a loopback TCP port any local process could use to bypass
 * the relay's limits), the npm addon node-vsock-linux-x64-gnu (x64 glibc
 * only: no Graviton, no musl images), our own C addon (a compiler in the
 * reproducible image build).
 *
 * What cannot be tested here: this VM's kernel has AF_VSOCK but no vsock
 * loopback, and its only vsock peer is its own hypervisor host; the tests
 * create, bind and listen on vsock sockets but never connect one.
 */
export { TransportError, isTransportError, connectErrorCode, type TransportErrorCode, type TransportErrorAction } from "./errors.js";
export {
  parseEndpoint,
  formatEndpoint,
  VMADDR_CID_ANY,
  VMADDR_PORT_ANY,
  VMADDR_CID_HOST,
  ENDPOINT_MAX_LENGTH,
  UNIX_PATH_MAX_BYTES,
  type Endpoint,
  type VsockEndpoint,
  type TcpEndpoint,
  type UnixEndpoint,
} from "./endpoint.js";
export {
  nodeTransport,
  listen,
  connect,
  abortSocket,
  type Transport,
  type TransportServer,
  type ConnectOptions,
  type ListenOptions,
  type OnConnection,
  type Peer,
} from "./transport.js";
export { connectVsock, listenVsock, encodeSockaddrVm, decodeSockaddrVm, sockaddrVmLayout, SOCKADDR_VM_SIZE, type VsockServer } from "./vsock.js";
