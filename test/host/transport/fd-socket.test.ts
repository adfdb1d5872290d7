import fc from "fast-check";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { TransportError } from "../../../host/transport/errors.js";
import { AF_INET, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, loadSocketSys } from "../../../host/transport/ffi.js";
import { dialSockaddr, listenSockaddr, wrapConnectedFd, type FdServer } from "../../../host/transport/fd-socket.js";
import { abortSocket } from "../../../host/transport/transport.js";
import { closed, openFdCount, portOfSockaddrIn, readAll, sockaddrIn, until } from "./helpers.js";

/**
 * The vsock path (koffi socket/connect/bind → libuv pipe handle →
 * net.Socket) exercised end to end over AF_INET, which this machine can
 * loop back: only the address family differs from production vsock.
 */
const linux = process.platform === "linux";

describe.skipIf(!linux)("fd-backed sockets (the vsock data path, over AF_INET)", () => {
  const servers: FdServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  function echoServer(options: { pauseOnConnect?: boolean; onSocket?: (s: net.Socket) => void } = {}): { server: FdServer; port: number; accepted: net.Socket[] } {
    const accepted: net.Socket[] = [];
    const server = listenSockaddr(AF_INET, sockaddrIn(0), "test", {
      backlog: 64,
      pauseOnConnect: options.pauseOnConnect ?? false,
      onConnection(socket, peer) {
        expect(peer).toBeInstanceOf(Uint8Array);
        accepted.push(socket);
        if (options.onSocket) return options.onSocket(socket);
        socket.pipe(socket);
      },
    });
    servers.push(server);
    return { server, port: portOfSockaddrIn(server.sockaddr), accepted };
  }

  it("dials, echoes random payloads both ways and half-closes", async () => {
    const { port } = echoServer();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 200_000 }), async (payload) => {
        const socket = await dialSockaddr(AF_INET, sockaddrIn(port), "tcp-over-ffi", { timeoutMs: 2000 });
        expect(socket).toBeInstanceOf(net.Socket);
        const received = readAll(socket);
        socket.end(payload);
        expect(Buffer.compare(await received, Buffer.from(payload))).toBe(0);
        await closed(socket);
      }),
      { numRuns: 15 },
    );
  });

  it("keeps the other direction open after a FIN (allowHalfOpen), both ways", async () => {
    const { port } = echoServer({
      onSocket(s) {
        // Server: read to the end, then answer, then close its side.
        void readAll(s).then((all) => s.end(Buffer.concat([Buffer.from("got:"), all])));
      },
    });
    const socket = await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 2000 });
    const reply = readAll(socket);
    socket.write("abc");
    socket.end();
    expect((await reply).toString()).toBe("got:abc");
  });

  it("starts accepted sockets paused when asked, so no byte is read before the caller resumes", async () => {
    let serverSide: net.Socket | undefined;
    const { port } = echoServer({ pauseOnConnect: true, onSocket: (s) => (serverSide = s) });
    const socket = await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 2000 });
    socket.write(randomBytes(1000));
    await until(() => serverSide !== undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(serverSide!.bytesRead).toBe(0);
    serverSide!.resume();
    await until(() => serverSide!.bytesRead === 1000);
    socket.destroy();
  });

  it("a refused dial is ERR_CONNECT_REFUSED with errno ECONNREFUSED, and leaks no fd", async () => {
    const { server, port } = echoServer();
    await server.close();
    servers.length = 0;
    const before = openFdCount();
    const err = await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ code: "ERR_CONNECT_REFUSED", errno: "ECONNREFUSED", action: "retry" });
    expect(openFdCount()).toBe(before);
  });

  it("a dial that never completes is ERR_CONNECT_TIMEOUT after timeoutMs, and leaks no fd", async () => {
    // A raw listener with backlog 0 that never accepts: once its queue is
    // full the kernel drops further SYNs, so those connects stay pending.
    const sys = loadSocketSys();
    const fd = sys.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0).rc;
    expect(sys.bind(fd, sockaddrIn(0)).rc).toBe(0);
    expect(sys.listen(fd, 0).rc).toBe(0);
    const port = portOfSockaddrIn(sys.getsockname(fd, 16).addr);
    const fillers: net.Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) fillers.push(await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 200 }).catch(() => new net.Socket()));
      const before = openFdCount();
      const start = performance.now();
      const err = await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 300 }).catch((e: unknown) => e);
      const elapsed = performance.now() - start;
      expect(err).toMatchObject({ code: "ERR_CONNECT_TIMEOUT" });
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(1500);
      expect(openFdCount()).toBe(before);
    } finally {
      for (const f of fillers) f.destroy();
      sys.close(fd);
    }
  });

  it("an aborted dial is ERR_CONNECT_ABORTED", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(dialSockaddr(AF_INET, sockaddrIn(1), "t", { timeoutMs: 1000, signal: controller.signal })).rejects.toMatchObject({ code: "ERR_CONNECT_ABORTED" });
  });

  it("an address family the kernel does not have is ERR_VSOCK_UNSUPPORTED (EAFNOSUPPORT), the real socket(2) path", async () => {
    // 255 ≥ AF_MAX: socket(2) answers EAFNOSUPPORT before looking anything up.
    const err = await dialSockaddr(255, new Uint8Array(16), "family-255", { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_VSOCK_UNSUPPORTED", errno: "EAFNOSUPPORT", action: "stop" });
    expect(() => listenSockaddr(255, new Uint8Array(16), "family-255", { backlog: 1, pauseOnConnect: false, onConnection() {} })).toThrow(
      expect.objectContaining({ code: "ERR_VSOCK_UNSUPPORTED" }),
    );
  });

  it("bind to a busy address is ERR_LISTEN_FAILED (EADDRINUSE)", () => {
    const { port } = echoServer();
    expect(() => listenSockaddr(AF_INET, sockaddrIn(port), "busy", { backlog: 1, pauseOnConnect: false, onConnection() {} })).toThrow(
      expect.objectContaining({ code: "ERR_LISTEN_FAILED", errno: "EADDRINUSE" }),
    );
  });

  it("abortSocket on a pipe-backed socket falls back to destroy (resetAndDestroy is TCP-only)", async () => {
    const { port, accepted } = echoServer();
    const socket = await dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 2000 });
    await until(() => accepted.length === 1);
    const peerClosed = closed(accepted[0]!);
    accepted[0]!.on("error", () => {});
    abortSocket(socket);
    expect(socket.destroyed).toBe(true);
    await peerClosed;
  });

  it("returns to the fd count it started with after many connections", async () => {
    const { port } = echoServer();
    const before = openFdCount();
    for (let round = 0; round < 3; round++) {
      const sockets = await Promise.all(Array.from({ length: 50 }, () => dialSockaddr(AF_INET, sockaddrIn(port), "t", { timeoutMs: 2000 })));
      await Promise.all(
        sockets.map(async (s) => {
          const reply = readAll(s);
          s.end("x");
          expect((await reply).toString()).toBe("x");
          await closed(s);
        }),
      );
    }
    await until(() => openFdCount() <= before, 2000, "fds back to baseline");
  });

  it("wrapConnectedFd refuses an fd that is not a socket and closes it", () => {
    expect(() => wrapConnectedFd(999_999)).toThrow(TransportError);
  });
});
