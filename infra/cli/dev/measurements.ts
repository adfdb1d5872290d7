import fs from "node:fs/promises";
import https from "node:https";
import { trustAnchorFromPem } from "../../../attestation/roots.js";
import { verifyAttestation } from "../../../attestation/verify.js";

/** Bytes an attestation answer may have (a document is a few KiB). */
const MAX_DOCUMENT_BYTES = 64 * 1024;

/**
 * The measurements to print: fetched through the relay like a client would,
 * and verified against the development root before they are shown.
 */
export async function readMeasurements(ingress: string, devRootFile: string, now: Date): Promise<Record<string, string>> {
  const doc = await new Promise<Uint8Array>((resolve, reject) => {
    // The certificate is checked through the document below, not by a CA.
    const req = https.get(`${ingress}/v1/attestation`, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_DOCUMENT_BYTES) req.destroy(new Error(`attestation answer over ${MAX_DOCUMENT_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on("end", () => (res.statusCode === 200 ? resolve(new Uint8Array(Buffer.concat(chunks))) : reject(new Error(`attestation answered ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error("attestation timed out")));
    req.on("error", reject);
  });
  const anchor = trustAnchorFromPem(await fs.readFile(devRootFile, "utf8"), "development");
  const result = await verifyAttestation(doc, { currentDate: now, expectedPcrs: "any", trustedRoots: [anchor] });
  const out: Record<string, string> = {};
  for (const i of [0, 1, 2]) out[String(i)] = Buffer.from(result.document.pcrs.get(i) ?? new Uint8Array()).toString("hex");
  return out;
}
