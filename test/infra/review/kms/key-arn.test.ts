import { describe, expect, it } from "vitest";
import { parseKeyArn } from "../../../../infra/review/kms/key-arn.js";

describe("parseKeyArn", () => {
  it("accepts key ARNs in every partition, single- and multi-Region", () => {
    expect(parseKeyArn("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")).toEqual({
      arn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      partition: "aws",
      region: "eu-west-1",
      account: "111122223333",
      keyId: "1234abcd-12ab-34cd-56ef-1234567890ab",
    });
    expect(parseKeyArn("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab").region).toBe("us-gov-west-1");
    expect(parseKeyArn("arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab").partition).toBe("aws-cn");
  });

  it.each([
    ["alias/egw", /alias is not accepted/],
    ["arn:aws:kms:eu-west-1:111122223333:alias/egw", /alias is not accepted/],
    ["1234abcd-12ab-34cd-56ef-1234567890ab", /key ARN/],
    ["mrk-1234abcd12ab34cd56ef1234567890ab", /key ARN/],
    ["arn:aws:kms:eu-west-1:11112222333:key/1234abcd-12ab-34cd-56ef-1234567890ab", /key ARN/],
    ["arn:aws:kms:EU-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", /key ARN/],
    ["arn:aws:kms:eu-west-1:111122223333:key/1234ABCD-12ab-34cd-56ef-1234567890ab", /key ARN/],
    ["arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab ", /key ARN/],
    ["arn:aws:iam::111122223333:role/x", /key ARN/],
    ["", /key ARN/],
  ])("refuses %s", (value, message) => {
    expect(() => parseKeyArn(value)).toThrow(expect.objectContaining({ code: "ERR_KMS_KEY_ARN", message: expect.stringMatching(message) }));
  });
});
