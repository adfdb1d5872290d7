/**
 * A Nitro Secure Module for machines without Nitro hardware (`egw dev`,
 * tests). It issues attestation documents in exactly the hardware format
 * (see encode-document.ts) signed through a development CA (see dev-ca.ts),
 * so the same decoder, verifier and channel-binding code runs in development
 * and in production. A verifier accepts these documents only when it is
 * explicitly given the development root; they never chain to the AWS root.
 *
 * PCRs (AWS "Where to get an enclave's measurements"):
 *   PCR0  enclave image        → measureCodeBundle() of the running code
 *   PCR1  kernel + bootstrap   → a fixed labelled hash (no kernel here)
 *   PCR2  application          → a fixed labelled hash
 *   PCR3  parent IAM role      → zero (no role in development)
 *   PCR4  parent instance ID   → labelled hash of the module id's instance
 *                                part, so it differs per simulated instance as
 *                                PCR4 differs per EC2 instance on hardware
 *   PCR8  EIF signing cert     → zero (unsigned image)
 *   others                     → zero
 * Documents carry PCRs 0..15, as hardware documents do.
 *
 * Each document gets its own leaf certificate and key, valid [t − 30 s,
 * t + 3 h], as on hardware (AWS leaves start seconds before the document's
 * timestamp). Key generation costs about a millisecond and attestation is
 * rate-limited upstream, so there is nothing worth caching.
 */
import { createHash, randomBytes, webcrypto } from "node:crypto";
import { lstat, open, readdir } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { NSM_MAX_NONCE, NSM_MAX_PUBLIC_KEY, NSM_MAX_USER_DATA, type AttestationRequest, type Attester, type PcrDescription } from "../attester.js";
import { AttestationError } from "../errors.js";
import type { DevCa } from "./dev-ca.js";
import { NSM_PCR_COUNT, PCR_LENGTH, encodeDocumentPayload, signCoseSign1 } from "./encode-document.js";

/** PCRs 0..15 are set at boot and locked; they are the ones documents carry. */
export const DOCUMENT_PCR_COUNT = 16;
/** Bound on one getRandom call (WebCrypto's getRandomValues limit). */
export const MAX_RANDOM_BYTES = 65536;
/** Leaf CN is `${moduleId}.development`, and a CN holds at most 64 characters. */
export const MAX_DEV_MODULE_ID = 52;
const LEAF_CN_SUFFIX = ".development";

export type PcrValues = ReadonlyMap<number, Uint8Array> | Readonly<Record<number, Uint8Array>>;

export interface SimulatedNsmOptions {
  /** The development CA that issues each document's leaf certificate. */
  ca: DevCa;
  /** Clock for document timestamps and leaf validity. */
  now: () => Date;
  /**
   * Overrides for PCRs 0..15, each 48 bytes. Unlisted PCRs keep their
   * defaults (see the module comment). Passing PCR0 skips measuring the code.
   */
  pcrs?: PcrValues;
  /**
   * Module id, which must start with "dev-" so that no development document
   * looks like it came from an EC2 instance ("i-…"). Defaults to
   * "dev-<16 hex>-enc<16 hex>", random per instance, like hardware ids.
   */
  moduleId?: string;
  /**
   * What describePcr reports for PCRs 0..15. Hardware locks them at boot, so
   * the default is true; set false to exercise code that must refuse an
   * unlocked measurement. PCRs 16..31 are always unlocked zeros here.
   */
  pcrsLocked?: boolean;
  /** Where PCR0 is measured from when `pcrs` has no PCR0; see defaultCodeBundle(). */
  codeBundle?: CodeBundleLocation;
}

function requestError(message: string, cause?: unknown): AttestationError {
  return new AttestationError("ERR_NSM_REQUEST", message, cause === undefined ? undefined : { cause });
}

/** SHA-384 of a label, for PCRs that have nothing real to measure in development. */
function labelledPcr(label: string): Uint8Array {
  return new Uint8Array(createHash("sha384").update(`enclave-gateway/dev/${label}`, "utf8").digest());
}

function normalisePcrs(pcrs: PcrValues | undefined): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  if (pcrs === undefined) return out;
  const entries: Iterable<[unknown, unknown]> = pcrs instanceof Map ? pcrs.entries() : Object.entries(pcrs).map(([k, v]) => [Number(k), v] as [unknown, unknown]);
  for (const [index, value] of entries) {
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= DOCUMENT_PCR_COUNT) {
      throw requestError(`"pcrs" index expected an integer 0..${DOCUMENT_PCR_COUNT - 1}, got ${String(index)}`);
    }
    if (!(value instanceof Uint8Array) || value.length !== PCR_LENGTH) {
      const got = value instanceof Uint8Array ? `length=${value.length}` : typeof value;
      throw requestError(`"pcr${index}" expected Uint8Array of length ${PCR_LENGTH}, got ${got}`);
    }
    out.set(index, value.slice());
  }
  return out;
}

function checkModuleId(moduleId: string): string {
  if (typeof moduleId !== "string" || moduleId.length > MAX_DEV_MODULE_ID || !/^dev-[A-Za-z0-9][A-Za-z0-9._-]*$/.test(moduleId)) {
    throw requestError(`"moduleId" expected "dev-" then 1..${MAX_DEV_MODULE_ID - 4} of [A-Za-z0-9._-]`);
  }
  return moduleId;
}

function checkField(name: string, value: Uint8Array | undefined, max: number): Uint8Array | null {
  if (value === undefined) return null;
  if (!(value instanceof Uint8Array)) throw requestError(`"${name}" expected Uint8Array, got ${typeof value}`);
  if (value.length > max) throw requestError(`"${name}" expected at most ${max} bytes, got length=${value.length}`);
  // Copy: the caller may reuse its buffer while we sign.
  return value.slice();
}

export class SimulatedNsm implements Attester {
  readonly kind = "simulated" as const;
  readonly moduleId: string;
  readonly #ca: DevCa;
  readonly #now: () => Date;
  readonly #locked: boolean;
  readonly #overrides: Map<number, Uint8Array>;
  readonly #codeBundle: CodeBundleLocation | undefined;
  #pcrs: Promise<Map<number, Uint8Array>> | undefined;
  #closed = false;

  constructor(options: SimulatedNsmOptions) {
    this.#ca = options.ca;
    this.#now = options.now;
    this.#locked = options.pcrsLocked ?? true;
    this.#overrides = normalisePcrs(options.pcrs);
    this.#codeBundle = options.codeBundle;
    this.moduleId = checkModuleId(options.moduleId ?? `dev-${randomBytes(8).toString("hex")}-enc${randomBytes(8).toString("hex")}`);
  }

  /** PCRs 0..15, computed once; PCR0 needs a walk of the code bundle. */
  #documentPcrs(): Promise<Map<number, Uint8Array>> {
    // A failed measurement is not cached: the next call measures again.
    this.#pcrs ??= this.#computePcrs().catch((err: unknown) => {
      this.#pcrs = undefined;
      throw err;
    });
    return this.#pcrs;
  }

  async #computePcrs(): Promise<Map<number, Uint8Array>> {
    const pcrs = new Map<number, Uint8Array>();
    for (let i = 0; i < DOCUMENT_PCR_COUNT; i++) pcrs.set(i, new Uint8Array(PCR_LENGTH));
    pcrs.set(1, labelledPcr("pcr1 simulated kernel and bootstrap"));
    pcrs.set(2, labelledPcr("pcr2 simulated application"));
    const instance = this.moduleId.split("-enc")[0] ?? this.moduleId;
    pcrs.set(4, labelledPcr(`pcr4 simulated parent instance ${instance}`));
    for (const [i, value] of this.#overrides) pcrs.set(i, value);
    if (!this.#overrides.has(0)) {
      const bundle = this.#codeBundle ?? (await defaultCodeBundle());
      pcrs.set(0, await measureCodeBundle(bundle.root, { include: bundle.include }));
    }
    return pcrs;
  }

  #checkOpen(): void {
    if (this.#closed) throw new AttestationError("ERR_NSM_UNAVAILABLE", "simulated NSM is closed");
  }

  async attest(request: AttestationRequest): Promise<Uint8Array> {
    this.#checkOpen();
    const userData = checkField("user_data", request.userData, NSM_MAX_USER_DATA);
    const nonce = checkField("nonce", request.nonce, NSM_MAX_NONCE);
    const publicKey = checkField("public_key", request.publicKey, NSM_MAX_PUBLIC_KEY);
    const pcrs = await this.#documentPcrs();
    const at = this.#now();
    // issueLeaf rejects an invalid Date before the timestamp is used.
    const leaf = await this.#ca.issueLeaf({ commonName: `${this.moduleId}${LEAF_CN_SUFFIX}`, at });
    const payload = encodeDocumentPayload({
      moduleId: this.moduleId,
      digest: "SHA384",
      timestamp: at.getTime(),
      pcrs,
      certificate: leaf.certificate,
      cabundle: this.#ca.cabundle(),
      publicKey,
      userData,
      nonce,
    });
    return signCoseSign1(payload, leaf.privateKey);
  }

  async describePcr(index: number): Promise<PcrDescription> {
    this.#checkOpen();
    if (!Number.isInteger(index) || index < 0 || index >= NSM_PCR_COUNT) {
      throw requestError(`PCR index expected an integer 0..${NSM_PCR_COUNT - 1}, got ${String(index)}`);
    }
    if (index >= DOCUMENT_PCR_COUNT) return { index, locked: false, data: new Uint8Array(PCR_LENGTH) };
    const data = (await this.#documentPcrs()).get(index) ?? new Uint8Array(PCR_LENGTH);
    return { index, locked: this.#locked, data: data.slice() };
  }

  async getRandom(length: number): Promise<Uint8Array> {
    this.#checkOpen();
    if (!Number.isInteger(length) || length < 0 || length > MAX_RANDOM_BYTES) {
      throw requestError(`getRandom length expected an integer 0..${MAX_RANDOM_BYTES}, got ${String(length)}`);
    }
    return webcrypto.getRandomValues(new Uint8Array(length));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

// ---------------------------------------------------------------------------
// PCR0: a measurement of the code that runs.

export interface CodeBundleLocation {
  /** Directory the relative paths are taken from. */
  root: string;
  /** Sub-folders of `root` to measure; undefined measures all of `root`. Missing ones are skipped. */
  include?: readonly string[] | undefined;
}

export interface MeasureLimits {
  maxFiles: number;
  maxFileBytes: number;
  maxTotalBytes: number;
  maxDepth: number;
}

export const DEFAULT_MEASURE_LIMITS: Readonly<MeasureLimits> = {
  maxFiles: 20_000,
  maxFileBytes: 64 * 1024 * 1024,
  maxTotalBytes: 512 * 1024 * 1024,
  maxDepth: 32,
};

/** The runtime source folders (DESIGN.md "Modules"), measured when running from source. */
export const SOURCE_FOLDERS: readonly string[] = ["attestation", "enclave", "host", "infra"];
const PACKAGE_NAME = "enclave-gateway";
const MAX_PARENT_STEPS = 8;

/**
 * Where the running code lives. Compiled, this module sits in
 * `<package>/dist/attestation/dev/`, and the whole `dist/` is measured. Run
 * from source (vitest, tsx), there is no reason to trust that `dist/` matches
 * what runs, so the source folders are measured instead.
 */
export async function defaultCodeBundle(moduleUrl: string = import.meta.url): Promise<CodeBundleLocation> {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let step = 0; step < MAX_PARENT_STEPS; step++) {
    if (await isPackageRoot(dir)) {
      const dist = join(dir, "dist");
      const here = fileURLToPath(moduleUrl);
      if (here.startsWith(dist + sep)) return { root: dist };
      return { root: dir, include: SOURCE_FOLDERS };
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw requestError(`cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(moduleUrl)}`);
}

async function isPackageRoot(dir: string): Promise<boolean> {
  try {
    const handle = await open(join(dir, "package.json"), "r");
    try {
      const info = await handle.stat();
      if (!info.isFile() || info.size > 1024 * 1024) return false;
      const pkg: unknown = JSON.parse(await handle.readFile("utf8"));
      return typeof pkg === "object" && pkg !== null && (pkg as { name?: unknown }).name === PACKAGE_NAME;
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/**
 * PCR0 for development: SHA-384 over a manifest of every regular file under
 * `root` (or under its `include` sub-folders), one line per file in byte
 * order of the relative path (POSIX separators):
 *
 *   <hex SHA-384 of the content>  <relative path>\n
 *
 * This is `sha384sum` output, so a reviewer can recompute it from a shell:
 *   cd dist && find . -type f | sed 's|^\./||' | LC_ALL=C sort \
 *     | xargs -d '\n' sha384sum | sha384sum
 * Symlinks and other special files are refused rather than skipped or
 * followed, so nothing that runs can escape the measurement. File count,
 * sizes and depth are bounded (ERR_INPUT_TOO_LARGE).
 */
export async function measureCodeBundle(root: string, options: { include?: readonly string[] | undefined; limits?: Partial<MeasureLimits> } = {}): Promise<Uint8Array> {
  const limits = { ...DEFAULT_MEASURE_LIMITS, ...options.limits };
  const files: string[] = [];
  const tooLarge = (what: string) => new AttestationError("ERR_INPUT_TOO_LARGE", `code bundle under ${root}: ${what}`);

  const walk = async (dir: string, depth: number): Promise<void> => {
    if (depth > limits.maxDepth) throw tooLarge(`deeper than ${limits.maxDepth} levels`);
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(path, depth + 1);
      } else if (entry.isFile()) {
        if (files.length >= limits.maxFiles) throw tooLarge(`more than ${limits.maxFiles} files`);
        files.push(path);
      } else {
        throw requestError(`code bundle under ${root}: ${relative(root, path)} is not a regular file or directory`);
      }
    }
  };

  try {
    const rootInfo = await lstat(root);
    if (!rootInfo.isDirectory()) throw requestError(`code bundle root ${root} is not a directory`);
    if (options.include === undefined) {
      await walk(root, 0);
    } else {
      for (const folder of options.include) {
        const path = join(root, folder);
        if (relative(root, path).startsWith("..")) throw requestError(`code bundle folder ${folder} is outside ${root}`);
        const info = await lstat(path).catch((err: unknown) => {
          if ((err as { code?: unknown }).code === "ENOENT") return undefined;
          throw err;
        });
        if (info === undefined) continue;
        if (!info.isDirectory()) throw requestError(`code bundle folder ${folder} is not a directory`);
        await walk(path, 1);
      }
    }

    const rows = files.map((path) => ({ path, rel: relative(root, path).split(sep).join("/") }));
    rows.sort((a, b) => compareBytes(a.rel, b.rel));
    const manifest = createHash("sha384");
    let total = 0;
    for (const { path, rel } of rows) {
      if (/[\n\r\\]/.test(rel)) throw requestError(`code bundle path ${JSON.stringify(rel)} has a character sha384sum escapes`);
      const { digest, size } = await hashFile(path, limits.maxFileBytes, tooLarge);
      total += size;
      if (total > limits.maxTotalBytes) throw tooLarge(`more than ${limits.maxTotalBytes} bytes in total`);
      manifest.update(`${digest}  ${rel}\n`, "utf8");
    }
    return new Uint8Array(manifest.digest());
  } catch (err) {
    if (err instanceof AttestationError) throw err;
    throw requestError(`cannot measure the code bundle under ${root}`, err);
  }
}

async function hashFile(path: string, maxBytes: number, tooLarge: (what: string) => AttestationError): Promise<{ digest: string; size: number }> {
  const handle = await open(path, "r");
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw requestError(`${path} is not a regular file`);
    if (info.size > maxBytes) throw tooLarge(`${path} is larger than ${maxBytes} bytes`);
    const hash = createHash("sha384");
    const buffer = Buffer.alloc(64 * 1024);
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      size += bytesRead;
      // The file may grow while we read; the bound holds on what we hash.
      if (size > maxBytes) throw tooLarge(`${path} is larger than ${maxBytes} bytes`);
      hash.update(buffer.subarray(0, bytesRead));
    }
    return { digest: hash.digest("hex"), size };
  } finally {
    await handle.close();
  }
}
