import fs from "node:fs";
import path from "node:path";
import { main as enclaveMain } from "../../enclave/main.js";
import { encodeBundle, sendBundle, type BootStatus, type BundleInput } from "../../host/provision/index.js";
import { parseEndpoint } from "../../host/transport/endpoint.js";
import { nodeTransport } from "../../host/transport/transport.js";
import { captureStream, cliContext, deferred, type Captured } from "./cli-process.js";

/**
 * The production provisioning path, in this process: the measured
 * program's entry point (enclave/main.ts) with `--provision-listen` and the
 * simulated NSM, and the host's bundle encoder and sender
 * (host/provision/). What a hostile host controls is exactly the bundle:
 * trust policy, operations, sealed file, credentials, KMS endpoint.
 */
export interface ProvisionedEnclave {
  status: BootStatus;
  out: Captured;
  err: Captured;
  /** Resolves with the program's exit code. */
  done: Promise<number>;
  stop(): Promise<number>;
}

let n = 0;

export async function provisionEnclave(options: {
  dir: string;
  stateDir: string;
  now: () => Date;
  bundle: BundleInput;
  expect?: "ready" | "identity";
}): Promise<ProvisionedEnclave> {
  n += 1;
  const sock = path.join(options.dir, `p${process.pid}-${n}.sock`);
  fs.rmSync(sock, { force: true });
  const out = captureStream();
  const err = captureStream();
  const stop = deferred();
  const done = enclaveMain(
    ["--dev", "--state-dir", options.stateDir, "--provision-listen", `unix://${sock}`, "--listen", "tcp://127.0.0.1:0", "--provision-timeout", "30"],
    cliContext(out.stream, err.stream, options.dir, options.now),
    { stop: stop.promise },
  ).catch(() => 1);
  const status = await sendBundle({
    endpoint: parseEndpoint(`unix://${sock}`),
    transport: nodeTransport,
    bundle: encodeBundle(options.bundle),
    deadlineMs: 30_000,
    ...(options.expect && { expect: options.expect }),
  });
  return {
    status,
    out,
    err,
    done,
    stop: async () => {
      stop.resolve();
      return done;
    },
  };
}
