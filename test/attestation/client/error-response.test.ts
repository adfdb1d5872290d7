/** The local error answer's shape per surface, status and retry header, without a network. */
import { describe, expect, it } from "vitest";
import { ClientError } from "../../../attestation/client/errors.js";
import { clientErrorAnswer, clientErrorResponse, errorShapeFor, isClientErrorResponse } from "../../../attestation/client/error-response.js";

describe("clientErrorAnswer", () => {
  it("picks the surface's error shape by path, on segment boundaries", () => {
    expect(errorShapeFor("/v1/chat/completions")).toBe("openai");
    expect(errorShapeFor("/v1/messages")).toBe("anthropic");
    expect(errorShapeFor("/v1/messages/count_tokens?beta=true")).toBe("anthropic");
    expect(errorShapeFor("/v1/messagesx")).toBe("openai");
    expect(errorShapeFor("/v1beta/models/gemini-2.5-flash:generateContent")).toBe("gemini");
    expect(errorShapeFor("/v1betax")).toBe("openai");
  });

  it("a refusal: 406, x-should-retry false, the code in a header and the message in each shape", () => {
    const openai = clientErrorAnswer("/v1/responses", "ERR_TLS_BINDING", "the TLS key is not the attested one", false);
    expect(openai.status).toBe(406);
    expect(openai.headers).toMatchObject({ "x-should-retry": "false", "x-egw-client-error": "ERR_TLS_BINDING", "content-type": "application/json" });
    expect(Number(openai.headers["content-length"])).toBe(Buffer.byteLength(openai.body));
    expect(JSON.parse(openai.body)).toEqual({
      error: { message: "ERR_TLS_BINDING: the TLS key is not the attested one", type: "egw_verification_failed", param: null, code: "ERR_TLS_BINDING" },
    });
    expect(JSON.parse(clientErrorAnswer("/v1/messages", "ERR_X", "r", false).body)).toEqual({
      type: "error",
      error: { type: "egw_verification_failed", message: "ERR_X: r", code: "ERR_X" },
    });
    expect(JSON.parse(clientErrorAnswer("/v1beta/models", "ERR_X", "r", false).body)).toEqual({ error: { code: 406, message: "ERR_X: r", status: "EGW_VERIFICATION_FAILED" } });
  });

  it("a transient failure: 502, x-should-retry true, another type", () => {
    const a = clientErrorAnswer("/v1/chat/completions", "ERR_CONNECT", "connect ECONNREFUSED", true);
    expect(a.status).toBe(502);
    expect(a.headers["x-should-retry"]).toBe("true");
    expect(JSON.parse(a.body).error.type).toBe("egw_gateway_unavailable");
  });

  it("does not repeat a code the reason already starts with", () => {
    expect(JSON.parse(clientErrorAnswer("/v1/models", "ERR_X", "ERR_X: already", false).body).error.message).toBe("ERR_X: already");
  });

  it("clientErrorResponse follows the error's action; isClientErrorResponse tells it from any other Response", async () => {
    const refused = clientErrorResponse(new ClientError("ERR_MEASUREMENTS_NOT_ALLOWED", "PCRs match none of the 1 allowed entries"), "/v1/chat/completions");
    expect(refused.status).toBe(406);
    expect(isClientErrorResponse(refused)).toBe(true);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe("ERR_MEASUREMENTS_NOT_ALLOWED: PCRs match none of the 1 allowed entries");
    expect(clientErrorResponse(new ClientError("ERR_ATTESTATION_UNAVAILABLE", "429"), "/v1/models").status).toBe(502);
    expect(isClientErrorResponse(new Response("{}", { status: 406 }))).toBe(false);
  });
});
