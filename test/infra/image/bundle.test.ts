/**
 * The enclave bundle (infra/image/bundle.ts), built here from the source
 * entry point (infra/cli/egw.ts) with the options the image build uses on
 * the tsc output. Checks: it runs under this machine's Node (20) from a
 * folder outside the repository, so every import is either inside the
 * bundle or one of the copied natives; two builds are byte-identical; and
 * it refuses devDependencies, unlocked packages and missing natives.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUNDLE_FILE, bundleEnclave, lockKeyOf, type BundleReport } from "../../../infra/image/bundle.js";
import { BundleError } from "../../../infra/image/errors.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const NODE_MODULES = path.join(REPO_ROOT, "node_modules");
const ENTRY = "infra/cli/egw.ts";
const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };

let dir: string;
let app: string;
let report: BundleReport;
let second: BundleReport;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-bundle-"));
  app = path.join(dir, "a", "app");
  // Side by side, into folders at different depths: the output must not depend on where it is written.
  [report, second] = await Promise.all([
    bundleEnclave({ repoRoot: REPO_ROOT, entry: ENTRY, outDir: app, nodeModules: NODE_MODULES }),
    bundleEnclave({ repoRoot: REPO_ROOT, entry: ENTRY, outDir: path.join(dir, "b", "c", "app"), nodeModules: NODE_MODULES }),
  ]);
}, 60_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args: string[], cwd = dir) {
  return spawnSync(process.execPath, [path.join(app, BUNDLE_FILE), ...args], { cwd, encoding: "utf8", timeout: 20_000, env: { PATH: process.env.PATH ?? "" } });
}

/** "<sha256>  <relative path>" for every file under root, sorted: equal trees, equal lists. */
function treeListing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else out.push(`${createHash("sha256").update(fs.readFileSync(path.join(root, child))).digest("hex")}  ${child}`);
    }
  };
  walk("");
  return out.sort();
}

async function refusal(promise: Promise<unknown>): Promise<BundleError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BundleError);
  return err as BundleError;
}

describe("the enclave bundle", () => {
  it("is one ES module plus package.json and the native packages", () => {
    expect(fs.readdirSync(app).sort()).toEqual(["dist", "node_modules", "package.json"]);
    expect(fs.readdirSync(path.join(app, "dist"))).toEqual(["egw.mjs"]);
    expect(JSON.parse(fs.readFileSync(path.join(app, "package.json"), "utf8"))).toMatchObject({ name: "enclave-gateway", private: true, type: "module" });
    expect(report.natives).toContain("koffi");
    expect(report.natives).toContain("cbor-extract");
    expect(report.natives.some((n) => n.startsWith("@koromix/koffi-"))).toBe(true);
    // Only natives and what they need: no pure-JS production package is copied.
    expect(report.natives.filter((n) => !/^(koffi|cbor-extract|@koromix\/|@cbor-extract\/|node-gyp-build-optional-packages|detect-libc)/.test(n))).toEqual([]);
  });

  it("bundles production packages only", () => {
    expect(report.packages.some((p) => p.startsWith("hono@"))).toBe(true);
    for (const p of report.packages) {
      const name = p.slice(0, p.lastIndexOf("@"));
      const entry = lock.packages[`node_modules/${name}`] ?? Object.entries(lock.packages).find(([k]) => k.endsWith(`/node_modules/${name}`))?.[1];
      expect(entry, p).toBeDefined();
      expect(entry!.dev, p).not.toBe(true);
    }
  });

  it("is reproducible: a second build gives the same bytes in every file", () => {
    expect(second.sha256).toBe(report.sha256);
    expect(treeListing(path.join(dir, "b", "c", "app"))).toEqual(treeListing(app));
  });

  it(`runs \`help\` under this machine's Node (${process.version}) from outside the repository`, () => {
    const r = run(["help"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("egw (enclave-gateway)");
    expect(r.stdout).toContain("enclave --config");
  });

  it("issues and inspects a development attestation document", () => {
    const state = path.join(dir, "state");
    const doc = path.join(dir, "doc.cbor");
    const issued = run(["attest", "issue", "--dev", "--state-dir", state, "--out", doc]);
    expect(issued.status, issued.stderr).toBe(0);
    const root = run(["attest", "dev-root", "--state-dir", state]);
    fs.writeFileSync(path.join(dir, "dev-root.pem"), root.stdout);
    const inspected = run(["inspect", doc, "--root", path.join(dir, "dev-root.pem"), "--json"]);
    expect(inspected.status, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout)).toBeTypeOf("object");
  });

  it("loads koffi and cbor-extract from the copies next to the bundle", () => {
    const script = `
      import { createRequire } from "node:module";
      const require = createRequire(${JSON.stringify(path.join(app, BUNDLE_FILE))});
      const koffi = require("koffi");
      const libc = koffi.load("libc.so.6");
      const getpid = libc.func("int getpid(void)");
      const cbor = require("cbor-extract");
      console.log(JSON.stringify({ koffi: require.resolve("koffi"), cbor: require.resolve("cbor-extract"), pid: getpid(), extract: typeof cbor.extractStrings }));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: dir, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
    expect(r.stderr).toBe("");
    const out = JSON.parse(r.stdout) as { koffi: string; cbor: string; pid: number; extract: string };
    expect(out.koffi.startsWith(path.join(app, "node_modules") + path.sep)).toBe(true);
    expect(out.cbor.startsWith(path.join(app, "node_modules") + path.sep)).toBe(true);
    expect(out.pid).toBeGreaterThan(0);
    expect(out.extract).toBe("function");
  });
});

describe("bundle refusals", () => {
  it("refuses a devDependency reaching the bundle", async () => {
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: "test/infra/image/fixtures/dev-dependency-entry.ts", outDir: path.join(dir, "dev"), nodeModules: NODE_MODULES }));
    expect(err.code).toBe("ERR_BUNDLE_DEV_DEPENDENCY");
    expect(err.message).toContain("node_modules/fast-check");
    expect(fs.existsSync(path.join(dir, "dev")), "nothing is written when refused").toBe(false);
  });

  it("refuses a bundled package that the lockfile does not list", async () => {
    const trimmed = { ...lock, packages: Object.fromEntries(Object.entries(lock.packages).filter(([k]) => k !== "node_modules/hono")) };
    const lockfile = path.join(dir, "trimmed-lock.json");
    fs.writeFileSync(lockfile, JSON.stringify(trimmed));
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: ENTRY, outDir: path.join(dir, "unlocked"), nodeModules: NODE_MODULES, lockfile }));
    expect(err.code).toBe("ERR_BUNDLE_UNLOCKED_PACKAGE");
    expect(err.message).toContain("node_modules/hono");
  });

  it("refuses when the natives are not installed", async () => {
    const empty = path.join(dir, "empty-project", "node_modules");
    fs.mkdirSync(empty, { recursive: true });
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: ENTRY, outDir: path.join(dir, "nonatives"), nodeModules: empty }));
    expect(err.code).toBe("ERR_BUNDLE_NATIVE_MISSING");
    expect(err.message).toContain("koffi");
  });

  it("refuses an output folder that is not empty", async () => {
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: ENTRY, outDir: app, nodeModules: NODE_MODULES }));
    expect(err.code).toBe("ERR_BUNDLE_OPTIONS");
  });

  it("reports esbuild's errors as ERR_BUNDLE_BUILD", async () => {
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: "test/infra/image/fixtures/missing-import.mjs", outDir: path.join(dir, "broken"), nodeModules: NODE_MODULES }));
    expect(err.code).toBe("ERR_BUNDLE_BUILD");
    expect(err.message).toContain("does-not-exist.mjs");
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
