import { describe, expect, it } from 'vitest';
import { SNAPSHOT_PRICES } from '../pricing.ts';
import { recommend } from '../recommend.ts';
import { estimateCost } from '../savings.ts';
import { goodFacts } from '../testing.ts';
import { evaluateActions, expectedSavings, realizedSavings } from './savings.ts';

const facts = goodFacts();
const evaluation = evaluateActions(facts, SNAPSHOT_PRICES);

describe('the money of an apply', () => {
  it('evaluates each action as the recommender does', () => {
    const status = recommend(facts, SNAPSHOT_PRICES);
    expect(evaluation.actionable).toEqual({
      Spot: status.spot?.verdict === 'Recommended',
      Arm64: status.arm64?.verdict === 'Recommended',
      CrossZone: status.crossZone?.verdict === 'Recommended',
    });
    expect(evaluation.actionable).toEqual({ Spot: true, Arm64: true, CrossZone: true });
    expect(evaluation.crossZone.services.map((s) => s.name)).toEqual(['checkout']);
  });

  it('prices Spot and arm64 together on the combined target, split so the parts add up', () => {
    const [spot, arm64] = expectedSavings(facts, SNAPSHOT_PRICES, ['Spot', 'Arm64'], evaluation);
    const spotAlone = estimateCost(facts, SNAPSHOT_PRICES, {
      spot: true,
      arm64: false,
    }).savingsMonthly;
    const both = estimateCost(facts, SNAPSHOT_PRICES, { spot: true, arm64: true }).savingsMonthly;
    expect(spot).toEqual({ action: 'Spot', monthlySavingsUSD: spotAlone.toFixed(2) });
    expect(Number(spot?.monthlySavingsUSD) + Number(arm64?.monthlySavingsUSD)).toBeCloseTo(both, 1);
    expect(both).toBeLessThan(
      spotAlone + estimateCost(facts, SNAPSHOT_PRICES, { spot: false, arm64: true }).savingsMonthly,
    );
  });

  it('arm64 alone saves what arm64 alone saves', () => {
    expect(expectedSavings(facts, SNAPSHOT_PRICES, ['Arm64'], evaluation)).toEqual([
      {
        action: 'Arm64',
        monthlySavingsUSD: estimateCost(facts, SNAPSHOT_PRICES, {
          spot: false,
          arm64: true,
        }).savingsMonthly.toFixed(2),
      },
    ]);
  });

  it('realizes the share of the new pods that landed on the target, and keeps earlier savings', () => {
    expect(
      realizedSavings(
        [{ action: 'Spot', monthlySavingsUSD: '100.00' }],
        [{ action: 'Arm64', monthlySavingsUSD: '30.00' }],
        (action) => (action === 'Arm64' ? 2 / 3 : 0),
      ),
    ).toEqual([
      { action: 'Spot', monthlySavingsUSD: '100.00' },
      { action: 'Arm64', monthlySavingsUSD: '20.00' },
    ]);
  });
});
