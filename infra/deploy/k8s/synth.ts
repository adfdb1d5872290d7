import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { K8sChartError } from "./errors.js";
import { exampleInput } from "./example.js";
import { renderManifest } from "./render.js";

/**
 * Writes the manifest. Without arguments: default props and the example
 * inputs, to infra/deploy/k8s/manifests/enclave-gateway.k8s.yaml (the committed file the
 * drift test compares). With --trust-policy and --operations (and usually
 * --sealed-secrets, --image, --replicas), your deployment's manifest to
 * --out or stdout.
 *
 *   npm run build && node dist/infra/deploy/k8s/synth.js
 *   node dist/infra/deploy/k8s/synth.js --trust-policy trust-policy.json --operations operations.json --sealed-secrets sealed.json \
 *     --image <repo>@sha256:<digest> --replicas 4 --out enclave-gateway.k8s.yaml
 */
export const DEFAULT_OUT = "infra/deploy/k8s/manifests/enclave-gateway.k8s.yaml";

/** The repository root: the nearest directory above this file whose package.json is ours (source tree or dist/). */
async function repoRoot(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")) as { name?: unknown };
      if (pkg.name === "enclave-gateway") return dir;
    } catch {
      // No package.json here: keep walking up.
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("synth: cannot find the enclave-gateway repository root; pass --out");
    dir = parent;
  }
}

export interface SynthIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export async function main(argv: string[], io: SynthIo = process): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        "trust-policy": { type: "string" },
        operations: { type: "string" },
        "sealed-secrets": { type: "string" },
        image: { type: "string" },
        replicas: { type: "string" },
        out: { type: "string" },
      },
      strict: true,
    }));
  } catch (err) {
    io.stderr.write(
      `synth: ${(err as Error).message}\nusage: synth.js [--trust-policy <file> --operations <file> [--sealed-secrets <file>] [--image <ref>] [--replicas <n>]] [--out <file>]\n`,
    );
    return 2;
  }
  const custom = values["trust-policy"] !== undefined || values.operations !== undefined;
  if (custom && (values["trust-policy"] === undefined || values.operations === undefined)) {
    io.stderr.write("synth: --trust-policy and --operations go together: the enclave boots with both\n");
    return 2;
  }
  if (!custom && (values["sealed-secrets"] !== undefined || values.image !== undefined || values.replicas !== undefined)) {
    io.stderr.write("synth: --sealed-secrets, --image and --replicas need --trust-policy and --operations\n");
    return 2;
  }
  let manifest: string;
  try {
    const input = custom
      ? {
          trustPolicy: new Uint8Array(await readFile(values["trust-policy"]!)),
          operations: new Uint8Array(await readFile(values.operations!)),
          ...(values["sealed-secrets"] !== undefined && { sealedSecrets: new Uint8Array(await readFile(values["sealed-secrets"])) }),
          ...(values.image !== undefined && { image: values.image }),
          ...(values.replicas !== undefined && { replicas: /^\d{1,4}$/.test(values.replicas) ? Number(values.replicas) : Number.NaN }),
        }
      : exampleInput();
    manifest = renderManifest(input);
  } catch (err) {
    if (err instanceof K8sChartError) {
      io.stderr.write(`synth: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const out = values.out ?? (custom ? undefined : path.join(await repoRoot(), DEFAULT_OUT));
  if (out === undefined) {
    io.stdout.write(manifest);
    return 0;
  }
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, manifest);
  io.stderr.write(`synth: wrote ${out}\n`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
