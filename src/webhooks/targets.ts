/**
 * Where webhooks may not go: loopback, private, link-local (cloud metadata), shared and reserved
 * addresses. A tenant admin chooses the URL, so without this check the service would make
 * requests into its own network on anyone's behalf. Checked when a webhook is subscribed and
 * again before each delivery (a name may resolve elsewhere later); redirects are never followed.
 * WEBHOOK_ALLOW_PRIVATE_TARGETS=true turns it off, for receivers on the same machine.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Why `url` may not receive webhooks, or null. A name that does not resolve now is let through
 * at subscription (DNS may be down) and checked again at each delivery.
 */
export async function webhookTargetProblem(url: string, options: { refuseUnresolved: boolean }): Promise<string | null> {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return 'not a URL';
  }
  if (isIP(host)) return isPrivateAddress(host) ? 'a private or local address' : null;
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true, verbatim: true });
  } catch {
    return options.refuseUnresolved ? 'a name that does not resolve' : null;
  }
  return addresses.some((a) => isPrivateAddress(a.address)) ? 'a name that resolves to a private or local address' : null;
}
