/**
 * The client address the login throttle counts failures against. An IPv4 address is itself. An
 * IPv6 address is its /64 network: one subscriber, one host even, is handed a whole /64, so counting
 * single IPv6 addresses would give an attacker 2^64 fresh counters for the price of one.
 * Anything that does not parse is counted as it is.
 */
export function throttleAddress(raw: string): string {
  const address = raw.trim().toLowerCase();
  if (!address.includes(':')) return address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(address);
  if (mapped) return mapped[1] as string;
  const halves = address.split('::');
  if (halves.length > 2) return address;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return address;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return address;
  return `${groups
    .slice(0, 4)
    .map((group) => Number.parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
