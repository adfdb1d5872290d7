import { K8sChartError } from "./errors.js";

/**
 * Container image references, refused unless pinned. A tag is the minimum
 * (an untagged reference means ":latest", which changes under a running
 * Deployment); a digest is better, because a tag can be re-pushed. Neither
 * is a security boundary here (the host is untrusted and can run any image;
 * clients trust the enclave's PCRs, not the pod spec), but a replica that
 * restarts must come back with the same bytes as the others, or the replicas
 * stop presenting one measured identity.
 */
export interface ImageRef {
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Registry host (optionally with port) as the first component: contains "." or ":" or is "localhost". */
const REGISTRY = /^(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+:\d{1,5}|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+:\d{1,5})$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const MAX_REFERENCE_LENGTH = 512;

function refuse(ref: string, why: string): never {
  throw new K8sChartError("ERR_K8S_IMAGE", `image "${ref.slice(0, 80)}": ${why}`);
}

export function parseImageRef(ref: string): ImageRef {
  if (typeof ref !== "string" || ref.length === 0) refuse(String(ref), "expected a non-empty string");
  if (ref.length > MAX_REFERENCE_LENGTH) refuse(ref, `expected at most ${MAX_REFERENCE_LENGTH} characters, got ${ref.length}`);
  const at = ref.indexOf("@");
  const name = at < 0 ? ref : ref.slice(0, at);
  const digest = at < 0 ? undefined : ref.slice(at + 1);
  if (digest !== undefined && !DIGEST.test(digest)) refuse(ref, "digest expected as sha256:<64 lowercase hex>");

  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  const hasTag = colon > slash;
  const repository = hasTag ? name.slice(0, colon) : name;
  const tag = hasTag ? name.slice(colon + 1) : undefined;
  if (tag !== undefined && !TAG.test(tag)) refuse(ref, `tag "${tag.slice(0, 40)}" has an invalid format`);

  const parts = repository.split("/");
  const first = parts.length > 1 && REGISTRY.test(parts[0]!) ? 1 : 0;
  if (parts.length - first < 1 || !parts.slice(first).every((p) => PATH_COMPONENT.test(p))) {
    refuse(ref, "repository path expected lowercase components separated by /");
  }
  return { repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** The reference, refused unless it names one image version: a digest, or a tag other than "latest". */
export function pinnedImage(ref: string): string {
  const parsed = parseImageRef(ref);
  if (parsed.digest !== undefined) return ref;
  if (parsed.tag === undefined) refuse(ref, "untagged (that means :latest); pin a version tag or, better, a digest");
  if (parsed.tag.toLowerCase() === "latest") refuse(ref, '":latest" is not a version; pin a version tag or, better, a digest');
  return ref;
}
