export { startIngressRelay, DEFAULT_INGRESS_LIMITS, type IngressRelay, type IngressRelayOptions, type IngressLimits, type IngressStats } from "./relay.js";
export { createIngressMetrics, type IngressMetrics, type ConnectionOutcome, type ErrorKind, type Direction } from "./metrics.js";
export { createIngressLogger, memoryIngressLogger, silentLogger, type IngressLogger, type IngressLogFields, type LogLevel } from "./log.js";
export {
  encodeProxyV2,
  decodeProxyV2,
  proxyHeaderForConnection,
  ProxyProtocolError,
  PROXY_V2_SIGNATURE,
  PROXY_V2_FIXED_LENGTH,
  PROXY_V2_DEFAULT_MAX_LENGTH,
  type ProxyHeader,
  type ProxyAddress,
  type ProxyTlv,
  type ProxyTransport,
  type ProxyDecodeResult,
  type ProxyProtocolErrorCode,
} from "../transport/codec/proxy-v2.js";
export { ipv4ToBytes, ipv6ToBytes, bytesToIpv4, bytesToIpv6, unmapIpv4 } from "../transport/codec/ip.js";
