import { describe, expect, it } from 'vitest';
import { imageRequests } from './images.ts';

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
