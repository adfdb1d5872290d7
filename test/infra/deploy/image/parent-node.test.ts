/**
 * One Node.js on the parent side. infra/deploy/aws/parent-node.ts chooses the major;
 * the EC2 user data (infra/deploy/aws/user-data.ts) and the chart
 * (infra/deploy/k8s/commands.ts) import it. What cannot import it is held to it
 * here: the pod image definition (infra/deploy/image/parent.Dockerfile), the
 * committed manifest and the deployment docs. Moving the major in one place
 * and not in the others fails this file.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PARENT_NODE } from "../../../../infra/deploy/aws/parent-node.js";
import { relayCommand } from "../../../../infra/deploy/aws/systemd-units.js";
import { bootScript, EGW_ON_INSTANCE } from "../../../../infra/deploy/aws/user-data.js";
import { IMAGE_PATHS } from "../../../../infra/deploy/k8s/commands.js";
import { DEFAULT_OUT } from "../../../../infra/deploy/k8s/synth.js";
import { container, synth } from "../k8s/synth-helpers.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const read = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
const DOCKERFILE = read("infra/deploy/image/parent.Dockerfile");
/** Instruction lines only (comments dropped), continuations left as they are. */
const DOCKERFILE_CODE = DOCKERFILE.split("\n")
  .filter((l) => !l.trim().startsWith("#"))
  .join("\n");

/** The Node majors a text names through AL2023's namespaced names: nodejs<N>, nodejs<N>-npm, node-<N>, npm-<N>. */
function majorsNamed(text: string): Set<number> {
  return new Set([...text.matchAll(/\b(?:nodejs|node-|npm-)(\d+)/g)].map((m) => Number(m[1])));
}

/** The AL2023 Node packages a text names (nodejs<N> and nodejs<N>-<sub>), without version suffixes. */
function nodePackages(text: string): Set<string> {
  return new Set([...text.matchAll(/\bnodejs\d+(?:-npm)?/g)].map((m) => m[0]));
}

const BOOT = bootScript({ allocator: { memoryMib: 2048, cpuCount: 2 }, fetch: [], relayReadable: [], units: [] }).join("\n");

describe("infra/deploy/aws/parent-node.ts", () => {
  it("names AL2023's namespaced packages and binaries of one supported LTS major", () => {
    expect(PARENT_NODE.package).toBe(`nodejs${PARENT_NODE.major}`);
    expect(PARENT_NODE.npmPackage).toBe(`nodejs${PARENT_NODE.major}-npm`);
    expect(PARENT_NODE.node).toBe(`/usr/bin/node-${PARENT_NODE.major}`);
    expect(PARENT_NODE.npm).toBe(`/usr/bin/npm-${PARENT_NODE.major}`);
    // Even majors become LTS; Node.js 20 and older are end of life (20: April 2026).
    expect(PARENT_NODE.major % 2).toBe(0);
    expect(PARENT_NODE.major).toBeGreaterThanOrEqual(22);
  });
});

describe("the EC2 parent and the pod run the same Node", () => {
  it("same interpreter: the instance's units, the chart's relay container, the image's entrypoint", () => {
    expect(EGW_ON_INSTANCE.node).toBe(PARENT_NODE.node);
    expect(IMAGE_PATHS.egw[0]).toBe(PARENT_NODE.node);
    const unitCommand = relayCommand({
      egw: EGW_ON_INSTANCE,
      enclaveCid: 16,
      enclavePort: 8443,
      listenPort: 443,
      egressVsockPort: 8128,
      trustPolicyPath: "/etc/egw/trust-policy.json",
      operationsPath: "/etc/egw/operations.json",
      extraArgs: [],
    });
    expect(unitCommand[0]).toBe(PARENT_NODE.node);
    expect(container(synth(), "relay").command[0]).toBe(PARENT_NODE.node);
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])$/m.exec(DOCKERFILE)![1]!;
    expect((JSON.parse(entrypoint) as string[])[0]).toBe(PARENT_NODE.node);
  });

  it("same packages: the pod image installs what the EC2 user data installs", () => {
    expect(nodePackages(BOOT)).toEqual(new Set([PARENT_NODE.package, PARENT_NODE.npmPackage]));
    expect(nodePackages(DOCKERFILE_CODE)).toEqual(nodePackages(BOOT));
    // The runtime stage pins the runtime package with the image's one version argument.
    expect(DOCKERFILE_CODE).toContain(`"${PARENT_NODE.package}-\${NODEJS_VERSION}"`);
    expect(DOCKERFILE_CODE).toContain(`rpm -q "aws-nitro-enclaves-cli-\${NITRO_CLI_VERSION}" "${PARENT_NODE.package}-\${NODEJS_VERSION}"`);
  });

  it("the image's pinned version belongs to that major", () => {
    const pins = [...DOCKERFILE.matchAll(/^ARG NODEJS\w*_VERSION=(.*)$/gm)];
    expect(pins.map((m) => m[0].split("=")[0])).toEqual(["ARG NODEJS_VERSION"]);
    expect(pins[0]![1]).toMatch(new RegExp(`^${PARENT_NODE.major}\\.\\d+\\.\\d+-\\d+\\.amzn2023(\\.\\d+)*$`));
  });

  it("the builder's plain `node` and `npm` are that major's binaries", () => {
    expect(DOCKERFILE_CODE).toContain(`ln -sf ${PARENT_NODE.node} /usr/local/bin/node && ln -sf ${PARENT_NODE.npm} /usr/local/bin/npm`);
  });

  it("the boot script installs the package with that major's npm", () => {
    expect(BOOT).toMatch(new RegExp(`^${PARENT_NODE.npm} install `, "m"));
  });
});

describe("no other Node major is named on the parent side", () => {
  const texts: [string, string][] = [
    ["infra/deploy/image/parent.Dockerfile (comments included)", DOCKERFILE],
    ["EC2 boot script", BOOT],
    [DEFAULT_OUT, read(DEFAULT_OUT)],
    ["docs/DEPLOY.md", read("docs/DEPLOY.md")],
    ["docs/KUBERNETES.md", read("docs/KUBERNETES.md")],
    ["infra/deploy/image/README.md", read("infra/deploy/image/README.md")],
  ];

  it.each(texts)("%s", (_name, text) => {
    expect(majorsNamed(text)).toEqual(new Set([PARENT_NODE.major]));
  });
});
