import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * docs/THREAT-MODEL.md §4 cites the test behind every claim as
 * `path` › "test name". A citation that names a file or a test that does
 * not exist is a claim with no test: this keeps the table honest when
 * tests are renamed or moved.
 */
const root = path.resolve(import.meta.dirname, "../..");
const doc = fs.readFileSync(path.join(root, "docs/THREAT-MODEL.md"), "utf8");
const section = doc.slice(doc.indexOf("## 4. Claim → test"), doc.indexOf("\n## 5."));

interface Citation {
  claim: string;
  file: string;
  name?: string;
}

function citations(): Citation[] {
  const out: Citation[] = [];
  for (const row of section.split("\n").filter((l) => /^\| [A-Z][\w-]* \|/.test(l))) {
    const claim = row.split("|")[1]!.trim();
    let file: string | undefined;
    for (const m of row.matchAll(/`([^`]+\.test\.ts)`|›\s*"((?:[^"\\]|\\.)+?)"(?=\s*(?:;|\(|\.|\||$|,))/g)) {
      if (m[1]) {
        file = m[1];
        out.push({ claim, file });
      } else if (file) out.push({ claim, file, name: m[2]! });
    }
  }
  return out;
}

/** Test names built from a table (`it(\`refuses ${name}\`)`), as patterns: the literal parts must match. */
function templates(source: string): RegExp[] {
  const out: RegExp[] = [];
  for (const m of source.matchAll(/\b(?:it|test|describe)(?:\.each\([^)]*\))?\(\s*`((?:[^`\\]|\\.)*)`/g)) {
    if (!m[1]!.includes("${")) continue;
    const parts = m[1]!.split(/\$\{[^}]*\}/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    out.push(new RegExp(`^${parts.join(".+")}$`, "s"));
  }
  // it.each(rows)("refuses %s (ERR_…)", …)
  for (const m of source.matchAll(/\)\(\s*"((?:[^"\\]|\\.)*%[sidj](?:[^"\\]|\\.)*)"/g)) {
    const parts = m[1]!.split(/%[sidj]/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    out.push(new RegExp(`^${parts.join(".+")}$`, "s"));
  }
  return out;
}

describe("docs/THREAT-MODEL.md §4 cites tests that exist", () => {
  const all = citations();

  it("finds the citations (control)", () => {
    expect(all.length).toBeGreaterThan(100);
    expect(new Set(all.map((c) => c.claim)).size).toBeGreaterThan(40);
  });

  it("every cited file exists, and every cited test name is in that file", () => {
    const missing: string[] = [];
    for (const c of all) {
      const file = path.join(root, c.file);
      if (!fs.existsSync(file)) {
        missing.push(`${c.claim}: no file ${c.file}`);
        continue;
      }
      if (c.name === undefined) continue;
      const source = fs.readFileSync(file, "utf8");
      // The name as written in the source, with the quoting the source may need.
      const forms = [c.name, c.name.replace(/"/g, '\\"'), c.name.replace(/'/g, "\\'")];
      if (!forms.some((f) => source.includes(f)) && !templates(source).some((t) => t.test(c.name!))) missing.push(`${c.claim}: ${c.file} has no test "${c.name}"`);
    }
    expect(missing).toEqual([]);
  });
});
