/**
 * Where the enclave's HTTPS service listens. On Nitro the host relay
 * reaches it over vsock (bridged to this socket by the enclave's init; see
 * host/); in development and tests it is plain TCP on loopback or a Unix
 * socket.
 */
export type ListenEndpoint =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string }
  /**
   * AF_VSOCK, the production case on Nitro. The enclave module itself
   * serves TCP/Unix only; `egw enclave` bridges a vsock listener to a
   * loopback one inside the enclave with the host/transport code (see
   * enclave/main.ts), so the gateway module stays free of socket FFI.
   */
  | { kind: "vsock"; cid: number; port: number };

export function parseListen(value: string): ListenEndpoint {
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new Error(`listen endpoint "${value}": port out of range`);
    return { kind: "tcp", host: tcp[1]!.replace(/^\[|\]$/g, ""), port };
  }
  const unix = /^unix:\/\/(\/.+)$/.exec(value);
  if (unix) return { kind: "unix", path: unix[1]! };
  const vsock = /^vsock:\/\/(\d{1,10}):(\d{1,10})$/.exec(value);
  if (vsock) {
    const cid = Number(vsock[1]);
    const port = Number(vsock[2]);
    if (cid > 0xffff_ffff || port > 0xffff_ffff) throw new Error(`listen endpoint "${value}": cid and port are u32`);
    return { kind: "vsock", cid, port };
  }
  throw new Error(`listen endpoint "${value}" must be tcp://host:port, unix:///path or vsock://cid:port`);
}
