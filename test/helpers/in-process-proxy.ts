import fs from "node:fs";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import type { CliContext } from "../../infra/cli/context.js";
import { proxyCommand } from "../../infra/cli/proxy.js";
import { manifestJson, tempDir } from "../attestation/client/helpers.js";
import type { Harness } from "./enclave-harness.js";

/**
 * `egw proxy` run in process (proxyCommand with a CliContext of its own)
 * in front of a harness gateway, with a manifest that pins the harness's
 * test build and config and constrains the trust policy to the local
 * model, so an SDK pointed at `url` gets verified answers. `log()` is what
 * the proxy wrote to stderr so far; `stop()` returns its exit code.
 * The caller removes the temp dir (removeTempDirs) as it does for its own.
 */
export interface InProcessProxy {
  url: string;
  log(): string;
  stop(): Promise<number>;
}

export async function startInProcessProxy(h: Harness): Promise<InProcessProxy> {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, "dev-root.pem"), h.ca.rootPem);
  fs.writeFileSync(
    path.join(dir, "policy.json"),
    manifestJson({ label: "test build", configSha256: [h.enclave.configSha256], trust: { upstreamOrigins: ["local"], identity: { mode: "ephemeral" } } }),
  );
  let stdout = "";
  let stderr = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), stdin: Readable.from([]), cwd: dir, now: () => new Date(), env: {} };
  const abort = new AbortController();
  const done = proxyCommand(["--upstream", new URL(h.baseURL).origin, "--policy", "policy.json", "--dev-root", "dev-root.pem", "--listen", "127.0.0.1:0"], ctx, {
    signal: abort.signal,
  });
  // Bounded: 10 s for the proxy to say where it listens, or its exit code and output.
  for (let i = 0; i < 2000 && !/listening on (http:\/\/\S+)/.test(stdout); i++) await Promise.race([new Promise((r) => setTimeout(r, 5)), done]);
  const url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
  if (url === undefined) throw new Error(`egw proxy did not start: ${stderr.slice(0, 500)}`);
  return {
    url,
    log: () => stderr,
    stop: async () => {
      abort.abort();
      return done;
    },
  };
}
