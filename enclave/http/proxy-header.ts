/**
 * Where the gateway finds the address the relay reported for a TLS socket's
 * underlying connection. The PROXY v2 header itself is read with the codec
 * the host relay writes it with (host/transport/codec/proxy-v2.ts), in
 * enclave/server.ts.
 */
export const CLIENT_ADDRESS = Symbol("egw.clientAddress");
