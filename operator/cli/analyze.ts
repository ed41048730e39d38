/**
 * `kopek analyze`: a kubectl dump in, one WorkloadRecommendation per workload out. Parsing and
 * validation of the inputs lives here; the facts and the decisions come from recommender/, the
 * same code the operator runs.
 */
import { loadAll, YAMLException } from 'js-yaml';
import type { WorkloadRecommendation } from '../../recommender/api/v1alpha1.ts';
import type { ImagePlatformsFact, WorkloadFacts } from '../../recommender/facts.ts';
import {
  factsFromObjects,
  type BuildOptions,
  type BuildResult,
  type SkippedWorkload,
} from '../../recommender/facts-from-objects.ts';
import { flattenLists } from '../../recommender/objects/index.ts';
import { isRecord, obj } from '../../recommender/objects/read.ts';
import { SNAPSHOT_PRICES, sumUSD } from '../../recommender/pricing.ts';
import { fixedPrices, type PriceSource } from '../prices.ts';
import { recommend, toWorkloadRecommendation } from '../../recommender/recommend.ts';
import { applyTraffic, type TrafficInput } from '../../recommender/traffic.ts';
import { jsonItems } from './json-items.ts';
import { parseKubectlYaml } from './kubectl-yaml.ts';

/** An input that cannot be used at all (exit code 2). */
export class InputError extends Error {
  override name = 'InputError';
}

/**
 * Heap a dump takes while it is parsed and analysed, per byte of the file: measured on the
 * 50,000-pod dump of test/bench/kubectl-dump.ts (docs/decisions/0012-kubectl-yaml-fast-path.md).
 */
export const HEAP_PER_DUMP_BYTE = 4;
/**
 * The longest string V8 makes (2^29 − 24 characters). A dump up to this size is read as one
 * text; a longer one only as JSON, item by item (json-items.ts).
 */
const MAX_TEXT_BYTES = 2 ** 29 - 24;

const mb = (n: number): string => `${Math.ceil(n / 2 ** 20).toLocaleString('en-US')} MB`;

/** Refuses a dump too large for this process before it is read. Throws InputError. */
export function checkDumpSize(bytes: number, heapLimit: number, source: string): void {
  const needed = bytes * HEAP_PER_DUMP_BYTE;
  if (needed > heapLimit)
    throw new InputError(
      `${source}: ${mb(bytes)} needs about ${mb(needed)} of memory to analyse and this process may ` +
        `use ${mb(heapLimit)}; raise the limit with NODE_OPTIONS=--max-old-space-size=${Math.ceil((needed * 1.25) / 2 ** 20)} ` +
        '(on a machine with that much memory), or dump fewer objects (only the kinds kopek reads, ' +
        'or a few namespaces at a time with kubectl get ... -n NS, each with the nodes)',
    );
}

/**
 * The text of a dump. UTF-8, with or without a byte-order mark, or UTF-16 with one (what
 * Windows PowerShell's `>` writes).
 */
export function decodeDump(input: string | Uint8Array): { text: string; bytes: Uint8Array } {
  if (typeof input === 'string') {
    const text = input.startsWith('\uFEFF') ? input.slice(1) : input;
    return { text, bytes: Buffer.from(text) };
  }
  const [b0, b1, b2] = input;
  let encoding: 'utf-16le' | 'utf-16be' | undefined;
  if (b0 === 0xff && b1 === 0xfe) encoding = 'utf-16le';
  else if (b0 === 0xfe && b1 === 0xff) encoding = 'utf-16be';
  if (encoding !== undefined) {
    const text = new TextDecoder(encoding).decode(input.subarray(2));
    return { text, bytes: Buffer.from(text) };
  }
  const bytes = b0 === 0xef && b1 === 0xbb && b2 === 0xbf ? input.subarray(3) : input;
  return {
    text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    bytes,
  };
}

/**
 * Parses a kubectl dump: JSON, or YAML with one or more documents. What kubectl prints goes
 * through the fast reader of kubectl-yaml.ts; anything else through a general YAML parser,
 * whose aliases may not expand beyond reason. Throws InputError.
 */
export function parseDump(
  input: string | Uint8Array,
  source: string,
  maxTextBytes = MAX_TEXT_BYTES,
): unknown[] {
  if (typeof input !== 'string' && input.byteLength > maxTextBytes)
    return parseLongDump(input, source, maxTextBytes);
  const { text, bytes } = decodeDump(input);
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
  const fast = parseKubectlYaml(bytes);
  if (fast !== undefined) return fast.filter((doc) => doc !== null && doc !== undefined);
  let docs: unknown[];
  try {
    docs = loadAll(text, { maxDepth: 1000 });
  } catch (e) {
    if (!(e instanceof YAMLException)) throw e;
    const where = e.mark ? ` (line ${e.mark.line + 1}, column ${e.mark.column + 1})` : '';
    throw new InputError(`${source}: not valid YAML or JSON${where}: ${e.reason}`);
  }
  const out: unknown[] = [];
  for (const doc of docs) {
    if (doc === null || doc === undefined) continue;
    checkAliases(doc, source);
    out.push(doc);
  }
  return out;
}

/**
 * A dump longer than one string can be: JSON in UTF-8 (what kubectl writes), read item by item.
 * Throws InputError for anything else.
 */
function parseLongDump(bytes: Uint8Array, source: string, maxTextBytes: number): unknown[] {
  const [b0, b1, b2] = bytes;
  const bom = b0 === 0xef && b1 === 0xbb && b2 === 0xbf ? 3 : 0;
  const utf8 = bytes.subarray(bom);
  let items: unknown[] | undefined;
  try {
    items = jsonItems(utf8, bom);
  } catch (error) {
    // YAML, UTF-16, or JSON broken somewhere: say what to do with a file this long.
    const at = utf8.findIndex((byte) => byte > 0x20);
    if (utf8[at] === 0x7b || utf8[at] === 0x5b)
      throw new InputError(`${source}: ${(error as Error).message}`);
  }
  if (items !== undefined) return items;
  throw new InputError(
    `${source}: ${mb(bytes.byteLength)} is more than kopek can read as one text (${mb(maxTextBytes)}); ` +
      'a longer dump is read only as a JSON list in UTF-8 (kubectl get ... -o json), or dump fewer ' +
      'objects per file (only the kinds kopek reads, or a few namespaces at a time with ' +
      'kubectl get ... -n NS, each with the nodes) and give each with -f',
  );
}

/**
 * How many values an alias-free copy of a document may hold per value it really holds; past
 * that, its aliases are a bomb ("billion laughs"), not the shared dicts PyYAML writes.
 */
const MAX_ALIAS_EXPANSION = 10;
const ALIAS_EXPANSION_FLOOR = 100_000;

/** Refuses a document whose aliases loop or expand beyond reason. Throws InputError. */
function checkAliases(doc: unknown, source: string): void {
  // A parsed alias is the same object as its anchor: count each object once, and as often as
  // it is referred to in the expanded count.
  const expanded = new Map<object, number>();
  const open = new Set<object>();
  const size = (v: unknown): number => {
    if (v === null || typeof v !== 'object') return 1;
    const known = expanded.get(v);
    if (known !== undefined) return known;
    if (open.has(v))
      throw new InputError(`${source}: a YAML alias refers to a node that contains it (a loop)`);
    open.add(v);
    let total = 1;
    for (const child of Object.values(v)) total += size(child);
    open.delete(v);
    expanded.set(v, total);
    return total;
  };
  const total = size(doc);
  if (total > ALIAS_EXPANSION_FLOOR && total > MAX_ALIAS_EXPANSION * expanded.size)
    throw new InputError(
      `${source}: its YAML aliases expand ${expanded.size.toLocaleString('en-US')} values into ` +
        `${total.toLocaleString('en-US')} (an alias bomb?); kopek does not expand aliases beyond ` +
        `${MAX_ALIAS_EXPANSION}× the values written`,
    );
}

/** Kinds kopek reads that live outside namespaces. */
const CLUSTER_SCOPED = new Set([
  'Node',
  'Namespace',
  'PersistentVolume',
  'StorageClass',
  'SavingsPolicy',
]);

/**
 * Puts the objects that have no metadata.namespace (how most projects ship manifests) in
 * `namespace`, as `kubectl apply` would; returns how many it placed.
 */
export function defaultNamespace(objects: readonly unknown[], namespace: string): number {
  let placed = 0;
  for (const o of flattenLists(objects)) {
    const kind = typeof o.kind === 'string' ? o.kind : '';
    if (CLUSTER_SCOPED.has(kind) || !isRecord(o.metadata)) continue;
    const current = o.metadata.namespace;
    if (typeof current === 'string' && current !== '') continue;
    o.metadata.namespace = namespace;
    placed++;
  }
  return placed;
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

/** The facts of every workload among the objects, with measured traffic when there is some. */
export function buildFacts(
  objects: readonly unknown[],
  options: BuildOptions,
  traffic?: TrafficInput,
): BuildResult {
  const built = factsFromObjects(objects, options);
  if (traffic !== undefined) {
    const measured = applyTraffic(built.facts, traffic);
    built.facts = measured.facts;
    built.warnings.push(...measured.warnings);
  }
  return built;
}

/** The facts with the Spot placement score the prices know for them, as the operator reads. */
export function withPlacementScore(facts: WorkloadFacts, prices: PriceSource): WorkloadFacts {
  const spotPlacementScore = prices.spotPlacementScore(facts);
  return spotPlacementScore === undefined ? facts : { ...facts, spotPlacementScore };
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
  const built = buildFacts(objects, options, traffic);
  const items = built.facts.map((facts) =>
    toWorkloadRecommendation(
      facts,
      recommend(withPlacementScore(facts, prices), prices.book()),
      now,
    ),
  );
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

/** The default table's width, as a terminal shows it without wrapping. */
export const TABLE_WIDTH = 120;
const GAP = 3;

/** A cell cut to `width` characters, with an ellipsis when it was longer. */
function fit(cell: string, width: number): string {
  return cell.length <= width ? cell : `${cell.slice(0, Math.max(0, width - 1))}…`;
}

/**
 * The columns `kubectl get wrec -A` prints (Age aside: these objects are not created yet), and
 * a closing line with the totals. By default the workload (kind/name) stands for the
 * recommendation's name and the line fits TABLE_WIDTH columns, namespaces and workload names
 * cut if they must be; `wide` (-o wide) adds NAME and COST/MO and cuts nothing, as kubectl does.
 */
export function formatTable(items: readonly WorkloadRecommendation[], wide = false): string {
  const verdicts = (r: WorkloadRecommendation) => [
    r.status?.spot?.verdict ?? '',
    r.status?.arm64?.verdict ?? '',
    r.status?.crossZone?.verdict ?? '',
  ];
  const ready = (r: WorkloadRecommendation) =>
    r.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? '';
  const workload = (r: WorkloadRecommendation) =>
    `${r.spec.targetRef.kind}/${r.spec.targetRef.name}`;
  const header = wide
    ? [
        'NAMESPACE',
        'NAME',
        'WORKLOAD',
        'SPOT',
        'ARM64',
        'CROSS-ZONE',
        'COST/MO',
        'SAVINGS/MO',
        'STATE',
      ]
    : ['NAMESPACE', 'WORKLOAD', 'SPOT', 'ARM64', 'CROSS-ZONE', 'SAVINGS/MO', 'STATE'];
  let rows = items.map((r) =>
    wide
      ? [
          r.metadata.namespace ?? '',
          r.metadata.name,
          workload(r),
          ...verdicts(r),
          r.status?.monthlyCostUSD ?? '',
          r.status?.potentialMonthlySavingsUSD ?? '',
          ready(r),
        ]
      : [
          r.metadata.namespace ?? '',
          workload(r),
          ...verdicts(r),
          r.status?.potentialMonthlySavingsUSD ?? '',
          ready(r),
        ],
  );
  let widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const lineWidth = () => widths.reduce((sum, w) => sum + w, 0) + GAP * (widths.length - 1);
  if (!wide && lineWidth() > TABLE_WIDTH) {
    // Only the two free-text columns give way: the namespace to at most 40% of what is left.
    const [ns = 0, name = 0, ...fixed] = widths;
    const room = TABLE_WIDTH - fixed.reduce((sum, w) => sum + w, 0) - GAP * (widths.length - 1);
    const nsWidth = Math.min(ns, Math.max(header[0]?.length ?? 0, Math.floor(room * 0.4)));
    const nameWidth = Math.min(name, room - nsWidth);
    widths = [nsWidth, nameWidth, ...fixed];
    rows = rows.map(([n = '', w = '', ...rest]) => [fit(n, nsWidth), fit(w, nameWidth), ...rest]);
  }
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((widths[i] ?? 0) + GAP)))
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
