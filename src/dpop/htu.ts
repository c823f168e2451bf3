/** RFC 3986 §2.3: characters that percent-encoding must not change the meaning of. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The part of a URL that a DPoP proof's `htu` is compared on: scheme, host, port and path.
 *
 * RFC 9449 §4.3 check 9: `htu` must match the request's URI "ignoring any query and fragment
 * parts", and servers SHOULD apply syntax-based and scheme-based normalization (RFC 3986 §6.2.2,
 * §6.2.3) first, so that spellings of one URI do not refuse honest clients. Both sides go through
 * the WHATWG URL parser, which lower-cases the scheme and the host, drops a default port and
 * resolves dot segments; then percent-encodings in the path are made uppercase, and those of
 * unreserved characters decoded. The path stays case-sensitive; userinfo and non-HTTP schemes
 * make a URL that no request of ours has, so they compare as nothing.
 *
 * Undefined when `value` is not such a URL.
 */
export function comparableHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '') return undefined;
  const path = url.pathname.replace(/%[0-9A-Fa-f]{2}/g, (encoded) => {
    const character = String.fromCharCode(Number.parseInt(encoded.slice(1), 16));
    return UNRESERVED.test(character) ? character : encoded.toUpperCase();
  });
  return `${url.protocol}//${url.host}${path}`;
}
