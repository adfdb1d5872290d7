import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseMeasurementsManifest } from "../../attestation/client/policy.js";
import { readEifFile, type EifImage } from "../review/eif/eif-reader.js";
import { EifError } from "../review/eif/errors.js";
import { compareWithManifest, measureEif, type EifMeasurements, type ManifestComparison } from "../review/eif/measure.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";

export { MEASURE_USAGE } from "./usage.js";

const MAX_MANIFEST_BYTES = 1024 * 1024;

export async function measureCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    manifest: { type: "string" },
    json: { type: "boolean" },
  });
  if (positionals.length !== 1) throw new UsageError("measure takes exactly one EIF file");
  const file = positionals[0]!;
  // The manifest is read first: a typo in its path is a usage problem, reported before any work.
  const manifestText = values.manifest === undefined ? undefined : await readManifest(values.manifest, ctx);
  if (manifestText !== undefined) checkManifest(manifestText, values.manifest!);

  let image: EifImage;
  let measurements: EifMeasurements;
  try {
    image = await readEifFile(path.resolve(ctx.cwd, file));
    measurements = measureEif(image);
  } catch (err) {
    if (err instanceof EifError) {
      if (values.json) print(ctx.stdout, JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2));
      else print(ctx.stdout, `INVALID EIF ${err.code}\n  ${err.message}`);
      return EXIT.rejected;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === "string" && !code.startsWith("ERR_")) throw new UsageError(`${file}: cannot read (${code})`);
    throw err;
  }

  let comparison: ManifestComparison | undefined;
  if (manifestText !== undefined) {
    comparison = compareWithManifest(measurements, manifestText);
  }

  if (values.json) print(ctx.stdout, JSON.stringify(measurementJson(image, measurements, comparison), null, 2));
  else print(ctx.stdout, measurementText(image, measurements, comparison));
  return comparison && !comparison.matched ? EXIT.rejected : EXIT.ok;
}

function checkManifest(text: string, file: string): void {
  try {
    parseMeasurementsManifest(text);
  } catch (err) {
    const { code, message } = err as { code?: string; message: string };
    throw new UsageError(`--manifest ${file}: ${code ? `${code}: ` : ""}${message}`);
  }
}

async function readManifest(file: string, ctx: CliContext): Promise<string> {
  try {
    const bytes = await readFile(path.resolve(ctx.cwd, file));
    if (bytes.length > MAX_MANIFEST_BYTES) throw new UsageError(`--manifest ${file}: larger than ${MAX_MANIFEST_BYTES} bytes`);
    return bytes.toString("utf8");
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--manifest ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** Names come from the image: no control character reaches the terminal. */
const printable = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export function measurementJson(image: EifImage, m: EifMeasurements, comparison?: ManifestComparison) {
  return {
    valid: true,
    version: image.header.version,
    arch: image.header.arch,
    sections: image.sections,
    pcrs: {
      0: hex(m.pcr0),
      1: hex(m.pcr1),
      2: hex(m.pcr2),
      ...(m.pcr8 && { 8: hex(m.pcr8) }),
    },
    metadata: m.metadata ?? null,
    signingCertificate: m.signingCertificate
      ? {
          subject: m.signingCertificate.subject,
          issuer: m.signingCertificate.issuer,
          serialHex: m.signingCertificate.serialHex,
          notBefore: m.signingCertificate.notBefore.toISOString(),
          notAfter: m.signingCertificate.notAfter.toISOString(),
          sha256: m.signingCertificate.sha256,
        }
      : null,
    ...(comparison && { manifest: comparison }),
  };
}

function measurementText(image: EifImage, m: EifMeasurements, comparison?: ManifestComparison): string {
  const lines = [
    `EIF v${image.header.version} (${image.header.arch}), ${image.sections.length} sections: ${image.sections.map((s) => `${s.type} ${s.size}`).join(", ")}`,
    `  PCR0 ${hex(m.pcr0)}`,
    `  PCR1 ${hex(m.pcr1)}`,
    `  PCR2 ${hex(m.pcr2)}`,
    m.pcr8 ? `  PCR8 ${hex(m.pcr8)}` : "  PCR8 (unsigned image: all zero in the enclave)",
  ];
  const cert = m.signingCertificate;
  if (cert) {
    lines.push(
      "signing certificate:",
      `  subject   ${printable(cert.subject)}`,
      `  issuer    ${printable(cert.issuer)}`,
      `  validity  ${cert.notBefore.toISOString()} .. ${cert.notAfter.toISOString()}`,
      `  sha256    ${cert.sha256}`,
    );
  }
  lines.push(m.metadata ? `metadata:\n${JSON.stringify(m.metadata, null, 2).replace(/^/gm, "  ")}` : "metadata: none");
  if (comparison?.matched) lines.push(`MATCH manifest entry "${comparison.label}"`);
  else if (comparison) {
    lines.push("NO MATCH: the image matches no manifest entry");
    for (const entry of comparison.entries) {
      lines.push(`  "${entry.label}":`);
      for (const mm of entry.mismatches)
        lines.push(`    PCR${mm.index} expected ${mm.expected}\n${" ".repeat(10 + String(mm.index).length)}got ${mm.actual ?? "(not measured by this image)"}`);
    }
  }
  return lines.join("\n");
}
