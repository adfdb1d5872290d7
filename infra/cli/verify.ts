import path from "node:path";
import { openAttestedConnection, parseGatewayOrigin } from "../../attestation/client/connection.js";
import { ClientError, type ClientStep } from "../../attestation/client/errors.js";
import type { AttestedPeer } from "../../attestation/client/peer.js";
import type { ReleaseInfo } from "../../attestation/manifest/release.js";
import type { VerifiedManifestSignature } from "../../attestation/manifest/signature.js";
import { loadDevRoot, loadPolicyFile, resolvePolicy, type ClientPolicy, type Manifest, type ResolvedPolicy } from "../../attestation/client/policy.js";
import { describeTrustConstraints, unconstrainedTrust } from "../../attestation/client/trust-constraints.js";
import { describeTrustPolicy } from "../../attestation/trust-policy.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { parseMinSequenceFlag, readManifestPin } from "./manifest-pin.js";

/**
 * `egw verify <url> [--policy file [--policy-pubkey pem | --policy-pubkey-sha256 hex] [--policy-sig file]
 *                   [--policy-min-sequence n]] [--dev-root pem] [--json]`
 *
 * Attests a gateway exactly as the verifying client does (one TLS
 * connection, a fresh nonce, every policy check, the TLS key binding) and
 * prints each step, then the attested trust policy (upstream origins,
 * identity mode, key ARNs, its hash). Exit 0 when every check passed, 1
 * when one failed (connection problems included), 2 on usage. Without
 * --policy neither the measurements nor the trust policy are checked
 * against anything, and the verdict says so: "ACCEPTED (UNCONSTRAINED: …)"
 * names what was not constrained (also for a manifest that says "any");
 * exit 0 then means every other check passed.
 *
 * With --policy-pubkey or --policy-pubkey-sha256 the manifest is used only
 * with a valid detached signature by that key (<manifest>.sig, or
 * --policy-sig): otherwise ERR_MANIFEST_SIGNATURE, exit 1, and nothing is
 * dialled. Likewise a manifest whose `expires` has come at the CLI clock
 * (ERR_MANIFEST_EXPIRED), and, with --policy-min-sequence n, one without a
 * sequence or with a lower one (ERR_MANIFEST_ROLLBACK).
 */

/** Flags every command that reads a manifest as its policy accepts. */
export const POLICY_FLAGS = {
  policy: { type: "string" },
  "policy-pubkey": { type: "string" },
  "policy-pubkey-sha256": { type: "string" },
  "policy-sig": { type: "string" },
  "policy-min-sequence": { type: "string" },
  "dev-root": { type: "string" },
} as const;

/**
 * What loadCliPolicy passes on as a ClientError (reported as a refusal, exit
 * 1) rather than as a usage problem: the manifest was read and is not to be
 * trusted now, which another try with other flags must not paper over.
 */
const MANIFEST_REFUSALS = new Set(["ERR_MANIFEST_SIGNATURE", "ERR_MANIFEST_EXPIRED", "ERR_MANIFEST_ROLLBACK"]);

export interface CliPolicy {
  policy: ClientPolicy;
  resolved: ResolvedPolicy;
  source: string;
  /** The manifest, when --policy was given. */
  manifest?: Manifest;
  /** The verified signature, when a signing key was pinned. */
  signature?: VerifiedManifestSignature;
}

/**
 * The policy from --policy / --dev-root, the signing-key pin and the
 * minimum sequence, checked at ctx.now(). A bad manifest, root or pin is a
 * usage error; a manifest that fails its pinned signature, has expired, or
 * is older than the pinned sequence is a ClientError (ERR_MANIFEST_SIGNATURE,
 * ERR_MANIFEST_EXPIRED, ERR_MANIFEST_ROLLBACK), which callers report as a
 * rejection (exit 1), never as "try again without the pin".
 */
export async function loadCliPolicy(
  values: {
    policy?: string | undefined;
    "dev-root"?: string | undefined;
    "policy-pubkey"?: string | undefined;
    "policy-pubkey-sha256"?: string | undefined;
    "policy-sig"?: string | undefined;
    "policy-min-sequence"?: string | undefined;
  },
  ctx: CliContext,
): Promise<CliPolicy> {
  const pinned = values["policy-pubkey"] !== undefined || values["policy-pubkey-sha256"] !== undefined;
  // A pin or signature without a manifest would leave measurements unchecked while looking checked.
  if (values.policy === undefined && (pinned || values["policy-sig"] !== undefined)) {
    throw new UsageError("--policy-pubkey, --policy-pubkey-sha256 and --policy-sig pin the signer of a --policy manifest; give --policy <manifest.json>");
  }
  if (values["policy-sig"] !== undefined && !pinned) {
    throw new UsageError("--policy-sig needs --policy-pubkey or --policy-pubkey-sha256: a signature checked against no key proves nothing");
  }
  if (values.policy === undefined && values["policy-min-sequence"] !== undefined) {
    throw new UsageError("--policy-min-sequence pins the sequence of a --policy manifest; give --policy <manifest.json>");
  }
  const minSequence = parseMinSequenceFlag(values["policy-min-sequence"], "--policy-min-sequence");
  const pin = await readManifestPin(values["policy-pubkey"], values["policy-pubkey-sha256"], { pem: "--policy-pubkey", sha256: "--policy-pubkey-sha256" }, ctx);
  try {
    let policy: ClientPolicy;
    let source: string;
    let manifest: Manifest | undefined;
    let signature: VerifiedManifestSignature | undefined;
    const devRootFile = values["dev-root"] === undefined ? undefined : path.resolve(ctx.cwd, values["dev-root"]);
    if (values.policy !== undefined) {
      const file = path.resolve(ctx.cwd, values.policy);
      const loaded = await loadPolicyFile(file, {
        now: ctx.now,
        ...(minSequence !== undefined && { minSequence }),
        ...(devRootFile !== undefined && { devRootFile }),
        ...(pin && { signedBy: { spkiSha256: pin, ...(values["policy-sig"] !== undefined && { signatureFile: path.resolve(ctx.cwd, values["policy-sig"]) }) } }),
      });
      policy = loaded.policy;
      manifest = loaded.manifest;
      signature = loaded.signature;
      const count = loaded.manifest.measurements.length;
      const signed = signature ? `, signature verified: key sha256:${signature.keyId}` : ", unsigned (no signing key pinned)";
      const { sequence, expires } = loaded.manifest;
      const lifecycle =
        (sequence === undefined ? "" : `, sequence ${sequence}${minSequence === undefined ? "" : ` (at least ${minSequence} pinned)`}`) +
        (expires === undefined ? "" : `, expires ${expires}`);
      source = `manifest ${values.policy} (${count} allowed measurement set${count === 1 ? "" : "s"}${lifecycle}${signed})`;
    } else {
      policy = { measurements: "any", trust: "any", ...(devRootFile !== undefined && { trustedRoots: [await loadDevRoot(devRootFile)] }) };
      source = "no manifest: measurements and trust policy are NOT checked";
    }
    return { policy, resolved: resolvePolicy(policy, ctx.now()), source, ...(manifest && { manifest }), ...(signature && { signature }) };
  } catch (err) {
    if (err instanceof ClientError && MANIFEST_REFUSALS.has(err.code)) throw err;
    if (err instanceof ClientError) throw new UsageError(`${err.code}: ${err.message}`);
    throw err;
  }
}

/** The release of the manifest entry that matched (labels are unique within a manifest). */
export function matchedRelease(manifest: Manifest | undefined, label: string | null): ReleaseInfo | undefined {
  if (!manifest || label === null) return undefined;
  return manifest.measurements.find((m) => m.label === label)?.release;
}

export function releaseLine(release: ReleaseInfo): string {
  const parts = [`release ${release.version}`, `commit ${release.gitCommit}`, `image ${release.imageDigest}`];
  if (release.builtAt) parts.push(`built ${release.builtAt}`);
  return `  ${parts.join(", ")}`;
}

/** A manifest refused (signature, expiry, rollback), reported like any other rejection. */
export function manifestRejection(err: ClientError, values: { policy?: string | undefined }, json: boolean | undefined, what: string): string {
  if (json) return JSON.stringify({ accepted: false, policy: `manifest ${values.policy}`, code: err.code, action: err.action, message: err.message }, null, 2);
  return [what, `  policy: manifest ${values.policy}`, `REJECTED ${err.code}`, `  ${err.message}`].join("\n");
}

export function stepLines(steps: readonly ClientStep[]): string[] {
  const mark = { passed: "ok  ", "not-requested": "--  ", failed: "FAIL" } as const;
  return steps.map((s) => `  ${mark[s.status]} ${s.step.padEnd(13)} ${s.detail}`);
}

/**
 * What a connection's acceptance left open, for the verdict: measurements
 * "any", trust "any" (or the parts of a trust section left out), a document
 * that attests no trust policy.
 */
export function unconstrained(peer: AttestedPeer, resolved: ResolvedPolicy): string[] {
  const open: string[] = [];
  if (resolved.measurements === "any") open.push("measurements");
  if (peer.policySha256 === null) open.push("trust policy (this enclave attests none)");
  else {
    // A policy with no sealed secret releases no provider key: its key ARN has nothing to constrain.
    const noSecrets = peer.trust !== null && peer.trust.policy.secrets === undefined;
    open.push(...unconstrainedTrust(resolved.trust).filter((what) => !(noSecrets && what === "secrets KMS key")));
  }
  return open;
}

/** "constrained" or "UNCONSTRAINED", as x-egw-verified says it. */
export function trustWord(peer: AttestedPeer, resolved: ResolvedPolicy): "constrained" | "UNCONSTRAINED" {
  return resolved.trust !== "any" && peer.trust !== null ? "constrained" : "UNCONSTRAINED";
}

/** The attested trust policy as report lines (describeTrustPolicy), and what the policy required of it. */
export function trustLines(peer: AttestedPeer, resolved: ResolvedPolicy): string[] {
  const lines: string[] = [];
  if (peer.trust === null) {
    lines.push("  trust policy: none attested (an older enclave, channel binding v1/v2)");
  } else {
    lines.push(`  trust policy sha256 ${Buffer.from(peer.trust.sha256).toString("hex")}`);
    lines.push(...describeTrustPolicy(peer.trust.policy).map((l) => `    ${l}`));
  }
  lines.push("  required by the policy:", ...describeTrustConstraints(resolved.trust).map((l) => `    ${l}`));
  return lines;
}

/** The trust fields of JSON output. */
export function trustJsonFields(peer: AttestedPeer, resolved: ResolvedPolicy) {
  const t = peer.trust;
  return {
    trustConstrained: trustWord(peer, resolved) === "constrained",
    unconstrained: unconstrained(peer, resolved),
    trustPolicy:
      t === null
        ? null
        : {
            sha256: Buffer.from(t.sha256).toString("hex"),
            upstreamOrigins: t.origins,
            providers: t.policy.providers.map((p) => ({ name: p.name, kind: p.kind, origin: p.origin, ...(p.secret !== undefined && { secret: p.secret }) })),
            identity: t.policy.identity.mode === "ephemeral" ? { mode: "ephemeral" } : { mode: "sealed", kmsKeyArn: t.policy.identity.kmsKeyArn },
            secretsKmsKeyArn: t.policy.secrets?.kmsKeyArn ?? null,
            lines: describeTrustPolicy(t.policy),
          },
  };
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
    policySha256: peer.policySha256 === null ? null : hex(peer.policySha256),
    receiptKeySpki: peer.result.document.publicKey ? hex(peer.result.document.publicKey) : null,
    nonce: hex(peer.nonce),
  };
}

export async function verifyCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    ...POLICY_FLAGS,
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("verify takes exactly one gateway URL, e.g. https://127.0.0.1:8443");
  let origin: string;
  try {
    origin = parseGatewayOrigin(positionals[0]!).origin;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let loaded: CliPolicy;
  try {
    loaded = await loadCliPolicy(values, ctx);
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    print(ctx.stdout, manifestRejection(err, values, values.json, `egw verify ${origin}`));
    return EXIT.rejected;
  }
  const { resolved, source } = loaded;
  const measurementsChecked = resolved.measurements !== "any";

  let peer: AttestedPeer;
  try {
    const attested = await openAttestedConnection({ origin, policy: resolved, now: ctx.now });
    attested.socket.destroy();
    peer = attested.peer;
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    if (values.json) {
      print(
        ctx.stdout,
        JSON.stringify({ url: origin, accepted: false, policy: source, measurementsChecked, code: err.code, action: err.action, message: err.message, steps: err.steps }, null, 2),
      );
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
  const release = matchedRelease(loaded.manifest, peer.measurement);
  if (values.json) {
    const manifestSignature = loaded.signature ? { keySha256: loaded.signature.keyId } : null;
    const manifestSequence = loaded.manifest?.sequence ?? null;
    const manifestExpires = loaded.manifest?.expires ?? null;
    print(
      ctx.stdout,
      JSON.stringify(
        {
          url: origin,
          accepted: true,
          policy: source,
          measurementsChecked,
          ...trustJsonFields(peer, resolved),
          manifestSignature,
          manifestSequence,
          manifestExpires,
          ageMs: age,
          ...peerJson(peer),
          release: release ?? null,
          steps: peer.steps,
        },
        null,
        2,
      ),
    );
    return EXIT.ok;
  }
  const root = peer.result.root.production ? `${peer.result.root.name} (production)` : `${peer.result.root.name} — DEVELOPMENT root, not valid in production`;
  const open = unconstrained(peer, resolved);
  const what = measurementsChecked ? `, measurement "${peer.measurement}"` : " — measurements NOT checked against any manifest";
  const verdict =
    open.length === 0
      ? `ACCEPTED attested enclave ${peer.result.moduleId}${what}`
      : `ACCEPTED (UNCONSTRAINED: ${open.join(", ")}) attested enclave ${peer.result.moduleId}${what}${loaded.manifest ? "" : " (pass --policy <manifest.json>)"}`;
  print(
    ctx.stdout,
    [
      `egw verify ${origin}`,
      `  policy: ${source}`,
      ...stepLines(peer.steps),
      ...trustLines(peer, resolved),
      verdict,
      ...(release ? [releaseLine(release)] : []),
      `  root ${root}; ${peer.result.debug ? "DEBUG MODE" : "debug mode off"}; document ${age} ms old`,
    ].join("\n"),
  );
  return EXIT.ok;
}
