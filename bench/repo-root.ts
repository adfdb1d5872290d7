import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, whether this runs from bench/ or dist/bench/. */
export function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).name === "enclave-gateway") return dir;
    dir = path.dirname(dir);
  }
  throw new Error("cannot find the enclave-gateway repository root");
}
