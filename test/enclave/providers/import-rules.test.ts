import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * How enclave/providers/ hangs together, as a test:
 * - canonical/ is pure types and imports nothing;
 * - shared/ (upstream HTTP, SSE) imports no provider folder;
 * - a provider folder imports no other provider folder, only canonical/,
 *   shared/, the contract (types.ts) and module.ts;
 * - nothing under providers/ imports the layers above it (gateway, router,
 *   upstream retries, surfaces), so there is no circle through them;
 * - the imports among providers/ files form no cycle.
 */
const root = path.resolve(import.meta.dirname, "../../..");
const providersDir = path.join(root, "enclave/providers");

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
}

/** Repository-relative paths (without .ts/.js) of the relative imports and re-exports of one file. */
function imports(file: string): string[] {
  const source = fs.readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of source.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+)"|^import\s+"(\.[^"]+)"/gms)) {
    out.push(path.relative(root, path.resolve(path.dirname(file), (m[1] ?? m[2])!)).replace(/\.js$/, ""));
  }
  return out;
}

const graph = new Map(files(providersDir).map((f) => [path.relative(root, f).replace(/\.ts$/, ""), imports(f)]));
/** The folder under enclave/providers/ a file sits in; undefined for the top-level files (types, module, registry). */
const folderOf = (file: string): string | undefined => (file.split("/").length > 3 ? file.split("/")[2] : undefined);
const PROVIDER_FOLDERS = [...new Set([...graph.keys()].map(folderOf))].filter((p): p is string => p !== undefined && p !== "canonical" && p !== "shared");

describe("enclave/providers import rules", () => {
  it("sees every provider folder and its imports", () => {
    expect(PROVIDER_FOLDERS.sort()).toEqual(["anthropic", "bedrock", "gemini", "local", "openai"]);
    expect(graph.get("enclave/providers/registry")).toContain("enclave/providers/openai/index");
  });

  it("canonical/ imports nothing", () => {
    for (const [file, deps] of graph) if (file.startsWith("enclave/providers/canonical/")) expect(deps, file).toEqual([]);
  });

  it("shared/ imports no provider folder", () => {
    for (const [file, deps] of graph) {
      if (!file.startsWith("enclave/providers/shared/")) continue;
      for (const dep of deps)
        expect(
          PROVIDER_FOLDERS.some((p) => dep.startsWith(`enclave/providers/${p}/`)),
          `${file} → ${dep}`,
        ).toBe(false);
    }
  });

  it("a provider folder imports no other provider folder", () => {
    for (const [file, deps] of graph) {
      const own = folderOf(file);
      if (own === undefined || !PROVIDER_FOLDERS.includes(own)) continue;
      for (const dep of deps) {
        const other = PROVIDER_FOLDERS.find((p) => p !== own && dep.startsWith(`enclave/providers/${p}/`));
        expect(other, `${file} → ${dep}`).toBeUndefined();
      }
    }
  });

  it("nothing under providers/ imports the layers above it", () => {
    const above = /^enclave\/(gateway|router|upstream|server|boot|main|surfaces\/|middleware\/)/;
    for (const [file, deps] of graph) for (const dep of deps) expect(above.test(dep), `${file} → ${dep}`).toBe(false);
  });

  it("the imports among providers/ files form no cycle", () => {
    const state = new Map<string, "open" | "done">();
    const visit = (node: string, trail: string[]): void => {
      if (state.get(node) === "done") return;
      if (state.get(node) === "open") throw new Error(`import cycle: ${[...trail, node].join(" → ")}`);
      state.set(node, "open");
      for (const dep of graph.get(node) ?? []) if (graph.has(dep)) visit(dep, [...trail, node]);
      state.set(node, "done");
    };
    for (const node of graph.keys()) visit(node, []);
  });
});
