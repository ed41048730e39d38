/**
 * `kopek analyze`: a kubectl dump in, one WorkloadRecommendation per workload out. Parsing and
 * validation of the inputs lives here; the facts and the decisions come from recommender/, the
 * same code the operator runs.
 */
import { parseAllDocuments } from 'yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import type { ImagePlatformsFact } from '../../recommender/facts.ts';
import {
  factsFromObjects,
  type BuildOptions,
  type SkippedWorkload,
} from '../../recommender/facts-from-objects.ts';
import { isRecord, obj } from '../../recommender/objects/read.ts';
import { SNAPSHOT_PRICES, sumUSD } from '../../recommender/pricing.ts';
import { fixedPrices, type PriceSource } from '../prices.ts';
import { recommend, toWorkloadRecommendation } from '../../recommender/recommend.ts';
import { applyTraffic, type TrafficInput } from '../../recommender/traffic.ts';

/** An input that cannot be used at all (exit code 2). */
export class InputError extends Error {
  override name = 'InputError';
}

/** Parses a kubectl dump: JSON, or YAML with one or more documents. Throws InputError. */
export function parseDump(text: string, source: string): unknown[] {
  const trimmed = text.trimStart();
  if (trimmed === '') throw new InputError(`${source}: the file is empty`);
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(text);
      return Array.isArray(parsed) ? parsed : [parsed];
    } catch {
      // Not JSON after all (YAML flow style is valid too): let the YAML parser say what is wrong.
    }
  }
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) return [];
  const out: unknown[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error !== undefined) {
      const pos = error.linePos?.[0];
      const where = pos === undefined ? '' : ` (line ${pos.line}, column ${pos.col})`;
      const first = (error.message.split('\n')[0] ?? error.message).replace(
        / at line \d+, column \d+:?$|:$/,
        '',
      );
      throw new InputError(`${source}: not valid YAML or JSON${where}: ${first}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 1000 });
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function isKubeObject(v: unknown): boolean {
  return isRecord(v) && typeof v.apiVersion === 'string' && typeof v.kind === 'string';
}

/** Checks that a parsed dump holds Kubernetes objects at all. Throws InputError. */
export function requireKubeObjects(docs: readonly unknown[], source: string): void {
  if (!docs.some(isKubeObject)) {
    throw new InputError(
      `${source}: no Kubernetes objects found (expected the output of kubectl get ... -o yaml or -o json)`,
    );
  }
}

/**
 * Reads an image-platforms file: a JSON object mapping an image reference to its platforms,
 * e.g. {"nginx:1.27": ["linux/amd64", "linux/arm64"]}. A value may also be
 * {"platforms": [...], "digest": "sha256:..."} or {"error": "why the registry did not answer"}.
 * Entries of the wrong shape are reported in `warnings` and left out.
 */
export function parseImagePlatforms(
  text: string,
  source: string,
  warnings: string[],
): Record<string, ImagePlatformsFact> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${source}: not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(parsed)) {
    throw new InputError(
      `${source}: expected a JSON object mapping image references to platform lists, e.g. {"nginx:1.27": ["linux/amd64", "linux/arm64"]}`,
    );
  }
  const out: Record<string, ImagePlatformsFact> = {};
  const isStrings = (v: unknown): v is string[] =>
    Array.isArray(v) && v.every((x) => typeof x === 'string');
  for (const [image, value] of Object.entries(parsed)) {
    if (isStrings(value)) {
      out[image] = { platforms: value };
      continue;
    }
    const v = obj(value);
    const error = v.error;
    const platforms = v.platforms;
    const digest = v.digest;
    if (typeof error === 'string') {
      out[image] = { error };
    } else if (isStrings(platforms)) {
      out[image] = typeof digest === 'string' ? { platforms, digest } : { platforms };
    } else {
      warnings.push(
        `${source}: ${image}: expected a list of platforms like ["linux/amd64","linux/arm64"] or {"error": "..."}; ignored`,
      );
    }
  }
  return out;
}

export interface AnalyzeResult {
  /** A v1 List of WorkloadRecommendations, sorted by namespace and name. */
  list: { apiVersion: 'v1'; kind: 'List'; items: WorkloadRecommendation[] };
  skipped: SkippedWorkload[];
  warnings: string[];
}

/**
 * Recommends for every workload among the objects. `now` stamps the Ready condition's
 * lastTransitionTime (RFC 3339), as the operator does when it writes the status; `traffic` is
 * what a traffic source measured (or why it could not).
 */
export function analyzeObjects(
  objects: readonly unknown[],
  options: BuildOptions,
  now: string,
  prices: PriceSource = fixedPrices(SNAPSHOT_PRICES),
  traffic?: TrafficInput,
): AnalyzeResult {
  const built = factsFromObjects(objects, options);
  if (traffic !== undefined) {
    const measured = applyTraffic(built.facts, traffic);
    built.facts = measured.facts;
    built.warnings.push(...measured.warnings);
  }
  const items = built.facts.map((facts) => {
    const spotPlacementScore = prices.spotPlacementScore(facts);
    const input = spotPlacementScore === undefined ? facts : { ...facts, spotPlacementScore };
    return toWorkloadRecommendation(facts, recommend(input, prices.book()), now);
  });
  items.sort(
    (a, b) =>
      (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
  return {
    list: { apiVersion: 'v1', kind: 'List', items },
    skipped: built.skipped,
    warnings: built.warnings,
  };
}

/** "1234567.80" → "1,234,567.80". */
function money(usd: string): string {
  const [whole = '0', cents = '00'] = usd.split('.');
  return `${Number(whole).toLocaleString('en-US')}.${cents}`;
}

/**
 * The columns `kubectl get wrec -A` prints (Age aside: these objects are not created yet), and
 * a closing line with the totals.
 */
export function formatTable(items: readonly WorkloadRecommendation[]): string {
  const header = [
    'NAMESPACE',
    'NAME',
    'WORKLOAD',
    'SPOT',
    'ARM64',
    'CROSS-ZONE',
    'COST/MO',
    'SAVINGS/MO',
    'STATE',
  ];
  const rows = items.map((r) => [
    r.metadata.namespace ?? '',
    r.metadata.name,
    r.spec.targetRef.name,
    r.status?.spot?.verdict ?? '',
    r.status?.arm64?.verdict ?? '',
    r.status?.crossZone?.verdict ?? '',
    r.status?.monthlyCostUSD ?? '',
    r.status?.potentialMonthlySavingsUSD ?? '',
    r.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? '',
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)))
      .join('')
      .trimEnd();
  const cost = sumUSD(items.map((r) => r.status?.monthlyCostUSD));
  const savings = sumUSD(items.map((r) => r.status?.potentialMonthlySavingsUSD));
  const share =
    Number(cost) > 0
      ? ` (${((Number(savings) / Number(cost)) * 100).toFixed(1)}% of the cost)`
      : '';
  const n = items.length;
  const total =
    `TOTAL: ${n} workload${n === 1 ? '' : 's'}, cost $${money(cost)}/mo, ` +
    `potential savings $${money(savings)}/mo${share}`;
  return [line(header), ...rows.map(line), '', total].join('\n') + '\n';
}
