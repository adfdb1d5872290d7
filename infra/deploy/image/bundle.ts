import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { build, type Metafile } from "esbuild";
import { checkBundleInputs, lockKeyOf, type BundleAllowlist, type ClassifiedInput, ENCLAVE_ALLOWLIST } from "./allowlist.js";
import { BundleError } from "./errors.js";
import { INPUTS_FILE, inputsReport } from "./inputs-report.js";

export { lockKeyOf };

/**
 * Bundles the enclave program (enclave/bin.ts, compiled to
 * dist/enclave/bin.js) for the enclave image: one ES module holding our code
 * and every pure-JavaScript production dependency it loads, next to the
 * native packages copied exactly as `npm ci --omit=dev` installed them. Not
 * `egw`: the host relay, the operator tools and the dev stack stay out of
 * the measured image (infra/deploy/image/allowlist.ts).
 *
 * Why a bundle: the image's PCR2 measures every file in it; a bundle is one
 * file a reviewer can read and hash instead of ~1,500 files of
 * node_modules, and the image holds no package that the code does not load.
 *
 * Why two packages stay outside: koffi (FFI to /dev/nsm, vsock and the
 * loopback ioctls) and cbor-extract (cbor-x's native decoder) load a
 * platform-specific `.node` binary found relative to their own files
 * (koffi's init.js looks for `../../../@koromix/koffi-<platform>-<arch>`,
 * cbor-extract uses node-gyp-build-optional-packages), and our code loads
 * koffi through createRequire, which a bundler cannot follow. They are
 * copied with their installed dependencies (optional ones only where the
 * install put them, i.e. the build machine's platform).
 *
 * Layout of `outDir` (the image's /app):
 *   package.json            name "enclave-gateway" and the version, so the
 *                           simulated NSM's code hash finds its package root
 *   dist/enclave.mjs        the bundle
 *   inputs.json             what went into it, by folder and package, with
 *                           sizes (infra/deploy/image/inputs-report.ts)
 *   node_modules/<native>   koffi, cbor-extract and their dependencies
 *
 * Refusals (BundleError): a bundled package that package-lock.json marks
 * "dev": true (e.g. aws-cdk-lib reaching the enclave through an import), a
 * bundled package missing from the lockfile, a file from outside the
 * repository, any input outside the image allowlist (ERR_BUNDLE_NOT_ALLOWED:
 * host relay, infra/, test helpers, a package nobody vetted), or a run-time
 * import other than Node built-ins and the natives. Nothing here reads the clock; esbuild's output depends only on
 * its inputs and these options.
 */

export const NATIVE_PACKAGES: readonly string[] = ["koffi", "cbor-extract"];
export const BUNDLE_FILE = "dist/enclave.mjs";

// ESM output cannot `require`; CommonJS dependencies (node-forge, the AWS
// SDK) call require("crypto") and the like, so the bundle gets one from
// createRequire, as esbuild's documentation suggests for this case.
const BANNER = 'import { createRequire as __egwCreateRequire } from "node:module";\nconst require = __egwCreateRequire(import.meta.url);';

export interface BundleOptions {
  /** Repository root: esbuild's working directory, where package.json and package-lock.json are. */
  repoRoot: string;
  /** Entry point relative to repoRoot: dist/enclave/bin.js in the image build (tsc output). */
  entry: string;
  /** Empty or missing folder to write into (the image's /app). */
  outDir: string;
  /** A node_modules folder from `npm ci --omit=dev`; the natives are copied from it. */
  nodeModules: string;
  /** Defaults to <repoRoot>/package-lock.json. */
  lockfile?: string;
  /** What the bundle may contain; ENCLAVE_ALLOWLIST unless a test narrows or widens it. */
  allowlist?: BundleAllowlist;
}

export interface BundleReport {
  bundle: string;
  bytes: number;
  sha256: string;
  /** Bundled packages as "name@version" (lockfile path order). */
  packages: string[];
  /** Native packages copied, as paths relative to node_modules. */
  natives: string[];
  /** inputs.json in outDir. */
  inputs: string;
}

interface LockEntry {
  version?: string;
  dev?: boolean;
}

export async function bundleEnclave(options: BundleOptions): Promise<BundleReport> {
  for (const key of ["repoRoot", "entry", "outDir", "nodeModules"] as const) {
    if (typeof options[key] !== "string" || options[key] === "") throw new BundleError("ERR_BUNDLE_OPTIONS", `"${key}" is required`);
  }
  const repoRoot = path.resolve(options.repoRoot);
  const outDir = path.resolve(options.outDir);
  const nodeModules = path.resolve(options.nodeModules);
  if (existsSync(outDir) && (await readdir(outDir)).length > 0) {
    // Stale files from an earlier run would end up in the image unmeasured by anyone's review.
    throw new BundleError("ERR_BUNDLE_OPTIONS", `output folder ${outDir} is not empty`);
  }
  const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as { name: string; version: string; license?: string };
  const lock = JSON.parse(await readFile(options.lockfile ?? path.join(repoRoot, "package-lock.json"), "utf8")) as { packages?: Record<string, LockEntry> };
  const locked = lock.packages ?? {};

  // The natives are resolved first: a missing one fails before any bundling work.
  const natives = await resolveNatives(nodeModules);
  const outfile = path.join(outDir, BUNDLE_FILE);
  let metafile: Metafile;
  let code: Uint8Array;
  try {
    const result = await build({
      absWorkingDir: repoRoot,
      entryPoints: [options.entry],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      external: [...NATIVE_PACKAGES],
      banner: { js: BANNER },
      // Readable on purpose: a reviewer can diff two releases' bundles.
      minify: false,
      sourcemap: false,
      legalComments: "eof",
      charset: "utf8",
      metafile: true,
      // Paths as the repository sees them: a node_modules that is a symlink
      // (a git worktree sharing one install) must not turn every package into
      // a file "outside the repository".
      preserveSymlinks: true,
      // Nothing is written before the checks below pass.
      write: false,
      logLevel: "silent",
    });
    metafile = result.metafile;
    const [output] = result.outputFiles;
    if (result.outputFiles.length !== 1 || output === undefined) throw new Error(`expected one output file, got ${result.outputFiles.length}`);
    code = output.contents;
  } catch (cause) {
    const errors = (cause as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors ?? [];
    const detail = errors.map((e) => (e.location ? `${e.location.file}:${e.location.line}: ${e.text}` : e.text)).join("; ");
    throw new BundleError("ERR_BUNDLE_BUILD", `esbuild failed: ${detail || (cause as Error).message}`, { cause });
  }

  const packages = checkInputs(metafile, locked);
  const classified: ClassifiedInput[] = checkBundleInputs(metafile.inputs, options.allowlist ?? ENCLAVE_ALLOWLIST);
  checkExternals(metafile);
  const sha256 = createHash("sha256").update(code).digest("hex");
  await mkdir(path.dirname(outfile), { recursive: true });
  await writeFile(outfile, code);
  const appPackage = { name: pkg.name, version: pkg.version, private: true, type: "module", ...(pkg.license && { license: pkg.license }) };
  await writeFile(path.join(outDir, "package.json"), `${JSON.stringify(appPackage, null, 2)}\n`);
  await copyNatives(nodeModules, natives, path.join(outDir, "node_modules"));
  const inputs = path.join(outDir, INPUTS_FILE);
  const entry = options.entry.split(path.sep).join("/");
  const report = inputsReport(entry, { file: BUNDLE_FILE, bytes: code.length, sha256 }, classified, (key) => locked[key]?.version ?? "?");
  await writeFile(inputs, `${JSON.stringify(report, null, 2)}\n`);

  return { bundle: outfile, bytes: code.length, sha256, packages, natives, inputs };
}

function checkInputs(metafile: Metafile, locked: Record<string, LockEntry>): string[] {
  const keys = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    if (input.startsWith("../../") || path.isAbsolute(input)) throw new BundleError("ERR_BUNDLE_INPUT_OUTSIDE", `bundled file ${input} is outside the repository`);
    const key = lockKeyOf(input);
    if (key !== undefined) keys.add(key);
  }
  const sorted = [...keys].sort();
  for (const key of sorted) {
    const entry = locked[key];
    if (entry === undefined) throw new BundleError("ERR_BUNDLE_UNLOCKED_PACKAGE", `bundled package ${key} is not in package-lock.json`);
    if (entry.dev === true) {
      throw new BundleError(
        "ERR_BUNDLE_DEV_DEPENDENCY",
        `bundled package ${key} is a devDependency; the enclave must not load it (move the import out of the egw command graph, or make it a dependency)`,
      );
    }
  }
  return sorted.map((key) => `${key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length)}@${locked[key]!.version ?? "?"}`);
}

function checkExternals(metafile: Metafile): void {
  const builtins = new Set(builtinModules);
  for (const output of Object.values(metafile.outputs)) {
    for (const imp of output.imports) {
      if (!imp.external) continue;
      const name = imp.path.replace(/^node:/, "");
      if (imp.path.startsWith("node:") || builtins.has(name) || NATIVE_PACKAGES.includes(imp.path)) continue;
      throw new BundleError("ERR_BUNDLE_EXTERNAL", `the bundle would import "${imp.path}" at run time, which the image does not ship`);
    }
  }
}

interface PackageJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/**
 * Each native package and, transitively, every dependency it needs,
 * resolved the way Node does (nearest node_modules first), as paths
 * relative to `from` (POSIX separators, sorted). Optional dependencies are
 * kept when installed and skipped when not (other platforms' binaries); a
 * missing required one is refused.
 */
async function resolveNatives(from: string): Promise<string[]> {
  const projectDir = path.dirname(from);
  const found = new Set<string>();
  const queue: { name: string; fromDir: string; optional: boolean; wantedBy: string }[] = NATIVE_PACKAGES.map((name) => ({
    name,
    fromDir: projectDir,
    optional: false,
    wantedBy: "the enclave bundle",
  }));
  while (queue.length > 0) {
    const { name, fromDir, optional, wantedBy } = queue.shift()!;
    const dir = resolvePackage(name, fromDir, projectDir);
    if (dir === undefined) {
      if (optional) continue;
      throw new BundleError("ERR_BUNDLE_NATIVE_MISSING", `${name} (needed by ${wantedBy}) is not installed under ${from}`);
    }
    if (found.has(dir)) continue;
    found.add(dir);
    const manifest = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")) as PackageJson;
    for (const dep of Object.keys(manifest.dependencies ?? {})) queue.push({ name: dep, fromDir: dir, optional: false, wantedBy: name });
    for (const dep of Object.keys(manifest.optionalDependencies ?? {})) queue.push({ name: dep, fromDir: dir, optional: true, wantedBy: name });
  }
  return [...found].map((dir) => path.relative(from, dir).split(path.sep).join("/")).sort();
}

/** Copies the packages keeping their paths under node_modules, so Node resolves them from the copy as it did from `from`. */
async function copyNatives(from: string, packages: string[], to: string): Promise<void> {
  for (const rel of packages) {
    const src = path.join(from, ...rel.split("/"));
    const nested = path.join(src, "node_modules");
    // A package's own node_modules holds other packages; those are copied only if resolved above.
    await cp(src, path.join(to, ...rel.split("/")), {
      recursive: true,
      errorOnExist: true,
      force: false,
      filter: (file) => file !== nested && !file.startsWith(nested + path.sep),
    });
  }
}

function resolvePackage(name: string, fromDir: string, projectDir: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    if (path.basename(dir) !== "node_modules") {
      const candidate = path.join(dir, "node_modules", name);
      if (existsSync(path.join(candidate, "package.json"))) return candidate;
    }
    if (dir === projectDir) return undefined;
    const parent = path.dirname(dir);
    if (parent === dir || !parent.startsWith(projectDir)) return undefined;
    dir = parent;
  }
}
