import type { ChatRequest, ProviderCallContext } from "../../providers/types.js";
import type { Route } from "../../router.js";
import { formatAnthropicSse, OpenAIToAnthropicStreamMapper } from "../../providers/anthropic/index.js";

/** OpenAI chunks from a non-Anthropic provider, re-framed as Anthropic events. */
export async function* translatedMessagesStream(
  route: Route,
  request: ChatRequest,
  model: string,
  ctx: ProviderCallContext,
  onModel: (model: unknown) => void,
): AsyncGenerator<string> {
  const mapper = new OpenAIToAnthropicStreamMapper({ provider: route.adapter.info.name, model });
  let first = true;
  for await (const chunk of route.adapter.chatStream({ ...request, stream: true }, ctx)) {
    if (first) onModel(chunk.model);
    first = false;
    const text = mapper.push(chunk).map(formatAnthropicSse).join("");
    if (text !== "") yield text;
  }
  yield mapper.finish().map(formatAnthropicSse).join("");
}
