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
