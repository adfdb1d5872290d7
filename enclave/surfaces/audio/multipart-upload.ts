import type { MiddlewareHandler } from "hono";
import { GatewayError, isGatewayError } from "../../errors.js";
import { readBody } from "../../http/body.js";
import type { GatewayEnv } from "../../http/gateway-env.js";
import type { Limits } from "../../runtime-config.js";

/**
 * The body reader of the audio uploads (in place of json-body.ts): the
 * exact bytes, bounded by limits.maxBodyBytes like every body (413
 * request_too_large, counted as they arrive), hashed into the receipt as
 * received; then multipart/form-data (415 otherwise), parsed by undici's
 * FormData parser (`Response.formData()`), never by hand. A body the parser
 * refuses, or a form without a `file` part or a `model` string, is 400
 * invalid_request. The file's size is bounded by the body's.
 */
const MAX_MODEL_FIELD = 256;

export function multipartUpload(limits: Pick<Limits, "maxBodyBytes" | "bodyTimeoutMs">, task: "transcriptions" | "translations"): MiddlewareHandler<GatewayEnv> {
  return async function readMultipartUpload(c, next) {
    const { view, slot, exchange } = c.var;
    try {
      const bytes = await readBody(view, { maxBytes: limits.maxBodyBytes, timeoutMs: limits.bodyTimeoutMs, reservation: slot.reservation }).catch((err: unknown) => {
        throw isGatewayError(err) ? err : new GatewayError("invalid_request", "Could not read the request body.", { cause: err });
      });
      exchange.bodyWasRead(bytes);
      const contentType = view.headers.get("content-type") ?? "";
      if (!/^multipart\/form-data\s*;/i.test(contentType)) throw new GatewayError("unsupported_media_type", "Content-Type must be multipart/form-data with a boundary.");
      let form: FormData;
      try {
        form = await new Response(bytes, { headers: { "content-type": contentType } }).formData();
      } catch {
        // The parser's message may quote the body: not passed on.
        throw new GatewayError("invalid_request", "The multipart/form-data body is malformed.");
      }
      const file = form.get("file");
      if (file === null || typeof file === "string") throw new GatewayError("invalid_request", "The form needs a `file` part holding the audio.");
      const model = form.get("model");
      if (typeof model !== "string" || model === "" || model.length > MAX_MODEL_FIELD) throw new GatewayError("invalid_request", "The form needs a `model` field.");
      const format = form.get("response_format");
      if (format !== null && typeof format !== "string") throw new GatewayError("invalid_request", "`response_format` must be a text field.");
      c.set("upload", { task, bytes, contentType, form, file: new Uint8Array(await file.arrayBuffer()), model });
    } catch (err) {
      slot.release();
      throw err;
    }
    await next();
  };
}
