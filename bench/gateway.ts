import { spawn, type ChildProcess } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { Agent, request } from "undici";
import { signReceipt } from "../attestation/receipt.js";
import { startHarness } from "../test/helpers/enclave-harness.js";
import { findRepoRoot } from "./repo-root.js";
import { fmtMs, summarize, type Summary } from "./stats.js";

/**
 * Added latency of the gateway: the same local mock upstream (its own
 * process, bench/mock-server.ts) measured
 * directly (HTTP, keep-alive) and through the gateway (TLS, keep-alive; the
 * gateway running as its own `egw enclave --dev` process, like production),
 * in one run. Also: streaming time-to-first-token, receipt signing cost,
 * and gateway memory per idle TLS connection.
 */
const TOKEN = "bench-token";

interface Target {
  origin: string;
  path: string;
  headers: Record<string, string>;
  agent: Agent;
}

async function once(t: Target, body: string, untilFirstByte: boolean): Promise<number> {
  const start = process.hrtime.bigint();
  const res = await request(`${t.origin}${t.path}`, { method: "POST", headers: t.headers, body, dispatcher: t.agent });
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
  let elapsed = 0;
  for await (const chunk of res.body) {
    if (untilFirstByte && elapsed === 0 && (chunk as Buffer).includes("data:")) elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return untilFirstByte ? elapsed : Number(process.hrtime.bigint() - start) / 1e6;
}

async function measure(t: Target, body: string, concurrency: number, total: number, firstByte: boolean): Promise<Summary> {
  const samples: number[] = [];
  let issued = 0;
  const worker = async () => {
    while (issued < total) {
      issued++;
      samples.push(await once(t, body, firstByte));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return summarize(samples);
}

/**
 * Starts a benchmark process (a dist/ script) and waits for the one JSON
 * line it prints when it is ready.
 */
async function spawnReady<T>(
  script: string,
  args: string[],
  what: string,
  options: { quietStderr?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<{ child: ChildProcess; ready: T }> {
  const child = spawn(process.execPath, [path.join(findRepoRoot(), script), ...args], {
    stdio: ["ignore", "pipe", options.quietStderr ? "ignore" : "inherit"],
    ...(options.env && { env: options.env }),
  });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.once("exit", (code) => reject(new Error(`${what} exited ${code}`)));
  });
  return { child, ready: JSON.parse(line) as T };
}

async function startGateway(configPath: string, stateDir: string): Promise<{ child: ChildProcess; port: number; certPem: string }> {
  const { child, ready } = await spawnReady<{ port: number }>(
    "dist/infra/cli/egw.js",
    ["enclave", "--dev", "--config", configPath, "--listen", "tcp://127.0.0.1:0", "--state-dir", stateDir],
    "gateway",
    { quietStderr: true, env: { ...process.env, EGW_LOG_LEVEL: "warn" } },
  );
  // Fetch the self-signed certificate to trust exactly it (the verifying client does this through attestation).
  const certPem = await new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: ready.port, rejectUnauthorized: false }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.end();
      resolve(`-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END CERTIFICATE-----\n`);
    });
    socket.once("error", reject);
  });
  return { child, port: ready.port, certPem };
}

/** The mock upstream in its own process (bench/mock-server.ts). */
async function startMock(): Promise<{ url: string; close(): Promise<void> }> {
  const { child, ready } = await spawnReady<{ url: string }>("dist/bench/mock-server.js", [], "mock server");
  return {
    url: ready.url,
    close: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function startFloor(upstream: string, mode: "sign" | "nosign"): Promise<{ child: ChildProcess; port: number }> {
  const { child, ready } = await spawnReady<{ port: number }>("dist/bench/floor-server.js", [upstream, mode], "floor server");
  return { child, port: ready.port };
}

export async function main(): Promise<void> {
  const mock = await startMock();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-bench-"));
  const configPath = path.join(dir, "config.json");
  fs.writeFileSync(
    configPath,
    JSON.stringify({
      version: 1,
      providers: [{ name: "mock", kind: "openai-compatible", baseUrl: mock.url }],
      models: { m: { provider: "mock", model: "mock-model" } },
      prefixRouting: false,
      egressAllowlist: [new URL(mock.url).host],
      clients: [{ name: "bench", tokenSha256: createHash("sha256").update(TOKEN).digest("hex"), models: ["*"], rateLimitPerMinute: 1_000_000 }],
      limits: { maxConcurrentRequests: 1024 },
    }),
  );
  const gw = await startGateway(configPath, path.join(dir, "state"));
  try {
    const direct: Target = {
      origin: new URL(mock.url).origin,
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", authorization: "Bearer x" },
      agent: new Agent({ connections: 64, keepAliveTimeout: 30_000 }),
    };
    const gateway: Target = {
      origin: `https://127.0.0.1:${gw.port}`,
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      agent: new Agent({ connections: 64, keepAliveTimeout: 30_000, connect: { ca: gw.certPem } }),
    };
    const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "benchmark prompt" }] });
    const stream = JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "benchmark prompt" }] });
    const directBody = body.replace('"m"', '"mock-model"');
    const directStream = stream.replace('"m"', '"mock-model"');

    // Warm-up: JIT, TLS sessions, pools.
    await measure(direct, directBody, 8, 400, false);
    await measure(gateway, body, 8, 400, false);

    console.log(`gateway added latency  (${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}; gateway = separate egw enclave process, TLS keep-alive)`);
    for (const c of [1, 32]) {
      const n = c === 1 ? 1500 : 6000;
      // Interleave direct and gateway rounds so drift on a shared VM hits both.
      const d = await measure(direct, directBody, c, n, false);
      const g = await measure(gateway, body, c, n, false);
      console.log(
        `  non-stream c=${String(c).padEnd(2)} direct p50 ${fmtMs(d.median)} p99 ${fmtMs(d.p99)} | gateway p50 ${fmtMs(g.median)} p99 ${fmtMs(g.p99)} | added p50 ${fmtMs(g.median - d.median)} p99 ${fmtMs(g.p99 - d.p99)}  (targets: p50 ≤ 0.5 ms, p99 ≤ 2 ms)`,
      );
      const ds = await measure(direct, directStream, c, n / 2, true);
      const gs = await measure(gateway, stream, c, n / 2, true);
      console.log(
        `  TTFT       c=${String(c).padEnd(2)} direct p50 ${fmtMs(ds.median)} p99 ${fmtMs(ds.p99)} | gateway p50 ${fmtMs(gs.median)} p99 ${fmtMs(gs.p99)} | added p50 ${fmtMs(gs.median - ds.median)}  (target ≤ 1 ms)`,
      );
      if (c !== 1) continue;
      // The floor: a minimal Node HTTPS pass-through to the same mock, with and
      // without a receipt (bench/floor-server.ts), measured the same way.
      for (const mode of ["sign", "nosign"] as const) {
        const floor = await startFloor(mock.url, mode);
        const target: Target = {
          ...gateway,
          origin: `https://127.0.0.1:${floor.port}`,
          agent: new Agent({ connections: 64, keepAliveTimeout: 30_000, connect: { rejectUnauthorized: false } }),
        };
        try {
          await measure(target, body, 8, 400, false);
          const d = await measure(direct, directBody, 1, 1500, false);
          const f = await measure(target, body, 1, 1500, false);
          console.log(
            `  floor (${mode === "sign" ? "minimal HTTPS pass-through + receipt" : "minimal HTTPS pass-through, no receipt"}) c=1 p50 ${fmtMs(f.median)} | added p50 ${fmtMs(f.median - d.median)} p99 ${fmtMs(f.p99 - d.p99)}`,
          );
        } finally {
          await target.agent.close();
          floor.child.kill("SIGTERM");
        }
      }
    }

    // Receipt signing cost (in this process; the same code runs in the gateway).
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const claims = {
      v: 2 as const,
      id: "egw-0123456789abcdef01234567",
      time: Date.now(),
      method: "POST",
      path: "/v1/chat/completions",
      surface: "chat.completions",
      model: "m",
      provider: "mock",
      status: 200,
      stream: false,
      bodyRead: true,
      requestSha256: new Uint8Array(32),
      responseSha256: new Uint8Array(32),
      upstream: { origin: "http://127.0.0.1:1", requestId: "req_0123456789abcdef", model: "m-2024" },
    };
    for (let i = 0; i < 500; i++) signReceipt(claims, privateKey);
    const signs: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const s = process.hrtime.bigint();
      signReceipt(claims, privateKey);
      signs.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    console.log(`  receipt signing (ES256, encode + sign): median ${fmtMs(summarize(signs).median)}  p99 ${fmtMs(summarize(signs).p99)}`);

    await direct.agent.close();
    await gateway.agent.close();
  } finally {
    gw.child.kill("SIGTERM");
    await mock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await memoryPerConnection();
}

/**
 * Memory per idle TLS connection: the gateway runs in this process (so its
 * heap can be collected before each reading, with --expose-gc), the idle
 * clients in a child process (so their memory is not counted).
 */
async function memoryPerConnection(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const h = await startHarness();
  const N = 1000;
  try {
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        gc?.();
        await new Promise((r) => setTimeout(r, 200));
      }
      return process.memoryUsage().rss;
    };
    const script = [
      'const tls = require("node:tls");',
      "const port = Number(process.argv[1]); const n = Number(process.argv[2]);",
      "const ca = process.env.EGW_BENCH_CA; const sockets = [];",
      "(async () => { for (let i = 0; i < n; i++) await new Promise((res, rej) => { const s = tls.connect({ host: '127.0.0.1', port, ca }, () => { sockets.push(s); res(); }); s.once('error', rej); }); process.send('open'); })().catch((e) => { console.error(e); process.exit(1); });",
      "process.on('message', () => { for (const s of sockets) s.destroy(); process.exit(0); });",
    ].join("\n");
    const before = await settle();
    const child = spawn(process.execPath, ["-e", script, String(h.enclave.server.port), String(N)], {
      env: { ...process.env, EGW_BENCH_CA: h.enclave.identity.tls.certPem },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    await new Promise<void>((resolve, reject) => {
      child.once("message", () => resolve());
      child.once("exit", (code) => reject(new Error(`client child exited ${code}`)));
    });
    const after = await settle();
    child.send("close");
    await new Promise((r) => child.once("exit", r));
    console.log(
      `  memory per idle TLS connection (gateway process RSS after GC${gc ? "" : "; run with --expose-gc for a clean reading"}): ${((after - before) / 1024 / N).toFixed(1)} KiB (${N} connections)`,
    );
  } finally {
    await h.close();
  }
}
