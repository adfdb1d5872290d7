import net from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { encodeProxyV2 } from "../../../host/ingress/proxy-protocol.js";
import type { GatewayBindings } from "../../../enclave/http/gateway-env.js";
import { createIdentity } from "../../../enclave/identity.js";
import { startHttpsServer, type RunningServer } from "../../../enclave/server.js";

/**
 * The server hands the relay's PROXY v2 address to the app explicitly, in
 * its bindings (no private socket fields): one address per connection.
 */
const limits = { maxHeaderBytes: 16 * 1024, maxConnections: 16 };
let running: RunningServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

function get(port: number, certPem: string, sourceAddress: string | null, requests = 1): Promise<string[]> {
  const raw = net.connect(port, "127.0.0.1");
  raw.write(
    sourceAddress === null
      ? encodeProxyV2({ command: "local", address: { family: "unspec" } })
      : encodeProxyV2({ command: "proxy", address: { family: "ipv4", sourceAddress, sourcePort: 40000, destinationAddress: "127.0.0.1", destinationPort: 443 } }),
  );
  const socket = tls.connect({ socket: raw, ca: certPem, servername: "localhost" });
  let text = "";
  for (let i = 0; i < requests; i++) socket.write(`GET / HTTP/1.1\r\nHost: x\r\n${i === requests - 1 ? "Connection: close\r\n" : ""}\r\n`);
  return new Promise((resolve) => {
    socket.on("data", (d: Buffer) => (text += d.toString()));
    socket.on("close", () => resolve([...text.matchAll(/relay=([^;]*);/g)].map((m) => m[1]!)));
  });
}

describe("startHttpsServer bindings", () => {
  it("each connection's requests see the address its own PROXY v2 header reported", async () => {
    const identity = await createIdentity({ now: () => new Date() });
    const seen: GatewayBindings[] = [];
    const app = {
      fetch(_request: Request, env: GatewayBindings) {
        seen.push(env);
        return new Response(`relay=${String(env.relayAddress)};`);
      },
    };
    running = await startHttpsServer({ app, identity, listen: { kind: "tcp", host: "127.0.0.1", port: 0 }, limits, proxyProtocol: true });
    const [a, b, local] = await Promise.all([
      get(running.port!, identity.tls.certPem, "192.0.2.1", 2),
      get(running.port!, identity.tls.certPem, "198.51.100.7"),
      get(running.port!, identity.tls.certPem, null),
    ]);
    expect(a).toEqual(["192.0.2.1", "192.0.2.1"]);
    expect(b).toEqual(["198.51.100.7"]);
    expect(local).toEqual(["null"]);
    expect(seen.every((env) => env.incoming !== undefined && env.outgoing !== undefined)).toBe(true);
  });

  it("without PROXY v2 the bindings carry no relay address", async () => {
    const identity = await createIdentity({ now: () => new Date() });
    const app = { fetch: (_r: Request, env: GatewayBindings) => new Response(`relay=${"relayAddress" in env ? "present" : "absent"};`) };
    running = await startHttpsServer({ app, identity, listen: { kind: "tcp", host: "127.0.0.1", port: 0 }, limits });
    const socket = tls.connect({ port: running.port!, host: "127.0.0.1", ca: identity.tls.certPem, servername: "localhost" });
    socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let text = "";
    await new Promise<void>((resolve) => {
      socket.on("data", (d: Buffer) => (text += d.toString()));
      socket.on("close", () => resolve());
    });
    expect(text).toContain("relay=absent;");
  });

  it("refuses PROXY v2 on a unix listener, where no endpoint ties an address to its TLS connection", async () => {
    const identity = await createIdentity({ now: () => new Date() });
    const app = { fetch: () => new Response("") };
    await expect(startHttpsServer({ app, identity, listen: { kind: "unix", path: "/tmp/egw-never.sock" }, limits, proxyProtocol: true })).rejects.toThrow(/tcp listener/);
  });
});
