import { MAX_DOCUMENT_BYTES } from "../../attestation/cose-sign1.js";
import { AttestationError } from "../../attestation/errors.js";
import { explainDocument, type DocumentView, type FieldView } from "../../attestation/explain.js";
import { verifyAttestation } from "../../attestation/verify.js";
import type { VerifyOptions } from "../../attestation/verify-options.js";
import { parseAt, readTrustAnchor } from "./attest.js";
export { INSPECT_USAGE } from "./usage.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { decodeDocumentText, readInput } from "./input.js";

export async function inspectCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    json: { type: "boolean" },
    at: { type: "string" },
    root: { type: "string" },
  });
  if (positionals.length !== 1) throw new UsageError("inspect takes exactly one document (a path or -)");
  // Usage problems first, whatever the document holds.
  const at = parseAt(values.at, ctx);
  const anchor = values.root !== undefined ? await readTrustAnchor(values.root, ctx) : undefined;
  const raw = await readInput(positionals[0]!, ctx.stdin, ctx.cwd, MAX_DOCUMENT_BYTES);
  const { bytes, format } = decodeDocumentText(raw);

  let view: DocumentView;
  try {
    view = explainDocument(bytes);
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    if (values.json) print(ctx.stdout, JSON.stringify({ decoded: false, code: err.code, message: err.message }, null, 2));
    else print(ctx.stdout, `NOT A VALID DOCUMENT ${err.code}\n  ${err.message}`);
    return EXIT.rejected;
  }

  const options: VerifyOptions = { currentDate: at, expectedPcrs: "any", allowDebug: true, maxAgeMs: Infinity, clockSkewMs: Infinity };
  if (anchor) options.trustedRoots = [anchor];
  let verification: { at: string; root: string; passed: boolean; code?: string; message?: string };
  const rootName = values.root !== undefined ? `caller-supplied root ${values.root}` : "aws-nitro-root-g1";
  try {
    await verifyAttestation(bytes, options);
    verification = { at: at.toISOString(), root: rootName, passed: true };
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    verification = { at: at.toISOString(), root: rootName, passed: false, code: err.code, message: err.message };
  }

  if (values.json) {
    print(ctx.stdout, JSON.stringify({ decoded: true, input: format, ...view, verification }, null, 2));
  } else {
    print(ctx.stdout, renderText(view, format, verification));
  }
  return EXIT.ok;
}

function fieldLine(name: string, f: FieldView | null): string {
  if (f === null) return `  ${name.padEnd(11)} null`;
  const shown = f.hex.length > 96 ? `${f.hex.slice(0, 96)}… (${f.length} bytes)` : f.hex || "(empty)";
  const text = f.text !== undefined ? `  "${f.text.length > 60 ? `${f.text.slice(0, 60)}…` : f.text}"` : "";
  return `  ${name.padEnd(11)} ${f.length} bytes  ${shown}${text}`;
}

function renderText(view: DocumentView, format: string, v: { at: string; root: string; passed: boolean; code?: string; message?: string }): string {
  const lines = [
    `Nitro attestation document (COSE_Sign1 ${view.format.tagged ? "tagged 18" : "untagged"}, ${view.format.bytes} bytes, ${view.format.alg}, read as ${format})`,
    `  module_id   ${view.moduleId}`,
    `  digest      ${view.digest}`,
    `  timestamp   ${view.timestamp}`,
    `  mode        ${view.debugMode ? "DEBUG (PCR0 is all zero: memory and console of this enclave are open to its parent)" : "production (PCR0 non-zero)"}`,
    `  PCRs        ${view.pcrs.length} (${view.pcrs.filter((p) => !p.zero).length} non-zero)`,
    ...view.pcrs.map((p) => `    PCR${String(p.index).padEnd(3)} ${p.zero ? "0 × 48" : p.hex}`),
    fieldLine("public_key", view.publicKey),
    fieldLine("user_data", view.userData),
    fieldLine("nonce", view.nonce),
    "Certificate chain (leaf → root)",
  ];
  for (const c of view.chain) {
    if ("error" in c) {
      lines.push(`  [${c.role}] unreadable: ${c.error}`);
      continue;
    }
    lines.push(
      `  [${c.role}] ${c.subject}`,
      `      issuer   ${c.issuer}`,
      `      valid    ${c.notBefore} → ${c.notAfter}`,
      `      key      ${c.publicKey}, ${c.signatureAlgorithm}; ${c.basicConstraints}; keyUsage ${c.keyUsage}`,
      `      sha256   ${c.sha256}`,
    );
  }
  if (view.chainValidity) lines.push(`  whole chain valid ${view.chainValidity.notBefore} → ${view.chainValidity.notAfter}`);
  lines.push(
    v.passed
      ? `Signature and chain at ${v.at} against ${v.root}: PASSED (no measurement policy applied)`
      : `Signature and chain at ${v.at} against ${v.root}: FAILED ${v.code}: ${v.message}`,
  );
  return lines.join("\n");
}
