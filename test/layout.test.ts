/**
 * The top level holds only what the project names there (DEVELOPERS.md):
 * the manifest, the lockfile, tsconfig.json, the README and the seven
 * folders. Tool configs that need a file of their own live in .config/
 * (biome, the build's tsconfig) or beside their tool (test/vitest.config.ts),
 * and CI in .ci/. Untracked outputs the .gitignore names are not the tree's.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const ALLOWED = [
  ".ci",
  ".config",
  ".git",
  ".gitignore",
  "README.md",
  "attestation",
  "bench",
  "docs",
  "enclave",
  "host",
  "infra",
  "package-lock.json",
  "package.json",
  "test",
  "tsconfig.json",
];

/** Top-level names .gitignore excludes ("dist/", "*.log"): build outputs and local state, never committed. */
function ignored(name: string): boolean {
  const rules = fs
    .readFileSync(path.join(ROOT, ".gitignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  return rules.some((r) => {
    const bare = r.replace(/\/$/, "");
    if (bare.startsWith("*")) return name.endsWith(bare.slice(1));
    return name === bare;
  });
}

describe("the top level", () => {
  it("holds only the files and folders the project names", () => {
    const extra = fs
      .readdirSync(ROOT)
      .filter((n) => !ignored(n))
      .filter((n) => !ALLOWED.includes(n));
    expect(extra).toEqual([]);
  });

  it("keeps the tool configs where the scripts look for them", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toContain(".config/tsconfig.build.json");
    expect(pkg.scripts.test).toContain("--config-path .config/biome.json");
    expect(fs.existsSync(path.join(ROOT, ".config/biome.json"))).toBe(true);
    expect(fs.existsSync(path.join(ROOT, ".config/tsconfig.build.json"))).toBe(true);
  });
});
