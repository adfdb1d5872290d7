/**
 * infra/deploy/image/build.sh, run for real with bash, against stub `docker`,
 * `nitro-cli` and `git` executables first on PATH (this machine has no
 * Docker engine and no nitro-cli). The stubs record their argv; the
 * nitro-cli stub writes a real EIF built per the format
 * (test/infra/review/eif/eif-builder.ts) and prints Measurements JSON, correct or
 * deliberately wrong. `egw measure` is the real one (dist/); `egw manifest
 * create` is the real one when dist/ has it, a recording stub otherwise.
 * The docker stub gives the pod image (--parent-image) its own image ID.
 *
 * The script's decisions are TypeScript (build-options.ts) and their tables
 * of refusals run in process in build-options.test.ts; the bash runs here
 * keep one case of each kind, to show the script runs each step, with its
 * exit code, before anything is built.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildEif, bytesOf, expectedPcrs, imageSections, makeSigningCertificate, type ImageParts } from "../../review/eif/eif-builder.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const SCRIPT = path.join(REPO_ROOT, "infra/deploy/image/build.sh");
const REAL_EGW = path.join(REPO_ROOT, "dist/infra/cli/egw.js");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const COMMIT_TIME = "1700000123";
const IMAGE_ID = `sha256:${"ab".repeat(32)}`;
const PARENT_IMAGE_ID = `sha256:${"cd".repeat(32)}`;
const PARENT_TAG = "enclave-gateway-pod:0.1.0-test";
const DEFAULT_BASE = /^ARG NODE_IMAGE=(.+)$/m.exec(fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/Dockerfile"), "utf8"))![1]!;
const DEFAULT_PARENT_BASE = /^ARG AL2023_IMAGE=(.+)$/m.exec(fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/parent.Dockerfile"), "utf8"))![1]!;
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;

let dir: string;
let stubs: string;
let nodeBin: string;
let unsignedPcrs: Record<string, string>;
let signedPcrs: Record<string, string>;
let realManifest = false;

// Each stub appends {tool, argv, env} to $STUB_LOG, one JSON line per call.
const RECORD = `const fs = require("fs");
const argv = process.argv.slice(2);
fs.appendFileSync(process.env.STUB_LOG, JSON.stringify({ tool: require("path").basename(process.argv[1]), argv, sde: process.env.SOURCE_DATE_EPOCH ?? null }) + "\\n");`;

const DOCKER = `#!/usr/bin/env node
${RECORD}
if (argv[0] === "buildx" && argv[1] === "version") {
  if (process.env.STUB_BUILDX === "missing") { process.stderr.write("docker: 'buildx' is not a docker command.\\n"); process.exit(1); }
  console.log("github.com/docker/buildx " + (process.env.STUB_BUILDX || "v0.17.1") + " 5e1b7c5");
} else if (argv[0] === "buildx" && argv[1] === "build") {
  if (argv.includes("--build-context") && process.env.STUB_PARENT_BUILD === "fail") { process.stderr.write("ERROR: failed to solve: process did not complete successfully\\n"); process.exit(1); }
  process.stderr.write("#1 [internal] load build definition from Dockerfile\\n");
} else if (argv[0] === "image" && argv[1] === "inspect") {
  console.log(argv.at(-1) === process.env.STUB_PARENT_TAG ? process.env.STUB_PARENT_IMAGE_ID : process.env.STUB_IMAGE_ID);
} else { process.stderr.write("docker stub: unexpected " + argv.join(" ") + "\\n"); process.exit(3); }
`;

const NITRO_CLI = `#!/usr/bin/env node
${RECORD}
if (argv[0] === "--version") { console.log("Nitro CLI 1.4.2"); process.exit(0); }
if (argv[0] !== "build-enclave") process.exit(3);
const out = argv[argv.indexOf("--output-file") + 1];
const signed = argv.includes("--private-key");
fs.copyFileSync(signed ? process.env.STUB_EIF_SIGNED : process.env.STUB_EIF, out);
const pcrs = JSON.parse(signed ? process.env.STUB_PCRS_SIGNED : process.env.STUB_PCRS);
const m = { HashAlgorithm: "Sha384 { ... }" };
for (const [i, v] of Object.entries(pcrs)) m["PCR" + i] = v;
console.log("Start building the Enclave Image...");
console.log("Enclave Image successfully created.");
if (process.env.STUB_NITRO_OUTPUT !== "garbage") console.log(JSON.stringify({ Measurements: m }, null, 2));
`;

const GIT = `#!/usr/bin/env node
${RECORD}
const args = argv[0] === "-C" ? argv.slice(2) : argv;
const cmd = args.slice(0, 2).join(" ");
if (cmd === "rev-parse --show-toplevel") console.log(process.env.STUB_REPO_ROOT);
else if (cmd === "rev-parse HEAD") console.log(process.env.STUB_COMMIT);
else if (args[0] === "log") console.log(process.env.STUB_COMMIT_TIME);
else if (args[0] === "status") process.stdout.write(process.env.STUB_GIT_STATUS || "");
else { process.stderr.write("git stub: unexpected " + argv.join(" ") + "\\n"); process.exit(3); }
`;

// measure → the real egw; manifest → the real one if dist has it, else a recording stub.
const EGW = `#!/usr/bin/env node
${RECORD}
const { spawnSync } = require("child_process");
const real = (args) => spawnSync(process.execPath, [process.env.REAL_EGW, ...args], { stdio: "inherit" }).status;
if (argv[0] === "manifest") {
  if (process.env.REAL_MANIFEST === "1") process.exit(real(argv));
  console.log(JSON.stringify({ stub: true, argv }));
  process.exit(0);
}
process.exit(real(argv));
`;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-build-sh-"));
  stubs = path.join(dir, "stubs");
  nodeBin = path.join(dir, "node-bin");
  fs.mkdirSync(stubs);
  fs.mkdirSync(nodeBin);
  // Only node is taken from this machine's PATH: the real docker CLI sits beside it in /usr/local/bin.
  fs.symlinkSync(process.execPath, path.join(nodeBin, "node"));
  for (const [name, body] of Object.entries({ docker: DOCKER, "nitro-cli": NITRO_CLI, git: GIT, egw: EGW })) {
    fs.writeFileSync(path.join(stubs, name), body, { mode: 0o755 });
  }
  const parts: ImageParts = {
    kernel: bytesOf("bzImage"),
    cmdline: bytesOf("reboot=k panic=30 pci=off nomodules console=ttyS0"),
    ramdisks: [bytesOf("init ramdisk"), bytesOf("user ramdisk")],
  };
  const signer = await makeSigningCertificate("egw build.sh test signer");
  unsignedPcrs = expectedPcrs(parts);
  signedPcrs = expectedPcrs({ ...parts, signer });
  fs.writeFileSync(path.join(dir, "unsigned.eif"), buildEif(imageSections(parts)));
  fs.writeFileSync(path.join(dir, "signed.eif"), buildEif(imageSections({ ...parts, signer })));
  fs.writeFileSync(path.join(dir, "bad-crc.eif"), buildEif(imageSections(parts), { crc: 1 }));
  // A valid trust policy and operations, as the real `egw manifest create` parses and hashes them.
  const trustPolicy = { version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } };
  fs.writeFileSync(path.join(dir, "trust-policy.json"), `${JSON.stringify(trustPolicy)}\n`);
  fs.writeFileSync(path.join(dir, "operations.json"), '{"version":1,"clients":[]}\n');
  fs.writeFileSync(path.join(dir, "key.pem"), "stub key\n");
  realManifest = spawnSync(process.execPath, [REAL_EGW, "help"], { encoding: "utf8" }).stdout.includes("manifest create");
  fs.writeFileSync(path.join(dir, "cert.pem"), signer.pem);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Call {
  tool: string;
  argv: string[];
  sde: string | null;
}

function buildSh(args: string[], env: Record<string, string> = {}, opts: { withoutStub?: string } = {}) {
  const run = fs.mkdtempSync(path.join(dir, "run-"));
  const log = path.join(run, "calls.jsonl");
  const out = path.join(run, "out");
  let bin = stubs;
  if (opts.withoutStub) {
    bin = path.join(run, "stubs");
    fs.mkdirSync(bin);
    for (const name of fs.readdirSync(stubs)) if (name !== opts.withoutStub) fs.copyFileSync(path.join(stubs, name), path.join(bin, name));
    for (const name of fs.readdirSync(bin)) fs.chmodSync(path.join(bin, name), 0o755);
  }
  // Every build needs a trust section; tests not about it say "any".
  const trust = args.some((a) => a === "--trust-policy" || a === "--trust-any" || a === "--config" || a === "--no-trust") ? [] : ["--trust-any"];
  const r = spawnSync("bash", [SCRIPT, "--out-dir", out, ...args.filter((a) => a !== "--no-trust"), ...trust], {
    encoding: "utf8",
    timeout: 60_000,
    env: {
      PATH: `${bin}:${nodeBin}:/usr/bin:/bin`,
      HOME: run,
      STUB_LOG: log,
      STUB_REPO_ROOT: REPO_ROOT,
      STUB_COMMIT: COMMIT,
      STUB_COMMIT_TIME: COMMIT_TIME,
      STUB_IMAGE_ID: IMAGE_ID,
      STUB_PARENT_TAG: PARENT_TAG,
      STUB_PARENT_IMAGE_ID: PARENT_IMAGE_ID,
      STUB_EIF: path.join(dir, "unsigned.eif"),
      STUB_EIF_SIGNED: path.join(dir, "signed.eif"),
      STUB_PCRS: JSON.stringify(unsignedPcrs),
      STUB_PCRS_SIGNED: JSON.stringify(signedPcrs),
      EGW_CLI: path.join(bin, "egw"),
      REAL_EGW,
      REAL_MANIFEST: realManifest ? "1" : "0",
      ...env,
    },
  });
  const calls: Call[] = fs.existsSync(log)
    ? fs
        .readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Call)
    : [];
  const call = (tool: string, first: string) => calls.find((c) => c.tool === tool && c.argv.includes(first));
  const builds = calls.filter((c) => c.tool === "docker" && c.argv[0] === "buildx" && c.argv[1] === "build");
  const file = (name: string) => path.join(out, name);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls, call, builds, file, out };
}

describe("build.sh: a clean build", () => {
  let r: ReturnType<typeof buildSh>;
  beforeAll(() => {
    r = buildSh(["--trust-policy", path.join(dir, "trust-policy.json"), "--operations", path.join(dir, "operations.json"), "--label", "release 0.1.0"]);
  }, 60_000);

  it("succeeds", () => {
    expect(r.stderr).toContain("build.sh: done");
    expect(r.status).toBe(0);
  });

  it("passes the commit time as SOURCE_DATE_EPOCH, as build-arg and environment", () => {
    const build = r.call("docker", "build")!;
    expect(build.argv).toContain(`SOURCE_DATE_EPOCH=${COMMIT_TIME}`);
    expect(build.argv[build.argv.indexOf(`SOURCE_DATE_EPOCH=${COMMIT_TIME}`) - 1]).toBe("--build-arg");
    expect(build.sde).toBe(COMMIT_TIME);
    expect(r.calls.some((c) => c.tool === "git" && c.argv.includes("log") && c.argv.includes("--format=%ct"))).toBe(true);
  });

  it("builds with rewrite-timestamp, without provenance or SBOM, from the pinned base and the repository root", () => {
    const argv = r.call("docker", "build")!.argv;
    expect(argv.slice(0, 2)).toEqual(["buildx", "build"]);
    expect(argv).toContain("--provenance=false");
    expect(argv).toContain("--sbom=false");
    const output = argv[argv.indexOf("--output") + 1]!;
    expect(output.split(",")).toEqual(["type=docker", `name=enclave-gateway:${VERSION}-${COMMIT.slice(0, 12)}`, "rewrite-timestamp=true"]);
    expect(argv).toContain(`NODE_IMAGE=${DEFAULT_BASE}`);
    expect(argv[argv.indexOf("--file") + 1]).toBe(path.join(REPO_ROOT, "infra/deploy/image/Dockerfile"));
    expect(argv.at(-1)).toBe(REPO_ROOT);
  });

  it("runs nitro-cli on the built tag, unsigned", () => {
    const argv = r.call("nitro-cli", "build-enclave")!.argv;
    expect(argv).toEqual(["build-enclave", "--docker-uri", `enclave-gateway:${VERSION}-${COMMIT.slice(0, 12)}`, "--output-file", r.file("egw.eif")]);
  });

  it("keeps nitro-cli's JSON and egw measure's, which agree", () => {
    const nitro = JSON.parse(fs.readFileSync(r.file("nitro-cli.json"), "utf8")) as { Measurements: Record<string, string> };
    const measure = JSON.parse(fs.readFileSync(r.file("measure.json"), "utf8")) as { pcrs: Record<string, string> };
    for (const i of ["0", "1", "2"]) {
      expect(nitro.Measurements[`PCR${i}`]).toBe(unsignedPcrs[i]);
      expect(measure.pcrs[i]).toBe(unsignedPcrs[i]);
    }
    expect(r.stderr).toMatch(/PCR0 match[\s\S]*PCR1 match[\s\S]*PCR2 match/);
  });

  it("writes manifest.json with egw manifest create and the release facts", () => {
    const argv = r.call("egw", "manifest")!.argv;
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    expect(argv.slice(0, 2)).toEqual(["manifest", "create"]);
    expect(flag("--eif")).toBe(r.file("egw.eif"));
    expect(flag("--version")).toBe(VERSION);
    expect(flag("--git-commit")).toBe(COMMIT);
    expect(flag("--image-digest")).toBe(IMAGE_ID);
    expect(flag("--trust-policy")).toBe(path.join(dir, "trust-policy.json"));
    expect(flag("--operations")).toBe(path.join(dir, "operations.json"));
    expect(argv).not.toContain("--trust-any");
    expect(flag("--label")).toBe("release 0.1.0");
    expect(() => JSON.parse(fs.readFileSync(r.file("manifest.json"), "utf8"))).not.toThrow();
  });

  it("records what a reviewer needs to rebuild in build-info.json", () => {
    const info = JSON.parse(fs.readFileSync(r.file("build-info.json"), "utf8")) as Record<string, unknown>;
    expect(info).toMatchObject({ version: VERSION, gitCommit: COMMIT, sourceDateEpoch: Number(COMMIT_TIME), dirty: false, baseImage: DEFAULT_BASE, imageDigest: IMAGE_ID });
    expect(info.pcrs).toEqual({ 0: unsignedPcrs[0], 1: unsignedPcrs[1], 2: unsignedPcrs[2] });
    expect(info.eifSha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("build.sh: refusals", () => {
  // The other unpinned references: build-options.test.ts.
  it.each([["node:24-bookworm-slim"]])("refuses the unpinned base %s before building (exit 2)", (base) => {
    const r = buildSh(["--base-image", base]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("not pinned by digest");
    expect(r.call("docker", "build")).toBeUndefined();
  });

  it("accepts another base when it is pinned by digest", () => {
    const base = `docker.io/library/node:22-bookworm-slim@sha256:${"cd".repeat(32)}`;
    const r = buildSh(["--base-image", base]);
    expect(r.status).toBe(0);
    expect(r.call("docker", "build")!.argv).toContain(`NODE_IMAGE=${base}`);
  });

  it("refuses when nitro-cli and egw measure disagree (exit 1), and writes no manifest", () => {
    const lying = { ...unsignedPcrs, 1: "00".repeat(48) };
    const r = buildSh([], { STUB_PCRS: JSON.stringify(lying) });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PCR1 MISMATCH/);
    expect(r.stderr).toContain("disagree");
    expect(fs.existsSync(r.file("manifest.json"))).toBe(false);
    expect(r.call("egw", "manifest")).toBeUndefined();
  });

  // A missing PCR, and PCR8: build-options.test.ts.
  it("refuses when nitro-cli prints no Measurements JSON (exit 1)", () => {
    const r = buildSh([], { STUB_NITRO_OUTPUT: "garbage" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("no Measurements JSON");
  });

  it("refuses an EIF our reader rejects (exit 1)", () => {
    const r = buildSh([], { STUB_EIF: path.join(dir, "bad-crc.eif") });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("egw measure refused");
    expect(fs.readFileSync(r.file("measure.json"), "utf8")).toContain("ERR_EIF_CRC");
  });

  it("refuses a dirty tree without --allow-dirty (exit 2), before building", () => {
    const r = buildSh([], { STUB_GIT_STATUS: " M enclave/boot.ts\n?? notes.txt\n" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("enclave/boot.ts");
    expect(r.stderr).toContain("--allow-dirty");
    expect(r.call("docker", "build")).toBeUndefined();
  });

  it("builds a dirty tree with --allow-dirty, and says so in build-info.json", () => {
    const r = buildSh(["--allow-dirty"], { STUB_GIT_STATUS: " M enclave/boot.ts\n" });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("WARNING: building from a dirty tree");
    expect(JSON.parse(fs.readFileSync(r.file("build-info.json"), "utf8"))).toMatchObject({ dirty: true });
  });

  it("asks git for a status that counts untracked files", () => {
    const r = buildSh([]);
    const status = r.calls.find((c) => c.tool === "git" && c.argv.includes("status"))!;
    expect(status.argv).toContain("--porcelain");
    expect(status.argv).toContain("--untracked-files=all");
  });

  it.each([
    ["nitro-cli", "nitro-cli not found"],
    ["docker", "docker not found"],
  ])("refuses without %s (exit 2)", (tool, message) => {
    const r = buildSh([], {}, { withoutStub: tool });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });

  // An old buildx (v0.12.1): build-options.test.ts.
  it.each([["missing", "docker buildx not available"]])("refuses buildx %s (exit 2)", (buildx, message) => {
    const r = buildSh([], { STUB_BUILDX: buildx });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.call("docker", "build")).toBeUndefined();
  });

  // The whole table of usage refusals: build-options.test.ts.
  it.each([
    [["--no-trust"], "the manifest needs a trust section"],
    [["--frobnicate"], "unknown option"],
  ])("refuses the usage %j (exit 2)", (args, message) => {
    const r = buildSh(args.map((a) => (a.endsWith(".pem") ? path.join(dir, a) : a)));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe("build.sh: a signed build (PCR8)", () => {
  it("passes the key and certificate to nitro-cli and checks PCR8 too", () => {
    const r = buildSh(["--sign-key", path.join(dir, "key.pem"), "--sign-cert", path.join(dir, "cert.pem")]);
    expect(r.status).toBe(0);
    const argv = r.call("nitro-cli", "build-enclave")!.argv;
    expect(argv.slice(-4)).toEqual(["--private-key", path.join(dir, "key.pem"), "--signing-certificate", path.join(dir, "cert.pem")]);
    expect(r.stderr).toMatch(/PCR8 match/);
    expect(JSON.parse(fs.readFileSync(r.file("build-info.json"), "utf8")).pcrs[8]).toBe(signedPcrs[8]);
  });
});

describe("build.sh --parent-image: the pod image after the EIF", () => {
  let r: ReturnType<typeof buildSh>;
  beforeAll(() => {
    r = buildSh(["--parent-image", PARENT_TAG]);
  }, 60_000);
  const parentBuild = () => r.builds[1]!.argv;
  const flag = (argv: string[], name: string) => argv[argv.indexOf(name) + 1];

  it("succeeds, building the enclave image first and the pod image after nitro-cli wrote the EIF", () => {
    expect(r.status, r.stderr).toBe(0);
    expect(r.builds).toHaveLength(2);
    const order = r.calls.map((c) => `${c.tool} ${c.argv.slice(0, 2).join(" ")}`);
    expect(order.indexOf("nitro-cli build-enclave --docker-uri")).toBeGreaterThan(order.indexOf("docker buildx build"));
    expect(order.lastIndexOf("docker buildx build")).toBeGreaterThan(order.indexOf("nitro-cli build-enclave --docker-uri"));
    expect(r.stderr).toContain(`pod image ${PARENT_TAG}`);
  });

  it("builds infra/deploy/image/parent.Dockerfile from the repository root, reproducibly, from the pinned AL2023 base", () => {
    const argv = parentBuild();
    expect(flag(argv, "--file")).toBe(path.join(REPO_ROOT, "infra/deploy/image/parent.Dockerfile"));
    expect(argv.at(-1)).toBe(REPO_ROOT);
    expect(argv).toContain(`AL2023_IMAGE=${DEFAULT_PARENT_BASE}`);
    expect(DEFAULT_PARENT_BASE).toMatch(/@sha256:[0-9a-f]{64}$/);
    expect(argv).toContain(`SOURCE_DATE_EPOCH=${COMMIT_TIME}`);
    expect(r.builds[1]!.sde).toBe(COMMIT_TIME);
    expect(argv).toContain("--provenance=false");
    expect(argv).toContain("--sbom=false");
    expect(flag(argv, "--output")!.split(",")).toEqual(["type=docker", `name=${PARENT_TAG}`, "rewrite-timestamp=true"]);
  });

  it("hands it the EIF nitro-cli wrote, by named context and SHA-256: the pod image never builds one", () => {
    const argv = parentBuild();
    expect(flag(argv, "--build-context")).toBe(`eif=${r.out}`);
    const sha = createHash("sha256")
      .update(fs.readFileSync(r.file("egw.eif")))
      .digest("hex");
    expect(argv).toContain(`EIF_SHA256=${sha}`);
    expect(r.calls.filter((c) => c.tool === "nitro-cli" && c.argv[0] === "build-enclave")).toHaveLength(1);
  });

  it("records the pod image in build-info.json next to the enclave image", () => {
    const info = JSON.parse(fs.readFileSync(r.file("build-info.json"), "utf8")) as Record<string, any>;
    expect(info).toMatchObject({ imageDigest: IMAGE_ID, gitCommit: COMMIT });
    expect(info.parentImage).toEqual({
      imageTag: PARENT_TAG,
      baseImage: DEFAULT_PARENT_BASE,
      imageDigest: PARENT_IMAGE_ID,
      eifSha256: info.eifSha256,
      eifSizeMiB: Math.ceil(fs.statSync(r.file("egw.eif")).size / (1024 * 1024)),
    });
  });

  it("without --parent-image builds one image and records none", () => {
    const plain = buildSh([]);
    expect(plain.status).toBe(0);
    expect(plain.builds).toHaveLength(1);
    expect(JSON.parse(fs.readFileSync(plain.file("build-info.json"), "utf8"))).not.toHaveProperty("parentImage");
  });

  it("accepts another pod base when it is pinned by digest", () => {
    const base = `public.ecr.aws/amazonlinux/amazonlinux:2023@sha256:${"ef".repeat(32)}`;
    const other = buildSh(["--parent-image", PARENT_TAG, "--parent-base-image", base]);
    expect(other.status, other.stderr).toBe(0);
    expect(other.builds[1]!.argv).toContain(`AL2023_IMAGE=${base}`);
  });

  // The other unpinned pod bases, the other refused tags and --parent-base-image alone: build-options.test.ts.
  it.each([["amazonlinux:2023"]])("refuses the unpinned pod base %s before building anything (exit 2)", (base) => {
    const bad = buildSh(["--parent-image", PARENT_TAG, "--parent-base-image", base]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("not pinned by digest");
    expect(bad.builds).toEqual([]);
    expect(bad.call("nitro-cli", "build-enclave")).toBeUndefined();
  });

  it.each([["enclave-gateway-pod:latest"]])("refuses the pod image tag %j (exit 2)", (tag) => {
    const bad = buildSh(["--parent-image", tag]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("not a name:tag reference");
    expect(bad.builds).toEqual([]);
  });

  it("exits 1 when the pod image build fails, keeping the EIF's manifest and build-info.json", () => {
    const failed = buildSh(["--parent-image", PARENT_TAG], { STUB_PARENT_BUILD: "fail" });
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain("the pod image build failed");
    expect(fs.existsSync(failed.file("manifest.json"))).toBe(true);
    const info = JSON.parse(fs.readFileSync(failed.file("build-info.json"), "utf8")) as Record<string, unknown>;
    expect(info.imageDigest).toBe(IMAGE_ID);
    expect(info).not.toHaveProperty("parentImage");
  });
});
