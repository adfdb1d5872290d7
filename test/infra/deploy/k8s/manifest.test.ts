import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Testing, Yaml } from "cdk8s";
import { afterAll, describe, expect, it } from "vitest";
import { EnclaveGatewayChart } from "../../../../infra/deploy/k8s/chart.js";
import { CONFIG_KEYS } from "../../../../infra/deploy/k8s/commands.js";
import { EXAMPLE_OPERATIONS, EXAMPLE_SEALED_SECRETS, EXAMPLE_TRUST_POLICY, exampleInput } from "../../../../infra/deploy/k8s/example.js";
import { MANIFEST_HEADER, renderDefaultManifest, renderManifest } from "../../../../infra/deploy/k8s/render.js";
import { DEFAULT_OUT, main } from "../../../../infra/deploy/k8s/synth.js";
import { bytes, LOCAL_ONLY, ops, trust, type Obj } from "./synth-helpers.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const committedPath = path.join(root, DEFAULT_OUT);
const committed = readFileSync(committedPath, "utf8");
// Yaml.load parses in a child process (cdk8s does it synchronously that way): once is enough.
const committedDocs = Yaml.load(committedPath) as Obj[];

describe("the committed manifest (infra/deploy/k8s/manifests)", () => {
  it("is exactly what a fresh synth of the default props writes: regenerate with `node dist/infra/deploy/k8s/synth.js`", () => {
    expect(committed).toBe(renderDefaultManifest());
  });

  it("is deterministic: two synths give the same bytes", () => {
    expect(renderDefaultManifest()).toBe(renderDefaultManifest());
  });

  it("parses back into the objects the chart synthesizes", () => {
    expect(committed.startsWith(MANIFEST_HEADER)).toBe(true);
    const docs = committedDocs;
    const chart = new EnclaveGatewayChart(new App({ outdir: "cdk8s.out" }), "enclave-gateway", exampleInput());
    expect(docs).toEqual(Testing.synth(chart));
    for (const d of docs) {
      expect(typeof d.apiVersion).toBe("string");
      expect(typeof d.kind).toBe("string");
      expect(d.metadata.name).toMatch(/^[a-z0-9][-a-z0-9.]*$/);
    }
  });

  it("hands the enclave the example files' exact bytes after the YAML round trip", () => {
    const data = committedDocs.find((d) => d.kind === "ConfigMap")!.data;
    expect(data[CONFIG_KEYS.trustPolicy]).toBe(EXAMPLE_TRUST_POLICY);
    expect(data[CONFIG_KEYS.operations]).toBe(EXAMPLE_OPERATIONS);
    expect(data[CONFIG_KEYS.sealedSecrets]).toBe(EXAMPLE_SEALED_SECRETS);
  });

  it("keeps awkward file bytes exact through YAML too (no trailing newline, tabs, CRLF, YAML-looking text)", () => {
    const text =
      '{"version":1,\r\n\t"providers":[{"name":"local","kind":"local"}],"identity":{"mode":"ephemeral"},\n' +
      '"models":{"m":{"provider":"local","model":"echo","description":"key: value # not a comment\\n--- !!str"}},"prefixRouting": true}   ';
    const opsText = '{"version":1,\r\n\t"clients":[]}';
    const dir = mkdtempSync(path.join(tmpdir(), "egw-k8s-"));
    try {
      const file = path.join(dir, "m.yaml");
      writeFileSync(file, renderManifest({ trustPolicy: bytes(text), operations: bytes(opsText) }));
      const data = (Yaml.load(file) as Obj[]).find((d) => d.kind === "ConfigMap")!.data;
      expect(data[CONFIG_KEYS.trustPolicy]).toBe(text);
      expect(data[CONFIG_KEYS.operations]).toBe(opsText);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("synth.js", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "egw-k8s-synth-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const io = () => {
    const out = { stdout: "", stderr: "" };
    return { out, io: { stdout: { write: (t: string) => (out.stdout += t) }, stderr: { write: (t: string) => (out.stderr += t) } } };
  };

  it("writes a deployment's manifest from its own files and props", async () => {
    const tp = path.join(dir, "trust-policy.json");
    const opsFile = path.join(dir, "operations.json");
    const sealedFile = path.join(dir, "sealed.json");
    const target = path.join(dir, "out", "egw.k8s.yaml");
    writeFileSync(tp, EXAMPLE_TRUST_POLICY);
    writeFileSync(opsFile, ops({ proxyProtocol: false }));
    writeFileSync(sealedFile, EXAMPLE_SEALED_SECRETS);
    const image = `registry.example.com/egw/pod@sha256:${"cd".repeat(32)}`;
    const { io: streams } = io();
    expect(await main(["--trust-policy", tp, "--operations", opsFile, "--sealed-secrets", sealedFile, "--image", image, "--replicas", "5", "--out", target], streams)).toBe(0);
    expect(readFileSync(target, "utf8")).toBe(
      renderManifest({
        trustPolicy: bytes(EXAMPLE_TRUST_POLICY),
        operations: new Uint8Array(readFileSync(opsFile)),
        sealedSecrets: bytes(EXAMPLE_SEALED_SECRETS),
        image,
        replicas: 5,
      }),
    );
  });

  it("prints to stdout without --out, and exits 1 with the code on a refused prop, 2 on a usage error", async () => {
    const tp = path.join(dir, "local-trust-policy.json");
    const opsFile = path.join(dir, "operations2.json");
    writeFileSync(tp, trust(LOCAL_ONLY));
    writeFileSync(opsFile, EXAMPLE_OPERATIONS);
    const ok = io();
    expect(await main(["--trust-policy", tp, "--operations", opsFile], ok.io)).toBe(0);
    expect(ok.out.stdout.startsWith(MANIFEST_HEADER)).toBe(true);
    const refused = io();
    expect(await main(["--trust-policy", tp, "--operations", opsFile, "--replicas", "0"], refused.io)).toBe(1);
    expect(refused.out.stderr).toContain("ERR_K8S_REPLICAS");
    // The example policy uses a sealed secret: without the file the enclave would stop at boot, so synthesis refuses.
    const unsealed = path.join(dir, "example-trust-policy.json");
    writeFileSync(unsealed, EXAMPLE_TRUST_POLICY);
    const missing = io();
    expect(await main(["--trust-policy", unsealed, "--operations", opsFile], missing.io)).toBe(1);
    expect(missing.out.stderr).toContain("ERR_K8S_SEALED_SECRETS");
    // The two files go together; the old single file is gone.
    expect(await main(["--trust-policy", tp], io().io)).toBe(2);
    expect(await main(["--runtime-config", tp], io().io)).toBe(2);
    expect(await main(["--replicas", "3"], io().io)).toBe(2);
    expect(await main(["--bogus"], io().io)).toBe(2);
  });
});
