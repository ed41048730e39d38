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
});
