/**
 * `egw manifest create | sign | verify`, and `egw measure` against the
 * created manifest, run in-process through main.ts's run(). EIFs come from
 * the format-level builder in test/infra/review/eif/eif-builder.ts.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../../attestation/client/policy.js";
import type { CliContext } from "../../../infra/cli/context.js";
import { run } from "../../../infra/cli/main.js";
import { buildEif, bytesOf, expectedPcrs, imageSections, makeSigningCertificate, type ImageParts } from "../review/eif/eif-builder.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-manifest-cli-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => path.join(dir, name);

async function egw(argv: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const outDone = buffer(stdout);
  const errDone = buffer(stderr);
  const ctx: CliContext = { stdout, stderr, stdin: Readable.from(stdin === "" ? [] : [Buffer.from(stdin)]), cwd: dir, now: () => new Date("2030-06-01T00:00:00Z"), env: {} };
  const code = await run(argv, ctx);
  stdout.end();
  stderr.end();
  const [out, err] = await Promise.all([outDone, errDone]);
  return { code, stdout: out.toString("utf8"), stderr: err.toString("utf8") };
}

const COMMIT_1 = "1111111111111111111111111111111111111111";
const COMMIT_2 = "2222222222222222222222222222222222222222";
const DIGEST = `sha256:${"ab".repeat(32)}`;
const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const TRUST_POLICY = {
  version: 1,
  providers: [
    { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
    { name: "local", kind: "local" },
  ],
  secrets: { kmsKeyArn: ARN },
  identity: { mode: "ephemeral" },
};
const DERIVED_TRUST = { upstreamOrigins: ["https://api.openai.com", "local"], identity: { mode: "ephemeral" }, secretsKmsKeyArn: ARN };
const bytesOfFile = (name: string) => new Uint8Array(fs.readFileSync(file(name)));
const release = (version: string, commit: string, eif: string) => ["manifest", "create", "--eif", eif, "--version", version, "--git-commit", commit, "--image-digest", DIGEST];

let v1: ImageParts;
let v2: ImageParts;
let keyId: string;
beforeAll(async () => {
  v1 = {
    kernel: bytesOf("kernel"),
    cmdline: bytesOf("console=ttyS0"),
    ramdisks: [bytesOf("init"), bytesOf("gateway 0.1.0")],
    signer: await makeSigningCertificate("egw release signer"),
  };
  v2 = { kernel: bytesOf("kernel"), cmdline: bytesOf("console=ttyS0"), ramdisks: [bytesOf("init"), bytesOf("gateway 0.2.0")] };
  fs.writeFileSync(file("v1.eif"), buildEif(imageSections(v1)));
  fs.writeFileSync(file("v2.eif"), buildEif(imageSections(v2)));
  fs.writeFileSync(file("runtime-config.json"), '{"providers":[]}\n');
  fs.writeFileSync(file("trust-policy.json"), `${JSON.stringify(TRUST_POLICY, null, 2)}\n`);
  fs.writeFileSync(
    file("dev-trust-policy.json"),
    JSON.stringify({ version: 1, providers: [{ name: "mock", kind: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1" }], identity: { mode: "ephemeral" } }),
  );
  fs.writeFileSync(file("operations.json"), '{"version":1,"clients":[]}\n');
  const key = generateKeyPairSync("ec", { namedCurve: "P-384" });
  fs.writeFileSync(file("signing.key"), key.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  fs.writeFileSync(file("signing.pub"), key.publicKey.export({ type: "spki", format: "pem" }) as string);
  keyId = createHash("sha256")
    .update(key.publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
  const other = generateKeyPairSync("ec", { namedCurve: "P-384" });
  fs.writeFileSync(file("other.key"), other.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  fs.writeFileSync(file("other.pub"), other.publicKey.export({ type: "spki", format: "pem" }) as string);
});

describe("egw manifest create", () => {
  it("pins the deployment hash the enclave attests: trust policy, operations and the sealed file handed in", async () => {
    const { attestedConfigHash } = await import("../../../host/transport/codec/config-hash.js");
    fs.writeFileSync(file("sealed.json"), '{"version":1}\n');
    const r = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--operations", "operations.json", "--sealed-secrets", "sealed.json"]);
    expect(r.code).toBe(0);
    const expected = Buffer.from(attestedConfigHash(bytesOfFile("trust-policy.json"), bytesOfFile("operations.json"), bytesOfFile("sealed.json"))).toString("hex");
    expect(JSON.parse(r.stdout).configSha256).toEqual([expected]);
    expect(expected).not.toBe(Buffer.from(attestedConfigHash(bytesOfFile("trust-policy.json"), bytesOfFile("operations.json"))).toString("hex"));
  });

  it('derives the trust section from the trust policy; --pin-policy-hash adds its hash; --trust-any says "any" and warns', async () => {
    const derived = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json"]);
    expect(derived.code).toBe(0);
    expect(JSON.parse(derived.stdout).trust).toEqual(DERIVED_TRUST);
    expect(JSON.parse(derived.stdout)).not.toHaveProperty("configSha256");
    const pinned = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--pin-policy-hash"]);
    expect(JSON.parse(pinned.stdout).trust).toEqual({ ...DERIVED_TRUST, policySha256: [createHash("sha256").update(bytesOfFile("trust-policy.json")).digest("hex")] });
    const any = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any"]);
    expect(any.code).toBe(0);
    expect(JSON.parse(any.stdout).trust).toBe("any");
    expect(any.stderr).toContain('warning: trust "any"');
    // A development policy (plain http) only with --dev.
    const prod = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "dev-trust-policy.json"]);
    expect(prod.code).toBe(2);
    expect(prod.stderr).toMatch(/must be https.*production rules; --dev/);
    const dev = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "dev-trust-policy.json", "--dev"]);
    expect(JSON.parse(dev.stdout).trust).toEqual({ upstreamOrigins: ["http://127.0.0.1:9"], identity: { mode: "ephemeral" } });
  });

  it("prints a manifest from the EIF that parses, and egw measure matches it", async () => {
    const r = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--operations", "operations.json", "--built-at", "2026-11-25T12:00:00Z"]);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith("}\n")).toBe(true);
    fs.writeFileSync(file("m1.json"), r.stdout);
    const m = JSON.parse(r.stdout);
    expect(Object.keys(m)).toEqual(["version", "measurements", "trust", "configSha256"]);
    expect(m.trust).toEqual(DERIVED_TRUST);
    expect(Object.keys(m.measurements[0])).toEqual(["label", "pcrs", "release"]);
    expect(m.measurements[0].pcrs).toEqual(expectedPcrs(v1));
    expect(m.measurements[0].release).toEqual({
      version: "0.1.0",
      gitCommit: COMMIT_1,
      imageDigest: DIGEST,
      eifSha384: createHash("sha384")
        .update(fs.readFileSync(file("v1.eif")))
        .digest("hex"),
      builtAt: "2026-11-25T12:00:00Z",
    });
    const { attestedConfigHash } = await import("../../../host/transport/codec/config-hash.js");
    expect(m.configSha256).toEqual([Buffer.from(attestedConfigHash(bytesOfFile("trust-policy.json"), bytesOfFile("operations.json"))).toString("hex")]);
    expect(parseManifest(r.stdout).measurements[0]!.label).toBe("egw 0.1.0 (111111111111)");

    const measured = await egw(["measure", "v1.eif", "--manifest", "m1.json"]);
    expect(measured.code).toBe(0);
    expect(measured.stdout).toContain('MATCH manifest entry "egw 0.1.0 (111111111111)"');
    expect((await egw(["measure", "v2.eif", "--manifest", "m1.json"])).code).toBe(1);
  });

  it("is deterministic: the same inputs give the same bytes", async () => {
    const a = await egw([...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--operations", "operations.json", "--built-at", "2026-11-25T12:00:00Z"]);
    expect(a.stdout).toBe(fs.readFileSync(file("m1.json"), "utf8"));
  });

  it("--merge: old and new both match during a rollout; a duplicate label or image is refused", async () => {
    const r = await egw([...release("0.2.0", COMMIT_2, "v2.eif"), "--merge", "m1.json", "--config-sha256", "CD".repeat(32), "--label", "egw 0.2.0"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("unsigned");
    fs.writeFileSync(file("m12.json"), r.stdout);
    const m = parseManifest(r.stdout);
    expect(m.measurements.map((e) => e.label)).toEqual(["egw 0.1.0 (111111111111)", "egw 0.2.0"]);
    expect(m.configSha256).toHaveLength(2);
    // The trust section applies to every entry and is kept from the manifest merged into.
    expect(m.trust).toEqual(parseManifest(fs.readFileSync(file("m1.json"), "utf8")).trust);
    expect((await egw(["measure", "v1.eif", "--manifest", "m12.json"])).stdout).toContain('MATCH manifest entry "egw 0.1.0 (111111111111)"');
    expect((await egw(["measure", "v2.eif", "--manifest", "m12.json"])).stdout).toContain('MATCH manifest entry "egw 0.2.0"');

    const dupLabel = await egw([...release("0.3.0", COMMIT_2, "v1.eif"), "--merge", "m12.json", "--label", "egw 0.2.0"]);
    expect(dupLabel.code).toBe(1);
    expect(dupLabel.stderr).toContain("ERR_RELEASE_DUPLICATE_LABEL");
    expect(dupLabel.stdout).toBe("");
    const dupImage = await egw([...release("0.3.0", COMMIT_2, "v2.eif"), "--merge", "m12.json"]);
    expect(dupImage.code).toBe(1);
    expect(dupImage.stderr).toContain("ERR_RELEASE_DUPLICATE_IMAGE");
  });

  it("usage problems exit 2 naming the flag; an invalid EIF exits 1", async () => {
    const cases: [string[], RegExp][] = [
      [release("v0.1.0", COMMIT_1, "v1.eif"), /--version "v0\.1\.0": expected a SemVer/],
      [release("0.1.0", COMMIT_1.slice(1), "v1.eif"), /--git-commit/],
      [["manifest", "create", "--eif", "v1.eif", "--version", "0.1.0", "--git-commit", COMMIT_1, "--image-digest", "ab".repeat(32)], /--image-digest/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--built-at", "2026-11-25"], /--built-at/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--config-sha256", "abc"], /--config-sha256/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--config", "runtime-config.json"], /--config is gone: .*--trust-policy/],
      [release("0.1.0", COMMIT_1, "v1.eif"), /needs a trust section: --trust-policy .* or --trust-any/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--trust-policy", "trust-policy.json"], /contradict/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--pin-policy-hash"], /--pin-policy-hash pins the hash of a --trust-policy file/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--dev"], /--dev reads a --trust-policy file/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "missing.json"], /--trust-policy missing\.json: cannot read/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "runtime-config.json"], /--trust-policy runtime-config\.json: trust policy/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--operations", "operations.json"], /--operations is folded .* with a --trust-policy file/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--operations", "missing.json"], /--operations missing\.json: cannot read/],
      [
        [...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-policy", "trust-policy.json", "--sealed-secrets", "runtime-config.json"],
        /--sealed-secrets is folded into the deployment hash/,
      ],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--merge", "runtime-config.json"], /--merge runtime-config\.json: ERR_MANIFEST_INVALID/],
      [[...release("0.1.0", COMMIT_1, "v1.eif"), "--trust-any", "--label", ""], /label/],
      [[...release("0.1.0", COMMIT_1, "missing.eif"), "--trust-any"], /--eif missing\.eif: cannot read/],
      [["manifest", "create", "--eif", "v1.eif"], /needs --version, --git-commit, --image-digest/],
      [["manifest"], /needs a subcommand/],
      [["manifest", "publish"], /unknown subcommand/],
    ];
    for (const [argv, message] of cases) {
      const r = await egw(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
    fs.writeFileSync(file("bad.eif"), buildEif(imageSections(v2), { crc: 1 }));
    const bad = await egw([...release("0.1.0", COMMIT_1, "bad.eif"), "--trust-any"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("ERR_EIF_CRC");
  });
});

describe("egw manifest show", () => {
  it("prints the manifest with its trust section, without checking a signature; refuses what the client refuses", async () => {
    const shown = await egw(["manifest", "show", "m1.json"]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("signature NOT checked");
    expect(shown.stdout).toContain("  upstream origins allowed: https://api.openai.com, local");
    expect(shown.stdout).toContain("  trust policy sha256: not pinned");
    const json = JSON.parse((await egw(["manifest", "show", "m1.json", "--json"])).stdout);
    expect(json).toMatchObject({ valid: true, signatureChecked: false, trust: DERIVED_TRUST });
    fs.writeFileSync(file("any.json"), JSON.stringify({ ...JSON.parse(fs.readFileSync(file("m1.json"), "utf8")), trust: "any" }));
    expect((await egw(["manifest", "show", "any.json"])).stdout).toContain('trust: "any" — the trust policy is NOT constrained');
    const { trust: _dropped, ...noTrust } = JSON.parse(fs.readFileSync(file("m1.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file("no-trust.json"), JSON.stringify(noTrust));
    const refused = await egw(["manifest", "show", "no-trust.json"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^INVALID ERR_POLICY_INVALID\n.*"any" on purpose/);
  });
});

describe("egw manifest sign / verify", () => {
  beforeAll(() => {
    fs.copyFileSync(file("m12.json"), file("release.json"));
  });

  it("sign writes <manifest>.sig and prints the key to pin; verify accepts it by hash or by PEM", async () => {
    const s = await egw(["manifest", "sign", "--key", "signing.key", "release.json"]);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain(`--policy-pubkey-sha256 ${keyId}`);
    expect(fs.existsSync(file("release.json.sig"))).toBe(true);

    const byHash = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "release.json"]);
    expect(byHash.code).toBe(0);
    expect(byHash.stdout).toContain(`VALID signature by key sha256:${keyId}`);
    expect(byHash.stdout).toContain("release 0.1.0, commit 1111111111111111111111111111111111111111");
    expect(byHash.stdout).toContain("  upstream origins allowed: https://api.openai.com, local");
    expect(byHash.stdout).toContain("  identity required: ephemeral");
    expect(byHash.stdout).toContain(`  secrets KMS key required: ${ARN}`);
    const byPem = await egw(["manifest", "verify", "--pubkey", "signing.pub", "release.json", "--json"]);
    expect(byPem.code).toBe(0);
    const out = JSON.parse(byPem.stdout);
    expect(out).toMatchObject({ valid: true, keySha256: keyId });
    expect(out.measurements[1].release.version).toBe("0.2.0");
    expect(out.trust).toEqual(DERIVED_TRUST);
    const both = await egw(["manifest", "verify", "--pubkey", "signing.pub", "--pubkey-sha256", keyId, "release.json"]);
    expect(both.code).toBe(0);
  });

  it("--key - reads the private key from standard input", async () => {
    fs.copyFileSync(file("release.json"), file("stdin.json"));
    const r = await egw(["manifest", "sign", "--key", "-", "stdin.json"], fs.readFileSync(file("signing.key"), "utf8"));
    expect(r.code).toBe(0);
    expect((await egw(["manifest", "verify", "--pubkey-sha256", keyId, "stdin.json"])).code).toBe(0);
    expect((await egw(["manifest", "sign", "--key", "-", "stdin.json"], "x".repeat(20_000))).code).toBe(2);
  });

  it("--out and --sig name the signature file", async () => {
    expect((await egw(["manifest", "sign", "--key", "signing.key", "release.json", "--out", "published.sig"])).code).toBe(0);
    fs.copyFileSync(file("release.json"), file("copy.json"));
    expect((await egw(["manifest", "verify", "--pubkey-sha256", keyId, "copy.json", "--sig", "published.sig"])).code).toBe(0);
  });

  it("refuses: one flipped byte in the manifest or signature, another key, a missing signature (exit 1)", async () => {
    const text = fs.readFileSync(file("release.json"));
    const sig = fs.readFileSync(file("release.json.sig"));
    const flippedManifest = Buffer.from(text);
    flippedManifest[flippedManifest.indexOf("0.2.0") + 4]! ^= 0x01; // "0.2.0" → "0.2.1"
    fs.writeFileSync(file("flip-m.json"), flippedManifest);
    fs.writeFileSync(file("flip-m.json.sig"), sig);
    const flippedSig = Buffer.from(sig);
    flippedSig[flippedSig.length - 10]! ^= 0x01;
    fs.writeFileSync(file("flip-s.json"), text);
    fs.writeFileSync(file("flip-s.json.sig"), flippedSig);
    fs.writeFileSync(file("nosig.json"), text);
    for (const [argv, message] of [
      [["--pubkey-sha256", keyId, "flip-m.json"], /does not verify/],
      [["--pubkey-sha256", keyId, "flip-s.json"], /does not verify/],
      [["--pubkey", "other.pub", "release.json"], /not by the pinned key/],
      [["--pubkey-sha256", keyId, "nosig.json"], /nosig\.json\.sig: cannot read/],
    ] as [string[], RegExp][]) {
      const r = await egw(["manifest", "verify", ...argv]);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stdout).toMatch(/^INVALID ERR_MANIFEST_SIGNATURE/);
      expect(r.stdout).toMatch(message);
    }
    const json = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "flip-m.json", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: false, code: "ERR_MANIFEST_SIGNATURE" });
  });

  it("usage: a key is required, two pins must agree, only P-384 keys, only valid manifests are signed", async () => {
    fs.writeFileSync(file("p256.key"), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string);
    fs.writeFileSync(file("invalid.json"), '{"version":1,"measurements":[]}');
    const cases: [string[], RegExp][] = [
      [["manifest", "verify", "release.json"], /needs the signer's key/],
      [["manifest", "verify", "--pubkey", "other.pub", "--pubkey-sha256", keyId, "release.json"], /name different keys/],
      [["manifest", "verify", "--pubkey", "signing.key", "release.json"], /PUBLIC KEY/],
      [["manifest", "verify", "--pubkey-sha256", "abcd", "release.json"], /64 hex digits/],
      [["manifest", "verify", "--pubkey-sha256", keyId, "missing.json"], /missing\.json: cannot read/],
      [["manifest", "sign", "release.json"], /needs --key/],
      [["manifest", "sign", "--key", "p256.key", "release.json"], /P-384/],
      [["manifest", "sign", "--key", "signing.pub", "release.json"], /not a PEM private key/],
      [["manifest", "sign", "--key", "signing.key", "invalid.json"], /ERR_MANIFEST_INVALID/],
    ];
    for (const [argv, message] of cases) {
      const r = await egw(argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(fs.existsSync(file("invalid.json.sig"))).toBe(false);
  });

  it("help lists the manifest command", async () => {
    expect((await egw(["help"])).stdout).toMatch(/\n {2}manifest +write a release's measurements manifest/);
    const r = await egw(["help", "manifest"]);
    expect(r.stdout).toContain("egw manifest create --eif <file.eif>");
    expect(r.stdout).toContain("--pubkey-sha256 <hex>");
  });
});
