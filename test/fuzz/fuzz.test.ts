import { describe, expect, it } from 'vitest';
import { DEFAULT_SEED, fuzz } from './check.ts';

/** `npm run fuzz` runs 100,000 or more with a seed of its choice. */
const RUNS = 10_000;

describe('fuzzing factsFromObjects and recommend with arbitrary Kubernetes-shaped JSON', () => {
  it(`never throws and writes only statuses the CRD accepts (${RUNS} seeded cases)`, () => {
    const covered = fuzz(RUNS, DEFAULT_SEED);
    expect(covered.cases).toBe(RUNS);
    // Not vacuous: many dumps hold workloads kopek recommends for, and every verdict that
    // arbitrary objects can lead to comes up.
    expect(covered.withRecommendations).toBeGreaterThan(RUNS / 5);
    expect([...covered.verdicts]).toEqual(
      expect.arrayContaining([
        ...['Recommended', 'Possible', 'NotRecommended', 'AlreadyOptimized', 'NotApplicable'].map(
          (verdict) => `spot:${verdict}`,
        ),
        ...[
          'Recommended',
          'Possible',
          'NotRecommended',
          'AlreadyOptimized',
          'NotApplicable',
          'Unknown',
        ].map((verdict) => `arm64:${verdict}`),
        ...['Recommended', 'AlreadyOptimized', 'NotApplicable', 'Unknown'].map(
          (verdict) => `crossZone:${verdict}`,
        ),
      ]),
    );
  }, 300_000);
});
