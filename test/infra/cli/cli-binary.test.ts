/**
 * The built `egw` executable, spawned the way a user runs it:
 * `node dist/infra/cli/egw.js …` from the repository root.
 *
 * `npm test` builds before running vitest. Real AWS documents are always
 * verified with `--at`; a development document is verified at its own
 * timestamp, read back with `inspect --json`, so no result depends on when
 * the test runs.
 */
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNitroFixtures, NITRO_DIR, type NitroFixture } from "../../helpers/fixtures.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const EGW = path.join(REPO_ROOT, "dist/infra/cli/egw.js");
const TIMEOUT_MS = 20_000;

const fixtures = loadNitroFixtures();
const PROD = fixtures.find((f) => f.name === "evervault-2022-10-13-prod-signed-eif")!;
const DEBUG = fixtures.find((f) => f.name === "evervault-2023-09-18-debug")!;
const fixturePath = (fx: NitroFixture) => path.join(NITRO_DIR, `${fx.name}.cbor`);
const atOf = (fx: NitroFixture) => new Date(fx.timestampMs).toISOString();
const pcrArgs = (pcrs: Record<string, string>) => Object.entries(pcrs).flatMap(([i, hex]) => ["--pcr", `${i}=${hex}`]);

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

function egw(args: string[], opts: { input?: Buffer | string; env?: Record<string, string> } = {}): Spawned {
  const r: SpawnSyncReturns<Buffer> = spawnSync(process.execPath, [EGW, ...args], {
    cwd: REPO_ROOT,
    input: opts.input ?? "",
    timeout: TIMEOUT_MS,
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
  });
  if (r.error) throw r.error;
  if (r.signal) throw new Error(`egw ${args.join(" ")} was killed by ${r.signal} (timeout ${TIMEOUT_MS} ms?)\n${r.stderr.toString("utf8")}`);
  return { code: r.status, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8"), stdoutBytes: r.stdout };
}

let tmp: string;

beforeAll(() => {
  if (!fs.existsSync(EGW)) {
    throw new Error(`${path.relative(REPO_ROOT, EGW)} is missing: run "npm run build" first (npm test does it before vitest).`);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "egw-bin-"));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("package.json bin", () => {
  it("egw and enclave-gateway point at an existing node script", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { bin?: Record<string, string> };
    expect(pkg.bin).toBeDefined();
    for (const name of ["egw", "enclave-gateway"]) {
      const target = pkg.bin?.[name];
      expect(target, `bin.${name}`).toBeTypeOf("string");
      const file = path.resolve(REPO_ROOT, target!);
      expect(fs.existsSync(file), `${target} exists (npm run build)`).toBe(true);
      expect(fs.readFileSync(file, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
    }
    expect(path.resolve(REPO_ROOT, pkg.bin!.egw!)).toBe(EGW);
  });
});

describe("egw executable", { timeout: 60_000 }, () => {
  it("help exits 0 and prints usage", () => {
    const r = egw(["help", "attest"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("egw attest verify <file|->");
    expect(r.stderr).toBe("");
  });

  it("an unknown command exits 2", () => {
    const r = egw(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "frobnicate"');
  });

  it("inspect <fixture> --at exits 0 and explains it", () => {
    const r = egw(["inspect", fixturePath(DEBUG), "--at", atOf(DEBUG)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(DEBUG.meta.decoded.module_id);
    expect(r.stdout).toContain("DEBUG");
    expect(r.stdout).toContain("[root] C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves");
    expect(r.stdout).toContain("PASSED");
  });

  it("inspect of junk exits 1", () => {
    const junk = path.join(tmp, "junk.bin");
    fs.writeFileSync(junk, Buffer.from([0x84, 0x00, 0xff]));
    const r = egw(["inspect", junk]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^NOT A VALID DOCUMENT ERR_/);
  });

  it("attest verify accepts a real document (exit 0)", () => {
    const r = egw(["attest", "verify", fixturePath(PROD), "--at", atOf(PROD), ...pcrArgs(PROD.pcrs)]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ACCEPTED /);
  });

  it("attest verify rejects with the code on stdout (exit 1)", () => {
    const r = egw(["attest", "verify", fixturePath(DEBUG), "--at", atOf(DEBUG)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_DEBUG_MODE\b/);

    const json = egw(["attest", "verify", fixturePath(PROD), "--at", atOf(PROD), "--pcr", `0=${"00".repeat(48)}`, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ accepted: false, code: "ERR_PCR_MISMATCH" });
  });

  it("attest verify usage problems exit 2", () => {
    const missing = egw(["attest", "verify", path.join(tmp, "missing.cbor"), "--at", atOf(PROD)]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read \(ENOENT\)/);
    expect(missing.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const badFlag = egw(["attest", "verify", fixturePath(PROD), "--at", "not-a-time"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stdout).toBe("");
  });

  it("reads a document piped through stdin", () => {
    const raw = egw(["attest", "verify", "-", "--at", atOf(PROD), ...pcrArgs(PROD.pcrs)], { input: Buffer.from(PROD.bytes) });
    expect(raw.code).toBe(0);
    expect(raw.stdout).toMatch(/^ACCEPTED /);

    const b64 = egw(["inspect", "-", "--json", "--at", atOf(PROD)], { input: `${Buffer.from(PROD.bytes).toString("base64")}\n` });
    expect(b64.code).toBe(0);
    expect(JSON.parse(b64.stdout)).toMatchObject({ decoded: true, input: "base64", moduleId: PROD.meta.decoded.module_id });
  });

  it("attest issue --dev --out, then verify with --root <state-dir>/dev-root.pem", () => {
    const stateDir = path.join(tmp, "state");
    const out = path.join(tmp, "d.cbor");
    const nonce = "feedface".repeat(8);
    const issued = egw(["attest", "issue", "--dev", "--state-dir", stateDir, "--out", out, "--nonce", nonce]);
    expect(issued.code, issued.stderr).toBe(0);
    expect(issued.stdoutBytes.length).toBe(0);
    expect(issued.stderr).toContain(path.join(stateDir, "dev-root.pem"));
    expect(fs.statSync(out).size).toBeGreaterThan(1000);

    // Verify at the document's own timestamp, not at the wall clock.
    const view = JSON.parse(egw(["inspect", out, "--json", "--root", path.join(stateDir, "dev-root.pem")]).stdout);
    const at = new Date(view.timestampMs as number).toISOString();
    const root = path.join(stateDir, "dev-root.pem");

    const ok = egw(["attest", "verify", out, "--at", at, "--root", root, "--nonce", nonce]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^ACCEPTED .*NOT the AWS root/);

    const untrusted = egw(["attest", "verify", out, "--at", at, "--nonce", nonce]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stdout).toMatch(/^REJECTED ERR_ROOT_UNTRUSTED\b/);

    // The same document piped through stdin.
    const piped = egw(["attest", "verify", "-", "--at", at, "--root", root, "--nonce", nonce], { input: fs.readFileSync(out) });
    expect(piped.code).toBe(0);

    const devRoot = egw(["attest", "dev-root", "--state-dir", stateDir]);
    expect(devRoot.code).toBe(0);
    expect(devRoot.stdout.trim()).toBe(fs.readFileSync(root, "utf8").trim());
  });

  it("attest issue --dev writes the document to a piped stdout", () => {
    const stateDir = path.join(tmp, "state-stdout");
    const issued = egw(["attest", "issue", "--dev", "--state-dir", stateDir]);
    expect(issued.code, issued.stderr).toBe(0);
    expect([0x84, 0xd2]).toContain(issued.stdoutBytes[0]);
    const view = egw(["inspect", "-", "--json", "--root", path.join(stateDir, "dev-root.pem")], { input: issued.stdoutBytes });
    expect(view.code).toBe(0);
    expect(JSON.parse(view.stdout)).toMatchObject({ decoded: true, input: "cbor", debugMode: false });
  });

  it("attest issue without --dev exits 2", () => {
    const r = egw(["attest", "issue", "--state-dir", path.join(tmp, "unused")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("needs --dev");
  });

  // A bare local time would make the verdict depend on TZ, so --at needs Z or an offset.
  it("--at without an offset is a usage error in every time zone", () => {
    const args = ["attest", "verify", fixturePath(PROD), "--at", "2022-10-13T08:58:02"];
    const utc = egw(args, { env: { TZ: "UTC" } });
    const ny = egw(args, { env: { TZ: "America/New_York" } });
    expect(utc.code).toBe(2);
    expect(ny.code).toBe(2);
    expect(utc.stderr).toContain("must be an ISO 8601 instant");
  });
});
