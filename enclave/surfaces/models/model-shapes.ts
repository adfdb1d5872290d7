import type { Context } from "hono";
import type { GatewayEnv } from "../../http/gateway-env.js";

/**
 * The two shapes a model list takes. OpenAI's SDK reads
 * `{object:"list",data:[{id,object:"model",created,owned_by}]}`; the
 * Anthropic SDK's `models.list()` / `retrieve()` read
 * `{data:[{type:"model",id,display_name,created_at}],has_more,first_id,last_id}`
 * and send `anthropic-version` on every request, which is how the request
 * says which it is. The whole list fits one page: has_more is false.
 */
export interface ListedModel {
  id: string;
  provider: string;
  description: string | undefined;
  created: number;
}

export function isAnthropicFlavoured(c: Context<GatewayEnv>): boolean {
  return c.req.header("anthropic-version") !== undefined;
}

export function openaiModel(m: ListedModel): Record<string, unknown> {
  return { id: m.id, object: "model", created: m.created, owned_by: m.provider, ...(m.description && { description: m.description }) };
}

export function anthropicModel(m: ListedModel): Record<string, unknown> {
  return { type: "model", id: m.id, display_name: m.id, created_at: new Date(m.created * 1000).toISOString().replace(".000Z", "Z") };
}

export function anthropicModelList(models: ListedModel[]): Record<string, unknown> {
  return { data: models.map(anthropicModel), has_more: false, first_id: models[0]?.id ?? null, last_id: models.at(-1)?.id ?? null };
}
