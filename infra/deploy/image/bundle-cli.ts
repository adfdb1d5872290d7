#!/usr/bin/env node
/**
 * `node dist/infra/deploy/image/bundle-cli.js --entry … --out … --node-modules …`:
 * runs bundleEnclave (bundle.ts) for the image build (infra/deploy/image/Dockerfile,
 * entry dist/enclave/bin.js) and `npm run bundle`. Prints the report as JSON on stdout.
 * Exit 0 done, 1 refused (BundleError, code on stderr), 2 usage.
 */
import { parseArgs } from "node:util";
import { bundleEnclave } from "./bundle.js";
import { BundleError } from "./errors.js";

const USAGE = "usage: bundle-cli --entry <file> --out <dir> --node-modules <dir> [--repo-root <dir>] [--lockfile <file>]";

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        entry: { type: "string" },
        out: { type: "string" },
        "node-modules": { type: "string" },
        "repo-root": { type: "string" },
        lockfile: { type: "string" },
      },
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (!values.entry || !values.out || !values["node-modules"]) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  try {
    const report = await bundleEnclave({
      repoRoot: values["repo-root"] ?? process.cwd(),
      entry: values.entry,
      outDir: values.out,
      nodeModules: values["node-modules"],
      ...(values.lockfile !== undefined && { lockfile: values.lockfile }),
    });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof BundleError) {
      process.stderr.write(`bundle: ${err.code}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
