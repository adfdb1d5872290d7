import type { ClassifiedInput } from "./allowlist.js";

/**
 * inputs.json, written next to the bundle (build/app/inputs.json; the
 * builder stage's /out/inputs.json, outside the image): every file esbuild
 * put into the bundle, grouped by our source folder or by npm package, with
 * sizes, so a reviewer sees exactly what code PCR2 covers and where a
 * release's bundle grew. Deterministic: sorted, no time, no absolute path;
 * two builds of one commit write the same bytes.
 *
 *   { "format": "egw-bundle-inputs/1",
 *     "entry": "dist/enclave/bin.js",
 *     "bundle": { "file": "dist/enclave.mjs", "bytes": …, "sha256": "…" },
 *     "totals": { "files": …, "inputBytes": …, "sourceBytes": …, "packageBytes": … },
 *     "sources":  [ { "folder": "enclave/providers/", "bytes": …, "files": [ { "path": "dist/enclave/providers/…js", "bytes": … } ] } ],
 *     "packages": [ { "name": "hono", "version": "4.…", "lockKey": "node_modules/hono", "bytes": …, "files": [ … ] } ] }
 *
 * "bytes" of an input is its size as esbuild read it (before tree shaking),
 * an upper bound of what reaches the bundle.
 */
export const INPUTS_FORMAT = "egw-bundle-inputs/1";
export const INPUTS_FILE = "inputs.json";

export interface InputFile {
  path: string;
  bytes: number;
}

export interface InputsReport {
  format: typeof INPUTS_FORMAT;
  entry: string;
  bundle: { file: string; bytes: number; sha256: string };
  totals: { files: number; inputBytes: number; sourceBytes: number; packageBytes: number };
  sources: { folder: string; bytes: number; files: InputFile[] }[];
  packages: { name: string; version: string; lockKey: string; bytes: number; files: InputFile[] }[];
}

export function inputsReport(entry: string, bundle: InputsReport["bundle"], inputs: readonly ClassifiedInput[], versionOf: (lockKey: string) => string): InputsReport {
  const sources = new Map<string, InputsReport["sources"][number]>();
  const packages = new Map<string, InputsReport["packages"][number]>();
  let sourceBytes = 0;
  let packageBytes = 0;
  for (const input of inputs) {
    const file = { path: input.input, bytes: input.bytes };
    if (input.kind === "source") {
      sourceBytes += input.bytes;
      const group = sources.get(input.folder) ?? { folder: input.folder, bytes: 0, files: [] };
      group.bytes += input.bytes;
      group.files.push(file);
      sources.set(input.folder, group);
    } else {
      packageBytes += input.bytes;
      const group = packages.get(input.lockKey) ?? { name: input.name, version: versionOf(input.lockKey), lockKey: input.lockKey, bytes: 0, files: [] };
      group.bytes += input.bytes;
      group.files.push(file);
      packages.set(input.lockKey, group);
    }
  }
  const byPath = (a: InputFile, b: InputFile) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  const sorted = <T extends { files: InputFile[] }>(groups: Map<string, T>) =>
    [...groups.keys()].sort().map((key) => {
      const group = groups.get(key)!;
      group.files.sort(byPath);
      return group;
    });
  return {
    format: INPUTS_FORMAT,
    entry,
    bundle,
    totals: { files: inputs.length, inputBytes: sourceBytes + packageBytes, sourceBytes, packageBytes },
    sources: sorted(sources),
    packages: sorted(packages),
  };
}
