/**
 * Reads the body of a request or response of at most `maxBytes`, or resolves to undefined when it
 * is larger. The bytes are counted while they stream and the stream is cancelled as soon as the
 * count passes the limit, so a larger body is never held in memory whole, whether or not it
 * declares a `Content-Length` (a declared length over the limit, or one that is not a number, is
 * refused before anything is read).
 */
export async function readCappedBody(message: Request | Response, maxBytes: number): Promise<Uint8Array | undefined> {
  const declared = message.headers.get('content-length');
  if (declared !== null && (!/^\d+$/.test(declared) || Number(declared) > maxBytes)) {
    await message.body?.cancel();
    return undefined;
  }
  if (!message.body) return new Uint8Array();
  const reader = message.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
