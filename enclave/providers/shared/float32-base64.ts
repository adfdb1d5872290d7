/** OpenAI's base64 encoding: the float32 little-endian bytes of the vector. */
export function float32Base64(values: number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => {
    view.setFloat32(i * 4, v, true);
  });
  return Buffer.from(view.buffer).toString("base64");
}
