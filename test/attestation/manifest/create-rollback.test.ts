/**
 * The rollback fields in the release tools (attestation/manifest/create.ts): createManifest
 * and mergeManifest set `sequence` and `expires`, --merge never carries the
 * old ones over, and serializeManifest writes them where the schema lists
 * them (right after "version").
 */
import { describe, expect, it } from "vitest";
import { parseManifest, type Manifest, type MeasurementSet } from "../../../attestation/client/policy.js";
import { createManifest, mergeManifest } from "../../../attestation/manifest/create.js";
import { serializeManifest } from "../../../attestation/manifest/json.js";

const entry = (label: string, byte: number): MeasurementSet => ({ label, pcrs: new Map([[0, new Uint8Array(48).fill(byte)]]) });
const OLD = entry("egw 0.1.0", 1);
const NEW = entry("egw 0.2.0", 2);
const E1 = "2026-12-01T00:00:00Z";
const E2 = "2027-01-01T00:00:00Z";
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return "no error";
};

describe("createManifest with sequence and expires", () => {
  it("writes them after version, and they survive serialize → parse", () => {
    const m = createManifest(OLD, [], { sequence: 7, expires: E1 }, "any");
    const text = serializeManifest(m);
    expect(Object.keys(JSON.parse(text))).toEqual(["version", "sequence", "expires", "measurements", "trust"]);
    expect(text.startsWith('{\n  "version": 1,\n  "sequence": 7,\n  "expires": "2026-12-01T00:00:00Z",\n  "measurements": [')).toBe(true);
    expect(parseManifest(text)).toMatchObject({ sequence: 7, expires: E1 });
    // Without them, the layout is the one it always was.
    expect(Object.keys(JSON.parse(serializeManifest(createManifest(OLD, [], {}, "any"))))).toEqual(["version", "measurements", "trust"]);
  });

  it("refuses values the client would refuse (ERR_RELEASE_INPUT)", () => {
    for (const lifecycle of [
      { sequence: 0 },
      { sequence: 1.5 },
      { sequence: 2 ** 53 },
      { expires: "2026-12-01" },
      { expires: "2026-12-01T00:00:00.000Z" },
      { expires: "2026-02-30T00:00:00Z" },
    ]) {
      expect(
        code(() => createManifest(OLD, [], lifecycle as never, "any")),
        JSON.stringify(lifecycle),
      ).toBe("ERR_RELEASE_INPUT");
    }
  });
});

describe("mergeManifest: the sequence must increase, the expiry is restated", () => {
  const old = (fields: Partial<Manifest>): Manifest => ({ ...createManifest(OLD, [], {}, "any"), ...fields });

  it("an old manifest with a sequence: a higher one is required", () => {
    const merged = mergeManifest(old({ sequence: 3 }), NEW, [], { sequence: 4 });
    expect(merged.sequence).toBe(4);
    expect(merged.measurements.map((e) => e.label)).toEqual(["egw 0.1.0", "egw 0.2.0"]);
    expect(mergeManifest(old({ sequence: 3 }), NEW, [], { sequence: 1000 }).sequence).toBe(1000);
    for (const lifecycle of [{}, { sequence: 3 }, { sequence: 2 }, { expires: E2 }]) {
      expect(
        code(() => mergeManifest(old({ sequence: 3 }), NEW, [], lifecycle)),
        JSON.stringify(lifecycle),
      ).toBe("ERR_RELEASE_SEQUENCE");
    }
  });

  it("an old manifest without a sequence: a new one is optional, and none is carried over", () => {
    expect(mergeManifest(old({}), NEW).sequence).toBeUndefined();
    expect(mergeManifest(old({}), NEW, [], { sequence: 1 }).sequence).toBe(1);
  });

  it("an old manifest with an expiry: a new expiry is required and replaces it; none, none", () => {
    expect(code(() => mergeManifest(old({ expires: E1 }), NEW))).toBe("ERR_RELEASE_EXPIRES");
    expect(mergeManifest(old({ expires: E1 }), NEW, [], { expires: E2 }).expires).toBe(E2);
    expect(mergeManifest(old({}), NEW).expires).toBeUndefined();
    expect(mergeManifest(old({}), NEW, [], { expires: E1 }).expires).toBe(E1);
  });

  it("the merged manifest serializes and parses with the new values", () => {
    const text = serializeManifest(mergeManifest(old({ sequence: 3, expires: E1 }), NEW, [], { sequence: 4, expires: E2 }));
    expect(parseManifest(text)).toMatchObject({ sequence: 4, expires: E2 });
  });

  it("a valid sequence does not hide the other merge refusals", () => {
    expect(code(() => mergeManifest(old({ sequence: 3 }), OLD, [], { sequence: 4 }))).toBe("ERR_RELEASE_DUPLICATE_LABEL");
  });
});
