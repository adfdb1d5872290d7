import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseManifest } from "../../attestation/client/policy.js";
import { buildKeyPolicy, KeyPolicyError } from "../kms/key-policy.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { KMS_POLICY_USAGE } from "./usage.js";

export async function kmsPolicyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    measurements: { type: "string" },
    "enclave-role": { type: "string" },
    admin: { type: "string" },
    sealer: { type: "string" },
  });
  if (positionals.length > 0) throw new UsageError("kms-policy takes no positional arguments");
  if (!values.measurements || !values["enclave-role"] || !values.admin) {
    throw new UsageError("kms-policy needs --measurements <manifest.json>, --enclave-role <arn> and --admin <arn>");
  }
  let text: string;
  try {
    text = await readFile(path.resolve(ctx.cwd, values.measurements), "utf8");
  } catch (err) {
    throw new UsageError(`--measurements ${values.measurements}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let manifest;
  try {
    manifest = parseManifest(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  try {
    const { policy, warnings } = buildKeyPolicy({
      manifest,
      enclaveRoleArn: values["enclave-role"],
      adminArn: values.admin,
      ...(values.sealer !== undefined && { sealerArn: values.sealer }),
    });
    print(ctx.stdout, JSON.stringify(policy, null, 2));
    for (const w of warnings) print(ctx.stderr, `warning: ${w}`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof KeyPolicyError) throw new UsageError(err.message);
    throw err;
  }
}
