import { describe, expect, it } from 'vitest';
import { matchesSelector, resolvePolicy, selectPolicy } from './policy.ts';

describe('policies', () => {
  it('fills in the CRD defaults', () => {
    expect(resolvePolicy({}, 'p')).toEqual({
      name: 'p',
      mode: 'Recommend',
      spot: {
        enabled: true,
        minReplicas: 2,
        maxTerminationGracePeriodSeconds: 90,
        placement: 'Preferred',
      },
      arm64: { enabled: true, placement: 'Preferred' },
      crossZone: { enabled: true, minMonthlySavingsUSD: 10 },
      apply: {
        actions: [],
        requireApproval: true,
        maxConcurrent: 1,
        cooldownSeconds: 3600,
        progressTimeoutSeconds: 600,
        rollbackOnFailure: true,
        allowGitOpsManaged: false,
      },
    });
    expect(
      resolvePolicy({ crossZone: { minMonthlySavingsUSD: '25' } }).crossZone.minMonthlySavingsUSD,
    ).toBe(25);
  });

  it('matches label selectors', () => {
    expect(matchesSelector(undefined, {})).toBe(true);
    expect(
      matchesSelector(
        { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['x'] }] },
        { a: 'y' },
      ),
    ).toBe(true);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: 'y' }),
    ).toBe(false);
    expect(
      matchesSelector({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: 'y' }),
    ).toBe(true);
  });

  it('breaks priority ties by name, and without a match uses the defaults', () => {
    const p = (name: string) => ({
      apiVersion: 'kopek.dev/v1alpha1' as const,
      kind: 'SavingsPolicy' as const,
      metadata: { name },
      spec: { priority: 1 },
    });
    expect(selectPolicy([p('b'), p('a')], {}, {}).name).toBe('a');
    expect(selectPolicy([], {}, {}).name).toBeUndefined();
  });
});
