/**
 * Spot capacity in the workload's region: Spot Advisor interruption bands of the instance types
 * its pods run on, how many low-interruption types could hold one of its pods, and the Spot
 * placement score.
 */
import type { WorkloadFacts } from './facts.ts';
import {
  FALLBACK_REGION,
  isGravitonType,
  spotFigures,
  type PriceBook,
  type SpotFigures,
} from './pricing.ts';
import { finding, listOf, type Finding } from './reasons.ts';
import { onArm64, pricingRegion } from './savings.ts';

/** Spot Advisor bands: 0 "<5%", 1 "5-10%" are low; 2 "10-15%" moderate; 3+ high. */
const LOW_BAND_MAX = 1;
const HIGH_BAND_MIN = 3;
/** Diversity: how many low-interruption instance types must fit a pod. */
const MANY_TYPES = 20;
const FEW_TYPES = 5;

interface TypeFit {
  vcpu: number;
  memoryGiB: number;
  graviton: boolean;
}
const fitCache = new WeakMap<PriceBook, Map<string, TypeFit[]>>();

/** Instance types of a region with a low interruption band, cached per price book. */
function lowRiskTypes(book: PriceBook, region: string): TypeFit[] {
  let byRegion = fitCache.get(book);
  if (byRegion === undefined) {
    byRegion = new Map();
    fitCache.set(book, byRegion);
  }
  let list = byRegion.get(region);
  if (list === undefined) {
    list = [];
    const table: ReadonlyMap<string, SpotFigures> = book.spot.get(region) ?? new Map();
    for (const [type, f] of table) {
      const spec = book.specs.get(type);
      if (
        spec !== undefined &&
        f.band !== undefined &&
        f.band <= LOW_BAND_MAX &&
        f.savingsPercent > 0
      ) {
        list.push({ ...spec, graviton: isGravitonType(type) });
      }
    }
    byRegion.set(region, list);
  }
  return list;
}

/**
 * The region whose Spot Advisor data stands for the workload's: its own, else us-east-1 (said in
 * an Info reason), else none; every risk reason names the region its figures come from.
 */
function spotDataRegion(
  book: PriceBook,
  region: string,
): { from: string | undefined; findings: Finding[] } {
  if (book.spot.has(region)) return { from: region, findings: [] };
  if (book.spot.has(FALLBACK_REGION))
    return {
      from: FALLBACK_REGION,
      findings: [
        finding(
          'SpotDataFromFallbackRegion',
          'Info',
          `The Spot Advisor data has nothing for ${region}; the interruption bands and instance-type counts here are ${FALLBACK_REGION}'s, a stand-in.`,
        ),
      ],
    };
  return {
    from: undefined,
    findings: [
      finding(
        'NoSpotData',
        'Info',
        `The Spot Advisor data has nothing for ${region} (nor ${FALLBACK_REGION}): interruption risk and instance-type diversity are not known.`,
      ),
    ],
  };
}

export function riskFindings(facts: WorkloadFacts, book: PriceBook): Finding[] {
  const data = spotDataRegion(book, pricingRegion(facts).region);
  if (data.from === undefined) return [...data.findings, ...placementScoreFindings(facts)];
  const region = data.from;
  const out: Finding[] = [...data.findings];
  const bands = new Map<string, number>();
  const unknown: string[] = [];
  for (const pod of facts.pods) {
    const type = pod.node?.instanceType;
    if (type === undefined || bands.has(type) || unknown.includes(type)) continue;
    const band = spotFigures(book, region, type)?.band;
    if (band === undefined) unknown.push(type);
    else bands.set(type, band);
  }
  const label = (b: number) => book.bands[b] ?? `band ${b}`;
  const high = [...bands]
    .filter(([, b]) => b >= HIGH_BAND_MIN)
    .sort(([a], [b]) => a.localeCompare(b));
  const moderate = [...bands]
    .filter(([, b]) => b > LOW_BAND_MAX && b < HIGH_BAND_MIN)
    .sort(([a], [b]) => a.localeCompare(b));
  if (high.length > 0) {
    out.push(
      finding(
        'HighInterruptionRisk',
        'Lowers',
        `Spot Advisor interruption frequency in ${region}: ${high.map(([t, b]) => `${t} ${label(b)}`).join(', ')}; let the node pool use other types.`,
        15,
      ),
    );
  } else if (moderate.length > 0) {
    out.push(
      finding(
        'ModerateInterruptionRisk',
        'Lowers',
        `Spot Advisor interruption frequency in ${region}: ${moderate.map(([t, b]) => `${t} ${label(b)}`).join(', ')}.`,
        5,
      ),
    );
  } else if (bands.size > 0) {
    const types = [...bands.keys()].sort();
    out.push(
      finding(
        'LowInterruptionRisk',
        'Raises',
        `Spot Advisor interruption frequency of ${listOf(types)} in ${region} is 10% or less.`,
        10,
      ),
    );
  }
  if (unknown.length > 0) {
    out.push(
      finding(
        'InterruptionRiskUnknown',
        'Info',
        `The Spot Advisor has no figures for ${listOf(unknown.sort())} in ${region}.`,
      ),
    );
  }
  out.push(...diversityFindings(facts, book, region), ...placementScoreFindings(facts));
  return out;
}

function placementScoreFindings(facts: WorkloadFacts): Finding[] {
  const out: Finding[] = [];
  if (facts.spotPlacementScore !== undefined) {
    if (facts.spotPlacementScore >= 7) {
      out.push(
        finding(
          'HighPlacementScore',
          'Raises',
          `Spot placement score ${facts.spotPlacementScore}/10.`,
          5,
        ),
      );
    } else if (facts.spotPlacementScore <= 3) {
      out.push(
        finding(
          'LowPlacementScore',
          'Lowers',
          `Spot placement score ${facts.spotPlacementScore}/10.`,
          10,
        ),
      );
    }
  }
  return out;
}

function diversityFindings(facts: WorkloadFacts, book: PriceBook, region: string): Finding[] {
  if (facts.pods.length === 0) return [];
  const cpu = Math.max(...facts.pods.map((p) => p.cpuRequestCores));
  const memGiB = Math.max(...facts.pods.map((p) => p.memoryRequestBytes)) / 1024 ** 3;
  const graviton = facts.pods.every((p) => onArm64(p.node));
  const fits = lowRiskTypes(book, region).filter(
    (t) => t.graviton === graviton && t.vcpu >= cpu && t.memoryGiB >= memGiB,
  ).length;
  const arch = graviton ? 'arm64' : 'x86';
  if (fits >= MANY_TYPES) {
    return [
      finding(
        'ManyInstanceTypesFit',
        'Raises',
        `${fits} low-interruption ${arch} instance types in ${region} can hold one of its pods; a diverse node pool rides out interruptions.`,
        5,
      ),
    ];
  }
  if (fits < FEW_TYPES) {
    return [
      finding(
        'FewInstanceTypesFit',
        'Lowers',
        `Only ${fits} low-interruption ${arch} instance types in ${region} can hold one of its pods; Spot capacity for it is scarce.`,
        10,
      ),
    ];
  }
  return [];
}
