/**
 * Static checks of the enclave image definition (infra/deploy/image/Dockerfile and
 * its .dockerignore): what would make the image unpinned, networked at run
 * time, or not reproducible is visible in the text, so it is tested there.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseDockerfile, runs } from "./dockerfile-model.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const TEXT = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/Dockerfile"), "utf8");
const IGNORE = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/Dockerfile.dockerignore"), "utf8");

const { instructions, globalArgs, stages } = parseDockerfile(TEXT);
const runtime = stages.at(-1)!;
const builder = stages.find((s) => s.name === "builder")!;

describe("infra/deploy/image/Dockerfile", () => {
  it("has a builder and a final runtime stage", () => {
    expect(stages.map((s) => s.name)).toEqual(["builder", "runtime"]);
  });

  it("pins every FROM by digest, through the one NODE_IMAGE argument", () => {
    expect([...globalArgs.keys()]).toEqual(["NODE_IMAGE"]);
    expect(globalArgs.get("NODE_IMAGE")).toMatch(/^node:(22|24)[\w.-]*-bookworm-slim@sha256:[0-9a-f]{64}$/);
    for (const stage of stages) expect(stage.from, stage.name).toMatch(/@sha256:[0-9a-f]{64}$/);
    // build.sh reads the default with this exact pattern.
    expect(TEXT.match(/^ARG NODE_IMAGE=/gm)).toHaveLength(1);
  });

  it("names no :latest tag and no syntax frontend pulled by tag", () => {
    for (const i of instructions) expect(i.args).not.toMatch(/:latest\b/);
    expect(TEXT).not.toMatch(/^#\s*syntax=/m);
  });

  it("fetches nothing outside the lockfile: no apt, apk, curl, wget or ADD", () => {
    for (const stage of stages) {
      for (const run of runs(stage)) expect(run, stage.name).not.toMatch(/\b(apt-get|apt|apk|curl|wget|yum|dnf)\b/);
      expect(stage.body.filter((i) => i.keyword === "ADD")).toEqual([]);
    }
  });

  it("installs from the lockfile in the builder: npm ci, then npm ci --omit=dev for what ships", () => {
    const builderRuns = runs(builder).join("\n");
    expect(builder.body.some((i) => i.keyword === "COPY" && /package-lock\.json/.test(i.args))).toBe(true);
    expect(builderRuns).toMatch(/\bnpm ci --ignore-scripts\b/);
    expect(builderRuns).toMatch(/\bnpm ci --omit=dev --ignore-scripts\b/);
    expect(builderRuns).not.toMatch(/\bnpm (install|i)\b/);
    // The enclave program's entry, not the egw CLI: the image holds nothing but the enclave.
    expect(builderRuns).toMatch(/bundle-cli\.js --entry dist\/enclave\/bin\.js --out \/out\/app --node-modules \/prod\/node_modules/);
    expect(builderRuns).not.toMatch(/infra\/cli\/egw/);
  });

  it("runtime stage: no package manager, only the builder's output copied in", () => {
    for (const run of runs(runtime)) expect(run).not.toMatch(/\b(npm|npx|yarn|corepack|pnpm)\s+(ci|install|i|add|run)\b/);
    const copies = runtime.body.filter((i) => i.keyword === "COPY");
    expect(copies.map((c) => c.args)).toEqual(["--from=builder /out/app /app"]);
    expect(runtime.body.filter((i) => i.keyword === "CMD")).toEqual([]);
  });

  it("requires SOURCE_DATE_EPOCH and sets every shipped file's mtime to it", () => {
    for (const stage of stages)
      expect(
        stage.body.some((i) => i.keyword === "ARG" && i.args === "SOURCE_DATE_EPOCH"),
        stage.name,
      ).toBe(true);
    const builderRuns = runs(builder).join("\n");
    expect(builderRuns).toContain('test -n "${SOURCE_DATE_EPOCH}"');
    expect(builderRuns).toMatch(/find \/out -exec touch -h -d "@\$\{SOURCE_DATE_EPOCH\}" \{\} \+/);
    expect(builderRuns).toMatch(/chmod -R u=rwX,go=rX \/out/);
    // The runtime stage's own change (removing npm) resets the directories it touched.
    expect(runs(runtime).join("\n")).toMatch(/touch -h -d "@\$\{SOURCE_DATE_EPOCH\}"/);
  });

  it("starts the enclave with absolute paths and the production flags", () => {
    const entrypoints = runtime.body.filter((i) => i.keyword === "ENTRYPOINT");
    expect(entrypoints).toHaveLength(1);
    expect(JSON.parse(entrypoints[0]!.args)).toEqual([
      "/usr/local/bin/node",
      "/app/dist/enclave.mjs",
      "--bring-up-loopback",
      "--listen",
      "vsock://4294967295:8443",
      "--egress-proxy",
      "vsock://3:8128",
      "--provision-listen",
      "vsock://4294967295:9000",
    ]);
  });
});

describe("infra/deploy/image/Dockerfile.dockerignore", () => {
  const lines = IGNORE.split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  it("is an allow-list", () => {
    expect(lines[0]).toBe("*");
  });

  it("lets in exactly what the builder compiles and installs from", () => {
    const build = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, ".config/tsconfig.build.json"), "utf8")) as { include: string[] };
    // The build config sits in .config/ (the top level holds only what the project names there), so its includes are "../<folder>".
    const included = build.include.map((p) => path.posix.normalize(`.config/${p}`));
    const allowed = lines.filter((l) => l.startsWith("!")).map((l) => l.slice(1));
    expect(allowed.sort()).toEqual([...included, "package.json", "package-lock.json", "tsconfig.json", ".config/tsconfig.build.json"].sort());
  });

  it("keeps out node_modules and tests even inside allowed folders", () => {
    expect(lines).toContain("**/node_modules");
    expect(lines).toContain("**/*.test.ts");
  });
});

describe("infra/deploy/image/build.sh", () => {
  const script = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/build.sh"), "utf8");

  it("is strict bash and executable", () => {
    expect(script.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(script).toMatch(/^set -euo pipefail$/m);
    expect(fs.statSync(path.join(REPO_ROOT, "infra/deploy/image/build.sh")).mode & 0o111).not.toBe(0);
  });
});
