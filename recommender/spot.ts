/**
 * Spot suitability: can this workload's pods take a two-minute interruption notice? Every
 * signal of DESIGN.md ("Decisions", Spot) becomes a finding with a stable code; the verdict and
 * score follow from reasons.ts, the money from savings.ts.
 *
 * The rules live by concern: spot-workload.ts (the workload's own shape), spot-capacity.ts
 * (interruption risk and instance-type diversity in its region), containers.ts (datastores and
 * helper containers).
 */
import type { SpotResult } from './api/v1alpha1.ts';
import { ANNOTATION_SPOT, effectiveReplicas, type WorkloadFacts } from './facts.ts';
import { formatUSD, type PriceBook } from './pricing.ts';
import { ownerFindings } from './owner.ts';
import { finding, listOf, notePatch, plural, result, verdictOf, type Finding } from './reasons.ts';
import { estimateCost, pricingFindings } from './savings.ts';
import { CAPACITY_KEYS, hardConstraint, normalizeCapacity } from './scheduling.ts';
import { riskFindings } from './spot-capacity.ts';
import { BATCH_KINDS, workloadFindings } from './spot-workload.ts';

/** Requires that the suggested patch itself fixes (so the change stays actionable). */
export const SPOT_FIXED_BY_PATCH: ReadonlySet<string> = new Set([
  'OnDemandPinned',
  'ReplicasOnOneNode',
]);

/** A Spot evaluation: the API result, and whether the suggested patch should make the move. */
export interface SpotEvaluation {
  result: SpotResult;
  /** Recommended, or Possible only for reasons the suggested patch fixes. */
  actionable: boolean;
  /** It runs on Spot although something blocks Spot: the suggested patch moves it off. */
  atRisk: boolean;
}

function notApplicable(code: string, message: string): SpotEvaluation {
  return {
    result: result('NotApplicable', [finding(code, 'Info', message)], '0.00'),
    actionable: false,
    atRisk: false,
  };
}

function alreadyOnSpot(facts: WorkloadFacts): { all: boolean; some: number; required: boolean } {
  const some = facts.pods.filter((p) => p.node?.capacityType === 'spot').length;
  const hard = hardConstraint(facts.template, CAPACITY_KEYS, normalizeCapacity);
  const required =
    hard?.allowed !== undefined &&
    hard.allowed.length > 0 &&
    hard.allowed.every((v) => v === 'spot');
  return { all: facts.pods.length > 0 && some === facts.pods.length, some, required };
}

/** Decides whether the workload should move to Spot capacity. */
export function evaluateSpot(facts: WorkloadFacts, book: PriceBook): SpotEvaluation {
  if (!facts.policy.spot.enabled) {
    return notApplicable(
      'DisabledByPolicy',
      `SavingsPolicy ${facts.policy.name ?? '(default)'} turns Spot off for this workload.`,
    );
  }
  if (facts.annotations[ANNOTATION_SPOT] === 'never') {
    return notApplicable('OptedOut', `The workload is annotated ${ANNOTATION_SPOT}: "never".`);
  }
  if (facts.kind === 'DaemonSet') {
    return notApplicable('DaemonSetRunsEverywhere', 'A DaemonSet runs on every node, Spot or not.');
  }
  if (!BATCH_KINDS.has(facts.kind) && effectiveReplicas(facts) === 0 && facts.pods.length === 0) {
    return notApplicable(
      'ScaledToZero',
      'It is scaled to zero replicas; there is nothing to place.',
    );
  }

  const findings: Finding[] = [
    ...ownerFindings(facts),
    ...workloadFindings(facts),
    ...riskFindings(facts, book),
  ];
  const spotCapacity = facts.cluster.capacityTypes.includes('spot');
  const on = alreadyOnSpot(facts);
  if (on.some > 0 && !on.all) {
    findings.push(
      finding(
        'PartlyOnSpot',
        'Info',
        `${on.some} of ${facts.pods.length} running pods are already on Spot nodes.`,
      ),
    );
  }
  if (!spotCapacity && !on.required && facts.cluster.capacityTypes.length > 0) {
    findings.push(
      finding(
        'NoSpotNodesYet',
        'Info',
        'No node in the cluster is Spot yet: the node pool (Karpenter NodePool or node group) must allow Spot capacity.',
      ),
    );
  }

  const estimate = estimateCost(facts, book, { spot: true, arm64: false });
  findings.push(...pricingFindings(facts, book, estimate));
  const missingPrice = estimate.unpriced.length > 0;
  if (missingPrice) {
    findings.push(
      finding(
        'NoPrice',
        'Info',
        estimate.unpricedTypes.length > 0
          ? `No price for ${listOf(estimate.unpricedTypes)} in the ${book.source.toLowerCase()} prices.`
          : `${plural(estimate.unpriced.length, 'pod')} run on nodes without an instance-type label, so they cannot be priced.`,
      ),
    );
  }

  const blocked = findings.some((f) => f.effect === 'Blocks');
  if ((on.all || on.required) && !blocked) {
    const message = on.all
      ? `All ${plural(facts.pods.length, 'running pod')} are on Spot nodes.`
      : 'Its node affinity already requires Spot capacity.';
    return {
      result: result(
        'AlreadyOptimized',
        [finding('AlreadyOnSpot', 'Info', message), ...findings],
        '0.00',
      ),
      actionable: false,
      atRisk: false,
    };
  }
  if (blocked && (on.all || on.required || on.some > 0))
    return atRiskOnSpot(facts, book, on, findings);
  const noPriceAtAll = missingPrice && estimate.unpriced.length === facts.pods.length;
  const verdict = verdictOf(findings, noPriceAtAll);
  const savings =
    verdict === 'Recommended' || verdict === 'Possible'
      ? formatUSD(estimate.savingsMonthly)
      : '0.00';
  // Possible only because of a pin the suggested patch removes: the patch makes the move.
  const afterPatch = findings.filter(
    (f) => !(f.effect === 'Requires' && SPOT_FIXED_BY_PATCH.has(f.code)),
  );
  const actionable =
    verdict === 'Recommended' ||
    (verdict === 'Possible' && verdictOf(afterPatch, noPriceAtAll) === 'Recommended');
  const explained = actionable ? notePatch(findings, SPOT_FIXED_BY_PATCH) : findings;
  return { result: result(verdict, explained, savings), actionable, atRisk: false };
}

/**
 * A workload kopek would not put on Spot that runs there already: NotRecommended, and the risk
 * said in a reason, in the Ready condition (recommend.ts) and with what moving it to on-demand
 * costs; the suggested patch makes that move (patch.ts). Apply never makes it on its own.
 */
function atRiskOnSpot(
  facts: WorkloadFacts,
  book: PriceBook,
  on: ReturnType<typeof alreadyOnSpot>,
  findings: readonly Finding[],
): SpotEvaluation {
  const move = estimateCost(facts, book, { spot: false, arm64: false, onDemand: true });
  const cost = formatUSD(Math.max(0, move.targetMonthly - move.currentMonthly));
  const where = on.all
    ? `All ${plural(facts.pods.length, 'running pod')} run`
    : on.some > 0
      ? `${on.some} of ${plural(facts.pods.length, 'running pod')} run`
      : 'Its node affinity requires it to run';
  const atRisk = finding(
    'AtRiskOnSpot',
    'Info',
    `${where} on Spot, which the reasons above rule out: the suggested patch moves it to on-demand capacity, for ${cost} USD more a month.`,
  );
  return {
    result: {
      ...result('NotRecommended', [...findings, atRisk], '0.00'),
      moveToOnDemandMonthlyCostUSD: cost,
    },
    actionable: false,
    atRisk: true,
  };
}
