/**
 * Cross-AZ traffic: what the workload's Services pay for traffic between zones, and whether
 * Kubernetes' topology-aware routing would keep it in-zone. Without telemetry the cross-zone
 * share of a Service is estimated as 1 − Σz a_z·b_z (a: client share in zone z, b: ready
 * endpoint share in zone z; three even zones → 2/3) and said to be an estimate.
 *
 * The verdict and the plan are decided here; each Service's analysis is in cross-zone-services.ts,
 * the measured volume, cost and edges in cross-zone-measured.ts (re-exported for their users).
 */
import type { CrossZoneResult } from './api/v1alpha1.ts';
import type { WorkloadFacts } from './facts.ts';
import { CROSS_ZONE_USD_PER_GB, formatUSD } from './pricing.ts';
import { finding, listOf, notePatch, result, verdictOf, type Finding } from './reasons.ts';
import {
  BYTES_PER_GB,
  formatGB,
  measuredFinding,
  measuredPart,
  notMeasuredFindings,
} from './cross-zone-measured.ts';
import {
  TOPOLOGY_MODE_MIN_ENDPOINTS,
  analyseService,
  chooseFix,
  fixPatch,
  type Fix,
  type ServiceAnalysis,
} from './cross-zone-services.ts';

export { BYTES_PER_GB, MAX_EDGES, formatGB } from './cross-zone-measured.ts';
export {
  chooseFix,
  crossZoneFraction,
  formatFraction,
  routesByTopology,
  zoneShares,
} from './cross-zone-services.ts';

/** Requires that the suggested patch itself fixes (a zone-balancing topology spread). */
export const CROSS_ZONE_FIXED_BY_PATCH: ReadonlySet<string> = new Set(['EndpointsUnbalanced']);

/** How one Service would be fixed. */
export interface ServicePlan {
  name: string;
  /** The merge patch over the Service. */
  patch: Record<string, unknown>;
}

/** What the suggested patch should do for cross-zone traffic. */
export interface CrossZonePlan {
  services: ServicePlan[];
  /** Add a zone topology spread to the pod template first. */
  spreadOverZones: boolean;
}

export interface CrossZoneEvaluation {
  result: CrossZoneResult;
  actionable: boolean;
  plan: CrossZonePlan;
}

function notApplicable(facts: WorkloadFacts, code: string, message: string): CrossZoneEvaluation {
  const bytes = facts.measuredCrossZoneBytesPerMonth;
  const findings = [finding(code, 'Info', message)];
  if (bytes !== undefined) findings.push(measuredFinding(facts, bytes));
  return {
    result: {
      ...result('NotApplicable', findings, '0.00'),
      ...(bytes !== undefined ? measuredPart(bytes, facts.traffic) : {}),
    },
    actionable: false,
    plan: { services: [], spreadOverZones: false },
  };
}

/** Decides whether the workload's Services should keep traffic in-zone, and what it costs now. */
export function evaluateCrossZone(facts: WorkloadFacts): CrossZoneEvaluation {
  if (!facts.policy.crossZone.enabled) {
    return notApplicable(
      facts,
      'DisabledByPolicy',
      `SavingsPolicy ${facts.policy.name ?? '(default)'} turns cross-zone advice off for this workload.`,
    );
  }
  const headless = facts.services.filter((s) => s.headless).map((s) => s.name);
  // A metrics Service carries scrapes, not client traffic: it never asks for more replicas.
  const metrics = facts.services.filter((s) => !s.headless && s.metricsOnly === true);
  const routed = facts.services.filter((s) => !s.headless && s.metricsOnly !== true);
  if (routed.length === 0 && metrics.length > 0) {
    return notApplicable(
      facts,
      'MetricsServiceOnly',
      `Only metrics Service ${listOf(metrics.map((s) => s.name))} selects its pods: its traffic is a scraper's, too little to route by zone or to add replicas for.`,
    );
  }
  if (routed.length === 0) {
    return headless.length > 0
      ? notApplicable(
          facts,
          'HeadlessServiceOnly',
          `Only headless Service ${listOf(headless)} selects its pods: clients connect to pod IPs directly, so Service routing cannot keep traffic in-zone.`,
        )
      : notApplicable(
          facts,
          'NoServiceTraffic',
          facts.measuredCrossZoneBytesPerMonth === undefined
            ? 'No Service selects its pods, and no telemetry measured traffic to it.'
            : 'No Service selects its pods: Service routing cannot keep its traffic in-zone.',
        );
  }
  const fix = chooseFix(facts.cluster.kubernetesMinor);
  const analyses: ServiceAnalysis[] = [];
  const findings: Finding[] = [];
  for (const s of [...routed].sort((a, b) => a.name.localeCompare(b.name))) {
    const a = analyseService(facts, s, fix);
    if (a === undefined) {
      findings.push(
        finding(
          'NoReadyEndpoints',
          'Info',
          `Service ${s.name} has no ready endpoints in any known zone.`,
        ),
      );
    } else {
      analyses.push(a);
    }
  }
  if (analyses.length === 0) {
    return {
      result: result('Unknown', findings, '0.00'),
      actionable: false,
      plan: { services: [], spreadOverZones: false },
    };
  }
  return decide(facts, analyses, findings, fix);
}

function volumeOf(facts: WorkloadFacts, analyses: readonly ServiceAnalysis[]) {
  let bytes: number | undefined = facts.measuredCrossZoneBytesPerMonth;
  let savingsBytes = 0;
  let measured = facts.measuredCrossZoneBytesPerMonth !== undefined;
  for (const a of analyses) {
    if (a.crossBytes === undefined) continue;
    bytes = (bytes ?? 0) + a.crossBytes;
    if (a.measured) measured = true;
    savingsBytes += a.savingsBytes;
  }
  return { bytes, savingsBytes, measured };
}

function decide(
  facts: WorkloadFacts,
  analyses: ServiceAnalysis[],
  findings: Finding[],
  fix: Fix,
): CrossZoneEvaluation {
  const services = analyses.slice(0, 32).map((a) => a.entry);
  const open = analyses.filter((a) => !a.aware && a.fraction > 0);
  const { bytes, savingsBytes, measured } = volumeOf(facts, analyses);
  const base: Partial<CrossZoneResult> =
    measured && bytes !== undefined
      ? { ...measuredPart(bytes, facts.traffic), services }
      : { source: 'Estimated', services };
  if (bytes !== undefined && !measured) {
    base.monthlyCrossZoneGB = formatGB(bytes / BYTES_PER_GB);
    base.monthlyCostUSD = formatUSD((bytes / BYTES_PER_GB) * CROSS_ZONE_USD_PER_GB);
  }
  const telemetry =
    measured && bytes !== undefined ? [measuredFinding(facts, bytes)] : notMeasuredFindings(facts);
  const none = { services: [], spreadOverZones: false };

  const aware = analyses.filter((a) => a.aware).map((a) => a.service.name);
  if (aware.length > 0) {
    findings.push(
      finding(
        'TopologyAwareRouting',
        'Info',
        `Service ${listOf(aware)} already keeps traffic in-zone where it can.`,
      ),
    );
  }
  if (open.length === 0) {
    findings.push(...telemetry);
    if (aware.length === 0) {
      findings.push(
        finding(
          'NoCrossZoneTraffic',
          'Info',
          'Its clients and endpoints share zones: no traffic is expected to cross zones.',
        ),
      );
    }
    return {
      result: { ...result('AlreadyOptimized', findings, '0.00'), ...base },
      actionable: false,
      plan: none,
    };
  }

  const worst = Math.max(...open.map((a) => a.fraction));
  const names = open.map((a) => a.service.name);
  findings.push(
    ...telemetry,
    ...(measured
      ? []
      : [
          finding(
            'EstimatedFromPlacement',
            'Info',
            `${facts.traffic === undefined ? 'No traffic telemetry' : 'No measured traffic'}; up to ${Math.round(worst * 100)}% of the traffic to Service ${listOf(names)} is estimated to cross zones, from where its clients and ready endpoints run.`,
          ),
        ]),
    finding(
      'CrossZoneShare',
      'Raises',
      `Up to ${Math.round(worst * 100)}% of its Service traffic crosses zones, at $0.02/GB.`,
      Math.round(10 + 40 * worst),
    ),
  );
  const spread = open.filter((a) => a.needsSpread).map((a) => a.service.name);
  if (spread.length > 0) {
    findings.push(
      finding(
        'EndpointsUnbalanced',
        'Requires',
        `Ready endpoints of Service ${listOf(spread)} are not spread like its clients; spread its pods over zones first.`,
        10,
      ),
    );
  }
  const few = open.filter((a) => a.tooFewReplicas).map((a) => a.service.name);
  if (few.length > 0) {
    findings.push(
      finding(
        'TooFewReplicasForZones',
        'Requires',
        `Service ${listOf(few)} has too few replicas to keep ready endpoints in every client zone${fix.kind === 'topologyMode' ? ` (${TOPOLOGY_MODE_MIN_ENDPOINTS} per zone for topology-mode)` : ''}.`,
        15,
      ),
    );
  }
  const savingsUSD = (savingsBytes / BYTES_PER_GB) * CROSS_ZONE_USD_PER_GB;
  if (bytes === undefined) {
    findings.push(
      finding(
        'TrafficVolumeUnknown',
        'Info',
        'Without traffic telemetry the volume, and so the savings, cannot be priced.',
      ),
    );
  } else if (savingsUSD < facts.policy.crossZone.minMonthlySavingsUSD) {
    findings.push(
      finding(
        'BelowSavingsThreshold',
        'Blocks',
        `Keeping it in-zone would save ${formatUSD(savingsUSD)} USD a month, under the policy's ${formatUSD(facts.policy.crossZone.minMonthlySavingsUSD)}.`,
      ),
    );
  }
  const verdict = verdictOf(findings, false);
  const afterPatch = findings.filter(
    (f) => !(f.effect === 'Requires' && CROSS_ZONE_FIXED_BY_PATCH.has(f.code)),
  );
  const actionable =
    verdict === 'Recommended' ||
    (verdict === 'Possible' && verdictOf(afterPatch, false) === 'Recommended');
  const savings =
    verdict === 'Recommended' || verdict === 'Possible' ? formatUSD(savingsUSD) : '0.00';
  const plan: CrossZonePlan = {
    services: open
      .filter((a) => !a.tooFewReplicas)
      .map((a) => ({ name: a.service.name, patch: fixPatch(fix) })),
    spreadOverZones: spread.length > 0,
  };
  const explained = actionable ? notePatch(findings, CROSS_ZONE_FIXED_BY_PATCH) : findings;
  return { result: { ...result(verdict, explained, savings), ...base }, actionable, plan };
}
