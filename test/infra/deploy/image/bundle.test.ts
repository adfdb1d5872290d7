/**
 * The enclave bundle (infra/deploy/image/bundle.ts), built here from the source
 * entry point of the enclave program (enclave/bin.ts) with the options the
 * image build uses on the tsc output. Checks: it passes the image allowlist
 * and says in inputs.json what went in; it runs the enclave under this
 * machine's Node (20) from a folder outside the repository, so every import
 * is either inside the bundle or one of the copied natives; two builds are
 * byte-identical; and it refuses the egw CLI, devDependencies, unlocked
 * packages and missing natives.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { ENCLAVE_ALLOWLIST } from "../../../../infra/deploy/image/allowlist.js";
import { BUNDLE_FILE, bundleEnclave, type BundleReport } from "../../../../infra/deploy/image/bundle.js";
import { BundleError } from "../../../../infra/deploy/image/errors.js";
import { INPUTS_FORMAT, type InputsReport } from "../../../../infra/deploy/image/inputs-report.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const NODE_MODULES = path.join(REPO_ROOT, "node_modules");
const ENTRY = "enclave/bin.ts";
type LockEntry = { dev?: boolean; version?: string };
const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };

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
      else
        out.push(
          `${createHash("sha256")
            .update(fs.readFileSync(path.join(root, child)))
            .digest("hex")}  ${child}`,
        );
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
  it("is one ES module plus package.json, inputs.json and the native packages", () => {
    expect(fs.readdirSync(app).sort()).toEqual(["dist", "inputs.json", "node_modules", "package.json"]);
    expect(fs.readdirSync(path.join(app, "dist"))).toEqual(["enclave.mjs"]);
    expect(report.inputs).toBe(path.join(app, "inputs.json"));
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

  it(`runs the enclave program's --help under this machine's Node (${process.version}) from outside the repository`, () => {
    const r = run(["--help"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--provision-listen");
    // The egw CLI's other commands are not in it.
    expect(r.stdout).not.toContain("egw (enclave-gateway)");
  });

  it("refuses a bad flag with exit 2 and a message, without a stack", () => {
    const r = run(["--no-such-flag"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^enclave: .*no-such-flag/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("boots the gateway in development mode from the bundle and serves HTTPS", async () => {
    const trustPolicy = path.join(dir, "trust-policy.json");
    const operations = path.join(dir, "operations.json");
    const models = { local: { provider: "local", model: "local" } };
    fs.writeFileSync(trustPolicy, JSON.stringify({ version: 1, providers: [{ name: "local", kind: "local" }], models, identity: { mode: "ephemeral" } }));
    fs.writeFileSync(operations, JSON.stringify({ version: 1, clients: [] }));
    const args = ["--dev", "--state-dir", path.join(dir, "state"), "--trust-policy", trustPolicy, "--operations", operations, "--listen", "tcp://127.0.0.1:0"];
    const child = spawn(process.execPath, [path.join(app, BUNDLE_FILE), ...args], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
        let out = "";
        const timer = setTimeout(() => reject(new Error(`no ready line; stderr: ${stderr}`)), 20_000);
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) {
            clearTimeout(timer);
            resolve(JSON.parse(out.slice(0, out.indexOf("\n"))) as Record<string, unknown>);
          }
        });
        void exited.then((code) => reject(new Error(`exited ${String(code)}: ${stderr}`)));
      });
      expect(ready).toMatchObject({ ready: true });
      expect(ready.tlsSpkiSha256).toMatch(/^[0-9a-f]{64}$/);
      const res = await request(`https://127.0.0.1:${String(ready.port)}/healthz`, { dispatcher: new Agent({ connect: { rejectUnauthorized: false } }) });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      // SIGTERM is the clean stop.
      child.kill("SIGTERM");
      expect(await exited, stderr).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  }, 30_000);

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

describe("inputs.json: what the PCRs cover", () => {
  const inputs = () => JSON.parse(fs.readFileSync(path.join(app, "inputs.json"), "utf8")) as InputsReport;

  it("names the entry and the bundle it describes", () => {
    const r = inputs();
    expect(Object.keys(r)).toEqual(["format", "entry", "bundle", "totals", "sources", "packages"]);
    expect(r.format).toBe(INPUTS_FORMAT);
    expect(r.entry).toBe(ENTRY);
    expect(r.bundle).toEqual({ file: BUNDLE_FILE, bytes: report.bytes, sha256: report.sha256 });
    expect(
      createHash("sha256")
        .update(fs.readFileSync(path.join(app, BUNDLE_FILE)))
        .digest("hex"),
    ).toBe(r.bundle.sha256);
  });

  it("lists every input once, grouped by allowed folder or package, with sizes that add up", () => {
    const r = inputs();
    const files = [...r.sources.flatMap((g) => g.files), ...r.packages.flatMap((g) => g.files)];
    expect(files.length).toBe(r.totals.files);
    expect(new Set(files.map((f) => f.path)).size).toBe(files.length);
    const sum = (list: { bytes: number }[]) => list.reduce((n, x) => n + x.bytes, 0);
    for (const group of [...r.sources, ...r.packages]) expect(group.bytes).toBe(sum(group.files));
    expect(r.totals.sourceBytes).toBe(sum(r.sources));
    expect(r.totals.packageBytes).toBe(sum(r.packages));
    expect(r.totals.inputBytes).toBe(r.totals.sourceBytes + r.totals.packageBytes);
    // Sorted, so two builds of one commit diff cleanly.
    expect(r.sources.map((g) => g.folder)).toEqual(r.sources.map((g) => g.folder).sort());
    expect(r.packages.map((g) => g.lockKey)).toEqual(r.packages.map((g) => g.lockKey).sort());
  });

  it("holds the enclave, attestation, the shared codecs and the vsock transport only: no host relay, no infra/, no test helper", () => {
    const r = inputs();
    const folders = r.sources.map((g) => g.folder);
    expect(folders).toContain("enclave/");
    expect(folders).toContain("attestation/");
    expect(folders).toContain("host/transport/codec/");
    for (const folder of folders) expect(folder, folder).toMatch(/^(enclave|attestation)\/|^host\/transport\/(codec\/)?$/);
    const transport = r.sources.find((g) => g.folder === "host/transport/")!.files.map((f) => f.path.replace(/\.ts$/, ""));
    expect(transport.sort()).toEqual([...ENCLAVE_ALLOWLIST.sourceFiles].sort());
    const names = r.packages.map((p) => p.name);
    for (const absent of ["pino", "aws-cdk-lib", "cdk8s", "proxy-protocol-js", "esbuild", "vitest"]) expect(names).not.toContain(absent);
  });

  it("gives each package its version from the lockfile", () => {
    for (const p of inputs().packages) expect(p.version, p.lockKey).toBe(lock.packages[p.lockKey]!.version);
  });
});

describe("bundle refusals", () => {
  it("refuses the egw CLI: host relay, operator tools and dev stack are not enclave code", async () => {
    const err = await refusal(bundleEnclave({ repoRoot: REPO_ROOT, entry: "infra/cli/egw.ts", outDir: path.join(dir, "egw"), nodeModules: NODE_MODULES }));
    expect(err.code).toBe("ERR_BUNDLE_NOT_ALLOWED");
    expect(err.message).toContain("infra/cli/");
    expect(err.message).toContain("host/ingress/relay.ts");
    expect(fs.existsSync(path.join(dir, "egw")), "nothing is written when refused").toBe(false);
  }, 60_000);

  it("refuses a devDependency reaching the bundle", async () => {
    const err = await refusal(
      bundleEnclave({ repoRoot: REPO_ROOT, entry: "test/infra/deploy/image/fixtures/dev-dependency-entry.ts", outDir: path.join(dir, "dev"), nodeModules: NODE_MODULES }),
    );
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
    const err = await refusal(
      bundleEnclave({ repoRoot: REPO_ROOT, entry: "test/infra/deploy/image/fixtures/missing-import.mjs", outDir: path.join(dir, "broken"), nodeModules: NODE_MODULES }),
    );
    expect(err.code).toBe("ERR_BUNDLE_BUILD");
    expect(err.message).toContain("does-not-exist.mjs");
  });
});
