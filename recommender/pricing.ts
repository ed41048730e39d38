/**
 * Prices: the embedded snapshot (or a live price book with the same shape), lookups by region
 * and instance type with the us-east-1 fallback, the explicit x86 → Graviton family table, the
 * OpenCost split of a node's hourly price into CPU and memory, and money formatting.
 */
import snapshotJson from './data/prices.json' with { type: 'json' };
import type { PriceSnapshot } from './data/snapshot.ts';

/** Hours in a month, as AWS and OpenCost count them. */
export const HOURS_PER_MONTH = 730;
/** OpenCost's default ratio of the price of one vCPU-hour to one GiB-hour of memory. */
export const CPU_TO_RAM_PRICE_RATIO = 7.46;
/** The region whose prices stand in when a region has none. */
export const FALLBACK_REGION = 'us-east-1';
/** Data transfer between availability zones: $0.01/GB out of one zone plus $0.01/GB into the other. */
export const CROSS_ZONE_USD_PER_GB = 0.02;

export interface InstanceSpec {
  vcpu: number;
  memoryGiB: number;
}

export interface SpotFigures {
  /** Spot savings in percent versus on-demand (Spot Advisor `s`, or derived from a live price). */
  savingsPercent: number;
  /** Interruption-frequency band, index into PriceBook.bands; undefined when not known. */
  band?: number;
  /** Live Spot price, USD per hour; when absent the price is on-demand × (1 − s/100). */
  hourly?: number;
}

/**
 * Everything the recommender needs to know about prices. The snapshot is one; the operator's
 * live source (AWS Pricing API + Spot price history) builds another of the same shape.
 */
export interface PriceBook {
  source: 'Live' | 'Snapshot';
  /** When the on-demand prices were taken (RFC 3339). */
  asOf: string;
  /** Interruption band labels, e.g. ["<5%", "5-10%", "10-15%", "15-20%", ">20%"]. */
  bands: readonly string[];
  /** region → instance type → on-demand USD per hour. */
  onDemand: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /** region → instance type → Spot figures. */
  spot: ReadonlyMap<string, ReadonlyMap<string, SpotFigures>>;
  specs: ReadonlyMap<string, InstanceSpec>;
  /**
   * Live books only: region → instance type → when its price took effect (RFC 3339; AWS's
   * effectiveDate, or the Spot price's timestamp when later). A recommendation's `asOf` is the
   * latest date among the prices it uses, so a price change rewrites only what it touches.
   */
  priceDates?: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/**
 * Turns the columnar snapshot into a price book. The operator's live source builds the same
 * shape from the AWS APIs (operator/aws/prices.ts) and passes `source: 'Live'`.
 */
export function priceBookFromSnapshot(
  snapshot: PriceSnapshot,
  source: PriceBook['source'] = 'Snapshot',
): PriceBook {
  const { types } = snapshot;
  const onDemand = new Map<string, Map<string, number>>();
  for (const [region, column] of Object.entries(snapshot.onDemand)) {
    const prices = new Map<string, number>();
    column.forEach((price, i) => {
      const type = types[i];
      if (price !== null && type !== undefined) prices.set(type, price);
    });
    onDemand.set(region, prices);
  }
  const spot = new Map<string, Map<string, SpotFigures>>();
  for (const [region, column] of Object.entries(snapshot.spotSavingsPercent)) {
    const bands = snapshot.spotBand[region] ?? [];
    const figures = new Map<string, SpotFigures>();
    column.forEach((savingsPercent, i) => {
      const type = types[i];
      if (savingsPercent === null || type === undefined) return;
      const band = bands[i];
      figures.set(
        type,
        band === null || band === undefined ? { savingsPercent } : { savingsPercent, band },
      );
    });
    spot.set(region, figures);
  }
  const specs = new Map<string, InstanceSpec>();
  types.forEach((type, i) => {
    const vcpu = snapshot.vcpu[i];
    const memoryGiB = snapshot.memoryGiB[i];
    if (typeof vcpu === 'number' && typeof memoryGiB === 'number' && vcpu > 0 && memoryGiB > 0) {
      specs.set(type, { vcpu, memoryGiB });
    }
  });
  return {
    source,
    asOf: snapshot.provenance.onDemand.asOf,
    bands: snapshot.bands,
    onDemand,
    spot,
    specs,
  };
}

/** The price book built from the embedded snapshot. */
export const SNAPSHOT_PRICES: PriceBook = priceBookFromSnapshot(snapshotJson);

/** A price looked up for one region, saying which region's figure was used. */
export interface RegionalPrice {
  hourly: number;
  /** The region whose price was used: the one asked for, or FALLBACK_REGION. */
  region: string;
  fallback: boolean;
}

function regionTable<T>(
  tables: ReadonlyMap<string, ReadonlyMap<string, T>>,
  region: string,
): { table: ReadonlyMap<string, T>; region: string; fallback: boolean } | undefined {
  const own = tables.get(region);
  if (own !== undefined) return { table: own, region, fallback: false };
  const fallback = tables.get(FALLBACK_REGION);
  return fallback === undefined
    ? undefined
    : { table: fallback, region: FALLBACK_REGION, fallback: true };
}

/** On-demand USD/hour of an instance type; a region without prices falls back to us-east-1. */
export function onDemandPrice(
  book: PriceBook,
  region: string,
  instanceType: string,
): RegionalPrice | undefined {
  const found = regionTable(book.onDemand, region);
  const hourly = found?.table.get(instanceType);
  if (found === undefined || hourly === undefined) return undefined;
  return { hourly, region: found.region, fallback: found.fallback };
}

/** Spot figures for an instance type; a region without Spot data falls back to us-east-1. */
export function spotFigures(
  book: PriceBook,
  region: string,
  instanceType: string,
): (SpotFigures & { region: string; fallback: boolean }) | undefined {
  const found = regionTable(book.spot, region);
  const figures = found?.table.get(instanceType);
  if (found === undefined || figures === undefined) return undefined;
  return { ...figures, region: found.region, fallback: found.fallback };
}

/**
 * Spot USD/hour of an instance type: the live Spot price when the book has one, otherwise the
 * on-demand price less the Spot Advisor's savings percentage.
 */
export function spotPrice(
  book: PriceBook,
  region: string,
  instanceType: string,
): RegionalPrice | undefined {
  const od = onDemandPrice(book, region, instanceType);
  const spot = spotFigures(book, region, instanceType);
  if (od === undefined || spot === undefined) return undefined;
  const hourly = spot.hourly ?? (od.hourly * (100 - spot.savingsPercent)) / 100;
  return { hourly, region: od.region, fallback: od.fallback || spot.fallback };
}

/**
 * When the prices a workload is priced with took effect: the latest of the dated prices of the
 * instance types it runs on and their Graviton equivalents; the book's `asOf` when none is dated.
 */
export function pricesAsOf(
  book: PriceBook,
  region: string,
  instanceTypes: Iterable<string>,
): string {
  const dates = book.priceDates === undefined ? undefined : regionTable(book.priceDates, region);
  let latest: string | undefined;
  for (const type of instanceTypes) {
    for (const priced of [type, gravitonEquivalent(type)]) {
      const date = priced === undefined ? undefined : dates?.table.get(priced);
      if (date !== undefined && (latest === undefined || Date.parse(date) > Date.parse(latest)))
        latest = date;
    }
  }
  return latest ?? book.asOf;
}

/** Splits an instance family name from its size: "m6i.xlarge" → ["m6i", "xlarge"]. */
export function splitInstanceType(instanceType: string): [string, string] | undefined {
  const dot = instanceType.indexOf('.');
  if (dot <= 0 || dot === instanceType.length - 1) return undefined;
  return [instanceType.slice(0, dot), instanceType.slice(dot + 1)];
}

/**
 * True for Graviton (arm64) instance types: a `g` right after the generation digit (m6g, m7gd,
 * c7gn, r8g, t4g, x2gd, im4gn, is4gen, i4g, g5g, hpc7g, …), and `a1`, the first Graviton.
 */
export function isGravitonType(instanceType: string): boolean {
  const family = splitInstanceType(instanceType)?.[0] ?? instanceType;
  return family === 'a1' || /^[a-z]+\d+g/.test(family);
}

/**
 * The explicit x86 → Graviton family table (same size in the target family). Local-NVMe (`d`)
 * and network-optimised (`n`) variants map to their Graviton counterparts; 8th-generation x86
 * maps to Graviton4. Families not listed have no Graviton equivalent kopek will price.
 */
export const GRAVITON_FAMILY: Readonly<Record<string, string>> = {
  // General purpose
  m4: 'm7g',
  m5: 'm7g',
  m5a: 'm7g',
  m5n: 'm7g',
  m6i: 'm7g',
  m6a: 'm7g',
  m6in: 'm7g',
  m7i: 'm7g',
  'm7i-flex': 'm7g',
  m7a: 'm7g',
  m5d: 'm7gd',
  m5ad: 'm7gd',
  m5dn: 'm7gd',
  m6id: 'm7gd',
  m6idn: 'm7gd',
  m8i: 'm8g',
  'm8i-flex': 'm8g',
  m8a: 'm8g',
  m8id: 'm8gd',
  // Compute optimised
  c4: 'c7g',
  c5: 'c7g',
  c5a: 'c7g',
  c6i: 'c7g',
  c6a: 'c7g',
  c7i: 'c7g',
  'c7i-flex': 'c7g',
  c7a: 'c7g',
  c5d: 'c7gd',
  c5ad: 'c7gd',
  c6id: 'c7gd',
  c5n: 'c7gn',
  c6in: 'c7gn',
  c8i: 'c8g',
  'c8i-flex': 'c8g',
  c8a: 'c8g',
  c8id: 'c8gd',
  c8in: 'c8gn',
  // Memory optimised
  r4: 'r7g',
  r5: 'r7g',
  r5a: 'r7g',
  r5b: 'r7g',
  r5n: 'r7g',
  r6i: 'r7g',
  r6a: 'r7g',
  r7i: 'r7g',
  r7a: 'r7g',
  r5d: 'r7gd',
  r5ad: 'r7gd',
  r5dn: 'r7gd',
  r6id: 'r7gd',
  r8i: 'r8g',
  'r8i-flex': 'r8g',
  r8a: 'r8g',
  r8id: 'r8gd',
  x2idn: 'x2gd',
  // Burstable
  t2: 't4g',
  t3: 't4g',
  t3a: 't4g',
  // Storage optimised
  i3: 'i4g',
  i4i: 'i4g',
};

/** The Graviton instance type of the same size, e.g. "m6i.xlarge" → "m7g.xlarge". */
export function gravitonEquivalent(instanceType: string): string | undefined {
  const parts = splitInstanceType(instanceType);
  if (parts === undefined) return undefined;
  const family = GRAVITON_FAMILY[parts[0]];
  return family === undefined ? undefined : `${family}.${parts[1]}`;
}

/**
 * x86 types of the same size that could replace a Graviton type, best first, to price a move
 * back to amd64: the same generation's Intel family (m7g → m7i, c6gd → c6id), then the families
 * the x86 → Graviton table maps to it, newest generation and Intel first (t4g → t3, m7gd → m6id).
 * The caller takes the first its price book prices.
 */
export function amd64Candidates(instanceType: string): string[] {
  const parts = splitInstanceType(instanceType);
  if (parts === undefined || !isGravitonType(instanceType)) return [];
  const [family, size] = parts;
  const rank = (f: string): number => {
    const m = /^[a-z]+(\d+)([a-z]*)/.exec(f);
    const suffix = m?.[2] ?? '';
    return Number(m?.[1] ?? 0) * 10 + (suffix.startsWith('i') ? 2 : suffix.startsWith('a') ? 0 : 1);
  };
  const mapped = Object.keys(GRAVITON_FAMILY)
    .filter((x86) => GRAVITON_FAMILY[x86] === family)
    .sort((a, b) => rank(b) - rank(a) || a.localeCompare(b));
  const sameGeneration = family.replace(/^([a-z]+\d+)g/, '$1i');
  return [...new Set([sameGeneration, ...mapped])].map((f) => `${f}.${size}`);
}

/** An hourly node price split into a price per vCPU-hour and per GiB-hour, as OpenCost does. */
export interface ResourcePrices {
  cpuHourly: number;
  ramGiBHourly: number;
}

/**
 * Splits a node's hourly price P between its vCPUs and memory with OpenCost's ratio:
 * ramGiBh = P / (vCPU·7.46 + GiB), cpuh = 7.46·ramGiBh.
 */
export function splitNodePrice(hourly: number, spec: InstanceSpec): ResourcePrices {
  const ramGiBHourly = hourly / (spec.vcpu * CPU_TO_RAM_PRICE_RATIO + spec.memoryGiB);
  return { cpuHourly: CPU_TO_RAM_PRICE_RATIO * ramGiBHourly, ramGiBHourly };
}

/** A pod's hourly cost: its CPU (cores) and memory (GiB) at the node's split prices. */
export function podHourly(prices: ResourcePrices, cpuCores: number, memoryGiB: number): number {
  return cpuCores * prices.cpuHourly + memoryGiB * prices.ramGiBHourly;
}

/** Rounds USD to cents, half away from zero, immune to binary noise (1.005 → 1.01). */
export function roundCents(usd: number): number {
  const cents = Math.round(Number((Math.abs(usd) * 100).toPrecision(12)));
  return (Math.sign(usd) * cents) / 100;
}

/** USD as the API's decimal string with two decimals, never negative: 288.748 → "288.75". */
export function formatUSD(usd: number): string {
  if (!Number.isFinite(usd) || usd <= 0) return '0.00';
  return roundCents(usd).toFixed(2);
}

/** A decimal USD string ("288.75", "12", "0.5") → integer cents; undefined when it is not one. */
function usdCents(usd: string | undefined): number | undefined {
  const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(usd ?? '');
  if (m === null) return undefined;
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'));
}

/**
 * Sums the API's decimal USD strings exactly, on integer cents: ["0.10", "0.20"] → "0.30",
 * where floats give 0.30000000000000004 and drift further over thousands of workloads. A value
 * that is absent or not a decimal amount counts as nothing.
 */
export function sumUSD(values: Iterable<string | undefined>): string {
  let cents = 0;
  for (const v of values) cents += usdCents(v) ?? 0;
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}
