import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createDevCa } from "../../../attestation/dev/dev-ca.js";
import { loadPolicyFile, matchMeasurements, parseManifest, policyFromManifest, resolvePolicy } from "../../../attestation/client/policy.js";
import { awsNitroRootG1 } from "../../../attestation/roots.js";
import { manifestJson, PCR0_OTHER, PCR0_TEST, removeTempDirs, tempDir } from "./helpers.js";

afterAll(removeTempDirs);

const hex48 = (byte: number) => Buffer.alloc(48, byte).toString("hex");
const valid = () => ({
  version: 1,
  measurements: [
    { label: "release 1", pcrs: { "0": hex48(1), "1": hex48(2), "2": hex48(3) } },
    { label: "release 2", pcrs: { "0": hex48(4).toUpperCase() } },
  ],
  trust: "any",
  configSha256: [Buffer.alloc(32, 9).toString("hex")],
  maxAgeSeconds: 120,
  allowDebug: false,
});
const parse = (value: unknown) => parseManifest(JSON.stringify(value));
const refused = (value: unknown, where: RegExp) =>
  expect(() => parse(value)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringMatching(where) }));

describe("parseManifest", () => {
  it("reads the documented schema", () => {
    const m = parse(valid());
    expect(m.measurements.map((e) => e.label)).toEqual(["release 1", "release 2"]);
    expect([...m.measurements[0]!.pcrs.keys()]).toEqual([0, 1, 2]);
    expect(m.measurements[1]!.pcrs.get(0)).toEqual(new Uint8Array(48).fill(4));
    expect(m.configSha256![0]).toEqual(new Uint8Array(32).fill(9));
    const policy = resolvePolicy(policyFromManifest(m));
    expect(policy.maxAgeMs).toBe(120_000);
    expect(policy.allowDebug).toBe(false);
    expect(policy.trustedRoots).toEqual([awsNitroRootG1()]);
  });

  it("refuses unknown fields, at the top and in entries", () => {
    refused({ ...valid(), allowDebugg: true }, /unknown field "allowDebugg"/);
    refused({ ...valid(), measurements: [{ label: "x", pcrs: { "0": hex48(1) }, note: "hi" }] }, /measurements\[0\]: unknown field "note"/);
  });

  it("refuses a key given twice (JSON.parse would keep the last one)", () => {
    const text = JSON.stringify(valid()).replace('"allowDebug":false', '"allowDebug":false,"allowDebug":true');
    expect(() => parseManifest(text)).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID", message: expect.stringContaining('"allowDebug" appears twice') }));
    const pcrTwice = JSON.stringify(valid()).replace(`"0":"${hex48(1)}"`, `"0":"${hex48(1)}","0":"${hex48(5)}"`);
    expect(() => parseManifest(pcrTwice)).toThrow(expect.objectContaining({ message: expect.stringContaining('"0" appears twice') }));
    // Equal keys in different objects are fine; escaped text in strings does not confuse the scan.
    expect(() =>
      parseManifest(
        JSON.stringify({
          ...valid(),
          measurements: [
            { label: 'a "quoted" \\ label {', pcrs: { "0": hex48(1) } },
            { label: "b", pcrs: { "0": hex48(1) } },
          ],
        }),
      ),
    ).not.toThrow();
  });

  it("refuses bad values with the field's path", () => {
    refused({ ...valid(), version: 2 }, /version/);
    refused({ ...valid(), measurements: [] }, /measurements: expected a non-empty array/);
    refused({ ...valid(), measurements: [{ label: "", pcrs: { "0": hex48(1) } }] }, /measurements\[0\]\.label/);
    refused(
      {
        ...valid(),
        measurements: [
          { label: "a", pcrs: { "0": hex48(1) } },
          { label: "a", pcrs: { "0": hex48(2) } },
        ],
      },
      /used twice/,
    );
    refused({ ...valid(), measurements: [{ label: "a", pcrs: {} }] }, /measurements\[0\]\.pcrs/);
    refused({ ...valid(), measurements: [{ label: "a", pcrs: { "32": hex48(1) } }] }, /not a PCR index/);
    refused({ ...valid(), measurements: [{ label: "a", pcrs: { "01": hex48(1) } }] }, /not a PCR index/);
    refused({ ...valid(), measurements: [{ label: "a", pcrs: { "0": hex48(1).slice(2) } }] }, /pcrs\.0: expected 96 hex digits, got 94/);
    refused({ ...valid(), measurements: [{ label: "a", pcrs: { "0": `${hex48(1).slice(1)}g` } }] }, /hex digits only/);
    refused({ ...valid(), configSha256: [] }, /configSha256/);
    refused({ ...valid(), configSha256: ["ab"] }, /configSha256\[0\]/);
    refused({ ...valid(), configSha256: [Buffer.alloc(32).toString("hex"), Buffer.alloc(32).toString("hex")] }, /listed twice/);
    refused({ ...valid(), maxAgeSeconds: 0 }, /maxAgeSeconds/);
    refused({ ...valid(), maxAgeSeconds: "300" }, /maxAgeSeconds/);
    refused({ ...valid(), allowDebug: "false" }, /allowDebug/);
    refused({ ...valid(), devRootPem: 3 }, /devRootPem/);
    refused([valid()], /top level/);
    expect(() => parseManifest("{not json")).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }));
  });
});

describe("resolvePolicy fails closed", () => {
  const set = { label: "a", pcrs: new Map([[0, PCR0_TEST]]) };
  it('requires measurements, or "any" on purpose', () => {
    expect(() => resolvePolicy({} as never)).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID", action: "fix-policy" }));
    expect(() => resolvePolicy({ measurements: [], trust: "any" })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(resolvePolicy({ measurements: "any", trust: "any" }).measurements).toBe("any");
  });
  it("refuses present-but-unusable values", () => {
    expect(() => resolvePolicy({ measurements: [set], trust: "any", configSha256: undefined })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => resolvePolicy({ measurements: [set], trust: "any", configSha256: [] })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => resolvePolicy({ measurements: [set], trust: "any", trustedRoots: [] })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => resolvePolicy({ measurements: [set], trust: "any", maxAgeMs: -1 })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(() => resolvePolicy({ measurements: [{ label: "a", pcrs: new Map([[0, new Uint8Array(47)]]) }], trust: "any" })).toThrow(
      expect.objectContaining({ code: "ERR_POLICY_INVALID" }),
    );
  });
});

describe("matchMeasurements", () => {
  const doc = new Map([
    [0, PCR0_TEST],
    [1, PCR0_OTHER],
  ]);
  it("matches an entry when every PCR it lists is equal; the first match wins", () => {
    const sets = [
      { label: "other", pcrs: new Map([[0, PCR0_OTHER]]) },
      {
        label: "both",
        pcrs: new Map([
          [0, PCR0_TEST],
          [1, PCR0_OTHER],
        ]),
      },
      { label: "pcr0", pcrs: new Map([[0, PCR0_TEST]]) },
    ];
    expect(matchMeasurements(sets, doc)?.label).toBe("both");
    expect(matchMeasurements([{ label: "needs pcr2", pcrs: new Map([[2, PCR0_TEST]]) }], doc)).toBeUndefined();
  });
});

describe("loadPolicyFile", () => {
  const now = () => new Date();
  it("resolves devRootPem next to the manifest; the root replaces the AWS root", async () => {
    const dir = tempDir();
    const ca = await createDevCa({ now: () => new Date() });
    fs.mkdirSync(path.join(dir, "roots"));
    fs.writeFileSync(path.join(dir, "roots", "dev-root.pem"), ca.rootPem);
    fs.writeFileSync(path.join(dir, "m.json"), manifestJson({ devRootPem: "roots/dev-root.pem" }));
    const loaded = await loadPolicyFile(path.join(dir, "m.json"), { now });
    expect(loaded.devRoot?.name).toBe("development root dev-root.pem");
    expect(resolvePolicy(loaded.policy).trustedRoots).toEqual([loaded.devRoot]);
    // The same root given again is fine; a different one is refused.
    await expect(loadPolicyFile(path.join(dir, "m.json"), { now, devRootFile: path.join(dir, "roots", "dev-root.pem") })).resolves.toBeTruthy();
    const other = await createDevCa({ now: () => new Date() });
    fs.writeFileSync(path.join(dir, "other.pem"), other.rootPem);
    await expect(loadPolicyFile(path.join(dir, "m.json"), { now, devRootFile: path.join(dir, "other.pem") })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
  });

  it("reports unreadable files and roots", async () => {
    const dir = tempDir();
    await expect(loadPolicyFile(path.join(dir, "missing.json"), { now })).rejects.toMatchObject({ code: "ERR_MANIFEST_INVALID" });
    fs.writeFileSync(path.join(dir, "m.json"), manifestJson({ devRootPem: "nope.pem" }));
    await expect(loadPolicyFile(path.join(dir, "m.json"), { now })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    fs.writeFileSync(path.join(dir, "bad.pem"), "not a certificate");
    fs.writeFileSync(path.join(dir, "m2.json"), manifestJson({ devRootPem: "bad.pem" }));
    await expect(loadPolicyFile(path.join(dir, "m2.json"), { now })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
  });
});
