import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TransportError } from "../../../host/transport/errors.js";
import type { Endpoint } from "../../../host/transport/endpoint.js";
import { abortSocket, connect, listen, type Peer, type TransportServer } from "../../../host/transport/transport.js";
import { AF_INET, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, loadSocketSys } from "../../../host/transport/ffi.js";
import { closed, portOfSockaddrIn, readAll, sockaddrIn, until } from "./helpers.js";

const servers: TransportServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function echo(endpoint: Endpoint, peers: Peer[] = []): Promise<TransportServer> {
  const server = await listen(endpoint, (socket, peer) => {
    peers.push(peer);
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  servers.push(server);
  return server;
}

const tmpSocket = () => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "egw-t-")), "s.sock");

describe.each<[string, () => Endpoint]>([
  ["tcp (IPv4)", () => ({ kind: "tcp", host: "127.0.0.1", port: 0 })],
  ["tcp (IPv6)", () => ({ kind: "tcp", host: "::1", port: 0 })],
  ["unix", () => ({ kind: "unix", path: tmpSocket() })],
])("%s", (_name, endpoint) => {
  it("listen → address with the real port; connect → echo; half-close keeps the other direction", async () => {
    const peers: Peer[] = [];
    const server = await echo(endpoint(), peers);
    if (server.address.kind === "tcp") expect(server.address.port).toBeGreaterThan(0);
    const socket = await connect(server.address, { timeoutMs: 2000 });
    expect(socket).toBeInstanceOf(net.Socket);
    expect(socket.allowHalfOpen).toBe(true);
    const localPort = socket.localPort;
    const reply = readAll(socket);
    socket.write("ping ");
    socket.end("pong");
    expect((await reply).toString()).toBe("ping pong");
    await closed(socket);
    expect(peers).toHaveLength(1);
    expect(peers[0]!.kind).toBe(server.address.kind);
    if (peers[0]!.kind === "tcp") {
      expect(peers[0]!.port).toBe(localPort);
      expect(peers[0]!.localPort).toBe((server.address as { port: number }).port);
    }
  });

  it("a second listen on the same address is ERR_LISTEN_FAILED (EADDRINUSE)", async () => {
    const server = await echo(endpoint());
    await expect(listen(server.address, () => {})).rejects.toMatchObject({ code: "ERR_LISTEN_FAILED", errno: "EADDRINUSE" });
  });

  it("dialing where nothing listens is ERR_CONNECT_REFUSED", async () => {
    const server = await echo(endpoint());
    const address = server.address;
    await server.close();
    servers.length = 0;
    if (address.kind === "unix") fs.rmSync(address.path, { force: true });
    const err = await connect(address, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ code: "ERR_CONNECT_REFUSED", action: "retry" });
  });
});

describe("connect options", () => {
  it.skipIf(process.platform !== "linux")("times out with ERR_CONNECT_TIMEOUT when the SYN is never answered (full accept queue)", async () => {
    // A raw listener (FFI, backlog 0) that never accepts: once its queue is
    // full the kernel drops further SYNs, so the dial stays pending.
    const sys = loadSocketSys();
    const fd = sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0).rc;
    expect(sys.bind(fd, sockaddrIn(0)).rc).toBe(0);
    expect(sys.listen(fd, 0).rc).toBe(0);
    const port = portOfSockaddrIn(sys.getsockname(fd, 16).addr);
    const fillers = await Promise.all([0, 1].map(() => connect({ kind: "tcp", host: "127.0.0.1", port }, { timeoutMs: 200 }).catch(() => undefined)));
    for (const f of fillers) f?.on("error", () => {});
    try {
      const err = await connect({ kind: "tcp", host: "127.0.0.1", port }, { timeoutMs: 250 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "ERR_CONNECT_TIMEOUT" });
    } finally {
      for (const f of fillers) f?.destroy();
      sys.close(fd);
    }
  });

  it("aborts with ERR_CONNECT_ABORTED", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(connect({ kind: "tcp", host: "127.0.0.1", port: 1 }, { timeoutMs: 1000, signal: controller.signal })).rejects.toMatchObject({ code: "ERR_CONNECT_ABORTED" });
  });

  it.each([0, -1, Number.NaN, Infinity, undefined])("refuses timeoutMs=%s", async (timeoutMs) => {
    await expect(connect({ kind: "tcp", host: "127.0.0.1", port: 1 }, { timeoutMs: timeoutMs as number })).rejects.toMatchObject({ code: "ERR_OPTION_INVALID" });
  });
});

describe("abortSocket", () => {
  it("sends a TCP RST: the peer sees ECONNRESET, not a clean end", async () => {
    let peer: net.Socket | undefined;
    const server = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => (peer = s));
    servers.push(server);
    const socket = await connect(server.address, { timeoutMs: 2000 });
    await until(() => peer !== undefined);
    const error = new Promise<NodeJS.ErrnoException>((resolve) => peer!.once("error", resolve));
    abortSocket(socket);
    expect((await error).code).toBe("ECONNRESET");
  });
});
