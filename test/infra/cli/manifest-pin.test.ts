/**
 * `egw verify` and `egw proxy` with a pinned manifest signing key, against
 * the real gateway (test harness on 127.0.0.1, simulated NSM with PCR0 =
 * 0x11…). A refused signature must stop them before anything is dialled;
 * unpinned use is unchanged.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../../../infra/cli/context.js";
import { run } from "../../../infra/cli/main.js";
import { proxyCommand } from "../../../infra/cli/proxy.js";
import { configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST, removeTempDirs, tempDir } from "../../attestation/client/helpers.js";

let h: Harness;
let dir: string;
let origin: string;
let keyId: string;
const file = (name: string) => path.join(dir, name);
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

function context(): { ctx: CliContext; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), stdin: Readable.from([]), cwd: dir, now: () => new Date(), env: {} };
  return { ctx, out: () => out, err: () => err };
}

async function egw(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { ctx, out, err } = context();
  const code = await run(argv, ctx);
  return { code, stdout: out(), stderr: err() };
}

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000 } }) });
  origin = new URL(h.baseURL).origin;
  dir = tempDir();
  fs.writeFileSync(file("dev-root.pem"), h.ca.rootPem);
  const manifest = {
    version: 1,
    measurements: [
      {
        label: "egw 0.1.0 test build",
        pcrs: { "0": Buffer.from(PCR0_TEST).toString("hex") },
        release: { version: "0.1.0", gitCommit: COMMIT, imageDigest: `sha256:${"ab".repeat(32)}`, builtAt: "2026-11-25T12:00:00Z" },
      },
    ],
    trust: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" } },
    configSha256: [Buffer.from(h.enclave.configSha256).toString("hex")],
  };
  fs.writeFileSync(file("m.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  const key = generateKeyPairSync("ec", { namedCurve: "P-384" });
  fs.writeFileSync(file("signing.key"), key.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  fs.writeFileSync(file("signing.pub"), key.publicKey.export({ type: "spki", format: "pem" }) as string);
  keyId = createHash("sha256")
    .update(key.publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
  const signed = await egw(["manifest", "sign", "--key", "signing.key", "m.json"]);
  expect(signed.code).toBe(0);
  const other = generateKeyPairSync("ec", { namedCurve: "P-384" });
  fs.writeFileSync(file("other.pub"), other.publicKey.export({ type: "spki", format: "pem" }) as string);
});
afterAll(async () => {
  await h?.close();
  removeTempDirs();
});

describe("egw verify with a pinned manifest signing key", () => {
  it("accepts, says the manifest's signature was verified and by which key, and prints the matched release", async () => {
    const r = await egw(["verify", origin, "--policy", "m.json", "--dev-root", "dev-root.pem", "--policy-pubkey-sha256", keyId]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`signature verified: key sha256:${keyId}`);
    expect(r.stdout).toContain("ACCEPTED attested enclave");
    expect(r.stdout).toContain(`release 0.1.0, commit ${COMMIT}, image sha256:${"ab".repeat(32)}, built 2026-11-25T12:00:00Z`);
    const json = await egw(["verify", origin, "--policy", "m.json", "--dev-root", "dev-root.pem", "--policy-pubkey", "signing.pub", "--json"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ accepted: true, manifestSignature: { keySha256: keyId }, release: { version: "0.1.0", gitCommit: COMMIT } });
  });

  it("unpinned use works as before (and says the manifest was not signature-checked)", async () => {
    const r = await egw(["verify", origin, "--policy", "m.json", "--dev-root", "dev-root.pem"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("unsigned (no signing key pinned)");
    expect(r.stdout).toContain("release 0.1.0");
  });

  it("refuses, exit 1, without dialling: missing signature, another key, a tampered manifest", async () => {
    fs.copyFileSync(file("m.json"), file("nosig.json"));
    // One more newline: still the same JSON to a parser, not the same bytes to the signature.
    fs.writeFileSync(file("tampered.json"), `${fs.readFileSync(file("m.json"), "utf8")}\n`);
    fs.copyFileSync(file("m.json.sig"), file("tampered.json.sig"));
    // A listener that only counts: the refused runs must never connect to it.
    let connections = 0;
    const counter = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => counter.listen(0, "127.0.0.1", resolve));
    const target = `https://127.0.0.1:${(counter.address() as net.AddressInfo).port}`;
    for (const argv of [
      ["--policy", "nosig.json", "--policy-pubkey-sha256", keyId],
      ["--policy", "m.json", "--policy-pubkey", "other.pub"],
      ["--policy", "tampered.json", "--policy-pubkey-sha256", keyId],
      ["--policy", "m.json", "--policy-pubkey-sha256", keyId, "--policy-sig", "tampered.json"],
    ]) {
      const r = await egw(["verify", target, ...argv, "--dev-root", "dev-root.pem"]);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stdout).toContain("REJECTED ERR_MANIFEST_SIGNATURE");
    }
    const proxied = await egw(["proxy", "--upstream", target, "--policy", "nosig.json", "--policy-pubkey-sha256", keyId, "--listen", "127.0.0.1:0"]);
    expect(proxied.code).toBe(1);
    await new Promise<void>((resolve) => counter.close(() => resolve()));
    expect(connections).toBe(0);
    const json = await egw(["verify", origin, "--policy", "nosig.json", "--policy-pubkey-sha256", keyId, "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ accepted: false, code: "ERR_MANIFEST_SIGNATURE", action: "reject" });
  });

  it("usage: a pin needs --policy, --policy-sig needs a pin, an unreadable pin is not 'no pin'", async () => {
    for (const argv of [
      ["--policy-pubkey-sha256", keyId],
      ["--policy", "m.json", "--policy-sig", "m.json.sig"],
      ["--policy", "m.json", "--policy-pubkey", "missing.pem"],
      ["--policy", "m.json", "--policy-pubkey-sha256", "xyz"],
    ]) {
      const r = await egw(["verify", origin, ...argv]);
      expect(r.code, argv.join(" ")).toBe(2);
    }
  });
});

describe("egw proxy with a pinned manifest signing key", () => {
  it("refuses to start on a bad signature (exit 1), starts on a good one", async () => {
    const refused = await egw(["proxy", "--upstream", origin, "--policy", "m.json", "--policy-pubkey", "other.pub", "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("REJECTED ERR_MANIFEST_SIGNATURE");
    expect(refused.stdout).not.toContain("listening");

    const { ctx, out, err } = context();
    const abort = new AbortController();
    const done = proxyCommand(["--upstream", origin, "--policy", "m.json", "--policy-pubkey-sha256", keyId, "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"], ctx, {
      signal: abort.signal,
    });
    for (let i = 0; i < 400 && !/listening on/.test(out()); i++) await new Promise((r) => setTimeout(r, 10));
    expect(out()).toContain(`signature verified: key sha256:${keyId}`);
    expect(err()).toContain("release 0.1.0");
    abort.abort();
    expect(await done).toBe(0);
  });
});
