import { randomBytes } from "node:crypto";
import path from "node:path";
import { DEV_ROOT_FILE, loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { DEFAULT_STATE_DIR } from "./attest.js";
export { DEV_USAGE } from "./usage.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

/**
 * `npm start`. Honest about what exists: it exercises the trust core end to
 * end and names the parts of the stack that are still missing, rather than
 * pretending to serve.
 */
export async function devCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, { "state-dir": { type: "string" } });
  if (positionals.length > 0) throw new UsageError("dev takes no positional arguments");
  const stateDir = path.resolve(ctx.cwd, values["state-dir"] ?? DEFAULT_STATE_DIR);
  const ca = await loadOrCreateDevCa(stateDir, { now: ctx.now });
  const nsm = new SimulatedNsm({ ca, now: ctx.now });
  const nonce = new Uint8Array(randomBytes(32));
  try {
    const doc = await nsm.attest({ nonce });
    const result = await verifyAttestation(doc, {
      currentDate: ctx.now(),
      expectedPcrs: "any",
      nonce,
      trustedRoots: [trustAnchorFromPem(ca.rootPem, "development")],
    });
    const pcr = (i: number) => Buffer.from(result.document.pcrs.get(i) ?? new Uint8Array()).toString("hex");
    print(
      ctx.stdout,
      [
        "egw dev — development mode",
        `  state dir        ${stateDir}`,
        `  development root ${path.join(stateDir, DEV_ROOT_FILE)}`,
        `  simulated NSM    ${result.moduleId}: document issued and verified (nonce, chain to the development root, signature)`,
        `  PCR0 (code)      ${pcr(0)}`,
        "",
        "Not built yet: the enclave gateway service, the host relay and the verifying",
        "proxy. Until they land, this command only checks the attestation core.",
        "Try: npx egw attest issue --dev > /tmp/doc.cbor && npx egw inspect /tmp/doc.cbor",
      ].join("\n"),
    );
  } finally {
    await nsm.close();
  }
  return EXIT.ok;
}
