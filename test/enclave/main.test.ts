/**
 * The enclave program's own front door (enclave/main.ts run(), what the
 * image's enclave/bin.ts calls) and `egw enclave` delegating to it: help,
 * usage errors and typed errors give the same exit codes both ways, and a
 * message without a stack. Booting is covered by the e2e suites
 * (test/infra/provision-e2e.test.ts, enclave-vsock.test.ts) and by the
 * bundle test, which runs the bundled program.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ENCLAVE_PROGRAM_USAGE, main, run } from "../../enclave/main.js";
import { EnclaveUsageError } from "../../enclave/main-context.js";
import { run as egw } from "../../infra/cli/main.js";
import { captureStream, cliContext } from "../helpers/cli-process.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-enclave-main-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const now = () => new Date("2026-01-01T00:00:00Z");

async function call(fn: typeof run, args: string[]) {
  const out = captureStream();
  const err = captureStream();
  const code = await fn(args, cliContext(out.stream, err.stream, dir, now));
  return { code, stdout: out.text(), stderr: err.text() };
}
const viaEgw = (args: string[]) => call((a, ctx) => egw(["enclave", ...a], ctx), args);

describe("enclave program run()", () => {
  it("prints its usage for --help and exits 0", async () => {
    const r = await call(run, ["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(ENCLAVE_PROGRAM_USAGE);
    // Every flag of `egw help enclave` is there.
    const flags = ["--trust-policy", "--operations", "--listen", "--dev", "--egress-proxy", "--sealed-secrets", "--provision-listen", "--bring-up-loopback"];
    for (const flag of flags) expect(r.stdout).toContain(flag);
  });

  it.each([
    [["--no-such-flag"], /no-such-flag/],
    [["extra"], /no positional arguments/],
    [["--listen"], /--listen/],
  ])("refuses %j with exit 2 and a one-line message", async (args, message) => {
    const r = await call(run, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^enclave: /);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stdout).toBe("");
  });

  it("refuses a missing trust policy or operations file (fail closed: no config, no gateway)", async () => {
    const ops = path.join(dir, "absent-ops.json");
    const r = await call(run, [
      "--dev",
      "--state-dir",
      path.join(dir, "state"),
      "--trust-policy",
      path.join(dir, "absent.json"),
      "--operations",
      ops,
      "--listen",
      "tcp://127.0.0.1:0",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^enclave: .*absent\.json/);
    expect(r.stdout).not.toContain("ready");
  });

  it("main() throws the enclave's usage error for the CLI to map", async () => {
    const out = captureStream();
    await expect(main(["--bogus"], cliContext(out.stream, out.stream, dir, now))).rejects.toBeInstanceOf(EnclaveUsageError);
  });
});

describe("egw enclave delegates to the enclave program", () => {
  it("maps its usage errors to the CLI's: exit 2, prefixed with the command", async () => {
    const r = await viaEgw(["--no-such-flag"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^egw enclave: .*no-such-flag/);
  });

  it("refuses the same config input the same way", async () => {
    const args = ["--dev", "--state-dir", path.join(dir, "state"), "--trust-policy", path.join(dir, "absent.json"), "--operations", path.join(dir, "absent.json")];
    const [own, cli] = [await call(run, args), await viaEgw(args)];
    expect(cli.code).toBe(own.code);
    expect(cli.stderr.replace(/^egw enclave: /, "")).toBe(own.stderr.replace(/^enclave: /, ""));
  });
});
