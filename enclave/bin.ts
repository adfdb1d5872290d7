#!/usr/bin/env node
// The enclave image's executable (infra/deploy/image/Dockerfile ENTRYPOINT, bundled
// by infra/deploy/image/bundle.ts): binds the enclave program to the real process.
import { run } from "./main.js";

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  cwd: process.cwd(),
  now: () => new Date(),
  env: process.env,
});
process.exitCode = code;
