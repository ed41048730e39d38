/**
 * The money of an apply: which actions the recommender finds actionable now (the same
 * evaluations recommend() makes), what each applied action is expected to save, and what
 * stays realized once the rollout shows where the new pods run.
 */
import type { ActionSavings, Optimization, Verdict } from '../api/v1alpha1.ts';
import { evaluateArm64 } from '../arm64.ts';
import { evaluateCrossZone, type CrossZonePlan } from '../cross-zone.ts';
import type { WorkloadFacts } from '../facts.ts';
import { formatUSD, type PriceBook } from '../pricing.ts';
import { estimateCost } from '../savings.ts';
import { evaluateSpot } from '../spot.ts';

export interface ActionEvaluation {
  /** Per action: Recommended, or Possible with only what the patch itself does required. */
  actionable: Record<Optimization, boolean>;
  /** Per action, the verdict the recommendation shows (to say why one is not actionable). */
  verdicts: Record<Optimization, Verdict>;
  /** What the cross-zone fix changes (Services, a zone spread). */
  crossZone: CrossZonePlan;
  crossZoneSavingsUSD: number;
}

export function evaluateActions(facts: WorkloadFacts, prices: PriceBook): ActionEvaluation {
  const spot = evaluateSpot(facts, prices);
  const arm64 = evaluateArm64(facts, prices);
  const crossZone = evaluateCrossZone(facts);
  return {
    actionable: {
      Spot: spot.actionable,
      Arm64: arm64.actionable,
      CrossZone: crossZone.actionable,
    },
    verdicts: {
      Spot: spot.result.verdict,
      Arm64: arm64.result.verdict,
      CrossZone: crossZone.result.verdict,
    },
    crossZone: crossZone.plan,
    crossZoneSavingsUSD: Number(crossZone.result.monthlySavingsUSD),
  };
}

/**
 * What each action of one apply is expected to save a month. Spot and arm64 together are
 * priced on the combined target (arm64 on Spot) and split so the parts add up to it: Spot its
 * own savings, arm64 the rest.
 */
export function expectedSavings(
  facts: WorkloadFacts,
  prices: PriceBook,
  actions: readonly Optimization[],
  evaluation: ActionEvaluation,
): ActionSavings[] {
  const spot = actions.includes('Spot');
  const arm64 = actions.includes('Arm64');
  const spotOnly = spot
    ? estimateCost(facts, prices, { spot: true, arm64: false }).savingsMonthly
    : 0;
  const both = estimateCost(facts, prices, { spot, arm64 }).savingsMonthly;
  const out: ActionSavings[] = [];
  if (spot) out.push({ action: 'Spot', monthlySavingsUSD: formatUSD(spotOnly) });
  if (arm64)
    out.push({ action: 'Arm64', monthlySavingsUSD: formatUSD(Math.max(0, both - spotOnly)) });
  if (actions.includes('CrossZone'))
    out.push({ action: 'CrossZone', monthlySavingsUSD: formatUSD(evaluation.crossZoneSavingsUSD) });
  return out;
}

/**
 * The realized savings after a change succeeded: the earlier ones kept, each applied action's
 * expected savings times the share of its new pods that landed where it puts them.
 */
export function realizedSavings(
  earlier: readonly ActionSavings[],
  expected: readonly ActionSavings[],
  share: (action: Optimization) => number,
): ActionSavings[] {
  const out = new Map(earlier.map((s) => [s.action, s]));
  for (const s of expected)
    out.set(s.action, {
      action: s.action,
      monthlySavingsUSD: formatUSD(Number(s.monthlySavingsUSD) * share(s.action)),
    });
  const order: Optimization[] = ['Spot', 'Arm64', 'CrossZone'];
  return order.flatMap((action) => {
    const s = out.get(action);
    return s ? [s] : [];
  });
}
