/**
 * The egw CLI run in-process through `run(argv, ctx)` with captured streams,
 * a fresh temporary working directory and a frozen clock.
 *
 * Real AWS documents are always verified with `--at` inside their chain
 * validity window; development documents are issued and verified under a
 * frozen `now` (the dev CA is generated relative to it), so nothing here
 * depends on the wall clock.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../../../infra/cli/context.js";
import { run } from "../../../infra/cli/main.js";
import { loadNitroFixtures, NITRO_DIR, type NitroFixture } from "../../helpers/fixtures.js";

const fixtures = loadNitroFixtures();
const byName = (name: string): NitroFixture => {
  const fx = fixtures.find((f) => f.name === name);
  if (!fx) throw new Error(`fixture ${name} missing`);
  return fx;
};
const PROD = byName("evervault-2022-10-13-prod-signed-eif");
const DEBUG = byName("evervault-2022-10-12-debug-nonDER-pubkey");

/** Far from any real "now", so a wall-clock dependency would show up as expiry. */
const FROZEN_NOW = new Date("2031-03-14T15:09:26.000Z");

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-cli-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

interface RunOptions {
  cwd?: string;
  stdin?: Buffer | string;
  isTTY?: boolean;
  now?: Date;
}

async function egw(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const stdout: PassThrough & { isTTY?: boolean } = new PassThrough();
  if (opts.isTTY) stdout.isTTY = true;
  const stderr = new PassThrough();
  const outDone = buffer(stdout);
  const errDone = buffer(stderr);
  const now = opts.now ?? FROZEN_NOW;
  const ctx: CliContext = {
    stdout,
    stderr,
    stdin: Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]),
    cwd: opts.cwd ?? tempDir(),
    now: () => new Date(now.getTime()),
    env: {},
  };
  const code = await run(argv, ctx);
  stdout.end();
  stderr.end();
  const [out, err] = await Promise.all([outDone, errDone]);
  return { code, stdout: out.toString("utf8"), stderr: err.toString("utf8"), stdoutBytes: out };
}

const fixturePath = (fx: NitroFixture) => path.join(NITRO_DIR, `${fx.name}.cbor`);
const atOf = (fx: NitroFixture) => new Date(fx.timestampMs).toISOString();
const pcrArgs = (pcrs: Record<string, string>) => Object.entries(pcrs).flatMap(([i, hex]) => ["--pcr", `${i}=${hex}`]);
/** Flips the last hex digit. */
const corruptHex = (hex: string) => hex.slice(0, -1) + (hex.endsWith("0") ? "1" : "0");

function parseJson(text: string): any {
  return JSON.parse(text);
}

describe("fixtures", () => {
  it("are the six real Nitro documents, two of them debug", () => {
    expect(fixtures).toHaveLength(6);
    expect(fixtures.filter((f) => f.debug)).toHaveLength(2);
    for (const fx of fixtures) expect(fs.existsSync(fixturePath(fx))).toBe(true);
  });
});

describe("attest verify on real documents", () => {
  for (const fx of fixtures) {
    describe(fx.name, () => {
      const base = () => ["attest", "verify", fixturePath(fx), "--at", atOf(fx), ...pcrArgs(fx.pcrs)];

      it(`is accepted at its own timestamp with its stated PCRs${fx.debug ? " and --allow-debug" : ""}`, async () => {
        const r = await egw([...base(), ...(fx.debug ? ["--allow-debug"] : [])]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^ACCEPTED /);
        expect(r.stdout).toContain(fx.meta.decoded.module_id);
        expect(r.stdout).toContain(fx.debug ? "DEBUG MODE" : "debug mode off");
        expect(r.stdout).toContain("aws-nitro-root-g1");
        expect(r.stdout).not.toContain("NOT the AWS root");
      });

      if (fx.debug) {
        it("is rejected with ERR_DEBUG_MODE without --allow-debug", async () => {
          const r = await egw(base());
          expect(r.code).toBe(1);
          expect(r.stdout).toMatch(/^REJECTED ERR_DEBUG_MODE\b/);
          expect(r.stderr).toBe("");
        });
      } else {
        it("is accepted without --allow-debug", async () => {
          const r = await egw(base());
          expect(r.code).toBe(0);
        });
      }

      it("is rejected with ERR_CERT_EXPIRED one second after its chain expires", async () => {
        const after = new Date(fx.chainWindow[1].getTime() + 1000).toISOString();
        const r = await egw(["attest", "verify", fixturePath(fx), "--at", after, "--max-age", "100000000", "--allow-debug"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^REJECTED ERR_CERT_EXPIRED\b/);
      });

      it("is still accepted at the last second of its chain window (with a large --max-age)", async () => {
        const last = fx.chainWindow[1].toISOString();
        const r = await egw(["attest", "verify", fixturePath(fx), "--at", last, "--max-age", "100000000", "--allow-debug"]);
        expect(r.stdout).toMatch(/^ACCEPTED /);
        expect(r.code).toBe(0);
      });

      it("is rejected with ERR_PCR_MISMATCH for a wrong --pcr", async () => {
        const [index, hex] = Object.entries(fx.pcrs)[0]!;
        const pcrs = { ...fx.pcrs, [index]: corruptHex(hex) };
        const r = await egw(["attest", "verify", fixturePath(fx), "--at", atOf(fx), ...pcrArgs(pcrs), "--allow-debug"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^REJECTED ERR_PCR_MISMATCH\b/);
      });

      it("is rejected with ERR_NONCE_MISMATCH for a wrong --nonce", async () => {
        const r = await egw([...base(), "--allow-debug", "--nonce", "00ff00ff"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/^REJECTED ERR_NONCE_MISMATCH\b/);
      });

      if (fx.meta.decoded.nonce !== null) {
        it("is accepted with its own --nonce", async () => {
          const r = await egw([...base(), "--allow-debug", "--nonce", fx.meta.decoded.nonce]);
          expect(r.code).toBe(0);
        });
      }

      it("prints machine-readable JSON with --json (accepted and rejected)", async () => {
        const ok = await egw([...base(), "--allow-debug", "--json"]);
        expect(ok.code).toBe(0);
        const accepted = parseJson(ok.stdout);
        expect(accepted.accepted).toBe(true);
        expect(accepted.moduleId).toBe(fx.meta.decoded.module_id);
        expect(accepted.timestamp).toBe(atOf(fx));
        expect(accepted.debug).toBe(fx.debug);
        expect(accepted.root).toMatchObject({ name: "aws-nitro-root-g1", production: true });
        for (const [i, hex] of Object.entries(fx.pcrs)) expect(accepted.pcrs[i]).toBe(hex);
        expect(accepted.nonce).toBe(fx.meta.decoded.nonce);
        expect(accepted.userData).toBe(fx.meta.decoded.user_data);
        expect(accepted.publicKey).toBe(fx.meta.decoded.public_key);
        expect(accepted.chain.map((c: { role: string }) => c.role)).toEqual(["leaf", "intermediate", "intermediate", "intermediate", "root"]);

        const bad = await egw([...base(), "--json", "--allow-debug", "--nonce", "00"]);
        expect(bad.code).toBe(1);
        const rejected = parseJson(bad.stdout);
        expect(rejected).toMatchObject({ accepted: false, code: "ERR_NONCE_MISMATCH", action: "reject" });
        expect(typeof rejected.message).toBe("string");
      });
    });
  }

  it("checks --user-data and --public-key", async () => {
    const base = ["attest", "verify", fixturePath(DEBUG), "--at", atOf(DEBUG), "--allow-debug"];
    const { user_data: userData, public_key: publicKey } = DEBUG.meta.decoded;
    expect((await egw([...base, "--user-data", userData, "--public-key", publicKey])).code).toBe(0);
    expect((await egw([...base, "--user-data", `0x${userData}`])).code).toBe(0);

    const badUser = await egw([...base, "--user-data", corruptHex(userData)]);
    expect(badUser.code).toBe(1);
    expect(badUser.stdout).toMatch(/^REJECTED ERR_USER_DATA_MISMATCH\b/);

    const badKey = await egw([...base, "--public-key", corruptHex(publicKey)]);
    expect(badKey.code).toBe(1);
    expect(badKey.stdout).toMatch(/^REJECTED ERR_PUBLIC_KEY_MISMATCH\b/);
  });

  it("applies --max-age (default 5 minutes)", async () => {
    const later = (ms: number) => new Date(PROD.timestampMs + ms).toISOString();
    const base = ["attest", "verify", fixturePath(PROD)];
    expect((await egw([...base, "--at", later(4 * 60_000)])).code).toBe(0);

    const stale = await egw([...base, "--at", later(6 * 60_000)]);
    expect(stale.code).toBe(1);
    expect(stale.stdout).toMatch(/^REJECTED ERR_DOC_STALE\b/);

    expect((await egw([...base, "--at", later(6 * 60_000), "--max-age", "3600"])).code).toBe(0);
    const tight = await egw([...base, "--at", later(2_000), "--max-age", "1"]);
    expect(tight.code).toBe(1);
    expect(tight.stdout).toMatch(/^REJECTED ERR_DOC_STALE\b/);
  });

  it("uses the context clock when --at is absent (frozen far after the chain expired)", async () => {
    const r = await egw(["attest", "verify", fixturePath(PROD), "--max-age", "1000000000"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_CERT_EXPIRED\b/);
    const inWindow = await egw(["attest", "verify", fixturePath(PROD)], { now: new Date(PROD.timestampMs) });
    expect(inWindow.code).toBe(0);
  });

  it("rejects a document whose bytes were tampered with", async () => {
    const cwd = tempDir();
    const bytes = Buffer.from(PROD.bytes);
    const i = bytes.indexOf(Buffer.from(PROD.meta.decoded.module_id, "latin1"));
    expect(i).toBeGreaterThan(0);
    bytes[i + 2] = bytes[i + 2]! ^ 0x01; // module_id text inside the signed payload
    fs.writeFileSync(path.join(cwd, "tampered.cbor"), bytes);
    const r = await egw(["attest", "verify", "tampered.cbor", "--at", atOf(PROD)], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_SIGNATURE_INVALID\b/);
  });
});

describe("input formats", () => {
  const fx = PROD;
  const verifyArgs = (file: string) => ["attest", "verify", file, "--at", atOf(fx), ...pcrArgs(fx.pcrs)];
  let cwd: string;
  beforeAll(() => {
    cwd = tempDir();
    const b64 = Buffer.from(fx.bytes).toString("base64");
    fs.writeFileSync(path.join(cwd, "doc.b64"), `${b64}\n`);
    fs.writeFileSync(path.join(cwd, "doc-wrapped.b64"), `${b64.replace(/.{76}/g, "$&\n")}\n`);
    fs.writeFileSync(path.join(cwd, "doc.b64url"), Buffer.from(fx.bytes).toString("base64url"));
    fs.writeFileSync(path.join(cwd, "doc.hex"), `${Buffer.from(fx.bytes).toString("hex")}\n`);
    fs.writeFileSync(path.join(cwd, "doc-upper.hex"), Buffer.from(fx.bytes).toString("hex").toUpperCase());
    fs.writeFileSync(path.join(cwd, "doc.cbor"), fx.bytes);
  });

  for (const file of ["doc.cbor", "doc.b64", "doc-wrapped.b64", "doc.b64url", "doc.hex", "doc-upper.hex"]) {
    it(`verifies ${file} (path relative to the context cwd)`, async () => {
      const r = await egw(verifyArgs(file), { cwd });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    });
  }

  it("reports the detected input format in inspect --json", async () => {
    const formats: Record<string, string> = { "doc.cbor": "cbor", "doc.b64": "base64", "doc.b64url": "base64", "doc.hex": "hex" };
    for (const [file, format] of Object.entries(formats)) {
      const r = await egw(["inspect", file, "--json", "--at", atOf(fx)], { cwd });
      expect(r.code).toBe(0);
      expect(parseJson(r.stdout).input).toBe(format);
    }
  });

  it("reads raw CBOR, base64 and hex from stdin with -", async () => {
    const inputs = [Buffer.from(fx.bytes), Buffer.from(fx.bytes).toString("base64"), Buffer.from(fx.bytes).toString("hex")];
    for (const stdin of inputs) {
      const r = await egw(verifyArgs("-"), { stdin });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^ACCEPTED /);
    }
    const inspected = await egw(["inspect", "-", "--at", atOf(fx)], { stdin: Buffer.from(fx.bytes) });
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).toContain(fx.meta.decoded.module_id);
  });

  it("rejects empty stdin as not a document", async () => {
    const r = await egw(verifyArgs("-"), { stdin: Buffer.alloc(0) });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_/);
  });
});

describe("usage errors exit 2", () => {
  const doc = fixturePath(PROD);
  const at = atOf(PROD);
  const cases: [string, string[], RegExp][] = [
    ["unknown flag", ["attest", "verify", doc, "--at", at, "--bogus"], /bogus/],
    ["missing file", ["attest", "verify", "no-such-file.cbor", "--at", at], /no-such-file\.cbor: cannot read \(ENOENT\)/],
    ["a directory as the document", ["attest", "verify", ".", "--at", at], /not a regular file/],
    ["two positionals", ["attest", "verify", doc, doc, "--at", at], /exactly one document/],
    ["no positional", ["attest", "verify", "--at", at], /exactly one document/],
    ["bad --pcr syntax", ["attest", "verify", doc, "--at", at, "--pcr", "0:abcd"], /--pcr "0:abcd" must be <index>=<hex>/],
    ["--pcr without value", ["attest", "verify", doc, "--at", at, "--pcr"], /pcr/],
    ["--pcr index 40", ["attest", "verify", doc, "--at", at, "--pcr", `40=${"00".repeat(48)}`], /index 40 is not in 0\.\.31/],
    ["--pcr of the wrong length", ["attest", "verify", doc, "--at", at, "--pcr", "0=abcd"], /48 bytes/],
    ["--pcr given twice", ["attest", "verify", doc, "--at", at, "--pcr", `1=${"00".repeat(48)}`, "--pcr", `1=${"11".repeat(48)}`], /given twice/],
    ["bad --at", ["attest", "verify", doc, "--at", "yesterday-ish"], /--at "yesterday-ish" must be an ISO 8601 instant/],
    ["odd hex --nonce", ["attest", "verify", doc, "--at", at, "--nonce", "abc"], /--nonce must be hex/],
    ["non-hex --user-data", ["attest", "verify", doc, "--at", at, "--user-data", "zz"], /--user-data must be hex/],
    ["oversized --nonce", ["attest", "verify", doc, "--at", at, "--nonce", "00".repeat(1025)], /--nonce is 1025 bytes, at most 1024/],
    ["negative --max-age", ["attest", "verify", doc, "--at", at, "--max-age", "-1"], /--max-age/],
    ["non-numeric --max-age", ["attest", "verify", doc, "--at", at, "--max-age", "soon"], /--max-age/],
    ["missing --root file", ["attest", "verify", doc, "--at", at, "--root", "missing.pem"], /--root missing\.pem: cannot read/],
    ["attest without subcommand", ["attest"], /attest needs a subcommand/],
    ["unknown attest subcommand", ["attest", "frobnicate"], /unknown subcommand "attest frobnicate"/],
    ["inspect without document", ["inspect"], /exactly one document/],
    ["inspect unknown flag", ["inspect", doc, "--pcr", "0=00"], /pcr/],
    ["inspect bad --at", ["inspect", doc, "--at", "not a time"], /must be an ISO 8601 instant/],
  ];
  for (const [name, argv, message] of cases) {
    it(name, async () => {
      const r = await egw(argv);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^egw (attest|inspect): /);
      expect(r.stderr).toMatch(message);
    });
  }

  it("--root that is not a PEM certificate", async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, "plain.pem"), "hello\n");
    fs.writeFileSync(path.join(cwd, "key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    for (const file of ["plain.pem", "key.pem"]) {
      const r = await egw(["attest", "verify", doc, "--at", at, "--root", file], { cwd });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`--root ${file}: not a PEM certificate`);
    }
  });

  // The armor alone is not enough: the body must parse as a certificate.
  it("--root with CERTIFICATE armor around a non-certificate body is a usage error", async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, "junk.pem"), "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n");
    const r = await egw(["attest", "verify", doc, "--at", at, "--root", "junk.pem"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--root junk\.pem: not a PEM certificate/);
  });

  it("--root with two certificates is a usage error", async () => {
    const cwd = tempDir();
    const pem = fs.readFileSync(path.join(NITRO_DIR, "aws-nitro-root-g1.pem"), "utf8");
    fs.writeFileSync(path.join(cwd, "two.pem"), pem + pem);
    const r = await egw(["attest", "verify", doc, "--at", at, "--root", "two.pem"], { cwd });
    expect(r.code).toBe(2);
  });

  it("--at and --root problems are usage errors even when the document is junk", async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, "junk.bin"), Buffer.from([0x01, 0x02]));
    expect((await egw(["inspect", "junk.bin", "--at", "bogus"], { cwd })).code).toBe(2);
    expect((await egw(["inspect", "junk.bin", "--at", "2024-01-01T00:00:00"], { cwd })).code).toBe(2);
    expect((await egw(["attest", "verify", doc, "--max-age", ""], { cwd })).code).toBe(2);
    expect((await egw(["attest", "verify", doc, "--max-age", "0x10"], { cwd })).code).toBe(2);
  });

  it("hex text with a 0x prefix is read as hex", async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, "doc.hex"), `0x${Buffer.from(fs.readFileSync(doc)).toString("hex")}\n`);
    const r = await egw(["inspect", "doc.hex", "--json", "--at", at], { cwd });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).input).toBe("hex");
  });

  it("unknown command", async () => {
    const r = await egw(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it("no command prints usage and exits 2", async () => {
    const r = await egw([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("Commands:");
  });
});

describe("help", () => {
  // The whole matrix (every command, the overview, every flag) is test/infra/cli/help.test.ts.
  for (const argv of [
    ["help", "attest"],
    ["attest", "--help"],
    ["attest", "verify", "--help"],
  ]) {
    it(`egw ${argv.join(" ")} exits 0 with attest's usage alone on stdout`, async () => {
      const r = await egw(argv);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain("egw attest verify <file|->");
      expect(r.stdout).toContain("egw attest issue --dev");
      expect(r.stdout).toContain("egw attest dev-root");
      expect(r.stdout).not.toContain("egw inspect <file|->");
    });
  }
  for (const argv of [["help"], ["--help"], ["-h"]]) {
    it(`egw ${argv.join(" ")} exits 0 with the overview`, async () => {
      const r = await egw(argv);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/\n {2}inspect +decode and explain an attestation document\n/);
      expect(r.stdout).not.toContain("egw attest verify <file|->");
    });
  }
});

describe("inspect", () => {
  for (const fx of fixtures) {
    describe(fx.name, () => {
      it("explains the document in text", async () => {
        const r = await egw(["inspect", fixturePath(fx), "--at", atOf(fx)]);
        expect(r.code).toBe(0);
        expect(r.stderr).toBe("");
        const text = r.stdout;
        expect(text).toMatch(/^Nitro attestation document \(COSE_Sign1 untagged, \d+ bytes, ES384/);
        expect(text).toContain("read as cbor");
        expect(text).toMatch(new RegExp(`module_id\\s+${fx.meta.decoded.module_id}`));
        expect(text).toContain(`timestamp   ${atOf(fx)}`);
        expect(text).toContain(`PCRs        16 (${Object.keys(fx.pcrs).length} non-zero)`);
        if (fx.debug) {
          expect(text).toContain("DEBUG");
          expect(text).toMatch(/PCR0\s+0 × 48/);
        } else {
          expect(text).not.toContain("DEBUG");
          expect(text).toContain("production (PCR0 non-zero)");
          expect(text).toMatch(new RegExp(`PCR0\\s+${fx.pcrs["0"]}`));
        }
        for (const [i, hex] of Object.entries(fx.pcrs)) expect(text).toMatch(new RegExp(`PCR${i}\\s+${hex}`));
        // Chain subjects: the leaf names the enclave, the root is the AWS root.
        expect(text).toMatch(new RegExp(`\\[leaf\\] .*CN=${fx.meta.decoded.module_id.replace(/[.-]/g, "\\$&")}\\.us-east-1\\.aws`));
        expect(text).toMatch(/\[root\] C=US, O=Amazon, OU=AWS, CN=aws\.nitro-enclaves/);
        expect(text.match(/\[intermediate\] /g)).toHaveLength(3);
        const [from, to] = fx.chainWindow;
        expect(text).toContain(`whole chain valid ${from.toISOString()} → ${to.toISOString()}`);
        expect(text).toContain(`Signature and chain at ${atOf(fx)} against aws-nitro-root-g1: PASSED`);
      });

      it("prints JSON with pcrs, chain roles and subjects, and debugMode", async () => {
        const r = await egw(["inspect", fixturePath(fx), "--json", "--at", atOf(fx)]);
        expect(r.code).toBe(0);
        const view = parseJson(r.stdout);
        expect(view.decoded).toBe(true);
        expect(view.input).toBe("cbor");
        expect(view.moduleId).toBe(fx.meta.decoded.module_id);
        expect(view.timestampMs).toBe(fx.timestampMs);
        expect(view.debugMode).toBe(fx.debug);
        expect(view.pcrs).toHaveLength(16);
        for (const p of view.pcrs as { index: number; hex: string; zero: boolean }[]) {
          const expected = fx.pcrs[String(p.index)];
          expect(p.zero).toBe(expected === undefined);
          expect(p.hex).toBe(expected ?? "00".repeat(48));
        }
        expect(view.chain.map((c: { role: string }) => c.role)).toEqual(["leaf", "intermediate", "intermediate", "intermediate", "root"]);
        expect(view.chain[0].subject).toContain(`CN=${fx.meta.decoded.module_id}.us-east-1.aws`);
        expect(view.chain[4].subject).toBe("C=US, O=Amazon, OU=AWS, CN=aws.nitro-enclaves");
        expect(view.chain[4].sha256).toBe("641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b");
        expect(view.chainValidity).toEqual({ notBefore: fx.chainWindow[0].toISOString(), notAfter: fx.chainWindow[1].toISOString() });
        expect(view.verification).toMatchObject({ passed: true, at: atOf(fx), root: "aws-nitro-root-g1" });
        expect(view.nonce === null ? null : view.nonce.hex).toBe(fx.meta.decoded.nonce);
        expect(view.userData === null ? null : view.userData.hex).toBe(fx.meta.decoded.user_data);
        expect(view.publicKey === null ? null : view.publicKey.hex).toBe(fx.meta.decoded.public_key);

        // Every subject of the JSON view is printed by the text view too.
        const text = (await egw(["inspect", fixturePath(fx), "--at", atOf(fx)])).stdout;
        for (const cert of view.chain as { role: string; subject: string }[]) expect(text).toContain(`[${cert.role}] ${cert.subject}`);
      });
    });
  }

  it("shows printable fields as text", async () => {
    const r = await egw(["inspect", fixturePath(DEBUG), "--at", atOf(DEBUG)]);
    expect(r.stdout).toContain('"my super secret key"');
    expect(r.stdout).toContain('"hello, world!"');
  });

  it("still exits 0 when the chain does not verify at the given time, and says why", async () => {
    const r = await egw(["inspect", fixturePath(PROD)]); // frozen now, long after expiry
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Signature and chain at ${FROZEN_NOW.toISOString()} against aws-nitro-root-g1: FAILED ERR_CERT_EXPIRED`);
    const json = parseJson((await egw(["inspect", fixturePath(PROD), "--json"])).stdout);
    expect(json.verification).toMatchObject({ passed: false, code: "ERR_CERT_EXPIRED", at: FROZEN_NOW.toISOString() });
  });

  it("exits 1 for junk, empty and truncated input", async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, "junk.bin"), Buffer.from([0x84, 0x01, 0x02, 0x03, 0xff, 0x00, 0x9a]));
    fs.writeFileSync(path.join(cwd, "empty.bin"), Buffer.alloc(0));
    fs.writeFileSync(path.join(cwd, "truncated.cbor"), PROD.bytes.subarray(0, 1000));
    fs.writeFileSync(path.join(cwd, "text.txt"), "hello, this is not an attestation document\n");
    for (const file of ["junk.bin", "empty.bin", "truncated.cbor", "text.txt"]) {
      const r = await egw(["inspect", file], { cwd });
      expect(r.code, file).toBe(1);
      expect(r.stdout).toMatch(/^NOT A VALID DOCUMENT ERR_[A-Z_]+\n/);
      const json = await egw(["inspect", file, "--json"], { cwd });
      expect(json.code, file).toBe(1);
      expect(parseJson(json.stdout)).toMatchObject({ decoded: false, code: expect.stringMatching(/^ERR_/) });

      const verify = await egw(["attest", "verify", file, "--at", atOf(PROD)], { cwd });
      expect(verify.code, file).toBe(1);
      expect(verify.stdout).toMatch(/^REJECTED ERR_/);
    }
  });
});

describe("development documents", () => {
  const nonce = "0123456789abcdef".repeat(4);
  const userData = Buffer.from("user data for the test", "utf8").toString("hex");
  const publicKey = "04".padEnd(194, "ab");
  let cwd: string;
  let doc: Buffer;
  let issueStderr: string;

  beforeAll(async () => {
    cwd = tempDir();
    const r = await egw(["attest", "issue", "--dev", "--state-dir", "state", "--nonce", nonce, "--user-data", userData, "--public-key", publicKey], { cwd });
    expect(r.code, r.stderr).toBe(0);
    doc = r.stdoutBytes;
    issueStderr = r.stderr;
    fs.writeFileSync(path.join(cwd, "dev.cbor"), doc);
  }, 60_000);

  it("issue writes a raw CBOR document to stdout and names the trust root on stderr", () => {
    expect(doc.length).toBeGreaterThan(1000);
    expect([0x84, 0xd2]).toContain(doc[0]);
    expect(issueStderr).toContain("not valid in production");
    expect(issueStderr).toContain(path.join(cwd, "state", "dev-root.pem"));
    expect(fs.existsSync(path.join(cwd, "state", "dev-root.pem"))).toBe(true);
  });

  it("verifies with --root <state-dir>/dev-root.pem and the same nonce", async () => {
    const r = await egw(["attest", "verify", "dev.cbor", "--root", "state/dev-root.pem", "--nonce", nonce], { cwd });
    expect(r.stdout).toMatch(/^ACCEPTED /);
    expect(r.stdout).toContain("NOT the AWS root");
    expect(r.code).toBe(0);

    const abs = await egw([
      "attest",
      "verify",
      path.join(cwd, "dev.cbor"),
      "--root",
      path.join(cwd, "state", "dev-root.pem"),
      "--at",
      FROZEN_NOW.toISOString(),
      "--nonce",
      nonce,
      "--user-data",
      userData,
      "--public-key",
      publicKey,
      "--json",
    ]);
    expect(abs.code).toBe(0);
    const json = parseJson(abs.stdout);
    expect(json.accepted).toBe(true);
    expect(json.root.production).toBe(false);
    expect(json.timestamp).toBe(FROZEN_NOW.toISOString());
    expect(json.nonce).toBe(nonce);
    expect(json.userData).toBe(userData);
    expect(json.publicKey).toBe(publicKey);
    expect(json.debug).toBe(false);
  });

  it("is rejected with ERR_ROOT_UNTRUSTED without --root", async () => {
    const r = await egw(["attest", "verify", "dev.cbor", "--nonce", nonce], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_ROOT_UNTRUSTED\b/);
  });

  it("is rejected with ERR_ROOT_UNTRUSTED against another development root", async () => {
    const other = await egw(["attest", "dev-root", "--state-dir", "other"], { cwd });
    expect(other.code).toBe(0);
    const r = await egw(["attest", "verify", "dev.cbor", "--root", "other/dev-root.pem"], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECTED ERR_ROOT_UNTRUSTED\b/);
  }, 30_000);

  it("is rejected for a wrong nonce, and after its 3 h leaf expires", async () => {
    const wrong = await egw(["attest", "verify", "dev.cbor", "--root", "state/dev-root.pem", "--nonce", "00"], { cwd });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/^REJECTED ERR_NONCE_MISMATCH\b/);

    const later = new Date(FROZEN_NOW.getTime() + 3 * 3600_000 + 5_000).toISOString();
    const expired = await egw(["attest", "verify", "dev.cbor", "--root", "state/dev-root.pem", "--at", later, "--max-age", "100000"], { cwd });
    expect(expired.code).toBe(1);
    expect(expired.stdout).toMatch(/^REJECTED ERR_CERT_EXPIRED\b/);
  });

  it("inspect explains a development document", async () => {
    const r = await egw(["inspect", "dev.cbor", "--root", "state/dev-root.pem", "--json"], { cwd });
    expect(r.code).toBe(0);
    const view = parseJson(r.stdout);
    expect(view.debugMode).toBe(false);
    expect(view.timestampMs).toBe(FROZEN_NOW.getTime());
    expect(view.nonce.hex).toBe(nonce);
    expect(view.chain.at(-1).subject).toContain("NOT FOR PRODUCTION");
    expect(view.verification.passed).toBe(true);
  });

  it("dev-root prints a PEM equal to <state-dir>/dev-root.pem", async () => {
    const r = await egw(["attest", "dev-root", "--state-dir", "state"], { cwd });
    expect(r.code).toBe(0);
    const file = fs.readFileSync(path.join(cwd, "state", "dev-root.pem"), "utf8");
    expect(file).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n?$/);
    expect(r.stdout).toBe(file.endsWith("\n") ? file : `${file}\n`);
  });

  it("issue --out writes the file and nothing to stdout, also when stdout is a TTY", async () => {
    const r = await egw(["attest", "issue", "--dev", "--state-dir", "state", "--out", "out.cbor", "--nonce", "abcd"], { cwd, isTTY: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdoutBytes.length).toBe(0);
    const v = await egw(["attest", "verify", "out.cbor", "--root", "state/dev-root.pem", "--nonce", "abcd"], { cwd });
    expect(v.code).toBe(0);
  });

  it("issue --pcr sets the measured values that verify --pcr then checks", async () => {
    const pcr0 = "5a".repeat(48);
    const r = await egw(["attest", "issue", "--dev", "--state-dir", "state", "--pcr", `0=${pcr0}`, "--out", "pcr.cbor"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const ok = await egw(["attest", "verify", "pcr.cbor", "--root", "state/dev-root.pem", "--pcr", `0=${pcr0}`], { cwd });
    expect(ok.code).toBe(0);
    const bad = await egw(["attest", "verify", "pcr.cbor", "--root", "state/dev-root.pem", "--pcr", `0=${"5b".repeat(48)}`], { cwd });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^REJECTED ERR_PCR_MISMATCH\b/);
  });

  it("issue without --dev exits 2", async () => {
    const r = await egw(["attest", "issue", "--state-dir", "state", "--out", "x.cbor"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --dev/);
    expect(fs.existsSync(path.join(cwd, "x.cbor"))).toBe(false);
  });

  it("issue refuses to write to a TTY stdout with exit 2", async () => {
    const r = await egw(["attest", "issue", "--dev", "--state-dir", "state"], { cwd, isTTY: true });
    expect(r.code).toBe(2);
    expect(r.stdoutBytes.length).toBe(0);
    expect(r.stderr).toMatch(/refusing to write a binary document to a terminal/);
  });

  it("issue rejects positionals and bad hex with exit 2", async () => {
    for (const argv of [
      ["attest", "issue", "--dev", "--state-dir", "state", "extra"],
      ["attest", "issue", "--dev", "--state-dir", "state", "--nonce", "xyz"],
      ["attest", "issue", "--dev", "--state-dir", "state", "--pcr", "0=00"],
    ]) {
      const r = await egw(argv, { cwd });
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stdoutBytes.length).toBe(0);
    }
  });

  it("dev-root uses .egw-dev under the context cwd by default", async () => {
    const fresh = tempDir();
    const r = await egw(["attest", "dev-root"], { cwd: fresh });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("-----BEGIN CERTIFICATE-----");
    expect(fs.readFileSync(path.join(fresh, ".egw-dev", "dev-root.pem"), "utf8").trim()).toBe(r.stdout.trim());
    const again = await egw(["attest", "dev-root"], { cwd: fresh });
    expect(again.stdout).toBe(r.stdout);
  }, 30_000);
});

describe("a system error that escapes a command", () => {
  it("is printed with its code and exits 2, without a stack (EADDRINUSE from egw local-model)", async () => {
    const net = await import("node:net");
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    try {
      const port = (busy.address() as { port: number }).port;
      const r = await egw(["local-model", "--listen", `tcp://127.0.0.1:${port}`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^egw local-model: .*EADDRINUSE/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});
