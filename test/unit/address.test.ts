import { describe, expect, it } from 'vitest';
import { throttleAddress } from '../../src/http/address';

describe('throttleAddress', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:ffff::', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::ffff:198.51.100.4', '198.51.100.4'],
    ['fe80::1:2:3:4', 'fe80:0:0:0::/64'],
  ])('%s counts as %s', (raw, expected) => {
    expect(throttleAddress(raw)).toBe(expected);
  });

  it.each(['unknown', '1::2::3', '2001:db8:1:2:3:4:5:6:7', 'zzzz::1', '2001:db8:1:2:3:4:5'])(
    'counts %s, which does not parse, as it is',
    (raw) => {
      expect(throttleAddress(raw)).toBe(raw);
    },
  );
});
