/**
 * Guards on an OpenAI-compatible adapter's configuration, run once at
 * creation: a base URL the adapter may append paths to, and extra headers
 * that cannot smuggle a second header or override the ones the adapter owns.
 */

export function normalizeBaseUrl(value: unknown): string {
  if (typeof value !== "string") throw new TypeError('"baseUrl" expected a string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`"baseUrl" expected an absolute URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError(`"baseUrl" expected http: or https:, got ${url.protocol}`);
  }
  if (url.search !== "" || url.hash !== "") throw new TypeError('"baseUrl" must not carry a query or fragment');
  if (url.username !== "" || url.password !== "") throw new TypeError('"baseUrl" must not carry credentials');
  return url.href.replace(/\/+$/, "");
}

export function checkHeaders(headers: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    const lower = key.toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(lower)) throw new TypeError(`"extraHeaders" has an invalid header name ${JSON.stringify(key)}`);
    if (typeof value !== "string" || /[\r\n\0]/.test(value)) throw new TypeError(`"extraHeaders.${key}" expected a single-line string`);
    if (lower === "authorization" || lower === "content-type" || lower === "content-length" || lower === "host") {
      throw new TypeError(`"extraHeaders" may not set ${lower}`);
    }
    result[lower] = value;
  }
  return result;
}
