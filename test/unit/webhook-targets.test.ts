import { describe, expect, it } from 'vitest';
import { isPrivateAddress, webhookTargetProblem } from '../../src/webhooks/targets.js';

describe('webhook targets', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['10.1.2.3', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['100.64.0.1', true],
    ['0.0.0.0', true],
    ['224.0.0.1', true],
    ['255.255.255.255', true],
    ['::1', true],
    ['::', true],
    ['fd00::1', true],
    ['fe80::1', true],
    ['::ffff:127.0.0.1', true],
    ['::ffff:10.0.0.1', true],
    ['not an address', true],
    ['8.8.8.8', false],
    ['172.32.0.1', false],
    ['1.1.1.1', false],
    ['2606:4700:4700::1111', false],
    ['::ffff:8.8.8.8', false],
  ])('%s is private: %s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });

  it('reads the host the way a URL parser does: bracketed IPv6, numeric and hex IPv4', async () => {
    for (const url of ['http://[::1]:8080/x', 'http://2130706433/', 'http://0x7f.1/', 'http://127.1/', 'https://169.254.169.254/latest/meta-data']) {
      expect(await webhookTargetProblem(url, { refuseUnresolved: true }), url).toBe('a private or local address');
    }
    expect(await webhookTargetProblem('http://localhost:3000/hook', { refuseUnresolved: true })).toBe('a name that resolves to a private or local address');
    expect(await webhookTargetProblem('https://93.184.215.14/hook', { refuseUnresolved: true })).toBeNull();
    expect(await webhookTargetProblem('https://no-such-host.invalid/hook', { refuseUnresolved: true })).toBe('a name that does not resolve');
    expect(await webhookTargetProblem('https://no-such-host.invalid/hook', { refuseUnresolved: false })).toBeNull();
  });
});
