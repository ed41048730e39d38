/**
 * Money: what a workload's pods cost now and what they would cost on a target placement (Spot,
 * Graviton, or both together). Each pod costs its share of its node's hourly price, split
 * between CPU and memory as OpenCost does, times max(request, usage); monthly = hourly × 730.
 * Combined savings come from pricing the combined target (e.g. arm64 on Spot), never from
 * adding the savings of the parts.
 */
import { LABEL_REGION, type NodeFacts, type PodFacts, type WorkloadFacts } from './facts.ts';
import {
  FALLBACK_REGION,
  amd64Candidates,
  HOURS_PER_MONTH,
  gravitonEquivalent,
  isGravitonType,
  onDemandPrice,
  podHourly,
  splitNodePrice,
  spotPrice,
  type InstanceSpec,
  type PriceBook,
  type RegionalPrice,
} from './pricing.ts';
import { finding, type Finding } from './reasons.ts';

const GiB = 1024 ** 3;

/** Which changes a target placement makes. */
export interface Target {
  spot: boolean;
  arm64: boolean;
  /** Prices the pods that run on Spot at on-demand (moving a risky workload off Spot). */
  onDemand?: boolean;
  /** Prices the pods on Graviton at an x86 type of the same size (moving back to amd64). */
  amd64?: boolean;
}

export const CURRENT: Target = { spot: false, arm64: false };

/** The cost of a workload now and on a target placement. */
export interface CostEstimate {
  /** USD per month of the pods as they run now (priced pods only). */
  currentMonthly: number;
  /** USD per month of the same pods on the target (pods the target cannot price stay as now). */
  targetMonthly: number;
  /** max(0, current − target). */
  savingsMonthly: number;
  /** Pods counted. */
  pods: number;
  /** Pods whose current price is unknown (no instance type, no price, no size). */
  unpriced: string[];
  /** Instance types with no price (for the reasons). */
  unpricedTypes: string[];
  /** amd64 instance types without a Graviton equivalent with a price (arm64 targets). */
  noGravitonTypes: string[];
  /** Mapping used for arm64 targets, x86 type → Graviton type. */
  gravitonTypes: Record<string, string>;
  /** True when some price came from the us-east-1 fallback instead of the region itself. */
  usedFallbackRegion: boolean;
}

/** The region prices are looked up in: the cluster's, else a node's, else us-east-1. */
export function pricingRegion(facts: WorkloadFacts): { region: string; known: boolean } {
  const region = facts.cluster.region ?? facts.pods.find((p) => p.node?.region)?.node?.region;
  return region === undefined ? { region: FALLBACK_REGION, known: false } : { region, known: true };
}

function specOf(book: PriceBook, type: string, node: NodeFacts): InstanceSpec | undefined {
  const spec = book.specs.get(type);
  if (spec !== undefined) return spec;
  if (node.cpuCores !== undefined && node.memoryBytes !== undefined && node.cpuCores > 0) {
    return { vcpu: node.cpuCores, memoryGiB: node.memoryBytes / GiB };
  }
  return undefined;
}

function priceFor(
  book: PriceBook,
  region: string,
  type: string,
  spot: boolean,
): RegionalPrice | undefined {
  return spot ? spotPrice(book, region, type) : onDemandPrice(book, region, type);
}

function podResources(pod: PodFacts): { cpu: number; memGiB: number } {
  return {
    cpu: Math.max(pod.cpuRequestCores, pod.cpuUsageCores ?? 0),
    memGiB: Math.max(pod.memoryRequestBytes, pod.memoryUsageBytes ?? 0) / GiB,
  };
}

/** True when the pod's node is arm64 (by label, or by a Graviton instance type). */
export function onArm64(node: NodeFacts | undefined): boolean {
  if (node === undefined) return false;
  if (node.arch !== undefined) return node.arch === 'arm64';
  return node.instanceType !== undefined && isGravitonType(node.instanceType);
}

/** Prices the workload's running pods now and on `target`. */
export function estimateCost(facts: WorkloadFacts, book: PriceBook, target: Target): CostEstimate {
  const { region } = pricingRegion(facts);
  const out: CostEstimate = {
    currentMonthly: 0,
    targetMonthly: 0,
    savingsMonthly: 0,
    pods: facts.pods.length,
    unpriced: [],
    unpricedTypes: [],
    noGravitonTypes: [],
    gravitonTypes: {},
    usedFallbackRegion: false,
  };
  let current = 0;
  let targetSum = 0;
  for (const pod of facts.pods) {
    const node = pod.node;
    const type = node?.instanceType;
    if (node === undefined || type === undefined) {
      out.unpriced.push(pod.name);
      continue;
    }
    const isSpot = node.capacityType === 'spot';
    const price = priceFor(book, region, type, isSpot);
    const spec = specOf(book, type, node);
    if (price === undefined || spec === undefined) {
      out.unpriced.push(pod.name);
      if (!out.unpricedTypes.includes(type)) out.unpricedTypes.push(type);
      continue;
    }
    if (price.fallback) out.usedFallbackRegion = true;
    const { cpu, memGiB } = podResources(pod);
    const now = podHourly(splitNodePrice(price.hourly, spec), cpu, memGiB);

    let targetType = type;
    if (target.arm64 && !onArm64(node)) {
      const graviton = gravitonEquivalent(type);
      if (graviton !== undefined && onDemandPrice(book, region, graviton) !== undefined) {
        targetType = graviton;
        out.gravitonTypes[type] = graviton;
      } else if (!out.noGravitonTypes.includes(type)) {
        out.noGravitonTypes.push(type);
      }
    }
    if (target.amd64 === true && onArm64(node)) {
      targetType =
        amd64Candidates(type).find((t) => onDemandPrice(book, region, t) !== undefined) ?? type;
    }
    // A target price the book lacks (e.g. no Spot figure for the Graviton type) drops that part
    // of the change for this pod rather than inventing a price.
    const targetSpot = target.onDemand === true ? false : isSpot || target.spot;
    const targetPrice =
      priceFor(book, region, targetType, targetSpot) ?? priceFor(book, region, targetType, isSpot);
    let then = now;
    if (targetPrice !== undefined) {
      if (targetPrice.fallback) out.usedFallbackRegion = true;
      const targetSpec = book.specs.get(targetType) ?? spec;
      then = podHourly(splitNodePrice(targetPrice.hourly, targetSpec), cpu, memGiB);
    }
    current += now;
    targetSum += then;
  }
  out.currentMonthly = current * HOURS_PER_MONTH;
  out.targetMonthly = targetSum * HOURS_PER_MONTH;
  out.savingsMonthly = Math.max(0, out.currentMonthly - out.targetMonthly);
  out.unpricedTypes.sort();
  out.noGravitonTypes.sort();
  return out;
}

/** Reasons that explain where the prices came from (region fallback, missing prices). */
export function pricingFindings(
  facts: WorkloadFacts,
  book: PriceBook,
  estimate: CostEstimate,
): Finding[] {
  const out: Finding[] = [];
  const { region, known } = pricingRegion(facts);
  if (!known) {
    out.push(
      finding(
        'RegionUnknown',
        'Info',
        `No node carries the ${LABEL_REGION} label; ${FALLBACK_REGION} prices are used.`,
      ),
    );
  } else if (estimate.usedFallbackRegion) {
    out.push(
      finding(
        'PricesFromFallbackRegion',
        'Info',
        `The ${book.source.toLowerCase()} prices have no figures for ${region}; ${FALLBACK_REGION} prices are used instead.`,
      ),
    );
  }
  if (facts.pods.length === 0) {
    out.push(
      finding(
        'NoRunningPods',
        'Info',
        'No pod of this workload runs now, so there is nothing to price; savings show as 0.',
      ),
    );
  } else if (
    estimate.unpriced.length < facts.pods.length &&
    facts.pods.every((p) => p.cpuRequestCores === 0 && p.memoryRequestBytes === 0)
  ) {
    out.push(
      finding(
        'NoResourceRequests',
        'Info',
        'Its pods request no CPU or memory, so their share of the node price is counted as 0.',
      ),
    );
  }
  return out;
}
