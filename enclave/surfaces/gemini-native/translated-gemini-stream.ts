import { CanonicalToGeminiStreamMapper, formatGeminiSse } from "../../providers/gemini/index.js";
import type { ChatRequest, ProviderCallContext } from "../../providers/types.js";
import type { Route } from "../../router.js";

/** Canonical chunks from a non-Gemini provider, re-framed as Gemini SSE events (usage asked for: it goes in the last event). */
export async function* translatedGeminiStream(
  route: Route,
  request: ChatRequest,
  model: string,
  ctx: ProviderCallContext,
  onModel: (model: unknown) => void,
): AsyncGenerator<string> {
  const mapper = new CanonicalToGeminiStreamMapper({ provider: route.adapter.info.name, model });
  let first = true;
  for await (const chunk of route.adapter.chatStream({ ...request, stream: true, stream_options: { include_usage: true } }, ctx)) {
    if (first) onModel(chunk.model);
    first = false;
    const text = mapper.push(chunk).map(formatGeminiSse).join("");
    if (text !== "") yield text;
  }
  yield formatGeminiSse(mapper.finish());
}
