/**
 * `egw measure` run in-process. main.ts does not route to it yet (the lead
 * wires it), so `egw()` below does what run() does for every command: a
 * UsageError becomes exit 2 with its message on stderr.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, UsageError, type CliContext } from "../../../../infra/cli/context.js";
import { MEASURE_USAGE, measureCommand } from "../../../../infra/cli/measure.js";
import { buildEif, bytesOf, expectedPcrs, imageSections, makeSigningCertificate, type ImageParts } from "./eif-builder.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-measure-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function egw(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const outDone = buffer(stdout);
  const errDone = buffer(stderr);
  const ctx: CliContext = { stdout, stderr, stdin: Readable.from([]), cwd: dir, now: () => new Date("2030-06-01T00:00:00Z"), env: {} };
  let code: number;
  try {
    code = await measureCommand(args, ctx);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`egw measure: ${err.message}\n`);
    code = EXIT.usage;
  }
  stdout.end();
  stderr.end();
  const [out, errText] = await Promise.all([outDone, errDone]);
  return { code, stdout: out.toString("utf8"), stderr: errText.toString("utf8") };
}

let parts: ImageParts;
let pcrs: Record<string, string>;
beforeAll(async () => {
  parts = {
    kernel: bytesOf("kernel"),
    cmdline: bytesOf("console=ttyS0"),
    ramdisks: [bytesOf("r1"), bytesOf("r2")],
    metadata: bytesOf(JSON.stringify({ ImageName: "egw\u001b[31m", ImageVersion: "0.1.0" })),
    signer: await makeSigningCertificate("egw release signer"),
  };
  pcrs = expectedPcrs(parts);
  fs.writeFileSync(path.join(dir, "good.eif"), buildEif(imageSections(parts)));
  fs.writeFileSync(path.join(dir, "bad-crc.eif"), buildEif(imageSections(parts), { crc: 1 }));
  const manifest = (p: Record<string, string>) => JSON.stringify({ version: 1, measurements: [{ label: "release 0.1.0", pcrs: p }], trust: "any" });
  fs.writeFileSync(path.join(dir, "match.json"), manifest({ 0: pcrs[0]!, 1: pcrs[1]!, 2: pcrs[2]!, 8: pcrs[8]! }));
  fs.writeFileSync(path.join(dir, "other.json"), manifest({ 0: "ab".repeat(48) }));
  fs.writeFileSync(path.join(dir, "invalid.json"), '{"version":2}');
});

describe("egw measure", () => {
  it("prints PCRs, the certificate and the metadata", async () => {
    const r = await egw(["good.eif"]);
    expect(r.code).toBe(0);
    for (const i of ["0", "1", "2", "8"]) expect(r.stdout).toContain(`PCR${i} ${pcrs[i]}`);
    expect(r.stdout).toContain("egw release signer");
    expect(r.stdout).toContain("2030-01-01T00:00:00.000Z .. 2031-01-01T00:00:00.000Z");
    expect(r.stdout).toContain('"ImageVersion": "0.1.0"');
    expect(r.stdout).not.toContain("\u001b");
  });

  it("--json", async () => {
    const r = await egw(["good.eif", "--json"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.pcrs).toEqual(pcrs);
    expect(out.metadata.ImageVersion).toBe("0.1.0");
    expect(out.signingCertificate.subject).toContain("egw release signer");
    expect(out.sections.map((s: { type: string }) => s.type)).toEqual(["kernel", "cmdline", "metadata", "ramdisk", "ramdisk", "signature"]);
  });

  it("--manifest that matches: exit 0 with the label", async () => {
    const r = await egw(["good.eif", "--manifest", "match.json"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('MATCH manifest entry "release 0.1.0"');
  });

  it("--manifest that does not match: exit 1 with the differences", async () => {
    const r = await egw(["good.eif", "--manifest", "other.json"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("NO MATCH");
    expect(r.stdout).toContain(`PCR0 expected ${"ab".repeat(48)}`);
    const json = JSON.parse((await egw(["good.eif", "--manifest", "other.json", "--json"])).stdout);
    expect(json.manifest.matched).toBe(false);
  });

  it("an invalid EIF: exit 1 with its code", async () => {
    const r = await egw(["bad-crc.eif"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("INVALID EIF ERR_EIF_CRC");
    const json = JSON.parse((await egw(["bad-crc.eif", "--json"])).stdout);
    expect(json).toMatchObject({ valid: false, code: "ERR_EIF_CRC" });
  });

  it.each([
    [[], "exactly one EIF file"],
    [["a.eif", "b.eif"], "exactly one EIF file"],
    [["good.eif", "--bogus"], "bogus"],
    [["missing.eif"], "cannot read (ENOENT)"],
    [["good.eif", "--manifest", "missing.json"], "cannot read (ENOENT)"],
    [["good.eif", "--manifest", "invalid.json"], "ERR_MANIFEST_INVALID"],
    [[".", "--json"], "cannot read (EISDIR)"],
  ])("usage or I/O problem %j: exit 2", async (args, message) => {
    const r = await egw(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it("exports its usage text", () => {
    expect(MEASURE_USAGE).toMatch(/^Usage:\n {2}egw measure <file\.eif>/);
  });
});
