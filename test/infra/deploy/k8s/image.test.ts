import { describe, expect, it } from "vitest";
import { K8sChartError } from "../../../../infra/deploy/k8s/errors.js";
import { parseImageRef, pinnedImage } from "../../../../infra/deploy/k8s/image.js";

const DIGEST = `sha256:${"0123456789abcdef".repeat(4)}`;

describe("image references", () => {
  it.each([
    ["111122223333.dkr.ecr.eu-west-1.amazonaws.com/enclave-gateway:0.1.0", { repository: "111122223333.dkr.ecr.eu-west-1.amazonaws.com/enclave-gateway", tag: "0.1.0" }],
    [
      "public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin:v0.3",
      { repository: "public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin", tag: "v0.3" },
    ],
    [`registry.example.com:5000/egw@${DIGEST}`, { repository: "registry.example.com:5000/egw", digest: DIGEST }],
    [`egw/pod:1.2.3@${DIGEST}`, { repository: "egw/pod", tag: "1.2.3", digest: DIGEST }],
    ["localhost:5000/egw:dev-1", { repository: "localhost:5000/egw", tag: "dev-1" }],
  ])("accepts %s as pinned", (ref, parsed) => {
    expect(parseImageRef(ref)).toEqual(parsed);
    expect(pinnedImage(ref)).toBe(ref);
  });

  it.each([
    ["untagged", "registry.example.com/egw"],
    ["untagged with a registry port", "registry.example.com:5000/egw"],
    [":latest", "egw:latest"],
    [":Latest", "registry.example.com/egw:Latest"],
    ["an empty tag", "egw:"],
    ["a short digest", "egw@sha256:abc"],
    ["an uppercase digest", `egw@sha256:${"AB".repeat(32)}`],
    ["another digest algorithm", `egw@sha512:${"ab".repeat(64)}`],
    ["uppercase in the path", "registry.example.com/Egw:1"],
    ["an empty path component", "registry.example.com//egw:1"],
    ["whitespace", "egw: 1"],
    ["nothing", ""],
  ])("refuses %s", (_what, ref) => {
    let caught: unknown;
    try {
      pinnedImage(ref);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(K8sChartError);
    expect((caught as K8sChartError).code).toBe("ERR_K8S_IMAGE");
  });

  it("refuses a reference longer than any registry accepts", () => {
    expect(() => pinnedImage(`registry.example.com/${"a".repeat(600)}:1`)).toThrow(K8sChartError);
  });
});
