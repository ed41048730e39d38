/**
 * The shape of the embedded price snapshot (recommender/data/prices.json) and the pure
 * transform that builds it from the raw price facts. The snapshot is columnar: one sorted list
 * of instance types, and per region one array of numbers aligned with it (`null` where the
 * type has no figure). That keeps the file small and its TypeScript type trivial.
 *
 * Provenance travels inside the file (`provenance`), and status.pricing.asOf is taken from it.
 */

/** Raw on-demand price list: `recommender/data/source/aws-ondemand-prices.json`. */
export interface OnDemandPriceFile {
  generatedAt: string;
  source: string;
  /** region → instance type → USD per hour (Linux, shared tenancy). */
  regions: Record<string, Record<string, number>>;
}

/** Raw AWS Spot Instance Advisor feed: `recommender/data/source/aws-spot-advisor.json`. */
export interface SpotAdvisorFile {
  source: string;
  ranges: { index: number; label: string; max: number }[];
  instance_types: Record<string, { cores: number; ram_gb: number }>;
  /** region → OS → instance type → { s: savings % vs on-demand, r: interruption band }. */
  spot_advisor: Record<string, Record<string, Record<string, { s: number; r: number }>>>;
}

/** The embedded snapshot, as stored in prices.json. */
export interface PriceSnapshot {
  provenance: {
    onDemand: { source: string; asOf: string };
    spotAdvisor: { source: string; asOf: string };
    generatedBy: string;
  };
  /** Interruption-frequency band labels, indexed by band (0 "<5%" … 4 ">20%"). */
  bands: string[];
  /** Sorted instance types; every other array is aligned with this one. */
  types: string[];
  vcpu: (number | null)[];
  memoryGiB: (number | null)[];
  /** region → on-demand USD per hour. */
  onDemand: Record<string, (number | null)[]>;
  /** region → Spot savings in percent versus on-demand (Spot Advisor `s`). */
  spotSavingsPercent: Record<string, (number | null)[]>;
  /** region → Spot interruption band (Spot Advisor `r`, index into `bands`). */
  spotBand: Record<string, (number | null)[]>;
}

/** What the Spot Advisor feed in data/source is known to date from (its README). */
export const SPOT_ADVISOR_AS_OF = 'mid-2025';

/** The source files of the snapshot, in recommender/data/source. */
export const SOURCE_FILES = {
  onDemand: 'aws-ondemand-prices.json',
  spotAdvisor: 'aws-spot-advisor.json',
} as const;

/** `provenance.generatedBy` of a snapshot built from data/source by generate-snapshot.ts. */
export const GENERATED_FROM_SOURCE =
  'operator/aws/generate-snapshot.ts from recommender/data/source (aws-ondemand-prices.json, aws-spot-advisor.json)';

/**
 * Builds the columnar snapshot from the two raw files. Only instance types with an on-demand
 * price are kept (a Spot saving means nothing without the price it is a share of), and only the
 * Linux part of the Spot Advisor feed.
 */
export function buildSnapshot(
  onDemand: OnDemandPriceFile,
  advisor: SpotAdvisorFile,
  generatedBy: string,
  spotAdvisorAsOf: string = SPOT_ADVISOR_AS_OF,
): PriceSnapshot {
  const typeSet = new Set<string>();
  for (const prices of Object.values(onDemand.regions)) {
    for (const type of Object.keys(prices)) typeSet.add(type);
  }
  const types = [...typeSet].sort();
  const bySpec = (pick: (s: { cores: number; ram_gb: number }) => number) =>
    types.map((t) => {
      const spec = advisor.instance_types[t];
      return spec === undefined ? null : pick(spec);
    });
  const column = <T>(source: Record<string, T>, pick: (v: T) => number) =>
    types.map((t) => {
      const v = source[t];
      return v === undefined ? null : pick(v);
    });

  const onDemandColumns: Record<string, (number | null)[]> = {};
  for (const region of Object.keys(onDemand.regions).sort()) {
    onDemandColumns[region] = column(onDemand.regions[region] ?? {}, (v) => v);
  }
  const savings: Record<string, (number | null)[]> = {};
  const bands: Record<string, (number | null)[]> = {};
  for (const region of Object.keys(advisor.spot_advisor).sort()) {
    const linux = advisor.spot_advisor[region]?.Linux ?? {};
    savings[region] = column(linux, (v) => v.s);
    bands[region] = column(linux, (v) => v.r);
  }
  return {
    provenance: {
      onDemand: { source: onDemand.source, asOf: onDemand.generatedAt },
      spotAdvisor: { source: advisor.source, asOf: spotAdvisorAsOf },
      generatedBy,
    },
    bands: [...advisor.ranges].sort((a, b) => a.index - b.index).map((r) => r.label),
    types,
    vcpu: bySpec((s) => s.cores),
    memoryGiB: bySpec((s) => s.ram_gb),
    onDemand: onDemandColumns,
    spotSavingsPercent: savings,
    spotBand: bands,
  };
}

/** Serialises a snapshot compactly: one line per top-level key, so diffs stay readable. */
export function serializeSnapshot(snapshot: PriceSnapshot): string {
  const lines = Object.entries(snapshot).map(([k, v]) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && k !== 'provenance') {
      const inner = Object.entries(v as Record<string, unknown>).map(
        ([rk, rv]) => `    ${JSON.stringify(rk)}: ${JSON.stringify(rv)}`,
      );
      return `  ${JSON.stringify(k)}: {\n${inner.join(',\n')}\n  }`;
    }
    return `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}
