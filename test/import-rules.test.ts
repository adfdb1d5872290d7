import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ENCLAVE_ALLOWLIST } from "../infra/deploy/image/allowlist.js";

/**
 * The trust rules of the folders, as a test over the import statements
 * (issue 12, "Import rules"):
 *  - attestation/ imports nothing of ours outside attestation/ (relying
 *    parties ship it alone);
 *  - host/ imports nothing that handles plaintext: no enclave/, no infra/,
 *    and of attestation/ only the JSON duplicate-key scanner the codecs use;
 *  - the shared codecs (host/transport/codec/) import nothing but each
 *    other and that scanner, so both sides can load them;
 *  - the enclave program reaches only enclave/, attestation/, the shared
 *    codecs and the allowlisted vsock transport files: what the image's
 *    bundle may hold (infra/deploy/image/allowlist.ts, which the image build also
 *    enforces on esbuild's metafile).
 * Static and dynamic imports both count; type-only imports too (a type
 * import today is a value import after the next edit).
 */
const root = path.resolve(import.meta.dirname, "..");
const SOURCE_ROOTS = ["attestation", "enclave", "host", "infra"];
/**
 * attestation/ files that handle no plaintext and that host/ may load: the
 * JSON duplicate-key scanner over bytes the host already holds, and error
 * base classes at attestation/'s top level (attestation/*error*.ts, where
 * the one error base lives).
 */
const HOST_SAFE_SCANNER = "attestation/client/strict-json.ts";
const hostSafeAttestation = (f: string) => f === HOST_SAFE_SCANNER || /^attestation\/[a-z0-9-]*errors?\.ts$/.test(f);
const CODEC = "host/transport/codec/";

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sourceFiles(rel));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/** Our files that `file` imports (relative specifiers, resolved to repository paths). */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(root, file), "utf8");
  const specifiers = new Set<string>();
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"/g)) specifiers.add(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s+"([^"]+)"/g)) specifiers.add(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)) specifiers.add(m[1]!);
  const out: string[] = [];
  for (const spec of specifiers) {
    if (!spec.startsWith(".")) continue;
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, ".ts");
    out.push(resolved);
  }
  return out;
}

const files = SOURCE_ROOTS.flatMap(sourceFiles);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

function closure(starts: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const stack = [...starts];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const g of graph.get(f) ?? []) stack.push(g);
  }
  return seen;
}

const violations = (from: readonly string[], allowed: (target: string) => boolean) =>
  from.flatMap((f) => (graph.get(f) ?? []).filter((t) => !allowed(t)).map((t) => `${f} → ${t}`));

describe("import rules", () => {
  it("reads the import graph (control: known edges are found, every import resolves to a file)", () => {
    expect(files.length).toBeGreaterThan(200);
    expect(graph.get("host/ingress/relay.ts")).toContain("host/transport/pump.ts");
    expect(graph.get("enclave/server.ts")).toContain("host/transport/codec/proxy-v2.ts");
    expect(graph.get("host/provision/index.ts")).toContain("host/transport/codec/bundle.ts");
    const missing = [...graph].flatMap(([f, targets]) => targets.filter((t) => !fs.existsSync(path.join(root, t))).map((t) => `${f} → ${t}`));
    expect(missing).toEqual([]);
  });

  it("attestation/ imports nothing of ours outside attestation/", () => {
    expect(
      violations(
        files.filter((f) => f.startsWith("attestation/")),
        (t) => t.startsWith("attestation/"),
      ),
    ).toEqual([]);
  });

  it("host/ imports nothing that handles plaintext: no enclave/, no infra/, of attestation/ only the JSON scanner", () => {
    const host = files.filter((f) => f.startsWith("host/"));
    expect(violations(host, (t) => t.startsWith("host/") || hostSafeAttestation(t))).toEqual([]);
    // Transitively too: what those files import must be as harmless.
    const reached = [...closure(host)].filter((f) => !f.startsWith("host/"));
    expect(reached).toContain(HOST_SAFE_SCANNER);
    expect(reached.filter((f) => !hostSafeAttestation(f))).toEqual([]);
  });

  it("the shared codecs import only each other and the JSON scanner", () => {
    const codec = files.filter((f) => f.startsWith(CODEC));
    expect(codec.map((f) => f.slice(CODEC.length)).sort()).toEqual([
      "bundle.ts",
      "config-hash.ts",
      "frame.ts",
      "ip.ts",
      "provision-errors.ts",
      "proxy-v2.ts",
      "sealed-file.ts",
      "status.ts",
    ]);
    expect(violations(codec, (t) => t.startsWith(CODEC) || hostSafeAttestation(t))).toEqual([]);
  });

  it("the enclave program reaches only enclave/, attestation/, the shared codecs and the allowlisted transport files", () => {
    expect(ENCLAVE_ALLOWLIST.sourceFolders).toEqual(["enclave/", "attestation/", CODEC]);
    const allowed = (f: string) => ENCLAVE_ALLOWLIST.sourceFolders.some((d) => f.startsWith(d)) || ENCLAVE_ALLOWLIST.sourceFiles.includes(f.replace(/\.ts$/, ""));
    const reached = closure(["enclave/bin.ts"]);
    expect(reached.has("enclave/gateway.ts")).toBe(true);
    expect([...reached].filter((f) => !allowed(f))).toEqual([]);
    // And no enclave file names host/ outside those: the image rule holds file by file, not only from bin.ts.
    expect(
      violations(
        files.filter((f) => f.startsWith("enclave/")),
        (t) => !t.startsWith("host/") || allowed(t),
      ),
    ).toEqual([]);
  });
});
