import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { App, Testing, Yaml } from "cdk8s";
import { afterAll, describe, expect, it } from "vitest";
import { EnclaveGatewayChart } from "../../../infra/k8s/chart.js";
import { CONFIG_KEYS } from "../../../infra/k8s/commands.js";
import { EXAMPLE_RUNTIME_CONFIG, EXAMPLE_SEALED_SECRETS, exampleInput } from "../../../infra/k8s/example.js";
import { MANIFEST_HEADER, renderDefaultManifest, renderManifest } from "../../../infra/k8s/render.js";
import { DEFAULT_OUT, main } from "../../../infra/k8s/synth.js";
import { bytes, config, type Obj } from "./synth-helpers.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const committedPath = path.join(root, DEFAULT_OUT);
const committed = readFileSync(committedPath, "utf8");
// Yaml.load parses in a child process (cdk8s does it synchronously that way): once is enough.
const committedDocs = Yaml.load(committedPath) as Obj[];

describe("the committed manifest (infra/k8s/manifests)", () => {
  it("is exactly what a fresh synth of the default props writes: regenerate with `node dist/infra/k8s/synth.js`", () => {
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
    expect(data[CONFIG_KEYS.runtimeConfig]).toBe(EXAMPLE_RUNTIME_CONFIG);
    expect(data[CONFIG_KEYS.sealedSecrets]).toBe(EXAMPLE_SEALED_SECRETS);
  });

  it("keeps awkward config bytes exact through YAML too (no trailing newline, tabs, CRLF, YAML-looking text)", () => {
    const text =
      '{"version":1,\r\n\t"providers":[{"name":"local","kind":"local"}],"egressAllowlist":[],"clients":[],\n' +
      '"models":{"m":{"provider":"local","model":"echo","description":"key: value # not a comment\\n--- !!str"}},"prefixRouting": true}   ';
    const dir = mkdtempSync(path.join(tmpdir(), "egw-k8s-"));
    try {
      const file = path.join(dir, "m.yaml");
      writeFileSync(file, renderManifest({ runtimeConfig: bytes(text) }));
      const data = (Yaml.load(file) as Obj[]).find((d) => d.kind === "ConfigMap")!.data;
      expect(data[CONFIG_KEYS.runtimeConfig]).toBe(text);
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
    const rc = path.join(dir, "rc.json");
    const sealedFile = path.join(dir, "sealed.json");
    const target = path.join(dir, "out", "egw.k8s.yaml");
    writeFileSync(rc, config({ proxyProtocol: false }));
    writeFileSync(sealedFile, EXAMPLE_SEALED_SECRETS);
    const image = `registry.example.com/egw/pod@sha256:${"cd".repeat(32)}`;
    const { io: streams } = io();
    expect(await main(["--runtime-config", rc, "--sealed-secrets", sealedFile, "--image", image, "--replicas", "5", "--out", target], streams)).toBe(0);
    expect(readFileSync(target, "utf8")).toBe(
      renderManifest({ runtimeConfig: new Uint8Array(readFileSync(rc)), sealedSecrets: bytes(EXAMPLE_SEALED_SECRETS), image, replicas: 5 }),
    );
  });

  it("prints to stdout without --out, and exits 1 with the code on a refused prop, 2 on a usage error", async () => {
    const rc = path.join(dir, "rc2.json");
    writeFileSync(rc, EXAMPLE_RUNTIME_CONFIG);
    const ok = io();
    expect(await main(["--runtime-config", rc], ok.io)).toBe(0);
    expect(ok.out.stdout.startsWith(MANIFEST_HEADER)).toBe(true);
    const refused = io();
    expect(await main(["--runtime-config", rc, "--replicas", "0"], refused.io)).toBe(1);
    expect(refused.out.stderr).toContain("ERR_K8S_REPLICAS");
    expect(await main(["--replicas", "3"], io().io)).toBe(2);
    expect(await main(["--bogus"], io().io)).toBe(2);
  });
});
