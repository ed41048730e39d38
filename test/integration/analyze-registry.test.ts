import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import { LocalRegistry } from '../registry/registry.ts';
import { pushImage, pushIndex } from '../registry/seed.ts';
import { KOPEK_CLI } from '../support/kopek.ts';

const run = promisify(execFile);

/**
 * A dump with one node and three Deployments: one multi-arch, one with an amd64-only sidecar,
 * one whose image is missing.
 */
function dump(registry: string): string {
  const deployment = (name: string, images: string[]): Record<string, unknown> => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'shop', uid: `uid-${name}` },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: images.map((image, i) => ({
            name: `c${i}`,
            image,
            resources: { requests: { cpu: '1', memory: '1Gi' } },
          })),
        },
      },
    },
  });
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: 'n1',
      labels: {
        'topology.kubernetes.io/zone': 'us-east-1a',
        'topology.kubernetes.io/region': 'us-east-1',
        'node.kubernetes.io/instance-type': 'm6i.xlarge',
        'kubernetes.io/arch': 'amd64',
      },
    },
    status: { capacity: { cpu: '4', memory: '16Gi' } },
  };
  const deployments = [
    deployment('web', [`${registry}/shop/web:1`]),
    deployment('api', [`${registry}/shop/web:1`, `${registry}/shop/shipper:1`]),
    deployment('ghost', [`${registry}/shop/missing:1`]),
  ];
  // Two documents: a v1 List, and the Deployments as the API lists them (a DeploymentList).
  return [
    stringify({ apiVersion: 'v1', kind: 'List', items: [node] }),
    stringify({ apiVersion: 'apps/v1', kind: 'DeploymentList', items: deployments }),
  ].join('---\n');
}

describe('kopek analyze --registry-lookup against a real registry', () => {
  let dir: string;
  let registry: LocalRegistry;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kopek-analyze-registry-'));
    registry = await LocalRegistry.start({ dir, name: 'analyze-registry' });
    await pushIndex(
      { url: registry.url },
      'shop/web',
      '1',
      [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
      'oci',
    );
    await pushImage(
      { url: registry.url },
      'shop/shipper',
      '1',
      { os: 'linux', architecture: 'amd64' },
      'docker',
    );
    await writeFile(join(dir, 'dump.yaml'), dump(registry.host));
  });

  afterAll(async () => {
    await registry.component.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('decides arm64 from what the registry says', async () => {
    const { stdout } = await run(process.execPath, [
      KOPEK_CLI,
      'analyze',
      '-f',
      join(dir, 'dump.yaml'),
      '--registry-lookup',
      '--insecure-registries',
      registry.host,
      '-o',
      'json',
      '-q',
    ]);
    const list = JSON.parse(stdout) as { items: WorkloadRecommendation[] };
    const arm64 = (name: string): WorkloadRecommendation['status'] =>
      list.items.find((item) => item.spec.targetRef.name === name)?.status;
    expect(arm64('web')?.arm64?.verdict).toBe('Recommended');
    expect(arm64('web')?.arm64?.images?.[0]?.platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(arm64('api')?.arm64?.verdict).toBe('NotRecommended');
    expect(
      arm64('api')?.arm64?.reasons?.find((reason) => reason.code === 'ImageAmd64Only')?.message,
    ).toContain('c1');
    expect(arm64('ghost')?.arm64?.verdict).toBe('Unknown');
    expect(
      arm64('ghost')?.arm64?.reasons?.find((reason) => reason.code === 'ImagePlatformsUnreadable')
        ?.message,
    ).toContain('not found');
  });
});
