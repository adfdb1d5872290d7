import { EgwError } from "../../../attestation/egw-error.js";

/**
 * The decisions of infra/deploy/image/build.sh, in TypeScript so they are
 * tested in process: its flags and their combinations, which image
 * references count as pinned, which buildx is new enough, how nitro-cli's
 * output is read, how its PCRs are compared with `egw measure`'s, and what
 * build-info.json records. build.sh runs them through build-steps.ts; it
 * keeps only what needs the machine: git, docker, nitro-cli, files.
 *
 * Exit codes are build.sh's: 2 usage, prerequisites or a dirty tree
 * (BuildError "fix-input" / "fix-config"), 1 a check failed ("reject").
 */
export type BuildErrorCode =
  | "ERR_BUILD_USAGE" // a flag, a combination of flags, or a value build.sh refuses (exit 2)
  | "ERR_BUILD_PREREQUISITE" // a tool is missing or too old (exit 2)
  | "ERR_BUILD_CHECK"; // nitro-cli's output is unreadable, or its PCRs are not egw measure's (exit 1)

export class BuildError extends EgwError<BuildErrorCode> {
  override readonly name = "BuildError";
  /** build.sh's exit code for this error. */
  readonly exitCode: 1 | 2;
  /** An unknown option: the usage text goes with the message. */
  readonly showUsage: boolean;
  constructor(code: BuildErrorCode, message: string, options?: { showUsage?: boolean }) {
    super(code, message, code === "ERR_BUILD_CHECK" ? "reject" : code === "ERR_BUILD_USAGE" ? "fix-input" : "fix-config");
    this.exitCode = code === "ERR_BUILD_CHECK" ? 1 : 2;
    this.showUsage = options?.showUsage === true;
  }
}

export const BUILD_USAGE = `usage: infra/deploy/image/build.sh [options]

  --trust-policy <file>  the deployment's trust policy: the manifest's trust section
                         (allowed origins, identity, key ARNs) is derived from it
  --operations <file>    with --trust-policy: also pin the deployment hash
                         (config_sha256) of that trust policy and these operations
  --trust-any            write "trust": "any" (constrains nothing, on purpose);
                         one of --trust-policy and --trust-any is required
  --sign-key <pem>       sign the EIF (PCR8): private key for nitro-cli --private-key
  --sign-cert <pem>      ... and its certificate (--signing-certificate); both or neither
  --out-dir <dir>        outputs (default: build/ in the repository)
  --base-image <ref>     override the Dockerfile's NODE_IMAGE; must be name@sha256:<64 hex>
  --tag <name>           local image tag (default: enclave-gateway:<version>-<commit12>)
  --label <text>         manifest entry label (default: enclave-gateway <version> (<commit12>))
  --parent-image <tag>   then build the pod image (infra/deploy/image/parent.Dockerfile) with this
                         EIF, tagged <tag> (name:tag, not :latest)
  --parent-base-image <ref>
                         override parent.Dockerfile's AL2023_IMAGE; must be name@sha256:<64 hex>
  --allow-dirty          build from a tree with uncommitted or untracked files
  -h, --help             this help

Outputs in the out dir: egw.eif, nitro-cli.json, measure.json, manifest.json,
build-info.json (with "parentImage" when --parent-image is given).
EGW_CLI=<executable> replaces \`node dist/infra/cli/egw.js\` (tests use it).
`;

export interface BuildOptions {
  trustPolicy: string;
  operations: string;
  trustAny: boolean;
  signKey: string;
  signCert: string;
  outDir: string;
  baseImage: string;
  tag: string;
  label: string;
  parentImage: string;
  parentBaseImage: string;
  allowDirty: boolean;
}

/** Flags that take a value, and what the value is (for "--x needs a …"). */
const VALUE_FLAGS: Record<string, [keyof BuildOptions, string]> = {
  "--trust-policy": ["trustPolicy", "a file"],
  "--operations": ["operations", "a file"],
  "--sign-key": ["signKey", "a file"],
  "--sign-cert": ["signCert", "a file"],
  "--out-dir": ["outDir", "a directory"],
  "--base-image": ["baseImage", "a reference"],
  "--tag": ["tag", "a name"],
  "--label": ["label", "a text"],
  "--parent-image": ["parentImage", "a tag"],
  "--parent-base-image": ["parentBaseImage", "a reference"],
};

const PINNED = /^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$/;
const NAME_TAG = /^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** name[:tag]@sha256:<64 lowercase hex>: a reference that names one image forever. */
export function isPinnedByDigest(ref: string): boolean {
  return PINNED.test(ref);
}

/**
 * name[:port/path]:tag with a lowercase name and an explicit tag that is
 * not "latest": the chart refuses untagged and :latest references, and a
 * tag that moves is no record of what was built.
 */
export function isNameTag(ref: string): boolean {
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return NAME_TAG.test(ref) && last.includes(":") && ref.slice(ref.lastIndexOf(":") + 1) !== "latest";
}

/**
 * build.sh's flags. `exists` says whether a path names a regular file
 * (the script's `-f`). Returns "help" for -h/--help.
 */
export function parseBuildArgs(argv: readonly string[], exists: (file: string) => boolean): BuildOptions | "help" {
  const o: BuildOptions = {
    trustPolicy: "",
    operations: "",
    trustAny: false,
    signKey: "",
    signCert: "",
    outDir: "",
    baseImage: "",
    tag: "",
    label: "",
    parentImage: "",
    parentBaseImage: "",
    allowDirty: false,
  };
  const usage = (message: string) => new BuildError("ERR_BUILD_USAGE", message);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const valued = VALUE_FLAGS[arg];
    if (valued !== undefined) {
      if (i + 1 >= argv.length) throw usage(`${arg} needs ${valued[1]}`);
      (o[valued[0]] as string) = argv[++i]!;
    } else if (arg === "--trust-any") o.trustAny = true;
    else if (arg === "--allow-dirty") o.allowDirty = true;
    else if (arg === "--config") throw usage("--config is gone: the runtime config is now a trust policy and operations; give --trust-policy <file> [--operations <file>]");
    else if (arg === "-h" || arg === "--help") return "help";
    else throw new BuildError("ERR_BUILD_USAGE", `unknown option: ${arg}`, { showUsage: true });
  }
  if ((o.signKey === "") !== (o.signCert === "")) throw usage("--sign-key and --sign-cert go together");
  // The manifest needs a trust section (egw manifest create refuses to write
  // one without): derived from the trust policy, or "any" said on purpose.
  if (o.trustPolicy === "" && !o.trustAny) throw usage("the manifest needs a trust section: give --trust-policy <file>, or --trust-any to constrain nothing on purpose");
  if (o.trustPolicy !== "" && o.trustAny) throw usage("--trust-policy and --trust-any contradict each other");
  if (o.operations !== "" && o.trustPolicy === "") throw usage("--operations goes with --trust-policy");
  for (const f of [o.trustPolicy, o.operations, o.signKey, o.signCert]) if (f !== "" && !exists(f)) throw usage(`${f}: no such file`);
  if (o.parentBaseImage !== "" && o.parentImage === "") throw usage("--parent-base-image goes with --parent-image");
  if (o.parentImage !== "" && !isNameTag(o.parentImage)) throw usage(`--parent-image "${o.parentImage}" is not a name:tag reference (an explicit tag, not :latest)`);
  return o;
}

/**
 * The base image a build uses: the override, or the Dockerfile's `ARG <name>=`
 * default; refused unless pinned by digest. `what` names it in the message.
 */
export function resolveBaseImage(dockerfileText: string, argName: string, override: string, what: string): string {
  const fromFile = new RegExp(`^ARG ${argName}=(.*)$`, "m").exec(dockerfileText)?.[1] ?? "";
  const ref = override !== "" ? override : fromFile;
  if (!isPinnedByDigest(ref)) throw new BuildError("ERR_BUILD_USAGE", `${what} "${ref}" is not pinned by digest (expected name[:tag]@sha256:<64 hex>)`);
  return ref;
}

/** rewrite-timestamp=true needs docker buildx >= 0.13; `text` is `docker buildx version`'s output. */
export function checkBuildxVersion(text: string): void {
  const m = /v([0-9]+)\.([0-9]+)/.exec(text);
  if (!m) throw new BuildError("ERR_BUILD_PREREQUISITE", `cannot read the docker buildx version from: ${text}`);
  if (Number(m[1]) === 0 && Number(m[2]) < 13) throw new BuildError("ERR_BUILD_PREREQUISITE", `docker buildx >= 0.13 is needed for rewrite-timestamp=true (found: ${text})`);
}

/** nitro-cli prints progress lines, then the JSON object; keep the object, which must hold Measurements. */
export function nitroCliJson(text: string): { Measurements: Record<string, unknown> } & Record<string, unknown> {
  const start = text.search(/^\{/m);
  let json: unknown;
  try {
    json = start < 0 ? undefined : JSON.parse(text.slice(start));
  } catch {
    json = undefined;
  }
  const measurements = (json as { Measurements?: unknown } | undefined)?.Measurements;
  if (typeof measurements !== "object" || measurements === null) throw new BuildError("ERR_BUILD_CHECK", "nitro-cli printed no Measurements JSON");
  return json as { Measurements: Record<string, unknown> };
}

/**
 * nitro-cli's PCRs against our EIF reader's: 0, 1, 2, and 8 when the EIF
 * is signed or when either side reports one. A PCR is 48 bytes of hex and
 * must be equal on both sides. Returns the report lines build.sh prints.
 */
export function comparePcrs(nitro: Record<string, unknown>, ours: Record<string, unknown>, signed: boolean): { ok: boolean; report: string } {
  const indices = signed ? [0, 1, 2, 8] : [0, 1, 2];
  if (!signed && (nitro.PCR8 !== undefined || ours[8] !== undefined)) indices.push(8);
  let bad = 0;
  let report = "";
  for (const i of indices) {
    const a = String(nitro[`PCR${i}`] ?? "").toLowerCase();
    const b = String(ours[i] ?? "").toLowerCase();
    const ok = /^[0-9a-f]{96}$/.test(a) && a === b;
    if (!ok) bad++;
    report += `  PCR${i} ${ok ? "match" : "MISMATCH"}\n    nitro-cli   ${a || "(none)"}\n    egw measure ${b || "(none)"}\n`;
  }
  return { ok: bad === 0, report };
}

export interface BuildFacts {
  version: string;
  gitCommit: string;
  sourceDateEpoch: number;
  dirty: boolean;
  baseImage: string;
  imageTag: string;
  imageDigest: string;
  eifSha256: string;
  pcrs: unknown;
  tools: { buildx: string; nitroCli: string; node: string };
}

/** build-info.json: what a reviewer needs to rebuild and compare, in this field order. */
export function buildInfo(f: BuildFacts): string {
  const info = {
    version: f.version,
    gitCommit: f.gitCommit,
    sourceDateEpoch: f.sourceDateEpoch,
    dirty: f.dirty,
    baseImage: f.baseImage,
    imageTag: f.imageTag,
    imageDigest: f.imageDigest,
    eifSha256: f.eifSha256,
    pcrs: f.pcrs,
    tools: { buildx: f.tools.buildx, nitroCli: f.tools.nitroCli, node: f.tools.node },
  };
  return `${JSON.stringify(info, null, 2)}\n`;
}

/** build-info.json with the pod image added; eifSizeMiB is the chart's enclave.eifSizeMiB (nitro-cli wants 4x that in enclave memory). */
export function withParentImage(buildInfoText: string, p: { imageTag: string; baseImage: string; imageDigest: string; eifSha256: string; eifBytes: number }): string {
  const info = JSON.parse(buildInfoText) as Record<string, unknown>;
  info.parentImage = { imageTag: p.imageTag, baseImage: p.baseImage, imageDigest: p.imageDigest, eifSha256: p.eifSha256, eifSizeMiB: Math.ceil(p.eifBytes / (1024 * 1024)) };
  return `${JSON.stringify(info, null, 2)}\n`;
}
