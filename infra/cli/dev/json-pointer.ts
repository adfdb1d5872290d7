/**
 * The trust-policy and operations parsers name the field at fault as a
 * path (`providers[0].baseUrl`, `models["gpt"].provider`, `(root).foo`);
 * a user's `--config` file is easier to fix with an RFC 6901 JSON pointer
 * into the file itself (`/trustPolicy/providers/0/baseUrl`). This turns one
 * into the other, and leaves a message it does not recognise as it is.
 */

/** RFC 6901 §3: "~" is written "~0" and "/" is written "~1". */
export function pointerToken(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

const PATH = /^(\(root\)|[A-Za-z][A-Za-z0-9_]*)((?:\[\d+\]|\["[^"]*"\]|\.[A-Za-z0-9_-]+)*)$/;
const STEP = /\[(\d+)\]|\["([^"]*)"\]|\.([A-Za-z0-9_-]+)/g;

/** `providers[0].baseUrl` → `/providers/0/baseUrl`; undefined when `path` is not one of the parsers' paths. */
export function pathToPointer(path: string): string | undefined {
  const m = PATH.exec(path);
  if (!m) return undefined;
  const tokens = m[1] === "(root)" ? [] : [m[1]!];
  for (const s of m[2]!.matchAll(STEP)) tokens.push(s[1] ?? s[2] ?? s[3]!);
  return tokens.map((t) => `/${pointerToken(t)}`).join("");
}

/**
 * A parser message (`trust policy <path>: <what>` / `operations <path>: <what>`)
 * as `<prefix><pointer>: <what>`; `prefix` is the pointer of the document
 * inside the file ("" when the document is a file of its own).
 */
export function messageWithPointer(message: string, subject: "trust policy" | "operations", prefix: string): string {
  if (message.startsWith(`${subject}: `)) return `${prefix || "(root)"}: ${message.slice(subject.length + 2)}`;
  if (!message.startsWith(`${subject} `)) return message;
  const rest = message.slice(subject.length + 1);
  // The path ends at the first ": " outside a quoted model name.
  const split = /^((?:[^":]|"[^"]*")*?): /.exec(rest);
  if (!split) return message;
  const path = split[1]!;
  const what = rest.slice(split[0].length);
  if (path === "(bytes)") return `${prefix || "(the file)"}: ${what}`;
  const pointer = pathToPointer(path);
  return pointer === undefined ? message : `${`${prefix}${pointer}` || "(root)"}: ${what}`;
}
