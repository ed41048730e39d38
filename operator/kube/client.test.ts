import { mkdtempSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { systemClock } from '../clock.ts';
import { selfSignedCertificate } from '../metrics-tls.ts';
import { KubeClient } from './client.ts';
import { loadKubeConfig, type KubeConnection } from './kubeconfig.ts';
import { RESOURCES } from './resources.ts';

let server: Server | undefined;
afterEach(async () => {
  const closing = server;
  server = undefined;
  if (!closing) return;
  closing.closeAllConnections();
  await new Promise((resolve) => {
    closing.close(resolve);
  });
});

/**
 * An HTTPS server that answers every GET with an empty Namespace (a watch as `watch` says), and counts the TLS connections
 * opened to it and the Authorization headers it was sent.
 */
async function apiServer(watch?: (response: ServerResponse) => void): Promise<{
  /** A connection from a kubeconfig file whose user is `user` (kubeconfig fields). */
  config: (user: Record<string, unknown>) => KubeConnection;
  connections: () => number;
  authorizations: string[];
}> {
  const pair = selfSignedCertificate(['127.0.0.1'], systemClock);
  let connections = 0;
  const authorizations: string[] = [];
  server = createServer({ cert: pair.cert, key: pair.key }, (request, response) => {
    authorizations.push(request.headers.authorization ?? '');
    response.setHeader('content-type', 'application/json');
    if (watch && request.url?.includes('watch=true')) {
      watch(response);
      return;
    }
    response.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } }));
  });
  server.on('secureConnection', () => connections++);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    config: (user) =>
      loadKubeConfig(
        writeKubeconfig(mkdtempSync(join(tmpdir(), 'kopek-kubeconfig-')), [
          {
            name: 'local',
            cluster: {
              server: `https://127.0.0.1:${port}`,
              'certificate-authority-data': Buffer.from(pair.cert).toString('base64'),
            },
            user,
          },
        ]),
      ),
    connections: () => connections,
    authorizations,
  };
}

describe('KubeClient', () => {
  it('keeps one connection pool: requests one after another reuse its few TLS connections', async () => {
    const api = await apiServer();
    const client = new KubeClient(api.config({ token: 'the-token' }));
    for (let i = 0; i < 30; i++) await client.get(RESOURCES.namespaces, 'a');
    // A new pool per request would mean a new TLS connection for every request (30). The
    // pool may open a second one while the first is still marked busy after its answer.
    expect(api.connections()).toBeLessThanOrEqual(2);
    expect(api.authorizations).toEqual(Array<string>(30).fill('Bearer the-token'));
  });

  it("tells the observer each response's verb, resource, status and time taken", async () => {
    const api = await apiServer();
    const seen: [string, string, number, number | undefined][] = [];
    const client = new KubeClient(api.config({ token: 'the-token' }), {
      observe: (verb, resource, status, seconds) => seen.push([verb, resource, status, seconds]),
    });
    const before = performance.now();
    await client.get(RESOURCES.namespaces, 'a');
    const elapsed = (performance.now() - before) / 1000;
    expect(seen).toHaveLength(1);
    const [verb, resource, status, seconds] = seen[0] ?? [];
    expect([verb, resource, status]).toEqual(['get', 'namespaces', 200]);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(elapsed);
  });

  it('answers requests sent all at once, on the one pool', async () => {
    const api = await apiServer();
    const client = new KubeClient(api.config({ token: 'the-token' }));
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => client.get<{ kind: string }>(RESOURCES.namespaces, 'a')),
    );
    expect(answers.map((answer) => answer.kind)).toEqual(Array<string>(20).fill('Namespace'));
    for (let i = 0; i < 20; i++) await client.get(RESOURCES.namespaces, 'a');
    // The connections the burst opened are reused afterwards: none more.
    expect(api.connections()).toBeLessThanOrEqual(20);
  });

  it('reads watch events cut anywhere, inside a line or a character, and several in one chunk', async () => {
    const sent = ['café', 'ünïcödé-€', '🚀-rocket', 'plain'].map((name, i) => ({
      type: 'MODIFIED',
      object: { kind: 'Namespace', metadata: { name, resourceVersion: String(i) } },
    }));
    const stream = Buffer.from(sent.map((event) => `${JSON.stringify(event)}\n`).join('\n'));
    const api = await apiServer((response) => {
      // 7 bytes at a time cuts lines and multi-byte characters; the last pieces go at once.
      const pieces: Buffer[] = [];
      for (let at = 0; at < stream.length - 120; at += 7) pieces.push(stream.subarray(at, at + 7));
      pieces.push(stream.subarray(pieces.length * 7));
      const writeNext = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) {
          response.end();
          return;
        }
        response.write(piece);
        setTimeout(writeNext, 1);
      };
      writeNext();
    });
    const client = new KubeClient(api.config({ token: 'the-token' }));
    const received: unknown[] = [];
    await client.watch(
      RESOURCES.namespaces,
      { resourceVersion: '0', timeoutSeconds: 30, signal: new AbortController().signal },
      (event) => received.push(event),
    );
    expect(received).toEqual(sent);
  });

  it('makes a new pool when the client certificate is rotated', async () => {
    const api = await apiServer();
    const dir = await mkdtemp(join(tmpdir(), 'kopek-client-'));
    try {
      const writePair = async (): Promise<void> => {
        const pair = selfSignedCertificate(['kopek'], systemClock);
        await writeFile(join(dir, 'tls.crt'), pair.cert);
        await writeFile(join(dir, 'tls.key'), pair.key);
      };
      await writePair();
      const client = new KubeClient(
        api.config({
          'client-certificate': join(dir, 'tls.crt'),
          'client-key': join(dir, 'tls.key'),
        }),
      );
      for (let i = 0; i < 5; i++) await client.get(RESOURCES.namespaces, 'a');
      const before = api.connections();
      await writePair();
      for (let i = 0; i < 5; i++) await client.get(RESOURCES.namespaces, 'a');
      // The old pool's connections carry the old certificate: the new one needs its own.
      expect(api.connections()).toBeGreaterThan(before);
      expect(api.connections()).toBeLessThanOrEqual(before + 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sends basic credentials', async () => {
    const api = await apiServer();
    const client = new KubeClient(api.config({ username: 'ada', password: 'secret' }));
    await client.get(RESOURCES.namespaces, 'a');
    expect(api.authorizations).toEqual([`Basic ${Buffer.from('ada:secret').toString('base64')}`]);
  });
});
