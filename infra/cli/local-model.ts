import { writeFile } from "node:fs/promises";
import path from "node:path";
import { startLocalModelServer } from "../dev/local-model-server.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { LOCAL_MODEL_USAGE } from "./usage.js";

export async function localModelCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, { listen: { type: "string" }, "cert-out": { type: "string" }, "require-key-sha256": { type: "string" } });
  const keyHash = values["require-key-sha256"];
  if (keyHash !== undefined && !/^[0-9a-f]{64}$/.test(keyHash)) throw new UsageError("--require-key-sha256 must be 64 hex digits");
  if (positionals.length > 0) throw new UsageError("local-model takes no positional arguments");
  const match = /^tcp:\/\/(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$/.exec(values.listen ?? "tcp://127.0.0.1:0");
  if (!match) throw new UsageError("--listen must be tcp://127.0.0.1:<port> (the local model serves loopback only)");
  const server = await startLocalModelServer({
    host: match[1]!.replace(/^\[|\]$/g, ""),
    port: Number(match[2]),
    now: ctx.now,
    ...(keyHash !== undefined && { requireKeySha256: keyHash }),
  });
  if (values["cert-out"] !== undefined) await writeFile(path.resolve(ctx.cwd, values["cert-out"]), server.certPem, { mode: 0o644 });
  print(ctx.stdout, JSON.stringify({ ready: true, port: server.port }));
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.close();
  return EXIT.ok;
}
