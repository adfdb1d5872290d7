/**
 * Manifest rollback protection on the command line, run in-process through
 * main.ts's run(): `egw manifest create --sequence --expires` (and --merge),
 * `egw manifest sign | verify`, `egw verify` and `egw proxy` with
 * --policy-min-sequence and an expiring manifest. The gateway is the test
 * harness on 127.0.0.1 (simulated NSM, PCR0 = 0x11…) driven by the same
 * injected clock as the CLI, so only the manifest's expiry changes.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../../attestation/client/policy.js";
import type { CliContext } from "../../../infra/cli/context.js";
import { run } from "../../../infra/cli/main.js";
import { proxyCommand } from "../../../infra/cli/proxy.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST, removeTempDirs, tempDir } from "../../attestation/client/helpers.js";
import { buildEif, bytesOf, imageSections } from "../review/eif/eif-builder.js";

const EXPIRES = "2026-12-01T00:00:00Z";
const EXPIRY = Date.parse(EXPIRES);
let t = EXPIRY - 3_600_000;
const clock = () => new Date(t);

let h: Harness;
let dir: string;
let origin: string;
let keyId: string;
const file = (name: string) => path.join(dir, name);
const COMMIT = "1111111111111111111111111111111111111111";
const DIGEST = `sha256:${"ab".repeat(32)}`;

function context(): { ctx: CliContext; out: () => string; err: () => string } {
  let out = "";
  let err = "";
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString("utf8"));
        cb();
      },
    });
  const ctx: CliContext = { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), stdin: Readable.from([]), cwd: dir, now: clock, env: {} };
  return { ctx, out: () => out, err: () => err };
}

async function egw(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { ctx, out, err } = context();
  const code = await run(argv, ctx);
  return { code, stdout: out(), stderr: err() };
}

/** A manifest for the harness's enclave, with the given top-level fields. */
function harnessManifest(fields: Record<string, unknown>): string {
  return `${JSON.stringify(
    {
      version: 1,
      ...fields,
      measurements: [{ label: "test build", pcrs: { "0": Buffer.from(PCR0_TEST).toString("hex") } }],
      trust: "any",
      configSha256: [Buffer.from(h.enclave.configSha256).toString("hex")],
      devRootPem: "dev-root.pem",
    },
    null,
    2,
  )}\n`;
}

/** A loopback listener that only counts connections: refused runs must never reach it. */
async function counter(): Promise<{ target: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    target: `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

beforeAll(async () => {
  t = EXPIRY - 3_600_000;
  h = await startHarness({ now: clock, config: configJson({ limits: { attestationPerSecond: 1000 } }) });
  origin = new URL(h.baseURL).origin;
  dir = tempDir();
  fs.writeFileSync(file("dev-root.pem"), h.ca.rootPem);
  fs.writeFileSync(
    file("v1.eif"),
    buildEif(imageSections({ kernel: bytesOf("kernel"), cmdline: bytesOf("console=ttyS0"), ramdisks: [bytesOf("init"), bytesOf("gateway 0.1.0")] })),
  );
  fs.writeFileSync(
    file("v2.eif"),
    buildEif(imageSections({ kernel: bytesOf("kernel"), cmdline: bytesOf("console=ttyS0"), ramdisks: [bytesOf("init"), bytesOf("gateway 0.2.0")] })),
  );
  const key = generateKeyPairSync("ec", { namedCurve: "P-384" });
  fs.writeFileSync(file("signing.key"), key.privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  keyId = createHash("sha256")
    .update(key.publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");
  fs.writeFileSync(file("seq5.json"), harnessManifest({ sequence: 5, expires: EXPIRES }));
  fs.writeFileSync(file("seq4.json"), harnessManifest({ sequence: 4, expires: EXPIRES }));
  fs.writeFileSync(file("noseq.json"), harnessManifest({}));
  for (const name of ["seq5.json", "seq4.json", "noseq.json"]) expect((await egw(["manifest", "sign", "--key", "signing.key", name])).code).toBe(0);
});
afterAll(async () => {
  await h?.close();
  removeTempDirs();
});

const create = (version: string, eif: string, ...extra: string[]) => [
  "manifest",
  "create",
  "--eif",
  eif,
  "--version",
  version,
  "--git-commit",
  COMMIT,
  "--image-digest",
  DIGEST,
  "--config-sha256",
  "cd".repeat(32),
  "--trust-any",
  ...extra,
];

describe("egw manifest create --sequence --expires", () => {
  it("writes both, after version; without them it warns", async () => {
    t = EXPIRY - 3_600_000;
    const r = await egw(create("0.1.0", "v1.eif", "--sequence", "3", "--expires", EXPIRES));
    expect(r.code).toBe(0);
    expect(Object.keys(JSON.parse(r.stdout)).slice(0, 3)).toEqual(["version", "sequence", "expires"]);
    expect(parseManifest(r.stdout)).toMatchObject({ sequence: 3, expires: EXPIRES });
    expect(r.stderr).not.toContain("no --sequence");
    fs.writeFileSync(file("r3.json"), r.stdout);
    const bare = await egw(create("0.1.0", "v1.eif"));
    expect(bare.code).toBe(0);
    expect(bare.stderr).toContain("warning: no --sequence or --expires");
  });

  it("usage: malformed values, and an expiry that is not in the future, exit 2 naming the flag", async () => {
    t = EXPIRY - 3_600_000;
    const cases: [string[], RegExp][] = [
      [["--sequence", "0"], /--sequence "0": expected an integer 1\.\.9007199254740991/],
      [["--sequence", "-1"], /--sequence/],
      [["--sequence", "07"], /--sequence/],
      [["--sequence", "1.0"], /--sequence/],
      [["--sequence", "9007199254740992"], /--sequence/],
      [["--expires", "2026-12-01"], /--expires "2026-12-01": expected an RFC 3339 UTC time/],
      [["--expires", "2026-12-01T00:00:00+00:00"], /--expires/],
      [["--expires", "2026-02-30T00:00:00Z"], /--expires/],
      [["--expires", "2026-11-30T23:00:00Z"], /--expires 2026-11-30T23:00:00Z is not in the future/],
    ];
    for (const [extra, message] of cases) {
      const r = await egw(create("0.1.0", "v1.eif", ...extra));
      expect(r.code, extra.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
  });

  it("--merge: the sequence must increase and the expiry be restated (exit 1); then both are the new ones", async () => {
    t = EXPIRY - 3_600_000;
    for (const [extra, refusal] of [
      [[], "ERR_RELEASE_SEQUENCE"],
      [["--sequence", "3", "--expires", "2027-01-01T00:00:00Z"], "ERR_RELEASE_SEQUENCE"],
      [["--sequence", "2", "--expires", "2027-01-01T00:00:00Z"], "ERR_RELEASE_SEQUENCE"],
      [["--sequence", "4"], "ERR_RELEASE_EXPIRES"],
    ] as [string[], string][]) {
      const r = await egw(create("0.2.0", "v2.eif", "--merge", "r3.json", ...extra));
      expect(r.code, extra.join(" ")).toBe(1);
      expect(r.stderr).toContain(`REFUSED ${refusal}`);
      expect(r.stdout).toBe("");
    }
    const merged = await egw(create("0.2.0", "v2.eif", "--merge", "r3.json", "--sequence", "4", "--expires", "2027-01-01T00:00:00Z"));
    expect(merged.code).toBe(0);
    const m = parseManifest(merged.stdout);
    expect(m).toMatchObject({ sequence: 4, expires: "2027-01-01T00:00:00Z" });
    expect(m.measurements).toHaveLength(2);
  });
});

describe("egw manifest sign / verify with sequence and expiry", () => {
  it("verify prints both, honours --policy-min-sequence, and refuses an expired manifest (exit 1)", async () => {
    t = EXPIRY - 1000;
    const ok = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "seq5.json", "--policy-min-sequence", "5"]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`  sequence 5; expires ${EXPIRES}`);
    const json = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "seq5.json", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, sequence: 5, expires: EXPIRES });

    for (const [argv, refusal] of [
      [["seq4.json", "--policy-min-sequence", "5"], "ERR_MANIFEST_ROLLBACK"],
      [["noseq.json", "--policy-min-sequence", "1"], "ERR_MANIFEST_ROLLBACK"],
    ] as [string[], string][]) {
      const r = await egw(["manifest", "verify", "--pubkey-sha256", keyId, ...argv]);
      expect(r.code, argv.join(" ")).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^INVALID ${refusal}`));
    }
    t = EXPIRY + 1000;
    const expired = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "seq5.json", "--json"]);
    expect(expired.code).toBe(1);
    expect(JSON.parse(expired.stdout)).toMatchObject({ valid: false, code: "ERR_MANIFEST_EXPIRED" });
    const bad = await egw(["manifest", "verify", "--pubkey-sha256", keyId, "seq5.json", "--policy-min-sequence", "x"]);
    expect(bad.code).toBe(2);
  });

  it("sign refuses a manifest that has expired (exit 2), and prints sequence and expiry when it signs", async () => {
    fs.copyFileSync(file("seq5.json"), file("late.json"));
    t = EXPIRY + 1000;
    const refused = await egw(["manifest", "sign", "--key", "signing.key", "late.json"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("ERR_MANIFEST_EXPIRED");
    expect(fs.existsSync(file("late.json.sig"))).toBe(false);
    t = EXPIRY - 1000;
    const signed = await egw(["manifest", "sign", "--key", "signing.key", "late.json"]);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toContain(`sequence   5; expires ${EXPIRES}`);
  });
});

describe("egw verify with sequence and expiry", () => {
  it("accepts at or above the pinned sequence before the expiry, and says so", async () => {
    t = EXPIRY - 1000;
    const r = await egw(["verify", origin, "--policy", "seq5.json", "--policy-pubkey-sha256", keyId, "--policy-min-sequence", "5"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`sequence 5 (at least 5 pinned), expires ${EXPIRES}, signature verified`);
    expect(r.stdout).toMatch(/^ {2}ok {3}expiry +the manifest is valid until 2026-12-01T00:00:00Z \(1 s left\)/m);
    const json = await egw(["verify", origin, "--policy", "seq5.json", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ accepted: true, manifestSequence: 5, manifestExpires: EXPIRES });
  });

  it("refuses, exit 1, without dialling: a lower sequence, no sequence under a pin, an expired manifest", async () => {
    const c = await counter();
    try {
      for (const [at, argv, refusal] of [
        [EXPIRY - 1000, ["--policy", "seq4.json", "--policy-pubkey-sha256", keyId, "--policy-min-sequence", "5"], "ERR_MANIFEST_ROLLBACK"],
        [EXPIRY - 1000, ["--policy", "noseq.json", "--policy-min-sequence", "1"], "ERR_MANIFEST_ROLLBACK"],
        [EXPIRY, ["--policy", "seq5.json", "--policy-pubkey-sha256", keyId], "ERR_MANIFEST_EXPIRED"],
        [EXPIRY + 1000, ["--policy", "seq5.json"], "ERR_MANIFEST_EXPIRED"],
      ] as [number, string[], string][]) {
        t = at;
        const r = await egw(["verify", c.target, ...argv]);
        expect(r.code, argv.join(" ")).toBe(1);
        expect(r.stdout).toContain(`REJECTED ${refusal}`);
      }
      t = EXPIRY + 1000;
      const json = await egw(["verify", c.target, "--policy", "seq5.json", "--json"]);
      expect(JSON.parse(json.stdout)).toMatchObject({ accepted: false, code: "ERR_MANIFEST_EXPIRED", action: "fix-policy" });
    } finally {
      await c.close();
    }
    expect(c.connections()).toBe(0);
  });

  it("usage: --policy-min-sequence needs --policy and an integer 1..2^53-1 (exit 2)", async () => {
    t = EXPIRY - 1000;
    for (const argv of [
      ["--policy-min-sequence", "1"],
      ["--policy", "seq5.json", "--policy-min-sequence", "0"],
      ["--policy", "seq5.json", "--policy-min-sequence", "five"],
      ["--policy", "seq5.json", "--policy-min-sequence", ""],
    ]) {
      const r = await egw(["verify", origin, ...argv]);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toContain("--policy-min-sequence");
    }
  });
});

describe("egw proxy with sequence and expiry", () => {
  it("refuses to start on a rolled-back or expired manifest (exit 1)", async () => {
    t = EXPIRY - 1000;
    const rolled = await egw(["proxy", "--upstream", origin, "--policy", "seq4.json", "--policy-min-sequence", "5", "--listen", "127.0.0.1:0"]);
    expect(rolled.code).toBe(1);
    expect(rolled.stdout).toContain("REJECTED ERR_MANIFEST_ROLLBACK");
    t = EXPIRY + 1000;
    const expired = await egw(["proxy", "--upstream", origin, "--policy", "seq5.json", "--listen", "127.0.0.1:0"]);
    expect(expired.code).toBe(1);
    expect(expired.stdout).toContain("REJECTED ERR_MANIFEST_EXPIRED");
    expect(expired.stdout).not.toContain("listening");
  });

  it("once the manifest expires while it runs: 406 ERR_MANIFEST_EXPIRED for every request, nothing reaches the gateway", async () => {
    t = EXPIRY - 60_000;
    // A gateway of its own (same development CA): its attestation rate limiter has not seen the clock run ahead above.
    const gw = await startHarness({ now: clock, ca: h.ca, config: configJson({ limits: { attestationPerSecond: 1000 } }) });
    const { ctx, out, err } = context();
    const abort = new AbortController();
    const done = proxyCommand(
      ["--upstream", new URL(gw.baseURL).origin, "--policy", "seq5.json", "--policy-pubkey-sha256", keyId, "--policy-min-sequence", "5", "--listen", "127.0.0.1:0"],
      ctx,
      { signal: abort.signal },
    );
    for (let i = 0; i < 400 && !/listening on/.test(out()); i++) await new Promise((r) => setTimeout(r, 10));
    const url = /listening on (http:\/\/\S+)/.exec(out())?.[1];
    expect(url, `${out()} ${err()}`).toBeTruthy();
    expect(out()).toContain(`sequence 5 (at least 5 pinned), expires ${EXPIRES}`);
    const chat = () =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "hello" }] }),
      });
    const chats = () => gw.logs.filter((l) => l.includes('"request"') && l.includes('"surface":"chat.completions"')).length;
    try {
      t = EXPIRY - 1000;
      const before = await chat();
      expect(before.status).toBe(200);
      expect(before.headers.get("x-egw-verified")).toBe("attestation+receipt; trust=UNCONSTRAINED");
      await before.arrayBuffer();
      const sent = chats();
      for (const at of [EXPIRY, EXPIRY + 1000, EXPIRY + 86_400_000]) {
        t = at;
        const after = await chat();
        expect(after.status).toBe(406);
        expect(after.headers.get("x-egw-error")).toBe("ERR_MANIFEST_EXPIRED");
        expect(((await after.json()) as { error: { message: string } }).error.message).toContain(`expired at ${EXPIRES}`);
      }
      expect(chats()).toBe(sent);
      expect(err()).toContain("406 ERR_MANIFEST_EXPIRED");
    } finally {
      abort.abort();
      await done.finally(() => gw.close());
    }
    expect(await done).toBe(0);
  });
});
