import { describe, expect, it } from 'vitest';
import { factsFromObjects } from '../facts-from-objects.ts';
import { deployment } from './testing.ts';

describe('PodDisruptionBudgets', () => {
  it('computes a PDB allowance from minAvailable', () => {
    const pdb = (minAvailable: number | string) => ({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'p', namespace: 'shop' },
      spec: { minAvailable, selector: { matchLabels: { app: 'web' } } },
    });
    expect(
      factsFromObjects([deployment('web', 'shop', { replicas: 3 }), pdb(2)]).facts[0]?.pdb
        ?.disruptionsAllowed,
    ).toBe(1);
    expect(
      factsFromObjects([deployment('web', 'shop', { replicas: 3 }), pdb('100%')]).facts[0]?.pdb
        ?.disruptionsAllowed,
    ).toBe(0);
  });

  it.each([
    [{ matchExpressions: {} }, '{"matchExpressions":{}}'],
    [
      { matchExpressions: [{ key: 'app', operator: 'In', values: 'web' }] },
      '{"matchExpressions":[{"key":"app","operator":"In","values":"web"}]}',
    ],
    [{ matchLabels: { app: 7 } }, '{"matchLabels":{"app":7}}'],
  ])(
    'ignores a PDB whose selector is %j, with one warning, and uses the others',
    (selector, shown) => {
      const budget = (name: string, sel: unknown, maxUnavailable: number) => ({
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name, namespace: 'shop' },
        spec: { maxUnavailable, selector: sel },
      });
      const objects = [
        deployment('web', 'shop', { replicas: 3 }),
        deployment('api', 'shop', { replicas: 3 }),
        budget('broken', selector, 0),
        budget('good', { matchLabels: { app: 'web' } }, 1),
      ];
      let built: ReturnType<typeof factsFromObjects> | undefined;
      expect(() => (built = factsFromObjects(objects))).not.toThrow();
      expect(built?.facts.map((f) => [f.name, f.pdb])).toEqual([
        ['api', undefined],
        ['web', { name: 'good', disruptionsAllowed: 1 }],
      ]);
      expect(built?.warnings).toEqual([
        `PodDisruptionBudget shop/broken: spec.selector ${shown} is not a label selector; ignored`,
      ]);
    },
  );
});
