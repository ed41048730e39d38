import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeApiError, KubeClient } from '../../operator/kube/client.ts';
import {
  Informer,
  type InformerObserver,
  type RelistReason,
  type WatchEndReason,
} from '../../operator/kube/informer.ts';
import { projectionFor, type Projected } from '../../operator/kube/projections.ts';
import { RESOURCES } from '../../operator/kube/resources.ts';
import { silentLogger } from '../../operator/log.ts';
import { LocalCluster } from '../cluster/cluster.ts';
import { FreezableProxy } from '../support/tcp-proxy.ts';

/** Records what an informer did, for assertions. */
function recorder(): InformerObserver & { relists: RelistReason[]; restarts: WatchEndReason[] } {
  const relists: RelistReason[] = [];
  const restarts: WatchEndReason[] = [];
  return {
    relists,
    restarts,
    relisted: (_resource, reason) => relists.push(reason),
    watchRestarted: (_resource, reason) => restarts.push(reason),
    event: () => undefined,
  };
}

function configMapInformer(
  client: KubeClient,
  observer: InformerObserver,
  idleTimeoutMs?: number,
): Informer<Projected> {
  const type = RESOURCES.namespaces;
  return new Informer<Projected>({
    type,
    client,
    project: projectionFor(type),
    log: silentLogger,
    observer,
    pageSize: 2,
    backoffInitialMs: 200,
    backoffMaxMs: 1000,
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
  });
}

describe('list-watch cache against a real API server', () => {
  let cluster: LocalCluster;
  let client: KubeClient;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    client = new KubeClient(cluster.connection());
    for (let i = 0; i < 5; i++) await cluster.kubectl(['create', 'namespace', `paged-${i}`]);
  });

  afterAll(async () => {
    await cluster.stop();
  });

  it('lists in pages, then follows changes through the watch', async () => {
    const observer = recorder();
    const informer = configMapInformer(client, observer);
    informer.start();
    await informer.waitForSync();
    // pageSize 2 over ≥ 9 namespaces: several pages, one consistent result.
    expect(informer.get('paged-4')).toBeDefined();
    expect(observer.relists).toEqual(['initial']);
    await cluster.kubectl(['create', 'namespace', 'watched']);
    await expect.poll(() => informer.get('watched') !== undefined, { timeout: 10_000 }).toBe(true);
    await cluster.kubectl(['delete', 'namespace', 'paged-0', '--wait=false']);
    await cluster.kubectl(['label', 'namespace', 'paged-1', 'team=checkout']);
    await expect
      .poll(() => informer.get('paged-1')?.metadata.labels?.team, { timeout: 10_000 })
      .toBe('checkout');
    await informer.stop();
  });

  it('relists when its resource version has expired (410 Gone)', async () => {
    const observer = recorder();
    const informer = configMapInformer(client, observer);
    informer.start();
    await informer.waitForSync();
    await informer.stop();
    // While it is away: a change it will miss, then a restart that empties the API server's
    // watch cache, so the informer's resource version is older than anything it can serve.
    await cluster.kubectl(['create', 'namespace', 'while-away']);
    await cluster.stopComponent('kube-apiserver');
    await cluster.startComponent('kube-apiserver');
    informer.start();
    await expect.poll(() => observer.relists, { timeout: 30_000 }).toEqual(['initial', 'expired']);
    expect(observer.restarts).toContain('expired');
    expect(informer.get('while-away')).toBeDefined();
    await cluster.kubectl(['create', 'namespace', 'after-relist']);
    await expect
      .poll(() => informer.get('after-relist') !== undefined, { timeout: 10_000 })
      .toBe(true);
    await informer.stop();
  });

  it('reconnects a watch that went silent and catches up', async () => {
    const proxy = new FreezableProxy(Number(new URL(cluster.server).port));
    await proxy.start();
    const config = { ...cluster.connection(), server: `https://127.0.0.1:${proxy.port}` };
    const observer = recorder();
    const informer = configMapInformer(new KubeClient(config), observer, 2000);
    informer.start();
    await informer.waitForSync();
    proxy.freeze();
    await cluster.kubectl(['create', 'namespace', 'during-silence']);
    await expect.poll(() => observer.restarts.includes('idle'), { timeout: 15_000 }).toBe(true);
    expect(informer.get('during-silence')).toBeUndefined();
    proxy.thaw();
    await expect
      .poll(() => informer.get('during-silence') !== undefined, { timeout: 20_000 })
      .toBe(true);
    await informer.stop();
    await proxy.stop();
  });

  it('backs off while the API server is down and resumes when it returns', async () => {
    const observer = recorder();
    const informer = configMapInformer(client, observer);
    informer.start();
    await informer.waitForSync();
    await cluster.stopComponent('kube-apiserver');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(observer.restarts).toContain('error');
    await cluster.startComponent('kube-apiserver');
    await cluster.kubectl(['create', 'namespace', 'after-outage']);
    await expect
      .poll(() => informer.get('after-outage') !== undefined, { timeout: 30_000 })
      .toBe(true);
    await informer.stop();
  });

  it('applies without reading the answer: the object is written, and a refusal is an error', async () => {
    const seen: [string, string, number][] = [];
    const observedClient = new KubeClient(cluster.connection(), {
      observe: (verb, resource, status) => seen.push([verb, resource, status]),
    });
    const service = (
      name: string,
    ): {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace: string };
      spec: Record<string, unknown>;
    } => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { selector: { app: name }, ports: [{ port: 80 }] },
    });
    const options = { fieldManager: 'kopek-test', force: true };
    for (let i = 0; i < 3; i++)
      await expect(
        observedClient.applyUnread(RESOURCES.services, service(`unread-${i}`), options),
      ).resolves.toBeUndefined();
    const written = await client.get<{ spec: { selector: Record<string, string> } }>(
      RESOURCES.services,
      'unread-2',
      'default',
    );
    expect(written.spec.selector).toEqual({ app: 'unread-2' });
    // A port out of range: the API server refuses it as invalid, and says why.
    const invalid = service('invalid-port');
    invalid.spec.ports = [{ port: 70000 }];
    const refused = observedClient.applyUnread(RESOURCES.services, invalid, options);
    await expect(refused).rejects.toBeInstanceOf(KubeApiError);
    await expect(refused).rejects.toMatchObject({ status: 422, reason: 'Invalid' });
    await expect(refused).rejects.toThrow(/70000/);
    expect(seen.map(([verb, resource, status]) => `${verb} ${resource} ${status}`)).toEqual([
      'apply services 201',
      'apply services 201',
      'apply services 201',
      'apply services 422',
    ]);
  });
});
