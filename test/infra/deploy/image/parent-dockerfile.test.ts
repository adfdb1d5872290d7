/**
 * Static checks of the pod image definition (infra/deploy/image/parent.Dockerfile
 * and its .dockerignore) against what the Kubernetes chart runs: the paths in
 * infra/deploy/k8s/commands.ts IMAGE_PATHS, the relay's uid from the synthesized
 * Deployment. This machine has no Docker, so what would make the image
 * unpinned, drift from the chart, or build its own EIF is checked in the text;
 * every RUN is at least parsed by bash (/bin/sh on Amazon Linux is bash).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { copies, parseDockerfile, runs, type Stage } from "./dockerfile-model.js";
import { PARENT_NODE } from "../../../../infra/deploy/aws/parent-node.js";
import { IMAGE_PATHS } from "../../../../infra/deploy/k8s/commands.js";
import { container, synth } from "../k8s/synth-helpers.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const TEXT = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/parent.Dockerfile"), "utf8");
const IGNORE = fs.readFileSync(path.join(REPO_ROOT, "infra/deploy/image/parent.Dockerfile.dockerignore"), "utf8");

const { instructions, globalArgs, stages } = parseDockerfile(TEXT);
const stage = (name: string) => stages.find((s) => s.name === name)!;
const runtime = stages.at(-1)!;

/** The image a stage finally starts from, following `FROM <stage>`. */
function rootImage(s: Stage): string {
  const parent = stages.find((p) => p.name === s.from);
  return parent === undefined ? s.from : rootImage(parent);
}

/** COPY destinations of the runtime stage (last argument). */
const runtimeCopyTargets = copies(runtime).map((args) => args.split(/\s+/).at(-1)!);
/** Absolute paths a runtime RUN asserts with `test -x <path>`, after installing the package that provides them. */
const runtimeAsserted = runs(runtime).flatMap((r) => [...r.matchAll(/test -x (\/\S+)/g)].map((m) => m[1]!));

describe("infra/deploy/image/parent.Dockerfile: stages and pins", () => {
  it("has the base, the EIF input, a builder, the EIF check and a final runtime stage", () => {
    expect(stages.map((s) => s.name)).toEqual(["base", "eif", "builder", "eif-checked", "runtime"]);
  });

  it("pins every FROM by digest, through the one AL2023_IMAGE argument", () => {
    const images = [...globalArgs.entries()].filter(([, v]) => v.includes("@") || v.includes(":")).map(([k]) => k);
    expect(images).toEqual(["AL2023_IMAGE"]);
    expect(globalArgs.get("AL2023_IMAGE")).toMatch(/^(public\.ecr\.aws\/amazonlinux\/)?amazonlinux:2023@sha256:[0-9a-f]{64}$/);
    for (const s of stages) expect(rootImage(s), s.name).toMatch(/@sha256:[0-9a-f]{64}$/);
    // build.sh reads the default with this exact pattern.
    expect(TEXT.match(/^ARG AL2023_IMAGE=/gm)).toHaveLength(1);
  });

  it("names no :latest tag, no syntax frontend pulled by tag, no ADD, curl or wget", () => {
    for (const i of instructions) expect(i.args).not.toMatch(/:latest\b|releasever=latest/);
    expect(TEXT).not.toMatch(/^#\s*syntax=/m);
    expect(instructions.filter((i) => i.keyword === "ADD")).toEqual([]);
    for (const s of stages) for (const r of runs(s)) expect(r, s.name).not.toMatch(/\b(curl|wget|apt-get|yum)\b/);
  });

  it("reads every dnf transaction from one dated snapshot, which the base stage checks against the rootfs", () => {
    expect(globalArgs.get("AL2023_RELEASEVER")).toMatch(/^2023\.\d+\.\d{8}$/);
    // Each command of a RUN that invokes dnf (not a path containing "dnf").
    const dnf = stages.flatMap((s) => runs(s).flatMap((r) => r.split("&&").filter((c) => /^\s*dnf\s/.test(c) && !/dnf clean all/.test(c))));
    expect(dnf).toHaveLength(3);
    for (const c of dnf) expect(c).toContain('dnf --releasever="${AL2023_RELEASEVER}"');
    const check = runs(stage("base")).join("\n");
    expect(check).toContain("rpm -q --qf '%{VERSION}' system-release");
    expect(check).toContain('"${AL2023_RELEASEVER}"');
  });

  it("installs aws-nitro-enclaves-cli and the parent's Node package at pinned versions, and checks what got installed", () => {
    for (const name of ["NITRO_CLI_VERSION", "NODEJS_VERSION"]) expect(globalArgs.get(name), name).toMatch(/^\d+\.\d+\.\d+-\d+\.amzn2023(\.\d+)*$/);
    const node = `"${PARENT_NODE.package}-\${NODEJS_VERSION}"`;
    const all = runs(runtime).join("\n");
    const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    expect(all).toMatch(new RegExp(`install\\s+${escape(`"aws-nitro-enclaves-cli-\${NITRO_CLI_VERSION}" ${node}`)}`));
    expect(all).toContain(`rpm -q "aws-nitro-enclaves-cli-\${NITRO_CLI_VERSION}" ${node}`);
    // The builder runs the same Node as the pod.
    expect(runs(stage("builder")).join("\n")).toContain(`${node} ${PARENT_NODE.npmPackage} `);
  });

  it("parses every RUN with bash -n", () => {
    for (const s of stages) {
      for (const r of runs(s)) {
        const check = spawnSync("bash", ["-n", "-c", r], { encoding: "utf8" });
        expect(check.status, `${s.name}: ${r}\n${check.stderr}`).toBe(0);
      }
    }
  });
});

describe("infra/deploy/image/parent.Dockerfile: the layout the chart runs (infra/deploy/k8s/commands.ts IMAGE_PATHS)", () => {
  it("provides IMAGE_PATHS.eif as the destination of a COPY", () => {
    expect(runtimeCopyTargets).toContain(IMAGE_PATHS.eif);
  });

  it("provides IMAGE_PATHS.nitroCli and the interpreter IMAGE_PATHS.egw[0] from the packages it installs, and asserts both", () => {
    expect(IMAGE_PATHS.nitroCli).toBe("/usr/bin/nitro-cli");
    expect(IMAGE_PATHS.egw[0]).toBe(PARENT_NODE.node);
    expect(runtimeAsserted).toContain(IMAGE_PATHS.nitroCli);
    expect(runtimeAsserted).toContain(IMAGE_PATHS.egw[0]);
  });

  it("provides the script IMAGE_PATHS.egw[1] under a COPY destination, built where the builder installs the package", () => {
    const script = IMAGE_PATHS.egw[1];
    const under = runtimeCopyTargets.filter((t) => script.startsWith(`${t}/`));
    expect(under).toEqual(["/opt/egw/lib"]);
    expect(copies(runtime)).toContain("--from=builder /opt/egw/lib /opt/egw/lib");
    const builder = runs(stage("builder")).join("\n");
    const pkgDir = script.replace(/\/dist\/infra\/cli\/egw\.js$/, "");
    expect(pkgDir).toBe("/opt/egw/lib/node_modules/enclave-gateway");
    expect(builder).toContain(`-C ${pkgDir}`);
    // The builder runs the script at that path with that interpreter.
    expect(builder).toContain(`${IMAGE_PATHS.egw[0]} ${script} help`);
  });

  it("has the interpreter and script as its entrypoint, exactly as the chart spells them", () => {
    const entrypoints = runtime.body.filter((i) => i.keyword === "ENTRYPOINT");
    expect(entrypoints).toHaveLength(1);
    expect(JSON.parse(entrypoints[0]!.args)).toEqual([...IMAGE_PATHS.egw]);
  });

  it("asserts the shell tools the launcher script and the readiness check use", () => {
    expect(runs(runtime).join("\n")).toContain("command -v sh grep sleep");
  });

  it("the chart's containers call only those paths (and /bin/sh)", () => {
    const objects = synth();
    const relay = container(objects, "relay");
    const enclave = container(objects, "enclave");
    expect(relay.command.slice(0, 2)).toEqual([...IMAGE_PATHS.egw]);
    expect(enclave.command[0]).toBe("/bin/sh");
    const absolute = (enclave.command[2] as string).match(/\/[\w./-]+/g)!.filter((p) => /^\/(usr|opt|bin)\//.test(p));
    expect(new Set(absolute)).toEqual(new Set([IMAGE_PATHS.nitroCli, IMAGE_PATHS.eif]));
  });
});

describe("infra/deploy/image/parent.Dockerfile: the EIF is an input", () => {
  it("copies egw.eif from the named context `eif`, whose placeholder stage fails the build", () => {
    expect(copies(stage("eif-checked"))).toEqual(["--from=eif egw.eif /out/egw.eif"]);
    const placeholder = stage("eif");
    expect(placeholder.body.filter((i) => i.keyword !== "RUN")).toEqual([]);
    expect(runs(placeholder).join("\n")).toMatch(/--build-context eif=.*exit 1$/);
    expect(copies(runtime)).toContain("--from=eif-checked /out/egw.eif /opt/egw/egw.eif");
  });

  it("checks it against EIF_SHA256 and the EIF magic before shipping it read-only", () => {
    const check = runs(stage("eif-checked")).join("\n");
    expect(check).toContain('echo "${EIF_SHA256}  /out/egw.eif" | sha256sum -c -');
    expect(check).toContain('test "${#EIF_SHA256}" -eq 64');
    expect(check).toContain('test "$(head -c 4 /out/egw.eif)" = ".eif"');
    expect(check).toContain("chmod 0444 /out/egw.eif");
  });

  it("never builds an EIF nor runs docker", () => {
    for (const s of stages) for (const r of runs(s)) expect(r, s.name).not.toMatch(/build-enclave|\bdocker\s+(build|buildx|run)\b/);
    for (const s of stages)
      expect(
        s.body.filter((i) => i.keyword === "COPY" && /\.eif\b/.test(i.args) && !/^--from=/.test(i.args)),
        s.name,
      ).toEqual([]);
  });
});

describe("infra/deploy/image/parent.Dockerfile: users", () => {
  const objects = synth();
  const relay = container(objects, "relay").securityContext;
  const enclave = container(objects, "enclave").securityContext;

  it("defines the relay user with the uid and gid the chart runs the relay as", () => {
    expect(relay.runAsUser).toBe(65532);
    expect(relay.runAsGroup).toBe(65532);
    const all = runs(runtime).join("\n");
    expect(all).toContain(`groupadd --gid ${relay.runAsGroup} egw`);
    expect(all).toMatch(new RegExp(`useradd --uid ${relay.runAsUser} --gid ${relay.runAsGroup} .*--shell /sbin/nologin`));
  });

  it("gives that user no file: nothing is chowned to it", () => {
    for (const s of stages) for (const r of runs(s)) expect(r, s.name).not.toMatch(/\bchown\b/);
    for (const s of stages) for (const c of copies(s)) expect(c, s.name).not.toMatch(/--chown/);
  });

  it("runs as that user by default; only the chart's enclave container asks for root (nitro-cli)", () => {
    const users = runtime.body.filter((i) => i.keyword === "USER").map((i) => i.args);
    expect(users).toEqual([`${relay.runAsUser}:${relay.runAsGroup}`]);
    expect(enclave.runAsUser).toBe(0);
  });
});

describe("infra/deploy/image/parent.Dockerfile: builds from the lockfile, reproducibly", () => {
  const builder = runs(stage("builder")).join("\n");

  it("installs with npm ci only: dev tree for the build, the lockfile's production tree for the package", () => {
    expect(copies(stage("builder"))[0]).toBe("package.json package-lock.json ./");
    expect(builder).toMatch(/\bnpm ci --ignore-scripts\b/);
    expect(builder).toMatch(/\bnpm pack --ignore-scripts --pack-destination \/pack\b/);
    expect(builder).toMatch(/cp package-lock\.json \/opt\/egw\/lib\/node_modules\/enclave-gateway\/[\s\S]*npm ci --omit=dev --ignore-scripts/);
    expect(builder).not.toMatch(/\bnpm (install|i)\b/);
  });

  it("loads koffi (vsock FFI) and cbor-extract from the installed package in the builder", () => {
    expect(builder).toMatch(/require\.resolve\("koffi", p\)\)\.load\("libc\.so\.6"\)/);
    expect(builder).toContain("/opt/egw/lib/node_modules/enclave-gateway/dist/host");
  });

  it("ships no npm in the pod image", () => {
    const runtimeRuns = runs(runtime).join("\n");
    expect(runtimeRuns).not.toContain(PARENT_NODE.npmPackage);
    expect(runtimeRuns).not.toMatch(/-npm\b|\bnpm\b|\bnpm-\d+/);
  });

  it("requires SOURCE_DATE_EPOCH where files are made, and fixes their modes and times", () => {
    for (const name of ["builder", "eif-checked", "runtime"]) {
      const s = stage(name);
      expect(
        s.body.some((i) => i.keyword === "ARG" && i.args === "SOURCE_DATE_EPOCH"),
        name,
      ).toBe(true);
      expect(runs(s).join("\n"), name).toContain('test -n "${SOURCE_DATE_EPOCH}"');
    }
    expect(builder).toMatch(/chmod -R u=rwX,go=rX \/opt\/egw\/lib/);
    expect(builder).toMatch(/find \/opt\/egw\/lib -exec touch -h -d "@\$\{SOURCE_DATE_EPOCH\}" \{\} \+/);
    expect(runs(stage("eif-checked")).join("\n")).toContain('touch -d "@${SOURCE_DATE_EPOCH}" /out/egw.eif /out');
    expect(runs(runtime).join("\n")).toMatch(/rm -rf \/var\/cache\/dnf \/var\/lib\/dnf\/history\*/);
  });
});

describe("infra/deploy/image/parent.Dockerfile.dockerignore", () => {
  const lines = IGNORE.split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  it("is an allow-list", () => {
    expect(lines[0]).toBe("*");
  });

  it("lets in what the builder compiles and packs, and no build output (the EIF comes by named context)", () => {
    const build = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, ".config/tsconfig.build.json"), "utf8")) as { include: string[] };
    // The build config sits in .config/ (the top level holds only what the project names there), so its includes are "../<folder>".
    const included = build.include.map((p) => path.posix.normalize(`.config/${p}`));
    const allowed = lines.filter((l) => l.startsWith("!")).map((l) => l.slice(1));
    expect(allowed.sort()).toEqual([...included, "package.json", "package-lock.json", "tsconfig.json", ".config/tsconfig.build.json", "README.md"].sort());
    expect(allowed.some((a) => a.startsWith("build") || a.endsWith(".eif"))).toBe(false);
  });

  it("keeps out node_modules and tests even inside allowed folders", () => {
    expect(lines).toContain("**/node_modules");
    expect(lines).toContain("**/*.test.ts");
  });

  it('lets in every file package.json "files" packs that is not built', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { files: string[] };
    const allowed = new Set(lines.filter((l) => l.startsWith("!")).map((l) => l.slice(1)));
    for (const f of pkg.files.filter((f) => !f.startsWith("dist/"))) expect(allowed.has(f), f).toBe(true);
  });
});
