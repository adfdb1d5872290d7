/**
 * build.sh's decisions, in process (infra/deploy/image/build-options.ts and
 * the steps the script runs, build-steps.ts). The real bash runs with stub
 * tools stay in build-script.test.ts, one per kind of refusal, to show the
 * script wires each step in before it builds anything.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isEgwError } from "../../../../attestation/egw-error.js";
import {
  BuildError,
  buildInfo,
  checkBuildxVersion,
  comparePcrs,
  isNameTag,
  isPinnedByDigest,
  nitroCliJson,
  parseBuildArgs,
  resolveBaseImage,
  withParentImage,
} from "../../../../infra/deploy/image/build-options.js";
import { runStep, shellAssignments, shellQuote } from "../../../../infra/deploy/image/build-steps.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/Dockerfile"), "utf8");
const PARENT_DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/parent.Dockerfile"), "utf8");
const PCR = (b: string) => b.repeat(48);
const PCRS = { 0: PCR("a0"), 1: PCR("a1"), 2: PCR("a2") } as Record<string, string>;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-build-options-"));
  fs.writeFileSync(path.join(dir, "key.pem"), "stub key\n");
  fs.writeFileSync(path.join(dir, "trust-policy.json"), "{}\n");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** runStep with captured output, as build.sh sees it. */
function step(argv: string[], stdin = "", env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const status = runStep(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), stdin: () => stdin, env });
  return { status, stdout, stderr };
}

const refusal = (fn: () => unknown): BuildError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof BuildError) return err;
    throw err;
  }
  throw new Error("expected a BuildError");
};

describe("build.sh's flags", () => {
  const exists = (f: string) => fs.existsSync(f) && fs.statSync(f).isFile();

  it("parses every flag into the script's variables, quoted for eval", () => {
    const o = parseBuildArgs(
      ["--trust-policy", path.join(dir, "trust-policy.json"), "--label", "it's $HOME `x`", "--tag", "t:1", "--allow-dirty", "--parent-image", "egw-pod:1", "--out-dir", "o"],
      exists,
    );
    expect(o).toMatchObject({
      trustPolicy: path.join(dir, "trust-policy.json"),
      label: "it's $HOME `x`",
      tag: "t:1",
      allowDirty: true,
      trustAny: false,
      parentImage: "egw-pod:1",
      outDir: "o",
    });
    const text = shellAssignments(o as Exclude<typeof o, "help">);
    expect(text).toContain(`label='it'\\''s $HOME \`x\`'`);
    expect(text).toContain("allow_dirty=1");
    expect(text).toContain("trust_any=0");
    expect(text).toContain("parent_tag='egw-pod:1'");
    expect(shellQuote("")).toBe("''");
  });

  it("-h anywhere asks for help", () => {
    expect(parseBuildArgs(["--trust-any", "-h"], exists)).toBe("help");
    expect(step(["parse-args", "--help"]).stdout).toBe("show_help=1\n");
    expect(step(["usage"]).stdout).toContain("usage: infra/deploy/image/build.sh [options]");
  });

  it.each([
    [["--sign-key", "key.pem", "--trust-any"], "--sign-key and --sign-cert go together"],
    [["--trust-policy", "/nonexistent/trust-policy.json"], "no such file"],
    [[], "the manifest needs a trust section"],
    [["--config", "/nonexistent/config.json", "--trust-any"], "--config is gone"],
    [["--trust-any", "--operations", "/nonexistent/operations.json"], "--operations goes with --trust-policy"],
    [["--frobnicate", "--trust-any"], "unknown option"],
    [["--trust-any", "--trust-policy", "trust-policy.json"], "contradict each other"],
    [["--trust-any", "--label"], "--label needs a text"],
  ])("refuses the usage %j (exit 2)", (args, message) => {
    const argv = args.map((a) => (a.endsWith(".pem") || a === "trust-policy.json" ? path.join(dir, a) : a));
    const err = refusal(() => parseBuildArgs(argv, exists));
    expect(err.message).toContain(message);
    expect(err).toMatchObject({ code: "ERR_BUILD_USAGE", action: "fix-input", exitCode: 2 });
    expect(isEgwError(err)).toBe(true);
    const r = step(["parse-args", ...argv]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`build.sh: ${err.message}`);
    expect(r.stdout).toBe("");
  });

  it("prints the usage with an unknown option only", () => {
    expect(step(["parse-args", "--frobnicate"]).stderr).toContain("usage: infra/deploy/image/build.sh");
    expect(step(["parse-args"]).stderr).not.toContain("usage:");
  });

  it("refuses --parent-base-image without --parent-image (exit 2)", () => {
    const r = step(["parse-args", "--trust-any", "--parent-base-image", `amazonlinux@sha256:${"ef".repeat(32)}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("goes with --parent-image");
  });

  it.each([["enclave-gateway-pod"], ["enclave-gateway-pod:latest"], ["registry.example:5000/egw-pod"], ["Egw-Pod:1"], ["egw pod:1"]])(
    "refuses the pod image tag %j (exit 2)",
    (tag) => {
      expect(isNameTag(tag)).toBe(false);
      const r = step(["parse-args", "--trust-any", "--parent-image", tag]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("not a name:tag reference");
    },
  );

  it.each([["enclave-gateway-pod:0.1.0-test"], ["registry.example:5000/egw/pod:1.2"], ["egw_pod:v1"]])("accepts the pod image tag %j", (tag) => {
    expect(isNameTag(tag)).toBe(true);
  });
});

describe("pinned base images", () => {
  it.each([["node:24-bookworm-slim"], ["node:latest"], ["node:24@sha256:1234"], [`node@sha256:${"AB".repeat(32)}`], [`node:24@sha512:${"ab".repeat(32)}`]])(
    "refuses the unpinned base %s (exit 2)",
    (base) => {
      expect(isPinnedByDigest(base)).toBe(false);
      const err = refusal(() => resolveBaseImage(DOCKERFILE, "NODE_IMAGE", base, "base image"));
      expect(err.exitCode).toBe(2);
      expect(err.message).toContain("not pinned by digest");
      expect(err.message).toContain(`base image "${base}"`);
    },
  );

  it.each([["amazonlinux:2023"], ["amazonlinux:latest"], ["public.ecr.aws/amazonlinux/amazonlinux:2023@sha256:1234"], [`amazonlinux@sha256:${"EF".repeat(32)}`]])(
    "refuses the unpinned pod base %s (exit 2)",
    (base) => {
      const err = refusal(() => resolveBaseImage(PARENT_DOCKERFILE, "AL2023_IMAGE", base, "pod image base"));
      expect(err.exitCode).toBe(2);
      expect(err.message).toContain("not pinned by digest");
    },
  );

  it("takes the Dockerfiles' own defaults, which are pinned, and an override that is", () => {
    expect(resolveBaseImage(DOCKERFILE, "NODE_IMAGE", "", "base image")).toBe(/^ARG NODE_IMAGE=(.+)$/m.exec(DOCKERFILE)![1]);
    expect(resolveBaseImage(PARENT_DOCKERFILE, "AL2023_IMAGE", "", "pod image base")).toMatch(/@sha256:[0-9a-f]{64}$/);
    const base = `docker.io/library/node:22-bookworm-slim@sha256:${"cd".repeat(32)}`;
    expect(resolveBaseImage(DOCKERFILE, "NODE_IMAGE", base, "base image")).toBe(base);
    // A Dockerfile without the ARG has nothing pinned.
    expect(refusal(() => resolveBaseImage("FROM scratch\n", "NODE_IMAGE", "", "base image")).message).toContain('base image ""');
  });

  it("the base-image step prints the reference, or refuses with exit 2", () => {
    const file = path.join(REPO_ROOT, "infra/deploy/image/Dockerfile");
    expect(step(["base-image", file, "NODE_IMAGE", "", "base image"]).stdout).toMatch(/@sha256:[0-9a-f]{64}\n$/);
    const bad = step(["base-image", file, "NODE_IMAGE", "node:latest", "base image"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("not pinned by digest");
  });
});

describe("prerequisites", () => {
  it("refuses buildx v0.12.1 (exit 2) and an unreadable version", () => {
    const old = refusal(() => checkBuildxVersion("github.com/docker/buildx v0.12.1 5e1b7c5"));
    expect(old).toMatchObject({ code: "ERR_BUILD_PREREQUISITE", exitCode: 2 });
    expect(old.message).toContain("docker buildx >= 0.13");
    expect(refusal(() => checkBuildxVersion("buildx")).message).toContain("cannot read the docker buildx version");
    expect(step(["buildx-version", "github.com/docker/buildx v0.12.1 5e1b7c5"]).status).toBe(2);
  });

  it.each([["v0.13.0"], ["v0.17.1"], ["v1.0.0"]])("accepts buildx %s", (v) => {
    expect(() => checkBuildxVersion(`github.com/docker/buildx ${v} 5e1b7c5`)).not.toThrow();
  });
});

describe("nitro-cli's output and the PCR cross-check", () => {
  it("keeps the JSON object after the progress lines", () => {
    const text = `Start building the Enclave Image...\nEnclave Image successfully created.\n${JSON.stringify({ Measurements: { PCR0: PCRS[0] } }, null, 2)}\n`;
    expect(nitroCliJson(text)).toEqual({ Measurements: { PCR0: PCRS[0] } });
    expect(JSON.parse(step(["nitro-json"], text).stdout)).toEqual({ Measurements: { PCR0: PCRS[0] } });
  });

  it.each([["Start building...\nEnclave Image successfully created.\n"], ['{"Measurements": 1}\n'], ["{ not json\n"], [""]])(
    "refuses nitro-cli output %j without Measurements JSON (exit 1)",
    (text) => {
      const err = refusal(() => nitroCliJson(text));
      expect(err).toMatchObject({ code: "ERR_BUILD_CHECK", action: "reject", exitCode: 1 });
      const r = step(["nitro-json"], text);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("no Measurements JSON");
    },
  );

  const nitro = (pcrs: Record<string, string>) => Object.fromEntries(Object.entries(pcrs).map(([i, v]) => [`PCR${i}`, v]));

  it("passes when PCR0/1/2 agree", () => {
    const { ok, report } = comparePcrs(nitro(PCRS), PCRS, false);
    expect(ok).toBe(true);
    expect(report).toMatch(/PCR0 match[\s\S]*PCR1 match[\s\S]*PCR2 match/);
    expect(report).not.toContain("PCR8");
  });

  it("refuses a PCR the two disagree on (exit 1)", () => {
    const { ok, report } = comparePcrs(nitro({ ...PCRS, 1: PCR("00") }), PCRS, false);
    expect(ok).toBe(false);
    expect(report).toMatch(/PCR1 MISMATCH/);
    expect(report).toMatch(/PCR0 match/);
  });

  it("refuses a nitro-cli output without a PCR (exit 1)", () => {
    const { 2: _dropped, ...missing } = PCRS;
    const { ok, report } = comparePcrs(nitro(missing), PCRS, false);
    expect(ok).toBe(false);
    expect(report).toMatch(/PCR2 MISMATCH\n {4}nitro-cli {3}\(none\)/);
  });

  it("checks PCR8 when signed, and refuses one egw measure does not compute (exit 1)", () => {
    const signed = { ...PCRS, 8: PCR("a8") };
    expect(comparePcrs(nitro(signed), signed, true)).toMatchObject({ ok: true });
    expect(comparePcrs(nitro(signed), signed, true).report).toMatch(/PCR8 match/);
    const lying = comparePcrs(nitro({ ...signed, 8: PCR("11") }), signed, true);
    expect(lying.ok).toBe(false);
    expect(lying.report).toMatch(/PCR8 MISMATCH/);
    // Unsigned, a PCR8 on either side is compared too rather than ignored.
    expect(comparePcrs(nitro(PCRS), signed, false).report).toMatch(/PCR8 MISMATCH/);
  });

  it("refuses PCRs that are equal but not 48 bytes of hex", () => {
    const short = { 0: "ab", 1: "ab", 2: "ab" };
    expect(comparePcrs(nitro(short), short, false).ok).toBe(false);
  });

  it("the compare-pcrs step reads both files and exits 1 on a mismatch", () => {
    fs.writeFileSync(path.join(dir, "nitro.json"), JSON.stringify({ Measurements: nitro({ ...PCRS, 1: PCR("00") }) }));
    fs.writeFileSync(path.join(dir, "measure.json"), JSON.stringify({ pcrs: PCRS }));
    const r = step(["compare-pcrs", path.join(dir, "nitro.json"), path.join(dir, "measure.json"), "0"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PCR1 MISMATCH/);
  });
});

describe("build-info.json", () => {
  const facts = {
    version: "0.1.0",
    gitCommit: "0123456789abcdef0123456789abcdef01234567",
    sourceDateEpoch: 1700000123,
    dirty: false,
    baseImage: `node@sha256:${"ab".repeat(32)}`,
    imageTag: "enclave-gateway:0.1.0-0123456789ab",
    imageDigest: `sha256:${"ab".repeat(32)}`,
    eifSha256: "ee".repeat(32),
    pcrs: PCRS,
    tools: { buildx: "v0.17.1", nitroCli: "Nitro CLI 1.4.2", node: "v20.0.0" },
  };

  it("records the facts in a fixed field order, with a final newline", () => {
    const text = buildInfo(facts);
    expect(Object.keys(JSON.parse(text))).toEqual(["version", "gitCommit", "sourceDateEpoch", "dirty", "baseImage", "imageTag", "imageDigest", "eifSha256", "pcrs", "tools"]);
    expect(text.endsWith("}\n")).toBe(true);
    expect(JSON.parse(text)).toEqual(facts);
  });

  it("adds the pod image, with the EIF's size in whole MiB", () => {
    const info = JSON.parse(
      withParentImage(buildInfo(facts), { imageTag: "egw-pod:1", baseImage: "al", imageDigest: "sha256:cd", eifSha256: "ee", eifBytes: 1024 * 1024 + 1 }),
    ) as Record<string, unknown>;
    expect(info.parentImage).toEqual({ imageTag: "egw-pod:1", baseImage: "al", imageDigest: "sha256:cd", eifSha256: "ee", eifSizeMiB: 2 });
    expect(info.imageDigest).toBe(facts.imageDigest);
  });

  it("the build-info step reads the facts from the environment as build.sh sets them", () => {
    const eif = path.join(dir, "egw.eif");
    fs.writeFileSync(eif, "eif bytes");
    fs.writeFileSync(path.join(dir, "measure.json"), JSON.stringify({ pcrs: PCRS }));
    const out = path.join(dir, "build-info.json");
    const env = {
      VERSION: "0.1.0",
      GIT_COMMIT: facts.gitCommit,
      SDE: "1700000123",
      DIRTY: "true",
      BASE: facts.baseImage,
      TAG: facts.imageTag,
      DIGEST: facts.imageDigest,
      BUILDX: "v0.17.1",
      NITRO: "Nitro CLI 1.4.2",
    };
    expect(step(["build-info", eif, path.join(dir, "measure.json"), out], "", env).status).toBe(0);
    const info = JSON.parse(fs.readFileSync(out, "utf8")) as Record<string, unknown>;
    expect(info).toMatchObject({
      version: "0.1.0",
      sourceDateEpoch: 1700000123,
      dirty: true,
      pcrs: PCRS,
      tools: { buildx: "v0.17.1", nitroCli: "Nitro CLI 1.4.2", node: process.version },
    });
    expect(info.eifSha256).toBe(step(["sha256", eif]).stdout);
    expect(info.eifSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("an unknown step is a usage error", () => {
    expect(step(["frobnicate"]).status).toBe(2);
  });
});
