/**
 * The `session_identifier` latchkey gives a DBSC session: the user's id and the session's id,
 * joined by a dot.
 *
 * Why both: a refresh names its session by this identifier and usually carries no token at all
 * (the browser refreshes because the bound cookie is gone), so the identifier alone must lead to
 * the user's Durable Object, which holds the session, its key and its challenges. It is not a
 * secret and authenticates nothing: the refresh is authenticated by a proof of the session's key,
 * and the browser sends the identifier only to latchkey's own origin.
 */
export interface DbscSessionRef {
  userId: string;
  sessionId: string;
}

/** latchkey's user and session ids: lower-case UUIDs (crypto.randomUUID). */
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const IDENTIFIER = new RegExp(`^(${UUID})\\.(${UUID})$`);

export function dbscSessionIdentifier(ref: DbscSessionRef): string {
  return `${ref.userId}.${ref.sessionId}`;
}

/**
 * The user and session an identifier names; undefined unless it has exactly latchkey's shape, so
 * that nothing but two UUIDs is ever used to address a Durable Object. (A made-up pair of UUIDs
 * still reaches one, and finds no session there.)
 */
export function parseDbscSessionIdentifier(value: string): DbscSessionRef | undefined {
  const match = IDENTIFIER.exec(value);
  return match ? { userId: match[1] as string, sessionId: match[2] as string } : undefined;
}
