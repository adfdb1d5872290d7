/**
 * Release manifests from EIFs: the PCRs come from infra/review/eif and are checked
 * against the EIF test builder's own arithmetic (test/infra/review/eif/eif-builder.ts,
 * written from the format description); the output is the client's format
 * (parseManifest) and is what compareWithManifest matches.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseManifest, type Manifest } from "../../../attestation/client/policy.js";
import { readEif } from "../../../infra/review/eif/eif-reader.js";
import { compareWithManifest, measureEif } from "../../../infra/review/eif/measure.js";
import { createManifest, defaultLabel, mergeManifest, releaseEntry, type ReleaseEntryInput } from "../../../attestation/manifest/create.js";
import { serializeManifest } from "../../../attestation/manifest/json.js";
import { buildEif, bytesOf, expectedPcrs, imageSections, makeSigningCertificate, type ImageParts } from "../../infra/review/eif/eif-builder.js";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const DIGEST = `sha256:${"ab".repeat(32)}`;
const CONFIG = new Uint8Array(createHash("sha256").update("runtime config").digest());

let signedParts: ImageParts;
let signedEif: Uint8Array;
let unsignedParts: ImageParts;
let unsignedEif: Uint8Array;
beforeAll(async () => {
  signedParts = { kernel: bytesOf("kernel"), cmdline: bytesOf("console=ttyS0"), ramdisks: [bytesOf("init"), bytesOf("app")], signer: await makeSigningCertificate("egw release") };
  signedEif = buildEif(imageSections(signedParts));
  unsignedParts = { kernel: bytesOf("kernel 2"), cmdline: bytesOf("console=ttyS0"), ramdisks: [bytesOf("init"), bytesOf("app 2")] };
  unsignedEif = buildEif(imageSections(unsignedParts));
});

const sha384 = (b: Uint8Array) => new Uint8Array(createHash("sha384").update(b).digest());
const input = (eif: Uint8Array, extra: Partial<ReleaseEntryInput> = {}): ReleaseEntryInput => ({
  measurements: measureEif(readEif(eif)),
  eifSha384: sha384(eif),
  version: "0.1.0",
  gitCommit: COMMIT,
  imageDigest: DIGEST,
  ...extra,
});
const pcrHex = (m: Manifest, i: number) => Object.fromEntries([...m.measurements[i]!.pcrs].map(([k, v]) => [String(k), Buffer.from(v).toString("hex")]));

describe("releaseEntry", () => {
  it("a signed EIF: PCR0, 1, 2 and 8, as the format defines them", () => {
    const entry = releaseEntry(input(signedEif, { builtAt: "2026-11-25T12:00:00Z" }));
    expect(entry.label).toBe("egw 0.1.0 (0123456789ab)");
    expect(Object.fromEntries([...entry.pcrs].map(([k, v]) => [String(k), Buffer.from(v).toString("hex")]))).toEqual(expectedPcrs(signedParts));
    expect(entry.release).toEqual({
      version: "0.1.0",
      gitCommit: COMMIT,
      imageDigest: DIGEST,
      eifSha384: Buffer.from(sha384(signedEif)).toString("hex"),
      builtAt: "2026-11-25T12:00:00Z",
    });
  });

  it("an unsigned EIF: no PCR8 (it is all zero in the enclave, and pinning zero would pin nothing)", () => {
    const entry = releaseEntry(input(unsignedEif));
    expect([...entry.pcrs.keys()]).toEqual([0, 1, 2]);
    expect(entry.release?.builtAt).toBeUndefined();
  });

  it("refuses release fields and labels outside their formats", () => {
    const bad: Partial<ReleaseEntryInput>[] = [
      { version: "v0.1.0" },
      { gitCommit: COMMIT.toUpperCase() },
      { imageDigest: "ab".repeat(32) },
      { builtAt: "yesterday" },
      { label: "" },
      { label: "a\nb" },
      { label: "x".repeat(129) },
      { eifSha384: new Uint8Array(32) },
    ];
    for (const b of bad) expect(() => releaseEntry(input(signedEif, b)), JSON.stringify(b)).toThrow(expect.objectContaining({ code: "ERR_RELEASE_INPUT" }));
  });
});

describe("createManifest + serializeManifest", () => {
  it("writes the schema's key order, 2-space JSON and a final newline", () => {
    const text = serializeManifest(createManifest(releaseEntry(input(signedEif, { builtAt: "2026-11-25T12:00:00Z" })), [CONFIG, CONFIG], {}, "any"));
    const p = expectedPcrs(signedParts);
    const expected = `${[
      "{",
      '  "version": 1,',
      '  "measurements": [',
      "    {",
      '      "label": "egw 0.1.0 (0123456789ab)",',
      '      "pcrs": {',
      `        "0": "${p[0]}",`,
      `        "1": "${p[1]}",`,
      `        "2": "${p[2]}",`,
      `        "8": "${p[8]}"`,
      "      },",
      '      "release": {',
      '        "version": "0.1.0",',
      `        "gitCommit": "${COMMIT}",`,
      `        "imageDigest": "${DIGEST}",`,
      `        "eifSha384": "${Buffer.from(sha384(signedEif)).toString("hex")}",`,
      '        "builtAt": "2026-11-25T12:00:00Z"',
      "      }",
      "    }",
      "  ],",
      '  "trust": "any",',
      '  "configSha256": [',
      `    "${Buffer.from(CONFIG).toString("hex")}"`,
      "  ]",
      "}",
    ].join("\n")}\n`;
    expect(text).toBe(expected);
  });

  it("round-trips through parseManifest, and the EIF matches it the way egw measure compares", () => {
    const manifest = createManifest(releaseEntry(input(signedEif)), [CONFIG], {}, "any");
    const text = serializeManifest(manifest);
    const parsed = parseManifest(text);
    expect(parsed).toEqual(manifest);
    expect(serializeManifest(parsed)).toBe(text);
    expect(compareWithManifest(measureEif(readEif(signedEif)), text)).toEqual({ matched: true, label: "egw 0.1.0 (0123456789ab)" });
    expect(compareWithManifest(measureEif(readEif(unsignedEif)), text).matched).toBe(false);
  });

  it("no config hash: the field is left out (the client reports the config as unchecked)", () => {
    expect(JSON.parse(serializeManifest(createManifest(releaseEntry(input(unsignedEif)), [], {}, "any")))).not.toHaveProperty("configSha256");
  });

  it("property: any valid release survives serialize → parse unchanged", () => {
    const hexChars = (n: number) => fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: n, maxLength: n });
    fc.assert(
      fc.property(
        fc.record({
          version: fc.tuple(fc.nat(999), fc.nat(999), fc.nat(999)).map(([a, b, c]) => `${a}.${b}.${c}`),
          gitCommit: fc.oneof(hexChars(40), hexChars(64)),
          imageDigest: hexChars(64).map((h) => `sha256:${h}`),
          builtAt: fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString()),
          label: fc.string({ minLength: 1, maxLength: 128 }).filter((s) => s.trim() !== "" && !/[\u0000-\u001f\u007f]/.test(s)),
        }),
        (r) => {
          const manifest = createManifest(releaseEntry(input(unsignedEif, r)), [], {}, "any");
          const text = serializeManifest(manifest);
          expect(parseManifest(text)).toEqual(manifest);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("mergeManifest (overlapping releases)", () => {
  const old = () => parseManifest(serializeManifest({ ...createManifest(releaseEntry(input(unsignedEif, { version: "0.1.0" })), [CONFIG], {}, "any"), maxAgeSeconds: 120 }));

  it("appends the new release after the old one, keeps top-level fields, unions config hashes", () => {
    const newConfig = new Uint8Array(32).fill(7);
    const merged = mergeManifest(old(), releaseEntry(input(signedEif, { version: "0.2.0" })), [newConfig, CONFIG]);
    expect(merged.measurements.map((m) => m.label)).toEqual([defaultLabel("0.1.0", COMMIT), defaultLabel("0.2.0", COMMIT)]);
    expect(merged.configSha256).toEqual([CONFIG, newConfig]);
    expect(merged.maxAgeSeconds).toBe(120);
    const text = serializeManifest(merged);
    // Both images are accepted during the rollout.
    expect(compareWithManifest(measureEif(readEif(unsignedEif)), text)).toMatchObject({ matched: true, label: defaultLabel("0.1.0", COMMIT) });
    expect(compareWithManifest(measureEif(readEif(signedEif)), text)).toMatchObject({ matched: true, label: defaultLabel("0.2.0", COMMIT) });
    expect(pcrHex(parseManifest(text), 1)).toEqual(expectedPcrs(signedParts));
  });

  it("refuses a label already used", () => {
    expect(() => mergeManifest(old(), releaseEntry(input(signedEif, { version: "0.1.0" })))).toThrow(expect.objectContaining({ code: "ERR_RELEASE_DUPLICATE_LABEL" }));
  });

  it("refuses an image an existing entry already matches (the new entry would never be reported)", () => {
    expect(() => mergeManifest(old(), releaseEntry(input(unsignedEif, { version: "0.1.1" })))).toThrow(expect.objectContaining({ code: "ERR_RELEASE_DUPLICATE_IMAGE" }));
    const pcr0Only: Manifest = { version: 1, measurements: [{ label: "pcr0 only", pcrs: new Map([[0, measureEif(readEif(signedEif)).pcr0]]) }], trust: "any" };
    expect(() => mergeManifest(pcr0Only, releaseEntry(input(signedEif)))).toThrow(
      expect.objectContaining({ code: "ERR_RELEASE_DUPLICATE_IMAGE", message: expect.stringContaining('"pcr0 only"') }),
    );
  });

  it("refuses a 65th entry", () => {
    const full: Manifest = {
      version: 1,
      measurements: Array.from({ length: 64 }, (_, i) => ({ label: `r${i}`, pcrs: new Map([[0, new Uint8Array(48).fill(i + 1)]]) })),
      trust: "any",
    };
    expect(() => mergeManifest(full, releaseEntry(input(signedEif)))).toThrow(expect.objectContaining({ code: "ERR_RELEASE_TOO_MANY" }));
  });
});
