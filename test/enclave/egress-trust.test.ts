import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Attester } from "../../attestation/attester.js";
import { bootEnclave } from "../../enclave/boot.js";
import { loadEnclaveSettings } from "../../enclave/config.js";
import { createEgressFetch, upstreamRoots } from "../../enclave/egress.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import { main, run } from "../../enclave/main.js";
import { staticSecrets } from "../../enclave/secrets.js";
import { DEFAULT_EGRESS_LIMITS, startEgressProxy } from "../../host/egress/index.js";
import { captureStream, cliContext } from "../helpers/cli-process.js";
import { configJson } from "../helpers/enclave-harness.js";
import { splitConfig } from "../helpers/split-config.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";
import { startTlsFront, type TlsFront } from "../helpers/tls-front.js";

/**
 * Issue 11 §3: upstream certificates are checked against the roots bundled
 * in the image, with no host-supplied CA. The host controls the enclave's
 * command line and environment, so each way it could widen that trust is
 * tried here: --upstream-ca, NODE_TLS_REJECT_UNAUTHORIZED=0 and
 * NODE_EXTRA_CA_CERTS.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-egress-trust-"));
const trustPath = path.join(dir, "trust-policy.json");
const opsPath = path.join(dir, "operations.json");
const docs = splitConfig(configJson());
const caPath = path.join(dir, "upstream-ca.pem");
let mock: MockOpenAI;
let front: TlsFront;

beforeAll(async () => {
  mock = await startMockOpenAI();
  front = await startTlsFront(mock.url);
  fs.writeFileSync(trustPath, docs.trustPolicy);
  fs.writeFileSync(opsPath, docs.operations);
  fs.writeFileSync(caPath, front.certPem);
});
afterAll(async () => {
  await front?.close();
  await mock?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("an extra upstream CA is refused outside development", () => {
  it("--upstream-ca with the real NSM: ERR_CONFIG, before anything boots", async () => {
    await expect(loadEnclaveSettings({}, { trustPolicy: trustPath, operations: opsPath, upstreamCaFile: caPath })).rejects.toMatchObject({
      code: "ERR_CONFIG",
      message: expect.stringMatching(/development only/),
    });
    await expect(loadEnclaveSettings({ EGW_ATTESTER: "nsm" }, { trustPolicy: trustPath, operations: opsPath, upstreamCaFile: caPath })).rejects.toMatchObject({
      code: "ERR_CONFIG",
    });
  });

  it("--upstream-ca with provisioning and the real NSM: the same refusal", async () => {
    await expect(loadEnclaveSettings({}, { provisionListen: "tcp://127.0.0.1:0", upstreamCaFile: caPath })).rejects.toMatchObject({
      code: "ERR_CONFIG",
      message: expect.stringMatching(/development only/),
    });
  });

  it("--upstream-ca with the simulated NSM (--dev) is taken", async () => {
    const settings = await loadEnclaveSettings({}, { trustPolicy: trustPath, operations: opsPath, dev: true, upstreamCaFile: caPath });
    expect(settings.attester).toBe("simulated");
    expect(settings.upstreamCa).toBe(front.certPem);
    const viaEnv = await loadEnclaveSettings({ EGW_ATTESTER: "simulated" }, { trustPolicy: trustPath, operations: opsPath, upstreamCaFile: caPath });
    expect(viaEnv.upstreamCa).toBe(front.certPem);
  });

  it("the enclave program itself exits 2 with the refusal (no --dev)", async () => {
    const out = captureStream();
    const err = captureStream();
    const code = await run(
      ["--trust-policy", trustPath, "--operations", opsPath, "--upstream-ca", caPath, "--listen", "tcp://127.0.0.1:0"],
      cliContext(out.stream, err.stream, dir, () => new Date()),
    );
    expect(code).toBe(2);
    expect(err.text()).toMatch(/^enclave: .*--upstream-ca is for development only/);
    expect(out.text()).not.toContain("ready");
    await expect(
      main(
        ["--trust-policy", trustPath, "--operations", opsPath, "--upstream-ca", caPath],
        cliContext(out.stream, err.stream, dir, () => new Date()),
      ),
    ).rejects.toBeDefined();
  });

  it("bootEnclave refuses an extra CA with an NSM attester even when the settings loader was skipped", async () => {
    const nsm = { kind: "nsm" } as unknown as Attester;
    await expect(
      bootEnclave({
        trustPolicyBytes: new TextEncoder().encode(docs.trustPolicy),
        operationsBytes: new TextEncoder().encode(docs.operations),
        attester: nsm,
        secrets: staticSecrets(new Map()),
        log: memoryLogger(),
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
        upstreamCa: front.certPem,
      }),
    ).rejects.toMatchObject({ code: "ERR_CONFIG" });
  });
});

describe("NODE_TLS_REJECT_UNAUTHORIZED=0", () => {
  const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  afterEach(() => {
    if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
  });

  it("is refused at boot with the real NSM, allowed in development", async () => {
    await expect(loadEnclaveSettings({ NODE_TLS_REJECT_UNAUTHORIZED: "0" }, { trustPolicy: trustPath, operations: opsPath })).rejects.toMatchObject({
      code: "ERR_CONFIG",
      message: expect.stringMatching(/NODE_TLS_REJECT_UNAUTHORIZED/),
    });
    await expect(loadEnclaveSettings({ NODE_TLS_REJECT_UNAUTHORIZED: "0" }, { trustPolicy: trustPath, operations: opsPath, dev: true })).resolves.toMatchObject({
      attester: "simulated",
    });
    await expect(loadEnclaveSettings({ NODE_TLS_REJECT_UNAUTHORIZED: "1" }, { trustPolicy: trustPath, operations: opsPath })).resolves.toMatchObject({ attester: "nsm" });
  });

  // Two guards hold here: egress passes rejectUnauthorized: true, and the
  // peer recorder (egress-peer.ts) drops any TLS socket that is not
  // authorized. The test fails only if both are gone.
  it("does not turn egress verification off, direct or through the CONNECT proxy", async () => {
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    const direct = createEgressFetch({ allowlist: [front.host], connectTimeoutMs: 2000, headersTimeoutMs: 2000 });
    await expect(direct(`${front.url}/models`)).rejects.toBeDefined();
    const proxy = await startEgressProxy({
      listen: { host: "127.0.0.1", port: 0 },
      rules: [{ host: "127.0.0.1", port: Number(new URL(front.url).port), allowPrivate: true }],
      limits: DEFAULT_EGRESS_LIMITS,
      registry: new Registry(),
    });
    try {
      const tunnelled = createEgressFetch({ allowlist: [front.host], connectTimeoutMs: 2000, headersTimeoutMs: 2000, proxy: `http://127.0.0.1:${proxy.port}` });
      await expect(tunnelled(`${front.url}/models`)).rejects.toBeDefined();
    } finally {
      await proxy.close({ drainMs: 50 });
    }
    // The control: the same front is reachable once its certificate is a (development) root.
    delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    const trusted = createEgressFetch({ allowlist: [front.host], connectTimeoutMs: 2000, headersTimeoutMs: 2000, extraCa: front.certPem });
    expect((await trusted(`${front.url}/models`)).status).toBe(200);
  });
});

describe("NODE_EXTRA_CA_CERTS does not widen the egress roots", () => {
  it("the egress roots are Node's bundled store, given explicitly", () => {
    expect(upstreamRoots(undefined)).toEqual([...tls.rootCertificates]);
    expect(upstreamRoots("PEM")).toEqual([...tls.rootCertificates, "PEM"]);
  });

  it("in a process started with NODE_EXTRA_CA_CERTS, tls.rootCertificates leaves the extra root out, while Node's default trust takes it", async () => {
    // Node's docs say tls.rootCertificates is the bundled Mozilla store; this
    // checks that claim on this Node, and that leaving `ca` unset would trust
    // the host's extra root (which is why egress.ts never leaves it unset).
    const script = `
      import tls from "node:tls";
      import fs from "node:fs";
      const pem = fs.readFileSync(process.env.CA_FILE, "utf8").trim();
      const inRoots = tls.rootCertificates.some((c) => c.trim() === pem);
      const attempt = (options) => new Promise((resolve) => {
        const s = tls.connect({ host: "127.0.0.1", port: Number(process.env.PORT), ...options }, () => { s.destroy(); resolve("ok"); });
        s.on("error", (e) => resolve(e.code ?? "error"));
      });
      const byDefault = await attempt({});
      const bundledOnly = await attempt({ ca: tls.rootCertificates });
      console.log(JSON.stringify({ inRoots, byDefault, bundledOnly }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: caPath, CA_FILE: caPath, PORT: new URL(front.url).port },
      timeout: 20_000,
    });
    const result = JSON.parse(stdout.trim()) as { inRoots: boolean; byDefault: string; bundledOnly: string };
    expect(result.inRoots).toBe(false);
    expect(result.byDefault).toBe("ok");
    expect(result.bundledOnly).not.toBe("ok");
  });
});
