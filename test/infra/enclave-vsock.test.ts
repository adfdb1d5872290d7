import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";

/**
 * `egw enclave` with vsock endpoints, the production shape on Nitro: the
 * gateway serves loopback TCP and the CLI bridges vsock to it (inbound) and
 * loopback to the parent's egress proxy over vsock (outbound). This kernel
 * has no vsock loopback, so no byte crosses vsock here; what is checked is
 * that the bridges come up and are wired to the gateway.
 */
const EGW = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../dist/infra/cli/egw.js");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-vsock-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function startEnclave(args: string[]): Promise<{ line: Record<string, unknown> | null; code: number | null; stderr: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [EGW, "enclave", "--dev", "--state-dir", path.join(dir, "state"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    let out = "";
    const stop = () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null) return r();
        child.once("exit", () => r());
        child.kill("SIGTERM");
      });
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve({ line: JSON.parse(out.slice(0, out.indexOf("\n"))), code: null, stderr, stop });
    });
    child.once("exit", (code) => resolve({ line: null, code, stderr, stop }));
  });
}

const token = "vsock-test-token";
const trustPolicy = path.join(dir, "trust-policy.json");
const operations = path.join(dir, "operations.json");
// The enclave derives api.example.com:443 as its only egress from this policy.
fs.writeFileSync(
  trustPolicy,
  JSON.stringify({
    version: 1,
    providers: [
      { name: "local", kind: "local" },
      { name: "remote", kind: "openai-compatible", baseUrl: "https://api.example.com/v1" },
    ],
    models: { local: { provider: "local", model: "local" }, remote: { provider: "remote", model: "m" } },
    identity: { mode: "ephemeral" },
  }),
);
fs.writeFileSync(
  operations,
  JSON.stringify({
    version: 1,
    clients: [{ name: "t", tokenSha256: createHash("sha256").update(token).digest("hex"), models: ["*"] }],
    limits: { maxRetries: 0, connectTimeoutMs: 2000 },
  }),
);
const files = ["--trust-policy", trustPolicy, "--operations", operations];

describe("egw enclave on vsock endpoints", () => {
  it("listens on vsock through a bridge to the HTTPS gateway, or says clearly that vsock is missing", async () => {
    if (!fs.existsSync(EGW)) throw new Error("run npm run build first");
    const r = await startEnclave([...files, "--listen", "vsock://4294967295:4294967295"]);
    try {
      if (r.line === null) {
        // A kernel without AF_VSOCK: the failure must say so.
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/VSOCK/i);
        return;
      }
      expect(r.line.vsock).toMatch(/^vsock:\/\/4294967295:\d+$/);
      // The gateway behind the bridge serves HTTPS on loopback.
      const res = await request(`https://127.0.0.1:${String(r.line.port)}/healthz`, { dispatcher: new Agent({ connect: { rejectUnauthorized: false } }) });
      expect(res.statusCode).toBe(200);
      await res.body.text();
    } finally {
      await r.stop();
    }
  });

  it("sends egress through a loopback bridge to vsock://<cid>:<port>; an unreachable parent proxy is a 502", async () => {
    const r = await startEnclave([...files, "--listen", "tcp://127.0.0.1:0", "--egress-proxy", "vsock://2:9"]);
    try {
      expect(r.line, r.stderr).not.toBeNull();
      const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
      const call = async (model: string) => {
        const res = await request(`https://127.0.0.1:${String(r.line!.port)}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ model, messages: [{ role: "user", content: "x" }] }),
          dispatcher,
        });
        return { status: res.statusCode, body: (await res.body.json()) as { error?: { code: string } } };
      };
      expect((await call("local")).status).toBe(200); // no egress needed
      const remote = await call("remote");
      expect(remote.status).toBe(502);
      expect(remote.body.error?.code).toBe("upstream_unreachable");
    } finally {
      await r.stop();
    }
  });
});
