/**
 * Where the enclave's HTTPS service listens. On Nitro the host relay
 * reaches it over vsock (bridged to this socket by the enclave's init; see
 * host/); in development and tests it is plain TCP on loopback or a Unix
 * socket.
 */
export type ListenEndpoint = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export function parseListen(value: string): ListenEndpoint {
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new Error(`listen endpoint "${value}": port out of range`);
    return { kind: "tcp", host: tcp[1]!.replace(/^\[|\]$/g, ""), port };
  }
  const unix = /^unix:\/\/(\/.+)$/.exec(value);
  if (unix) return { kind: "unix", path: unix[1]! };
  throw new Error(`listen endpoint "${value}" must be tcp://host:port or unix:///path`);
}
