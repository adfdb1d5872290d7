/**
 * A manifest's `expires` at attestation time: the verifying client against
 * the real gateway (test harness on 127.0.0.1, simulated NSM, development
 * CA), with one injected clock shared by the gateway and the client, so
 * documents are always fresh and the expiry is the only thing that changes.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, openAttestedConnection, resolvePolicy, type AttestedPeer, type ClientPolicy, type VerifiedFetch } from "../../../attestation/client/index.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { PCR0_TEST } from "./helpers.js";

const EXPIRY = Date.parse("2026-12-01T00:00:00Z");
let t = EXPIRY - 60_000;
const clock = () => new Date(t);

let h: Harness;
const opened: VerifiedFetch[] = [];
beforeAll(async () => {
  h = await startHarness({ now: clock, config: configJson({ limits: { attestationPerSecond: 1000 } }) });
});
afterAll(async () => {
  await Promise.all(opened.map((f) => f.close()));
  await h?.close();
});

const policy = (): ClientPolicy => ({
  measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }],
  trust: "any",
  trustedRoots: [h.anchor],
  expires: new Date(EXPIRY),
});
const origin = () => new URL(h.baseURL).origin;
const chatRequests = () => h.logs.filter((l) => l.includes('"request"') && l.includes('"surface":"chat.completions"')).length;
const chat = (f: VerifiedFetch, content: string) =>
  f(`${h.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "local", messages: [{ role: "user", content }] }),
  });

describe("the verified fetch and a manifest that expires", () => {
  it("attests and answers one second before the expiry, and reports the expiry step", async () => {
    t = EXPIRY - 60_000;
    const peers: AttestedPeer[] = [];
    const f = createVerifiedFetch({ baseURL: h.baseURL, policy: policy(), verificationErrors: "throw", now: clock, onAttestation: (p) => peers.push(p) });
    opened.push(f);
    t = EXPIRY - 1000;
    const res = await chat(f, "just in time");
    expect(res.status).toBe(200);
    expect(peers).toHaveLength(1);
    expect(peers[0]!.steps.slice(0, 2).map((s) => [s.step, s.status])).toEqual([
      ["tls", "passed"],
      ["expiry", "passed"],
    ]);
    expect(peers[0]!.steps[1]!.detail).toContain("valid until 2026-12-01T00:00:00Z (1 s left)");
  });

  it("one second after the expiry: ERR_MANIFEST_EXPIRED, nothing sent, the connection attested earlier not reused", async () => {
    t = EXPIRY - 60_000;
    const peers: AttestedPeer[] = [];
    const f = createVerifiedFetch({ baseURL: h.baseURL, policy: policy(), verificationErrors: "throw", now: clock, onAttestation: (p) => peers.push(p) });
    opened.push(f);
    t = EXPIRY - 1000;
    expect((await chat(f, "before")).status).toBe(200);
    const sent = chatRequests();
    t = EXPIRY + 1000;
    await expect(chat(f, "after")).rejects.toMatchObject({ name: "ClientError", code: "ERR_MANIFEST_EXPIRED", action: "fix-policy" });
    // The instant itself is already too late (as a JWT "exp").
    t = EXPIRY;
    await expect(chat(f, "at")).rejects.toMatchObject({ code: "ERR_MANIFEST_EXPIRED" });
    expect(chatRequests()).toBe(sent);
    expect(peers).toHaveLength(1);
    expect(f.getReceipts()).toHaveLength(1);
  });

  it("refuses to be created with a manifest that has already expired", () => {
    t = EXPIRY + 1000;
    expect(() => createVerifiedFetch({ baseURL: h.baseURL, policy: policy(), now: clock })).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_EXPIRED" }));
  });

  it("refuses to attest after the expiry: a document judged after it is refused at the expiry step", async () => {
    const resolved = resolvePolicy(policy(), new Date(EXPIRY - 2000));
    // The first reading (before dialling) is still in time; the document is judged one second after the expiry.
    const readings = [EXPIRY - 1000, EXPIRY + 1000];
    t = EXPIRY - 1000;
    const err = await openAttestedConnection({ origin: origin(), policy: resolved, now: () => new Date(readings.shift() ?? EXPIRY + 1000) }).then(
      () => {
        throw new Error("expected a refusal");
      },
      (e: unknown) => e as { code: string; steps: { step: string; status: string }[] },
    );
    expect(err.code).toBe("ERR_MANIFEST_EXPIRED");
    expect(err.steps.map((s) => [s.step, s.status])).toEqual([
      ["tls", "passed"],
      ["expiry", "failed"],
    ]);
  });

  it("with the clock already past the expiry, nothing is dialled", async () => {
    let connections = 0;
    const counter = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => counter.listen(0, "127.0.0.1", resolve));
    try {
      const resolved = resolvePolicy(policy(), new Date(EXPIRY - 1000));
      const target = `https://127.0.0.1:${(counter.address() as net.AddressInfo).port}`;
      await expect(openAttestedConnection({ origin: target, policy: resolved, now: () => new Date(EXPIRY + 1000) })).rejects.toMatchObject({
        code: "ERR_MANIFEST_EXPIRED",
        steps: [{ step: "expiry", status: "failed" }],
      });
    } finally {
      await new Promise<void>((resolve) => counter.close(() => resolve()));
    }
    expect(connections).toBe(0);
  });
});
