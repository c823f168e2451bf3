/**
 * How long the client waits for an answer to a renewal before giving up and trying again later.
 * Below the server's default REUSE_GRACE (10 s): a renewal that did reach the server but whose
 * answer is lost is retried with the same token, and only within the grace window is that retry
 * answered with the current token rather than taken for theft (rule 6). A deployment that lowers
 * REUSE_GRACE below this trades lost-answer tolerance for a shorter window.
 */
export const RENEW_TIMEOUT_MS = 8_000;
