import { afterEach } from 'vitest';
import { testClock } from '../../src/clock';

// No test leaves the service's clock where it set it.
afterEach(() => {
  testClock.reset();
});
