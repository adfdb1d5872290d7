import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * No import circles among our files (issue 12, "infra/": "No circles"). A
 * circle means neither file can be read, tested or moved without the other,
 * and under ESM it means one of them runs against the other's half-initialised
 * bindings. Every edge counts: static imports, `import type` (a type-only
 * circle still ties the two files together for a reader), re-exports and
 * dynamic `import()`.
 */
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const FOLDERS = ["attestation", "enclave", "host", "infra", "bench", "test"];
/** This file: its fixtures below are import statements inside strings. */
const SELF = "test/import-cycles.test.ts";

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "node_modules" && entry.name !== "fixtures") walk(rel);
      } else if (/\.(ts|mts)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(rel);
    }
  };
  for (const folder of FOLDERS) walk(folder);
  return out.filter((f) => f !== SELF).sort();
}

/** Relative specifiers of every import, re-export and dynamic import in `text` (comments stripped first). */
function importSpecifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\s}])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/(?:^|[;\s])import\s*["']([^"']+)["']/g)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]!);
  return out.filter((s) => s.startsWith("./") || s.startsWith("../"));
}

/** The repository file a relative specifier names (".js" is the compiled name of a ".ts" source). */
function resolve(from: string, spec: string, known: ReadonlySet<string>): string | undefined {
  const target = path.normalize(path.join(path.dirname(from), spec));
  for (const candidate of [target, target.replace(/\.js$/, ".ts"), target.replace(/\.mjs$/, ".mts"), `${target}.ts`, path.join(target, "index.ts")]) {
    if (known.has(candidate)) return candidate;
  }
  return undefined;
}

/** Every elementary circle's first appearance in a depth-first walk, as a list of files (the first repeated last). */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

describe("import graph", () => {
  const files = sourceFiles();
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  const unresolved: string[] = [];
  for (const file of files) {
    const edges: string[] = [];
    for (const spec of importSpecifiers(readFileSync(path.join(REPO, file), "utf8"))) {
      const target = resolve(file, spec, known);
      if (target === undefined) {
        // Non-source targets (JSON, fixtures) are leaves; anything else is a broken import.
        if (!/\.(json|mjs|pem|txt)$/.test(spec) && !spec.includes("/fixtures/")) unresolved.push(`${file} → ${spec}`);
      } else edges.push(target);
    }
    graph.set(file, edges);
  }

  it("the scanner reads every kind of import, and the walk finds a circle where there is one", () => {
    const text = [
      'import { a } from "./a.js";',
      'import type { B } from "../b.js";',
      'export { c } from "./c.js";',
      'export * from "./d.js";',
      'import "./e.js";',
      'const f = await import("./f.js");',
      "import {\n  g,\n  type H,\n} from './g.js';",
      'import fs from "node:fs";',
      '// import { x } from "./commented.js";',
      '/* import { y } from "./block.js"; */',
    ].join("\n");
    expect(importSpecifiers(text).sort()).toEqual(["../b.js", "./a.js", "./c.js", "./d.js", "./e.js", "./f.js", "./g.js"]);
    const g = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a", "d"]],
      ["d", []],
    ]);
    expect(findCycles(g)).toEqual([["a", "b", "c", "a"]]);
    expect(
      findCycles(
        new Map([
          ["a", ["b"]],
          ["b", []],
        ]),
      ),
    ).toEqual([]);
  });

  it("reads the whole tree: hundreds of files, every relative import resolved", () => {
    expect(files.length).toBeGreaterThan(300);
    expect([...graph.values()].reduce((n, e) => n + e.length, 0)).toBeGreaterThan(1000);
    expect(unresolved).toEqual([]);
  });

  it("has no circle among our files", () => {
    expect(findCycles(graph).map((c) => c.join(" → "))).toEqual([]);
  });
});
