import path from "node:path";
import { openAttestedConnection, parseGatewayOrigin } from "../../attestation/client/connection.js";
import { ClientError, type ClientStep } from "../../attestation/client/errors.js";
import type { AttestedPeer } from "../../attestation/client/peer.js";
import { loadDevRoot, loadPolicyFile, resolvePolicy, type ClientPolicy, type ResolvedPolicy } from "../../attestation/client/policy.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

/**
 * `egw verify <url> [--policy file] [--dev-root pem] [--json]`
 *
 * Attests a gateway exactly as the verifying client does (one TLS
 * connection, a fresh nonce, every policy check, the TLS key binding) and
 * prints each step. Exit 0 when every check passed, 1 when one failed
 * (connection problems included), 2 on usage. Without --policy the
 * measurements are checked against nothing, and the report says so in its
 * verdict; exit 0 then means every other check passed.
 */

/** The policy from --policy / --dev-root; a bad manifest or root is a usage error. */
export async function loadCliPolicy(
  values: { policy?: string | undefined; "dev-root"?: string | undefined },
  ctx: CliContext,
): Promise<{ policy: ClientPolicy; resolved: ResolvedPolicy; source: string }> {
  try {
    let policy: ClientPolicy;
    let source: string;
    const devRootFile = values["dev-root"] === undefined ? undefined : path.resolve(ctx.cwd, values["dev-root"]);
    if (values.policy !== undefined) {
      const loaded = await loadPolicyFile(path.resolve(ctx.cwd, values.policy), devRootFile === undefined ? {} : { devRootFile });
      policy = loaded.policy;
      source = `manifest ${values.policy} (${loaded.manifest.measurements.length} allowed measurement set${loaded.manifest.measurements.length === 1 ? "" : "s"})`;
    } else {
      policy = { measurements: "any", ...(devRootFile !== undefined && { trustedRoots: [await loadDevRoot(devRootFile)] }) };
      source = "no manifest: measurements are NOT checked";
    }
    return { policy, resolved: resolvePolicy(policy), source };
  } catch (err) {
    if (err instanceof ClientError) throw new UsageError(`${err.code}: ${err.message}`);
    throw err;
  }
}

export function stepLines(steps: readonly ClientStep[]): string[] {
  const mark = { passed: "ok  ", "not-requested": "--  ", failed: "FAIL" } as const;
  return steps.map((s) => `  ${mark[s.status]} ${s.step.padEnd(13)} ${s.detail}`);
}

export function peerJson(peer: AttestedPeer) {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return {
    moduleId: peer.result.moduleId,
    timestamp: peer.result.timestamp.toISOString(),
    debug: peer.result.debug,
    root: peer.result.root,
    measurement: peer.measurement,
    pcrs: Object.fromEntries([...peer.result.document.pcrs].map(([i, v]) => [i, hex(v)])),
    tlsSpkiSha256: hex(peer.tlsSpkiSha256),
    configSha256: hex(peer.configSha256),
    receiptKeySpki: peer.result.document.publicKey ? hex(peer.result.document.publicKey) : null,
    nonce: hex(peer.nonce),
  };
}

export async function verifyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    policy: { type: "string" },
    "dev-root": { type: "string" },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("verify takes exactly one gateway URL, e.g. https://127.0.0.1:8443");
  let origin: string;
  try {
    origin = parseGatewayOrigin(positionals[0]!).origin;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { resolved, source } = await loadCliPolicy(values, ctx);
  const measurementsChecked = resolved.measurements !== "any";

  let peer: AttestedPeer;
  try {
    const attested = await openAttestedConnection({ origin, policy: resolved, now: ctx.now });
    attested.socket.destroy();
    peer = attested.peer;
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    if (values.json) {
      print(ctx.stdout, JSON.stringify({ url: origin, accepted: false, policy: source, measurementsChecked, code: err.code, action: err.action, message: err.message, steps: err.steps }, null, 2));
    } else {
      const hint =
        err.code === "ERR_ROOT_UNTRUSTED" && resolved.trustedRoots.length === 1 && resolved.trustedRoots[0]!.name === "aws-nitro-root-g1"
          ? ["  only the AWS Nitro root is trusted; for a development gateway (egw dev) pass --dev-root <state-dir>/dev-root.pem"]
          : [];
      print(ctx.stdout, [`egw verify ${origin}`, `  policy: ${source}`, ...stepLines(err.steps), `REJECTED ${err.code}`, `  ${err.message}`, ...hint].join("\n"));
    }
    return EXIT.rejected;
  }

  const age = ctx.now().getTime() - peer.result.timestamp.getTime();
  if (values.json) {
    print(ctx.stdout, JSON.stringify({ url: origin, accepted: true, policy: source, measurementsChecked, ageMs: age, ...peerJson(peer), steps: peer.steps }, null, 2));
    return EXIT.ok;
  }
  const root = peer.result.root.production ? `${peer.result.root.name} (production)` : `${peer.result.root.name} — DEVELOPMENT root, not valid in production`;
  const verdict = measurementsChecked
    ? `ACCEPTED attested enclave ${peer.result.moduleId}, measurement "${peer.measurement}"`
    : `ACCEPTED attested enclave ${peer.result.moduleId} — measurements NOT checked against any manifest (pass --policy <manifest.json>)`;
  print(
    ctx.stdout,
    [
      `egw verify ${origin}`,
      `  policy: ${source}`,
      ...stepLines(peer.steps),
      verdict,
      `  root ${root}; ${peer.result.debug ? "DEBUG MODE" : "debug mode off"}; document ${age} ms old`,
    ].join("\n"),
  );
  return EXIT.ok;
}
