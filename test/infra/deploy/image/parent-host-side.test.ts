/**
 * What `egw host` loads in the pod image. The pod image ships the whole npm
 * package (infra/deploy/image/parent.Dockerfile), so that the relay loads no enclave
 * code rests on infra/cli/main.ts importing each command lazily: this test
 * walks the static import graph (esbuild's metafile; dynamic imports are
 * edges it does not follow) from the entry the chart runs, plus the `host`
 * command module, and lists every repository file the relay can load.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";
import { IMAGE_PATHS } from "../../../../infra/deploy/k8s/commands.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");

let metafile: Metafile;

beforeAll(async () => {
  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: ["infra/cli/egw.ts"],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    write: false,
    metafile: true,
    logLevel: "silent",
    outdir: "out",
  });
  metafile = result.metafile;
}, 60_000);

/** Repository files reachable from `roots` through static imports only. */
function staticClosure(roots: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    const input = metafile.inputs[file];
    if (input === undefined) throw new Error(`${file} is not in the metafile`);
    seen.add(file);
    for (const imp of input.imports) {
      if (imp.external || imp.kind === "dynamic-import") continue;
      queue.push(imp.path);
    }
  }
  return seen;
}

describe("the host side in the pod image", () => {
  it("runs the CLI entry the chart names (tsc output of infra/cli/egw.ts)", () => {
    expect(IMAGE_PATHS.egw[1]).toMatch(/\/dist\/infra\/cli\/egw\.js$/);
  });

  it("loads commands lazily: the entry's static graph holds no command module", () => {
    const entry = staticClosure(["infra/cli/egw.ts"]);
    expect(entry.has("infra/cli/main.ts")).toBe(true);
    expect(entry.has("infra/cli/host.ts")).toBe(false);
    expect(entry.has("infra/cli/enclave.ts")).toBe(false);
  });

  it("`egw host` loads no enclave/ module", () => {
    const host = staticClosure(["infra/cli/egw.ts", "infra/cli/host.ts"]);
    expect(host.has("infra/cli/host.ts")).toBe(true);
    expect([...host].filter((f) => f.startsWith("enclave/"))).toEqual([]);
    expect([...host].some((f) => f.startsWith("host/ingress/"))).toBe(true);
  });

  it("identity mode (--generate-identity, loaded on demand) loads no enclave/ module either: the sealed-file parser is the shared codec's", () => {
    const identity = staticClosure(["infra/cli/egw.ts", "infra/cli/host.ts", "infra/cli/host-identity.ts"]);
    expect([...identity].filter((f) => f.startsWith("enclave/"))).toEqual([]);
    expect(identity.has("host/transport/codec/sealed-file.ts")).toBe(true);
  });
});
