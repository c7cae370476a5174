import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  AddressNotAllowedError,
  isPrivateAddress,
  pinnedLookup,
  webhookTargetProblem,
} from '../../src/webhooks/targets.js';

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
    ['192.0.2.1', true],
    ['203.0.113.9', true],
    ['::ffff:7f00:1', true],
    ['::ffff:a9fe:a9fe', true],
    ['::7f00:1', true],
    ['::127.0.0.1', true],
    ['::ffff:0:7f00:1', true],
    ['64:ff9b::a00:5', true],
    ['64:ff9b:1::a9fe:a9fe', true],
    ['2002:7f00:1::', true],
    ['2001:0:4136:e378:8000:63bf:80ff:fffe', true],
    ['2001:db8::1', true],
    ['fec0::1', true],
    ['100::1', true],
    ['fd00:ec2::254', true],
    ['fe80::1%eth0', true],
    ['2a00:1450:4001:80b::200e', false],
    ['8.8.8.8', false],
    ['172.32.0.1', false],
    ['1.1.1.1', false],
    ['2606:4700:4700::1111', false],
    ['::ffff:8.8.8.8', false],
  ])('%s is private: %s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });

  it('reads the host the way a URL parser does: bracketed IPv6, numeric and hex IPv4', async () => {
    for (const url of [
      'http://[::1]:8080/x',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://127.1/',
      'https://169.254.169.254/latest/meta-data',
    ]) {
      expect(await webhookTargetProblem(url, { refuseUnresolved: true }), url).toBe('a private or local address');
    }
    expect(await webhookTargetProblem('http://localhost:3000/hook', { refuseUnresolved: true })).toBe(
      'a name that resolves to a private or local address',
    );
    expect(await webhookTargetProblem('https://93.184.215.14/hook', { refuseUnresolved: true })).toBeNull();
    expect(await webhookTargetProblem('https://no-such-host.invalid/hook', { refuseUnresolved: true })).toBe(
      'a name that does not resolve',
    );
    expect(await webhookTargetProblem('https://no-such-host.invalid/hook', { refuseUnresolved: false })).toBeNull();
    expect(await webhookTargetProblem('https://user:pass@93.184.215.14/hook', { refuseUnresolved: true })).toBe(
      'a URL with credentials in it',
    );
  });

  it('connects only to addresses it checked: a name resolving to loopback never reaches the server', async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits += 1;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, resolve));
    const port = (server.address() as AddressInfo).port;
    const send = (lookup?: typeof pinnedLookup) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: 'localhost', port, method: 'POST', ...(lookup ? { lookup } : {}) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end('{}');
      });
    try {
      await expect(send(pinnedLookup)).rejects.toBeInstanceOf(AddressNotAllowedError);
      expect(hits).toBe(0);
      expect(await send()).toBe(200); // the same request without the pinned lookup does arrive
      expect(hits).toBe(1);
    } finally {
      server.close();
    }
  });
});
