/**
 * The image allowlist (infra/deploy/image/allowlist.ts) on synthetic metafiles:
 * one hostile input per row, the way a new import would drag it in.
 */
import { describe, expect, it } from "vitest";
import { checkBundleInputs, ENCLAVE_ALLOWLIST, lockKeyOf } from "../../../../infra/deploy/image/allowlist.js";
import { BundleError } from "../../../../infra/deploy/image/errors.js";

/** A metafile's inputs: the enclave's usual files plus whatever the row adds. */
function inputs(...extra: string[]): Record<string, { bytes: number }> {
  const base = [
    "dist/enclave/bin.js",
    "dist/enclave/main.js",
    "dist/attestation/cose-sign1.js",
    "dist/host/transport/vsock.js",
    "node_modules/hono/dist/index.js",
    "node_modules/@aws-sdk/client-kms/dist-cjs/index.js",
    "node_modules/tsyringe/node_modules/tslib/tslib.es6.js",
  ];
  return Object.fromEntries([...base, ...extra].map((input, i) => [input, { bytes: 100 + i }]));
}

function refusal(fn: () => unknown): BundleError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BundleError);
    return err as BundleError;
  }
  throw new Error("expected a BundleError");
}

describe("checkBundleInputs", () => {
  it("accepts the enclave's folders, the listed host/transport files and the listed packages, as dist .js or source .ts", () => {
    const classified = checkBundleInputs({ ...inputs(), "enclave/boot.ts": { bytes: 7 }, "host/transport/ffi.ts": { bytes: 8 } });
    expect(classified.map((c) => [c.input, c.kind])).toEqual([
      ["dist/attestation/cose-sign1.js", "source"],
      ["dist/enclave/bin.js", "source"],
      ["dist/enclave/main.js", "source"],
      ["dist/host/transport/vsock.js", "source"],
      ["enclave/boot.ts", "source"],
      ["host/transport/ffi.ts", "source"],
      ["node_modules/@aws-sdk/client-kms/dist-cjs/index.js", "package"],
      ["node_modules/hono/dist/index.js", "package"],
      ["node_modules/tsyringe/node_modules/tslib/tslib.es6.js", "package"],
    ]);
    expect(classified.find((c) => c.input === "dist/enclave/main.js")).toMatchObject({ folder: "enclave/", bytes: 101 });
    expect(classified.find((c) => c.input.includes("tslib"))).toMatchObject({ name: "tslib", lockKey: "node_modules/tsyringe/node_modules/tslib" });
  });

  it.each([
    ["the local KMS (dev tooling)", "dist/infra/dev/local-kms.js"],
    ["the local KMS, from source", "infra/dev/local-kms.ts"],
    ["the host ingress relay", "host/ingress/relay.ts"],
    ["the host ingress relay, compiled", "dist/host/ingress/relay.js"],
    ["the host egress proxy", "dist/host/egress/proxy.js"],
    ["host provisioning", "dist/host/provision/send.js"],
    ["host capture", "dist/host/capture/capture-transport.js"],
    ["the host/transport barrel (not needed)", "dist/host/transport/index.js"],
    ["the egw CLI", "dist/infra/cli/egw.js"],
    ["release tooling", "dist/infra/release/manifest.js"],
    ["a test helper", "dist/test/helpers/cli.js"],
    ["bench", "dist/bench/run.js"],
    ["a file outside the repository", "../elsewhere/enclave/x.js"],
    ["a path that climbs out of an allowed folder", "enclave/../infra/dev/local-kms.ts"],
    ["an esbuild namespace", "(disabled):node_modules/x/y.js"],
    ["a top-level file", "dist/index.js"],
  ])("refuses %s (%s)", (_what, input) => {
    const err = refusal(() => checkBundleInputs(inputs(input)));
    expect(err.code).toBe("ERR_BUNDLE_NOT_ALLOWED");
    expect(err.message).toContain(input);
    expect(err.message).toContain("1 input(s)");
  });

  it.each([
    ["an unknown package", "node_modules/left-pad/index.js", "left-pad"],
    ["an unknown package nested under an allowed one", "node_modules/hono/node_modules/evil/index.js", "evil"],
    ["a package only named like an allowed scope", "node_modules/@aws-sdk-evil/x/index.js", "@aws-sdk-evil/x"],
    ["a dev-tool package", "node_modules/aws-cdk-lib/index.js", "aws-cdk-lib"],
    ["the host's pino", "node_modules/pino/pino.js", "pino"],
  ])("refuses %s", (_what, input, name) => {
    const err = refusal(() => checkBundleInputs(inputs(input)));
    expect(err.code).toBe("ERR_BUNDLE_NOT_ALLOWED");
    expect(err.message).toContain(`(package ${name})`);
  });

  it("names every offender in one error", () => {
    const err = refusal(() => checkBundleInputs(inputs("infra/dev/local-kms.ts", "host/ingress/relay.ts", "node_modules/left-pad/index.js")));
    expect(err.message).toContain("3 input(s)");
    for (const input of ["infra/dev/local-kms.ts", "host/ingress/relay.ts", "node_modules/left-pad/index.js"]) expect(err.message).toContain(input);
  });

  it("fails closed on an empty allowlist", () => {
    const err = refusal(() => checkBundleInputs(inputs(), { sourceFolders: [], sourceFiles: [], packages: [] }));
    expect(err.message).toContain("7 input(s)");
  });

  it("allows exactly the vsock files of host/transport and no other host/ folder", () => {
    expect(ENCLAVE_ALLOWLIST.sourceFolders).toEqual(["enclave/", "attestation/", "host/transport/codec/"]);
    const expected = ["endpoint", "errors", "fd-socket", "ffi", "pump", "transport", "vsock"].map((f) => `host/transport/${f}`);
    expect([...ENCLAVE_ALLOWLIST.sourceFiles].sort()).toEqual(expected);
  });

  it.each([
    ["node_modules/hono/dist/index.js", "node_modules/hono"],
    ["node_modules/@peculiar/x509/build/x509.es.js", "node_modules/@peculiar/x509"],
    ["node_modules/tsyringe/node_modules/tslib/tslib.es6.js", "node_modules/tsyringe/node_modules/tslib"],
    ["node_modules/a/node_modules/@s/b/x.js", "node_modules/a/node_modules/@s/b"],
    ["enclave/init/loopback.ts", undefined],
  ])("lockKeyOf(%s) = %s", (input, key) => {
    expect(lockKeyOf(input)).toBe(key);
  });
});
