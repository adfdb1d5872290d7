import fs from "node:fs";
import type net from "node:net";

/** struct sockaddr_in for 127.0.0.1:port (family host order, port network order). */
export function sockaddrIn(port: number, address: [number, number, number, number] = [127, 0, 0, 1]): Uint8Array {
  const bytes = Buffer.alloc(16);
  bytes.writeUInt16LE(2, 0);
  bytes.writeUInt16BE(port, 2);
  bytes.set(address, 4);
  return new Uint8Array(bytes);
}

export function portOfSockaddrIn(bytes: Uint8Array): number {
  return Buffer.from(bytes).readUInt16BE(2);
}

export function openFdCount(): number {
  return fs.readdirSync("/proc/self/fd").length;
}

/** Reads until the peer ends; resolves with everything read. */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.once("end", () => resolve(Buffer.concat(chunks)));
    socket.once("error", reject);
  });
}

export function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed && socket.closed ? resolve() : socket.once("close", () => resolve())));
}

export function until(predicate: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}
