import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseManifest } from "../../attestation/client/policy.js";
import { buildKeyPolicy, KeyPolicyError, MAX_POLICY_SECRETS } from "../review/kms/key-policy.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { KMS_POLICY_USAGE } from "./usage.js";

/** `--secret OPENAI_API_KEY=https://api.openai.com`: the name and origin `egw seal` bound the ciphertext to. */
function parseSecretFlag(value: string): { name: string; origin: string } {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new UsageError(`--secret must be NAME=ORIGIN (e.g. OPENAI_API_KEY=https://api.openai.com), got "${value.slice(0, 80)}"`);
  return { name: value.slice(0, eq), origin: value.slice(eq + 1) };
}

export async function kmsPolicyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    measurements: { type: "string" },
    "enclave-role": { type: "string" },
    admin: { type: "string" },
    sealer: { type: "string" },
    secret: { type: "string", multiple: true },
    immutable: { type: "boolean" },
    "allow-debug": { type: "boolean" },
    "allow-http": { type: "boolean" },
  });
  if (positionals.length > 0) throw new UsageError("kms-policy takes no positional arguments");
  if (!values.measurements || !values["enclave-role"] || !values.admin) {
    throw new UsageError("kms-policy needs --measurements <manifest.json>, --enclave-role <arn> and --admin <arn>");
  }
  if ((values.secret?.length ?? 0) > MAX_POLICY_SECRETS) throw new UsageError(`at most ${MAX_POLICY_SECRETS} --secret flags`);
  const secrets = values.secret?.map(parseSecretFlag);
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
    const { policy, warnings, bypassPolicyLockoutSafetyCheck } = buildKeyPolicy({
      manifest,
      enclaveRoleArn: values["enclave-role"],
      adminArn: values.admin,
      ...(values.sealer !== undefined && { sealerArn: values.sealer }),
      ...(secrets !== undefined && { secrets }),
      immutable: values.immutable === true,
      allowDebug: values["allow-debug"] === true,
      allowHttpOrigins: values["allow-http"] === true,
    });
    print(ctx.stdout, JSON.stringify(policy, null, 2));
    for (const w of warnings) print(ctx.stderr, `warning: ${w}`);
    if (bypassPolicyLockoutSafetyCheck) print(ctx.stderr, "note: apply with BypassPolicyLockoutSafetyCheck=true; KMS refuses it otherwise");
    return EXIT.ok;
  } catch (err) {
    if (err instanceof KeyPolicyError) throw new UsageError(err.message);
    throw err;
  }
}
