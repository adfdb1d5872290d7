#!/usr/bin/env node
/**
 * `node dist/infra/deploy/image/build-steps.js <step> …`: the steps of
 * build.sh that decide something (build-options.ts), so the script keeps
 * only git, docker, nitro-cli and file moves. Output is for the script:
 *   parse-args <args…>            shell assignments (single-quoted) for `eval`
 *   usage                         the help text
 *   buildx-version <text>         nothing; exit 2 when buildx is too old or unreadable
 *   base-image <dockerfile> <ARG> <override> <what>
 *                                 the pinned base reference; exit 2 when it is not pinned
 *   nitro-json                    nitro-cli's stdout in, its Measurements JSON out; exit 1 if none
 *   compare-pcrs <nitro.json> <measure.json> <signed 0|1>
 *                                 the PCR report on stderr; exit 1 on a mismatch
 *   build-info <eif> <measure.json> <out>   (facts in the environment, as build.sh sets them)
 *   parent-info <eif> <build-info.json>     (the pod image's facts in the environment)
 *   sha256 <file>                 hex SHA-256 of the file
 * Errors: `build.sh: <message>` on stderr, exit 2 (usage, prerequisites) or 1 (a check).
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import {
  BUILD_USAGE,
  BuildError,
  buildInfo,
  checkBuildxVersion,
  comparePcrs,
  nitroCliJson,
  parseBuildArgs,
  resolveBaseImage,
  withParentImage,
  type BuildOptions,
} from "./build-options.js";

/** The script's variable for each option. */
const SHELL_NAMES: Record<keyof BuildOptions, string> = {
  trustPolicy: "trust_policy",
  operations: "operations",
  trustAny: "trust_any",
  signKey: "sign_key",
  signCert: "sign_cert",
  outDir: "out_dir",
  baseImage: "base_image",
  tag: "tag",
  label: "label",
  parentImage: "parent_tag",
  parentBaseImage: "parent_base",
  allowDirty: "allow_dirty",
};

/** Single-quoted for bash: safe for any argv string (none holds NUL). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function shellAssignments(o: BuildOptions): string {
  return (Object.keys(SHELL_NAMES) as (keyof BuildOptions)[])
    .map((k) => {
      const v = o[k];
      return `${SHELL_NAMES[k]}=${typeof v === "boolean" ? (v ? "1" : "0") : shellQuote(v)}`;
    })
    .join("\n");
}

const isFile = (f: string) => {
  try {
    return statSync(f).isFile();
  } catch {
    return false;
  }
};
const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const json = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;

export interface StepIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdin: () => string;
  env: Readonly<Record<string, string | undefined>>;
}

export function runStep(argv: readonly string[], io: StepIo): number {
  const [step, ...args] = argv;
  try {
    switch (step) {
      case "parse-args": {
        const parsed = parseBuildArgs(args, isFile);
        io.stdout(parsed === "help" ? "show_help=1\n" : `${shellAssignments(parsed)}\nshow_help=0\n`);
        return 0;
      }
      case "usage":
        io.stdout(BUILD_USAGE);
        return 0;
      case "buildx-version":
        checkBuildxVersion(args[0] ?? "");
        return 0;
      case "base-image": {
        const [dockerfile, argName, override, what] = args;
        io.stdout(`${resolveBaseImage(readFileSync(dockerfile!, "utf8"), argName!, override ?? "", what!)}\n`);
        return 0;
      }
      case "nitro-json":
        io.stdout(`${JSON.stringify(nitroCliJson(io.stdin()), null, 2)}\n`);
        return 0;
      case "compare-pcrs": {
        const [nitroFile, measureFile, signed] = args;
        const nitro = json(nitroFile!).Measurements as Record<string, unknown>;
        const ours = (json(measureFile!).pcrs ?? {}) as Record<string, unknown>;
        const { ok, report } = comparePcrs(nitro, ours, signed === "1");
        io.stderr(report);
        return ok ? 0 : 1;
      }
      case "build-info": {
        const [eif, measure, out] = args;
        const e = io.env;
        writeFileSync(
          out!,
          buildInfo({
            version: e.VERSION ?? "",
            gitCommit: e.GIT_COMMIT ?? "",
            sourceDateEpoch: Number(e.SDE),
            dirty: e.DIRTY === "true",
            baseImage: e.BASE ?? "",
            imageTag: e.TAG ?? "",
            imageDigest: e.DIGEST ?? "",
            eifSha256: sha256(eif!),
            pcrs: json(measure!).pcrs,
            tools: { buildx: e.BUILDX ?? "", nitroCli: e.NITRO ?? "", node: process.version },
          }),
        );
        return 0;
      }
      case "parent-info": {
        const [eif, out] = args;
        const e = io.env;
        writeFileSync(
          out!,
          withParentImage(readFileSync(out!, "utf8"), {
            imageTag: e.TAG ?? "",
            baseImage: e.BASE ?? "",
            imageDigest: e.DIGEST ?? "",
            eifSha256: e.EIF_SHA256 ?? "",
            eifBytes: statSync(eif!).size,
          }),
        );
        return 0;
      }
      case "sha256":
        io.stdout(sha256(args[0]!));
        return 0;
      default:
        throw new BuildError("ERR_BUILD_USAGE", `build-steps: unknown step ${JSON.stringify(step ?? "")}`);
    }
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    if (err.showUsage) io.stderr(BUILD_USAGE);
    io.stderr(`build.sh: ${err.message}\n`);
    return err.exitCode;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.exitCode = runStep(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    stdin: () => readFileSync(0, "utf8"),
    env: process.env,
  });
}
