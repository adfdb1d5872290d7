/**
 * JSON.parse keeps the last of two equal keys without a word. In a reviewed
 * policy file that is how `"allowDebug": false, …, "allowDebug": true`
 * would slip past a reader, so repeated keys are refused.
 *
 * Walks text that JSON.parse has already accepted (so it is well-formed)
 * and calls `fail(key)` on the first key repeated within one object.
 */
export function rejectDuplicateJsonKeys(text: string, fail: (key: string) => Error): void {
  // One frame per open object or array: the keys seen so far (objects only)
  // and whether the next string in this object is a key.
  const stack: { keys: Set<string> | null; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{") stack.push({ keys: new Set(), expectKey: true });
    else if (c === "[") stack.push({ keys: null, expectKey: false });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === ",") {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) throw fail(key);
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j;
    }
  }
}
