/**
 * latchkey reads the wall clock where its token checks do (packages/verify/src/clock.ts): one
 * clock, so that a test that moves it moves every check at once, latchkey's and a verifier's.
 */
export { now, testClock } from '../packages/verify/src/clock';
