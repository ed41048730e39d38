/**
 * facts → recommendation: the three evaluations, the money on the combined target, the
 * suggested patch, and the WorkloadRecommendation object exactly as the operator writes it.
 * Pure and deterministic: no clock (callers pass the condition time), sorted lists.
 */
import { createHash } from 'node:crypto';
import {
  API_VERSION,
  type Condition,
  type PlacementInfo,
  type Reason,
  type Verdict,
  type WorkloadKind,
  type WorkloadRecommendation,
  type WorkloadRecommendationStatus,
} from './api/v1alpha1.ts';
import { ARM64_FIXED_BY_PATCH, evaluateArm64 } from './arm64.ts';
import { CROSS_ZONE_FIXED_BY_PATCH, evaluateCrossZone } from './cross-zone.ts';
import type { WorkloadFacts } from './facts.ts';
import { suggestPatch } from './patch.ts';
import { SNAPSHOT_PRICES, formatUSD, pricesAsOf, type PriceBook } from './pricing.ts';
import { clip } from './reasons.ts';
import { CURRENT, estimateCost, pricingRegion } from './savings.ts';
import { ownerName } from './owner.ts';
import { SPOT_FIXED_BY_PATCH, evaluateSpot } from './spot.ts';
import { withGitOpsNote } from './apply/gitops.ts';

/** The Ready condition without its lastTransitionTime (the caller stamps it). */
export type ReadyCondition = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

const MAX_NAME = 253;
const HASH_LENGTH = 10;

/**
 * The WorkloadRecommendation's name: `<kind>-<name>` lower-case; over 253 characters it is cut
 * and ends in `-` plus the first 10 hex digits of the SHA-256 of the full name, so that two
 * long names never collide.
 */
export function recommendationName(kind: string, name: string): string {
  const full = `${kind}-${name}`.toLowerCase();
  if (full.length <= MAX_NAME) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, HASH_LENGTH);
  const head = full.slice(0, MAX_NAME - HASH_LENGTH - 1).replace(/[-.]+$/, '');
  return `${head}-${hash}`;
}

function sortedUnique(values: readonly (string | undefined)[], max: number): string[] {
  return [...new Set(values.filter((v): v is string => v !== undefined && v !== ''))]
    .sort()
    .slice(0, max)
    .map((v) => clip(v, 64));
}

/** Where the workload's pods run now. */
export function placementOf(facts: WorkloadFacts): PlacementInfo {
  const nodes = facts.pods.map((p) => p.node);
  return {
    replicas: facts.pods.length,
    zones: sortedUnique(
      nodes.map((n) => n?.zone),
      16,
    ),
    instanceTypes: sortedUnique(
      nodes.map((n) => n?.instanceType),
      64,
    ),
    capacityTypes: sortedUnique(
      nodes.map((n) => (n === undefined ? undefined : (n.capacityType ?? 'on-demand'))),
      4,
    ),
    architectures: sortedUnique(
      nodes.map((n) => n?.arch),
      4,
    ),
  };
}

/**
 * Recommends for one workload: verdicts, scores, reasons and money for Spot, arm64 and
 * cross-zone traffic, the combined savings and the suggested patch. The result has no
 * conditions and no observedGeneration; see readyCondition() and toWorkloadRecommendation().
 */
export function recommend(
  facts: WorkloadFacts,
  prices: PriceBook = SNAPSHOT_PRICES,
): WorkloadRecommendationStatus {
  const spot = evaluateSpot(facts, prices);
  const arm64 = evaluateArm64(facts, prices);
  const crossZone = evaluateCrossZone(facts);

  const now = estimateCost(facts, prices, CURRENT);
  // Savings of everything recommended together: priced on the combined target (arm64 on Spot),
  // never the sum of the parts; cross-zone traffic is a separate bill, so it adds.
  const combined = estimateCost(facts, prices, { spot: spot.actionable, arm64: arm64.actionable });
  const crossZoneSavings = crossZone.actionable ? Number(crossZone.result.monthlySavingsUSD) : 0;
  const { region } = pricingRegion(facts);
  const instanceTypes = facts.pods.flatMap((pod) => pod.node?.instanceType ?? []);

  const status: WorkloadRecommendationStatus = {
    monthlyCostUSD: formatUSD(now.currentMonthly),
    potentialMonthlySavingsUSD: formatUSD(combined.savingsMonthly + crossZoneSavings),
    pricing: { source: prices.source, region, asOf: pricesAsOf(prices, region, instanceTypes) },
    placement: placementOf(facts),
    spot: spot.result,
    arm64: arm64.result,
    crossZone: crossZone.result,
  };
  if (facts.policy.name !== undefined) status.policy = facts.policy.name;
  const patch = suggestPatch(facts, {
    spot: spot.actionable,
    onDemand: spot.atRisk,
    amd64: arm64.atRisk,
    arm64: arm64.actionable,
    ...(crossZone.actionable ? { crossZone: crossZone.plan } : {}),
  });
  if (patch !== undefined) status.suggestedPatch = patch;
  return status;
}

const LABELS: Record<'spot' | 'arm64' | 'crossZone', string> = {
  spot: 'Spot',
  arm64: 'arm64',
  crossZone: 'cross-zone',
};

function joinNames(names: string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1] ?? ''}`;
}

/**
 * The summary Ready condition: True once the analysis ran; reason AtRisk when it runs on Spot
 * although Spot is not recommended for it, or on arm64 although an image lacks arm64, else Recommended when some change is recommended (or
 * only needs the suggested patch), else NothingToDo; the message names the risk, the changes and
 * any verdict left Unknown.
 */
export function readyCondition(status: WorkloadRecommendationStatus): ReadyCondition {
  const keys = ['spot', 'arm64', 'crossZone'] as const;
  const verdict = (k: (typeof keys)[number]): Verdict | undefined => status[k]?.verdict;
  const recommended = keys.filter((k) => verdict(k) === 'Recommended').map((k) => LABELS[k]);
  const withPatch = keys
    .filter((k) => verdict(k) === 'Possible' && possibleWithPatch(status[k]?.reasons ?? []))
    .map((k) => LABELS[k]);
  const unknown = keys.filter((k) => verdict(k) === 'Unknown').map((k) => LABELS[k]);
  const parts: string[] = [];
  const moveCost = status.spot?.moveToOnDemandMonthlyCostUSD;
  if (moveCost !== undefined) {
    parts.push(
      `It runs on Spot, which is not recommended for it (see the Spot reasons): the suggested patch moves it to on-demand for ${moveCost} USD more a month.`,
    );
  }
  const amd64Cost = status.arm64?.moveToAmd64MonthlyCostUSD;
  if (amd64Cost !== undefined) {
    parts.push(
      `It runs on arm64 nodes, which an image lacks (see the arm64 reasons): the suggested patch moves it to amd64 nodes for ${amd64Cost} USD more a month.`,
    );
  }
  const atRisk = moveCost !== undefined || amd64Cost !== undefined;
  if (recommended.length > 0) {
    parts.push(
      `${joinNames(recommended)} ${recommended.length === 1 ? 'change is' : 'changes are'} recommended.`,
    );
  }
  if (withPatch.length > 0) {
    parts.push(
      `${joinNames(withPatch)} ${withPatch.length === 1 ? 'is' : 'are'} possible with the suggested patch.`,
    );
  }
  if (parts.length === 0) parts.push('No change is recommended.');
  if (unknown.length > 0)
    parts.push(`Unknown for ${joinNames(unknown)}: a fact is missing (see the reasons).`);
  const sentences = parts.map((p) => `${p.charAt(0).toUpperCase()}${p.slice(1)}`);
  const act = recommended.length + withPatch.length > 0;
  return {
    type: 'Ready',
    status: 'True',
    reason: atRisk ? 'AtRisk' : act ? 'Recommended' : 'NothingToDo',
    message: sentences.join(' '),
  };
}

/** Reasons whose only Requires are ones the suggested patch itself fixes (a pin, a spread). */
function possibleWithPatch(reasons: readonly Reason[]): boolean {
  const requires = reasons.filter((r) => r.effect === 'Requires');
  return requires.length > 0 && requires.every((r) => FIXED_BY_PATCH.has(r.code));
}

/** Requires codes that the suggested patch fixes by itself. */
export const FIXED_BY_PATCH: ReadonlySet<string> = new Set([
  ...SPOT_FIXED_BY_PATCH,
  ...ARM64_FIXED_BY_PATCH,
  ...CROSS_ZONE_FIXED_BY_PATCH,
]);

/** A change to a workload another controller owns is made in the owner: the message says where. */
function withOwnerNote(condition: ReadyCondition, facts: WorkloadFacts): ReadyCondition {
  const owner = ownerName(facts);
  if (owner === undefined || condition.reason === 'NothingToDo') return condition;
  return {
    ...condition,
    message: `${condition.message} Make the change in ${owner}: it controls this ${facts.kind} and would undo a patch to it, and Apply mode leaves it alone.`,
  };
}

const API_VERSION_OF: Record<WorkloadKind, 'apps/v1' | 'batch/v1' | 'argoproj.io/v1alpha1'> = {
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
  Rollout: 'argoproj.io/v1alpha1',
};

/**
 * The WorkloadRecommendation object as the operator writes it: named by recommendationName,
 * owned by the workload (when its uid is known; no blockOwnerDeletion), with the status and a
 * Ready condition stamped at `lastTransitionTime` (RFC 3339; the caller's clock).
 */
export function toWorkloadRecommendation(
  facts: WorkloadFacts,
  status: WorkloadRecommendationStatus,
  lastTransitionTime: string,
): WorkloadRecommendation {
  const apiVersion = API_VERSION_OF[facts.kind];
  const metadata: WorkloadRecommendation['metadata'] = {
    name: recommendationName(facts.kind, facts.name),
    namespace: facts.namespace,
    labels: { 'app.kubernetes.io/managed-by': 'kopek' },
  };
  if (facts.uid !== undefined) {
    metadata.ownerReferences = [{ apiVersion, kind: facts.kind, name: facts.name, uid: facts.uid }];
  }
  return {
    apiVersion: API_VERSION,
    kind: 'WorkloadRecommendation',
    metadata,
    spec: { targetRef: { apiVersion, kind: facts.kind, name: facts.name } },
    status: {
      ...status,
      // In Apply mode, a workload Git manages says so: kopek will not patch it.
      conditions: [
        {
          ...withOwnerNote(withGitOpsNote(readyCondition(status), facts), facts),
          lastTransitionTime,
        },
      ],
    },
  };
}
