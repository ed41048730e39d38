import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { deployment, NODES, pod } from './testing.ts';

describe('running pods', () => {
  it("counts a pod's requests like the scheduler: init containers, sidecars, overhead", () => {
    const spec = {
      initContainers: [
        { name: 'migrate', image: 'm', resources: { requests: { cpu: '2', memory: '1Gi' } } },
        {
          name: 'proxy',
          image: 'p',
          restartPolicy: 'Always',
          resources: { requests: { cpu: '250m', memory: '256Mi' } },
        },
      ],
      containers: [
        { name: 'app', image: 'a', resources: { requests: { cpu: '500m', memory: '1Gi' } } },
      ],
      overhead: { cpu: '100m', memory: '64Mi' },
    };
    const objects = [
      NODES[0],
      deployment('web'),
      pod(
        'web-1',
        'shop',
        'n-a',
        { kind: 'ReplicaSet', name: 'web-1a2b' },
        { 'pod-template-hash': '1a2b' },
        spec,
      ),
    ];
    const p = factsFromObjects(objects).facts[0]?.pods[0];
    // CPU: max(0.5 + 0.25, 2) + 0.1 = 2.1; memory: max(1Gi + 256Mi, 1Gi) + 64Mi.
    expect(p?.cpuRequestCores).toBeCloseTo(2.1, 12);
    expect(p?.memoryRequestBytes).toBe((1024 + 256 + 64) * 1024 ** 2);
  });
});
