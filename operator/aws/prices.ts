/**
 * AWS price data → the recommender's PriceBook. Pure: the SDK calls that produce these inputs
 * are in calls.ts. On-demand list prices come from the Pricing API (GetProducts PriceList
 * entries, each a JSON document), current Spot prices per instance type and zone from EC2
 * DescribeSpotPriceHistory, sizes of types the snapshot lacks from DescribeInstanceTypes; the
 * interruption bands stay those of the Spot Instance Advisor (the snapshot, or its public feed).
 */
// Type-only imports: erased at run time, so they do not load the SDK.
import type { InstanceTypeInfo, SpotPrice } from '@aws-sdk/client-ec2';
import type { OnDemandPriceFile, SpotAdvisorFile } from '../../recommender/data/snapshot.ts';
import {
  FALLBACK_REGION,
  isGravitonType,
  type InstanceSpec,
  type PriceBook,
  type SpotFigures,
} from '../../recommender/pricing.ts';

export const SPOT_ADVISOR_URL = 'https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json';

/** One on-demand price from a GetProducts PriceList entry. */
export interface OnDemandItem {
  instanceType: string;
  hourly: number;
  /** When this price took effect (the term's effectiveDate), RFC 3339. */
  effectiveDate?: string;
  vcpu?: number;
  memoryGiB?: number;
}

interface PriceListDocument {
  product?: { attributes?: Record<string, string> };
  terms?: {
    OnDemand?: Record<
      string,
      {
        effectiveDate?: string;
        priceDimensions?: Record<string, { unit?: string; pricePerUnit?: { USD?: string } }>;
      }
    >;
  };
}

/** Parses a GetProducts PriceList entry; undefined for entries that are not an hourly price. */
export function parsePriceListItem(item: string): OnDemandItem | undefined {
  let doc: PriceListDocument;
  try {
    doc = JSON.parse(item) as PriceListDocument;
  } catch {
    return undefined;
  }
  const attrs = doc.product?.attributes ?? {};
  const instanceType = attrs.instanceType;
  if (instanceType === undefined) return undefined;
  for (const term of Object.values(doc.terms?.OnDemand ?? {})) {
    for (const dimension of Object.values(term.priceDimensions ?? {})) {
      const hourly = Number(dimension.pricePerUnit?.USD);
      if (dimension.unit !== undefined && dimension.unit !== 'Hrs') continue;
      if (!Number.isFinite(hourly) || hourly <= 0) continue;
      const out: OnDemandItem = { instanceType, hourly };
      if (term.effectiveDate !== undefined && !Number.isNaN(Date.parse(term.effectiveDate)))
        out.effectiveDate = term.effectiveDate;
      const vcpu = Number(attrs.vcpu);
      const memoryGiB = Number((attrs.memory ?? '').replace(/,/g, '').replace(/\s*GiB$/, ''));
      if (Number.isFinite(vcpu) && vcpu > 0) out.vcpu = vcpu;
      if (Number.isFinite(memoryGiB) && memoryGiB > 0) out.memoryGiB = memoryGiB;
      return out;
    }
  }
  return undefined;
}

/** A Spot price in one zone and when it took effect. */
export interface ZonePrice {
  price: number;
  timestamp: string;
}

/** instance type → zone → its current Spot price. */
export type SpotPriceTable = ReadonlyMap<string, ReadonlyMap<string, ZonePrice>>;

/** The latest price of each instance type in each zone of a DescribeSpotPriceHistory answer. */
export function latestSpotPrices(history: Iterable<SpotPrice>): SpotPriceTable {
  const table = new Map<string, Map<string, ZonePrice>>();
  for (const entry of history) {
    const type = entry.InstanceType;
    const zone = entry.AvailabilityZone;
    const price = Number(entry.SpotPrice);
    const at = entry.Timestamp;
    if (type === undefined || zone === undefined || at === undefined) continue;
    if (!Number.isFinite(price) || price <= 0) continue;
    const zones = table.get(type) ?? new Map<string, ZonePrice>();
    const before = zones.get(zone);
    if (before === undefined || Date.parse(before.timestamp) < at.getTime())
      zones.set(zone, { price, timestamp: at.toISOString() });
    table.set(type, zones);
  }
  return table;
}

/**
 * One Spot price for a type in the cluster: the mean over the cluster's zones that have one
 * (pods spread over them), else over every zone; with the latest of those zones' timestamps.
 */
export function clusterSpotPrice(
  zones: ReadonlyMap<string, ZonePrice>,
  clusterZones: readonly string[],
): ZonePrice | undefined {
  const inCluster = clusterZones.flatMap((zone) => zones.get(zone) ?? []);
  const used = inCluster.length > 0 ? inCluster : [...zones.values()];
  if (used.length === 0) return undefined;
  const price = used.reduce((sum, z) => sum + z.price, 0) / used.length;
  const timestamp = used
    .map((z) => z.timestamp)
    .reduce((a, b) => (Date.parse(a) >= Date.parse(b) ? a : b));
  return { price, timestamp };
}

/** Size and architectures of an instance type, from DescribeInstanceTypes. */
export interface LiveSpec extends InstanceSpec {
  architectures: string[];
}

export function specsFromInstanceTypes(infos: Iterable<InstanceTypeInfo>): Map<string, LiveSpec> {
  const specs = new Map<string, LiveSpec>();
  for (const info of infos) {
    const vcpu = info.VCpuInfo?.DefaultVCpus;
    const mib = info.MemoryInfo?.SizeInMiB;
    if (info.InstanceType === undefined || vcpu === undefined || mib === undefined) continue;
    if (vcpu <= 0 || mib <= 0) continue;
    specs.set(info.InstanceType, {
      vcpu,
      memoryGiB: mib / 1024,
      architectures: [...(info.ProcessorInfo?.SupportedArchitectures ?? [])],
    });
  }
  return specs;
}

/** What the live calls returned for one region; a part is absent when its call never succeeded. */
export interface LivePriceData {
  region: string;
  onDemand?: readonly OnDemandItem[];
  spot?: SpotPriceTable;
  specs?: ReadonlyMap<string, LiveSpec>;
}

function laterOf(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

type Table<T> = ReadonlyMap<string, T>;
const EMPTY: Table<never> = new Map<string, never>();

/** The region's live on-demand prices over its snapshot ones, dating each live price. */
function liveOnDemand(
  base: PriceBook,
  items: readonly OnDemandItem[],
  region: string,
  dates: Map<string, string>,
): Map<string, number> {
  // The region's own snapshot figures stay for types the live list lacks.
  const prices = new Map<string, number>(base.onDemand.get(region) ?? EMPTY);
  for (const item of items) {
    prices.set(item.instanceType, item.hourly);
    if (item.effectiveDate !== undefined) dates.set(item.instanceType, item.effectiveDate);
  }
  return prices;
}

/** The region's Spot figures with the live Spot prices; the Advisor's bands are kept. */
function liveSpot(
  base: PriceBook,
  table: SpotPriceTable,
  onDemand: Table<number>,
  region: string,
  clusterZones: readonly string[],
  dates: Map<string, string>,
): Map<string, SpotFigures> {
  const figures = new Map<string, SpotFigures>(
    base.spot.get(region) ?? base.spot.get(FALLBACK_REGION) ?? EMPTY,
  );
  for (const [type, zones] of table) {
    const current = clusterSpotPrice(zones, clusterZones);
    const od = onDemand.get(type);
    if (current === undefined || od === undefined || od <= 0) continue;
    const band = figures.get(type)?.band;
    const savingsPercent = Math.max(0, Math.round((1 - current.price / od) * 100));
    figures.set(type, {
      savingsPercent,
      hourly: current.price,
      ...(band === undefined ? {} : { band }),
    });
    const dated = laterOf(dates.get(type), current.timestamp);
    if (dated !== undefined) dates.set(type, dated);
  }
  return figures;
}

/** Sizes of the types `base` lacks: DescribeInstanceTypes first, the price list's attributes next. */
function liveSpecs(base: PriceBook, data: LivePriceData): Map<string, InstanceSpec> {
  const specs = new Map(base.specs);
  for (const [type, live] of data.specs ?? EMPTY) {
    if (!specs.has(type)) specs.set(type, { vcpu: live.vcpu, memoryGiB: live.memoryGiB });
  }
  for (const item of data.onDemand ?? []) {
    if (!specs.has(item.instanceType) && item.vcpu !== undefined && item.memoryGiB !== undefined)
      specs.set(item.instanceType, { vcpu: item.vcpu, memoryGiB: item.memoryGiB });
  }
  return specs;
}

/**
 * The price book with the live figures of one region laid over `base` (the snapshot): that
 * region's on-demand prices from the live list, Spot figures with the live Spot price (the
 * Advisor's interruption band kept), sizes added for types `base` lacks, and each live price
 * dated. The book is `Live` when the on-demand prices are; Spot prices alone do not make it so.
 */
export function livePriceBook(
  base: PriceBook,
  data: LivePriceData,
  clusterZones: readonly string[],
): PriceBook {
  const { region } = data;
  const dates = new Map<string, string>();
  const isLive = data.onDemand !== undefined && data.onDemand.length > 0;
  const onDemand = new Map(base.onDemand);
  if (isLive) onDemand.set(region, liveOnDemand(base, data.onDemand ?? [], region, dates));
  const spot = new Map(base.spot);
  if (data.spot !== undefined) {
    const regionPrices = onDemand.get(region) ?? onDemand.get(FALLBACK_REGION) ?? EMPTY;
    spot.set(region, liveSpot(base, data.spot, regionPrices, region, clusterZones, dates));
  }
  const latest = [...dates.values()].reduce<string | undefined>(laterOf, undefined);
  return {
    source: isLive ? 'Live' : base.source,
    asOf: isLive && latest !== undefined ? latest : base.asOf,
    bands: base.bands,
    onDemand,
    spot,
    specs: liveSpecs(base, data),
    priceDates: new Map([[region, dates]]),
  };
}

/** A node as the placement-score request needs it (from its well-known labels). */
export interface NodeShape {
  instanceType?: string;
  arch?: string;
}

/** One GetSpotPlacementScores configuration: the types an architecture's pods would run on. */
export interface PlacementRequest {
  arch: 'amd64' | 'arm64';
  instanceTypes: string[];
  /** Instances (units) to ask for: the nodes of that architecture today. */
  targetCapacity: number;
}

/** AWS scores fewer than three instance types low whatever the capacity: ask with at least three. */
const MIN_PLACEMENT_TYPES = 3;

/**
 * The placement-score configurations for a cluster: per architecture, the instance types its
 * nodes use (what a Spot node pool would draw from), padded to three with same-sized types of
 * the lowest Advisor interruption band, and the number of such nodes as the target capacity.
 * Few, stable configurations: AWS limits how many new ones an account may ask about per day.
 */
export function placementRequests(
  nodes: readonly NodeShape[],
  book: PriceBook,
  region: string,
): PlacementRequest[] {
  const out: PlacementRequest[] = [];
  for (const arch of ['amd64', 'arm64'] as const) {
    const ofArch = nodes.filter(
      (n) =>
        n.instanceType !== undefined &&
        (n.arch ?? (isGravitonType(n.instanceType) ? 'arm64' : 'amd64')) === arch,
    );
    if (ofArch.length === 0) continue;
    const counts = new Map<string, number>();
    for (const n of ofArch)
      counts.set(n.instanceType ?? '', (counts.get(n.instanceType ?? '') ?? 0) + 1);
    const types = [...counts.keys()].sort();
    const common = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
    const size = common === undefined ? undefined : book.specs.get(common);
    // Padding stays within the family's kind (m → m5, m6a, m7i …), not GPUs or storage types.
    const kind = common === undefined ? undefined : /^[a-z]+/.exec(common)?.[0];
    if (types.length < MIN_PLACEMENT_TYPES && size !== undefined && kind !== undefined) {
      const figures = book.spot.get(region) ?? book.spot.get(FALLBACK_REGION) ?? EMPTY;
      const similar = [...figures]
        .filter(([type, f]) => {
          const spec = book.specs.get(type);
          return (
            !types.includes(type) &&
            /^[a-z]+/.exec(type)?.[0] === kind &&
            isGravitonType(type) === (arch === 'arm64') &&
            spec?.vcpu === size.vcpu &&
            spec.memoryGiB === size.memoryGiB &&
            f.band !== undefined
          );
        })
        .sort((a, b) => (a[1].band ?? 9) - (b[1].band ?? 9) || a[0].localeCompare(b[0]))
        .map(([type]) => type);
      types.push(...similar.slice(0, MIN_PLACEMENT_TYPES - types.length));
    }
    out.push({ arch, instanceTypes: types.sort(), targetCapacity: ofArch.length });
  }
  return out;
}

/**
 * Combines live figures into the raw files the snapshot is built from (regenerate-snapshot.ts):
 * on-demand prices per region, and the Advisor feed with `s` replaced by the live Spot saving
 * (mean over the region's zones) where one is known.
 */
export function liveSources(
  generatedAt: string,
  onDemand: Record<string, readonly OnDemandItem[]>,
  spot: Record<string, SpotPriceTable>,
  advisor: SpotAdvisorFile,
): { onDemand: OnDemandPriceFile; advisor: SpotAdvisorFile } {
  const regions: Record<string, Record<string, number>> = {};
  const specs = { ...advisor.instance_types };
  const spotAdvisor = structuredClone(advisor.spot_advisor);
  for (const [region, items] of Object.entries(onDemand)) {
    const prices: Record<string, number> = {};
    for (const item of items) {
      prices[item.instanceType] = item.hourly;
      if (
        specs[item.instanceType] === undefined &&
        item.vcpu !== undefined &&
        item.memoryGiB !== undefined
      ) {
        specs[item.instanceType] = { cores: item.vcpu, ram_gb: item.memoryGiB };
      }
    }
    regions[region] = prices;
    const linux = (spotAdvisor[region] ??= {}).Linux ?? {};
    for (const [type, zones] of spot[region] ?? new Map<string, ReadonlyMap<string, ZonePrice>>()) {
      const od = prices[type];
      const current = clusterSpotPrice(zones, []);
      if (od === undefined || od <= 0 || current === undefined) continue;
      const s = Math.max(0, Math.round((1 - current.price / od) * 100));
      linux[type] = { s, r: linux[type]?.r ?? 4 };
    }
    (spotAdvisor[region] ??= {}).Linux = linux;
  }
  return {
    onDemand: {
      generatedAt,
      source: `AWS Pricing API GetProducts (live, ${Object.keys(regions).join(', ')})`,
      regions,
    },
    advisor: {
      ...advisor,
      source: `${advisor.source}; s from EC2 DescribeSpotPriceHistory (live)`,
      instance_types: specs,
      spot_advisor: spotAdvisor,
    },
  };
}
