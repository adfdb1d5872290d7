/**
 * The read-only commands load only what they use: `egw inspect`,
 * `egw attest verify` and `egw receipt verify` never load the development
 * CA, whose @peculiar/x509 and reflect-metadata cost about 150 ms of
 * start-up (issue 15: 0.33–0.41 s before, about 0.19 s after, on this
 * machine, where a bare `node -e 0` takes 0.10 s). Checked in a fresh
 * process on the built CLI: reflect-metadata's polyfill defines
 * Reflect.getMetadata the moment it loads.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

function loadsDevCa(modules: string[]): string {
  const imports = modules.map((m) => `await import(${JSON.stringify(path.join(ROOT, "dist", m))});`).join(" ");
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", `${imports} console.log(typeof Reflect.getMetadata);`], { encoding: "utf8", timeout: 20_000 });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.trim();
}

describe("CLI start-up imports", () => {
  it("inspect, attest and receipt do not load the development CA", () => {
    expect(loadsDevCa(["infra/cli/inspect.js", "infra/cli/attest.js", "infra/cli/receipt.js"])).toBe("undefined");
  });

  it("control: the development CA does load it", () => {
    expect(loadsDevCa(["attestation/dev/dev-ca.js"])).toBe("function");
  });
});
