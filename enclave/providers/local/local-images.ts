import { createHash } from "node:crypto";
import { GatewayError } from "../../errors.js";
import type { ImagesRequest, ImagesResponse } from "../canonical/types.js";
import { encodeRgbPng } from "./encode-png.js";

/** The local model's images: see local-adapter.ts's module comment for the exact behaviour. */

const MAX_IMAGES = 10;
const PNG_SIDE = 8;

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

export function localImages(request: ImagesRequest, created: number): ImagesResponse {
  if (typeof request !== "object" || request === null || typeof request.prompt !== "string") throw invalid("prompt must be a string");
  const n = request.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_IMAGES) throw invalid(`n must be an integer in 1…${MAX_IMAGES}`);
  const format = request.response_format ?? "b64_json";
  if (format !== "b64_json" && format !== "url") throw invalid('response_format must be "url" or "b64_json"');
  const data = Array.from({ length: n }, (_, index) => {
    const b64 = localPng(request.prompt, index).toString("base64");
    return format === "url" ? { url: `data:image/png;base64,${b64}` } : { b64_json: b64 };
  });
  return { created, data };
}

/** An 8×8 8-bit RGB PNG (ISO/IEC 15948) whose pixels derive from the prompt and index. */
export function localPng(prompt: string, index: number): Buffer {
  const seed = createHash("sha256")
    .update(prompt, "utf8")
    .update(Buffer.from([0]))
    .update(String(index))
    .digest();
  const rowBytes = PNG_SIDE * 3;
  const pixels = Buffer.alloc(PNG_SIDE * rowBytes);
  for (let block = 0, at = 0; at < pixels.length; block++) {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(block);
    const digest = createHash("sha256").update(prefix).update(seed).digest();
    at += digest.copy(pixels, at);
  }
  return encodeRgbPng(PNG_SIDE, PNG_SIDE, pixels);
}
