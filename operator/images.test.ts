import { describe, expect, it } from 'vitest';
import { imageRequests, RegistryImageSource } from './images.ts';
import { silentLogger } from './log.ts';
import type { ImageResolution } from './registry/client.ts';

const workload = (kind: string, name: string, podSpec: unknown, namespace = 'shop') => ({
  apiVersion: kind === 'CronJob' ? 'batch/v1' : 'apps/v1',
  kind,
  metadata: { name, namespace },
  spec:
    kind === 'CronJob'
      ? { schedule: '@daily', jobTemplate: { spec: { template: { spec: podSpec } } } }
      : { template: { spec: podSpec } },
});

describe('imageRequests', () => {
  it('finds the images in a DeploymentList, as `kubectl get deploy -o json` prints it', () => {
    const list = {
      apiVersion: 'apps/v1',
      kind: 'DeploymentList',
      items: [
        workload('Deployment', 'web', { containers: [{ name: 'web', image: 'nginx:1.27' }] }),
        workload('Deployment', 'api', { containers: [{ name: 'api', image: 'ghcr.io/a/api:2' }] }),
      ],
    };
    expect(imageRequests([list])).toEqual([
      { image: 'nginx:1.27', namespace: 'shop', pullSecrets: [] },
      { image: 'ghcr.io/a/api:2', namespace: 'shop', pullSecrets: [] },
    ]);
  });

  it('reads nested Lists, CronJobs, init containers and pull secrets, and skips Pods', () => {
    const objects = [
      {
        apiVersion: 'v1',
        kind: 'List',
        items: [
          workload(
            'CronJob',
            'report',
            {
              imagePullSecrets: [{ name: 'regcred' }, {}],
              initContainers: [{ name: 'init', image: 'busybox:1' }],
              containers: [{ name: 'report', image: 'private.example/report:3' }, { name: 'x' }],
            },
            'batch',
          ),
          {
            apiVersion: 'v1',
            kind: 'PodList',
            items: [
              {
                apiVersion: 'v1',
                kind: 'Pod',
                metadata: { name: 'p', namespace: 'shop' },
                spec: { containers: [{ name: 'c', image: 'not-from-a-pod:1' }] },
              },
            ],
          },
        ],
      },
      workload('StatefulSet', 'db', 'not a pod spec'),
      'not an object',
      null,
    ];
    expect(imageRequests(objects)).toEqual([
      { image: 'private.example/report:3', namespace: 'batch', pullSecrets: ['regcred'] },
      { image: 'busybox:1', namespace: 'batch', pullSecrets: ['regcred'] },
    ]);
  });
});

describe('RegistryImageSource', () => {
  const DIGEST = `sha256:${'b'.repeat(64)}`;

  it('gives each image once: its platforms and digest, or the error within the CRD limit', async () => {
    const asked: string[] = [];
    const registry = {
      resolve: (image: string): Promise<ImageResolution> => {
        asked.push(image);
        return Promise.resolve(
          image === 'broken:1'
            ? { image, error: { kind: 'registry-error', message: 'm'.repeat(5000) } }
            : { image, digest: DIGEST, platforms: ['linux/amd64', 'linux/arm64'] },
        );
      },
    };
    const source = new RegistryImageSource({ registry, log: silentLogger, readPullSecrets: false });
    const request = (image: string, namespace: string) => ({ image, namespace, pullSecrets: [] });
    const facts = await source.resolve([
      request('nginx:1.27', 'shop'),
      request('broken:1', 'shop'),
      request('nginx:1.27', 'batch'),
    ]);
    expect(asked).toEqual(['nginx:1.27', 'broken:1']);
    expect(facts['nginx:1.27']).toEqual({
      platforms: ['linux/amd64', 'linux/arm64'],
      digest: DIGEST,
    });
    expect(facts['broken:1']).toEqual({ error: `${'m'.repeat(1023)}…` });
  });
});
