/**
 * Where webhooks may not go. A tenant admin chooses the URL, so without this check the service
 * would make requests into its own network (databases, the Temporal server, cloud metadata) on
 * anyone's behalf. IPv4 is judged by a list of non-public ranges; IPv6 by an allow-list (global
 * unicast only), because IPv6 has many ways to carry an IPv4 address (IPv4-compatible, SIIT,
 * NAT64, 6to4, Teredo) that a deny-list would miss.
 *
 * Checked when a webhook is subscribed, and at delivery on the very address the request connects
 * to (see `pinnedLookup`), so a name cannot resolve to a public address for the check and to a
 * private one for the request. WEBHOOK_ALLOW_PRIVATE_TARGETS=true turns all of it off, for
 * receivers on the same machine.
 */
import { lookup } from 'node:dns';
import { lookup as lookupAsync } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const nonPublicV4 = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3],
] as const) {
  nonPublicV4.addSubnet(network, prefix, 'ipv4');
}

const globalUnicastV6 = new BlockList();
globalUnicastV6.addSubnet('2000::', 3, 'ipv6');
/** Inside 2000::/3 but not a plain public host: Teredo and protocol blocks, documentation, 6to4. */
const reservedInGlobalV6 = new BlockList();
for (const [network, prefix] of [
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['3fff::', 20],
] as const) {
  reservedInGlobalV6.addSubnet(network, prefix, 'ipv6');
}

const MAPPED_V4 = /^::ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i;

/** True for every address a webhook may not be sent to (and for anything that is not an address). */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return nonPublicV4.check(address, 'ipv4');
  if (family !== 6) return true;
  const mapped = MAPPED_V4.exec(address);
  if (mapped) {
    const v4 =
      mapped[1] ?? [parseInt(mapped[2], 16), parseInt(mapped[3], 16)].flatMap((n) => [n >> 8, n & 255]).join('.');
    return nonPublicV4.check(v4, 'ipv4');
  }
  return !globalUnicastV6.check(address, 'ipv6') || reservedInGlobalV6.check(address, 'ipv6');
}

/** The host a URL connects to, IPv6 literals without their brackets. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

const LOOKUP_TIMEOUT_MS = 3_000;

/**
 * Why `url` may not receive webhooks, or null. At subscription a name that does not resolve in
 * time is let through (DNS may be down): every delivery resolves it again through `pinnedLookup`.
 */
export async function webhookTargetProblem(
  url: string,
  options: { refuseUnresolved: boolean },
): Promise<string | null> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'not a URL';
  }
  // fetch-style clients refuse such URLs at every attempt; say so once, at subscription.
  if (parsed.username || parsed.password) return 'a URL with credentials in it';
  const host = hostOf(parsed);
  if (isIP(host)) return isPrivateAddress(host) ? 'a private or local address' : null;
  let addresses: { address: string }[];
  try {
    addresses = await Promise.race([
      lookupAsync(host, { all: true, verbatim: true }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), LOOKUP_TIMEOUT_MS).unref()),
    ]);
  } catch {
    return options.refuseUnresolved ? 'a name that does not resolve' : null;
  }
  return addresses.some((a) => isPrivateAddress(a.address))
    ? 'a name that resolves to a private or local address'
    : null;
}

/** The error a delivery fails with when its target is, or resolves to, a private address. */
export class AddressNotAllowedError extends Error {
  override name = 'AddressNotAllowedError';
}

/**
 * A DNS lookup for outgoing webhook requests that refuses private addresses: the socket connects
 * only to an address this function has checked, which closes the gap between check and use.
 */
export const pinnedLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true, verbatim: true }, (err, addresses) => {
    if (err) return callback(err, '', 4);
    const refused = addresses.find((a) => isPrivateAddress(a.address));
    if (refused) return callback(new AddressNotAllowedError(`${hostname} resolves to a private address`), '', 4);
    if (options.all) return (callback as unknown as (e: null, all: typeof addresses) => void)(null, addresses);
    const first = addresses[0];
    if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 4);
    callback(null, first.address, first.family);
  });
};
