import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** ../shared beside the repository root; CI lays it out the same way. */
export const SHARED_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../shared");
export const NITRO_DIR = path.join(SHARED_DIR, "fixtures/nitro");
export const KMS_CMS_DIR = path.join(SHARED_DIR, "fixtures/kms-cms");

export interface NitroFixture {
  name: string;
  bytes: Uint8Array;
  timestampMs: number;
  debug: boolean;
  /** Non-zero PCRs from the fixture's decoded fields (hex). */
  pcrs: Record<string, string>;
  /** PCRs the fixture's source itself asserts, when it asserts any. */
  expectedBySource: Record<string, string> | undefined;
  chainWindow: [Date, Date];
  meta: any;
}

function parseWindowDate(text: string): Date {
  // "2026-01-03 20:40:25+00:00" → ISO
  return new Date(text.replace(" ", "T"));
}

export function loadNitroFixtures(): NitroFixture[] {
  return fs
    .readdirSync(NITRO_DIR)
    .filter((f) => f.endsWith(".cbor"))
    .sort()
    .map((file) => {
      const meta = JSON.parse(fs.readFileSync(path.join(NITRO_DIR, file.replace(/\.cbor$/, ".json")), "utf8"));
      const window = meta.independent_verification.chain_validity_window_utc as [string, string];
      const pcrs = meta.decoded.pcrs_nonzero_hex as Record<string, string>;
      return {
        name: file.replace(/\.cbor$/, ""),
        bytes: new Uint8Array(fs.readFileSync(path.join(NITRO_DIR, file))),
        timestampMs: meta.decoded.timestamp_ms,
        debug: !("0" in pcrs),
        pcrs,
        expectedBySource: meta.expected_by_source?.pcrs,
        chainWindow: [parseWindowDate(window[0]), parseWindowDate(window[1])],
        meta,
      };
    });
}

export function awsRootPem(): string {
  return fs.readFileSync(path.join(NITRO_DIR, "aws-nitro-root-g1.pem"), "utf8");
}
