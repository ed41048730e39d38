/**
 * SavingsPolicy objects → typed SavingsPolicy values. In a cluster the CRD's schema refuses a
 * malformed policy, but a dump (or a caller) may hold anything; a policy without a spec, or
 * with a field of the wrong type or outside its enum, gives a warning naming it and the field,
 * and is left out. It never reaches selectPolicy, which trusts its input's types.
 */
import {
  API_VERSION,
  type ApplyPolicy,
  type Arm64Policy,
  type CrossZonePolicy,
  type LabelSelector,
  type Optimization,
  type Placement,
  type PolicyMode,
  type SavingsPolicy,
  type SavingsPolicySpec,
  type SpotPolicy,
} from '../api/v1alpha1.ts';
import { arr, isRecord, obj, shown, str, type Obj } from './read.ts';
import { labelSelectorOf } from './selectors.ts';

type Read<T> = (v: unknown) => T | undefined;

const bool: Read<boolean> = (v) => (typeof v === 'boolean' ? v : undefined);
const integer: Read<number> = (v) => (Number.isSafeInteger(v) ? (v as number) : undefined);
const text: Read<string> = (v) => (typeof v === 'string' ? v : undefined);
/** The CRD's pattern for minMonthlySavingsUSD. */
const usd: Read<string> = (v) =>
  typeof v === 'string' && /^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(v) ? v : undefined;
function oneOf<T extends string>(...values: T[]): Read<T> {
  return (v) => (values.includes(v as T) ? (v as T) : undefined);
}
function listOf<T>(read: Read<T>): Read<T[]> {
  return (v) => {
    if (!Array.isArray(v)) return undefined;
    const items = arr(v).map(read);
    return items.every((x) => x !== undefined) ? items : undefined;
  };
}

/** Reads the fields of one object, collecting a problem for each field of the wrong type. */
class Fields<T extends object> {
  readonly out = {} as T;
  private readonly from: Obj;
  private readonly path: string;
  private readonly problems: string[];

  constructor(from: Obj, path: string, problems: string[]) {
    this.from = from;
    this.path = path;
    this.problems = problems;
  }

  /** Sets `out[key]` when the field is present and reads as `expected`; absent (or null) is fine. */
  read<K extends keyof T & string>(key: K, read: Read<NonNullable<T[K]>>, expected: string): this {
    const v = this.from[key];
    if (v === undefined || v === null) return this;
    const value = read(v);
    if (value === undefined)
      this.problems.push(`${this.path}.${key} is ${shown(v)}, not ${expected}`);
    else this.out[key] = value;
    return this;
  }

  /** Like read, for a nested object read by `read` with its own path. */
  nested<K extends keyof T & string>(
    key: K,
    read: (from: Obj, path: string, problems: string[]) => NonNullable<T[K]>,
  ): this {
    const v = this.from[key];
    if (v === undefined || v === null) return this;
    if (!isRecord(v)) this.problems.push(`${this.path}.${key} is not an object`);
    else this.out[key] = read(v, `${this.path}.${key}`, this.problems);
    return this;
  }
}

const placement = oneOf<Placement>('Preferred', 'Required');
const selector: Read<LabelSelector> = labelSelectorOf;

function spotOf(from: Obj, path: string, problems: string[]): SpotPolicy {
  return new Fields<SpotPolicy>(from, path, problems)
    .read('enabled', bool, 'true or false')
    .read('minReplicas', integer, 'an integer')
    .read('maxTerminationGracePeriodSeconds', integer, 'an integer')
    .read('placement', placement, 'Preferred or Required').out;
}

function arm64Of(from: Obj, path: string, problems: string[]): Arm64Policy {
  return new Fields<Arm64Policy>(from, path, problems)
    .read('enabled', bool, 'true or false')
    .read('placement', placement, 'Preferred or Required').out;
}

function crossZoneOf(from: Obj, path: string, problems: string[]): CrossZonePolicy {
  return new Fields<CrossZonePolicy>(from, path, problems)
    .read('enabled', bool, 'true or false')
    .read('minMonthlySavingsUSD', usd, 'a decimal string of USD like "10" or "12.50"').out;
}

function applyOf(from: Obj, path: string, problems: string[]): ApplyPolicy {
  return new Fields<ApplyPolicy>(from, path, problems)
    .read(
      'actions',
      listOf(oneOf<Optimization>('Spot', 'Arm64', 'CrossZone')),
      'a list of Spot, Arm64, CrossZone',
    )
    .read('requireApproval', bool, 'true or false')
    .read('maxConcurrent', integer, 'an integer')
    .read('cooldown', text, 'a duration like "1h"')
    .read('progressTimeout', text, 'a duration like "10m"')
    .read('rollbackOnFailure', bool, 'true or false')
    .read('allowGitOpsManaged', bool, 'true or false').out;
}

function specOf(from: Obj, path: string, problems: string[]): SavingsPolicySpec {
  return new Fields<SavingsPolicySpec>(from, path, problems)
    .read('mode', oneOf<PolicyMode>('Recommend', 'Apply'), 'Recommend or Apply')
    .read('priority', integer, 'an integer')
    .read('namespaceSelector', selector, 'a label selector')
    .read('workloadSelector', selector, 'a label selector')
    .nested('spot', spotOf)
    .nested('arm64', arm64Of)
    .nested('crossZone', crossZoneOf)
    .nested('apply', applyOf).out;
}

/** A SavingsPolicy with the types its CRD gives it, or what is wrong with it. */
export function policyOf(raw: unknown): SavingsPolicy | { problems: string[] } {
  const o = obj(raw);
  const name = str(obj(o.metadata).name);
  const problems: string[] = [];
  if (name === undefined || name === '') problems.push('it has no metadata.name');
  if (!isRecord(o.spec)) problems.push('it has no spec');
  const spec = specOf(obj(o.spec), 'spec', problems);
  if (name === undefined || problems.length > 0) return { problems };
  return { apiVersion: API_VERSION, kind: 'SavingsPolicy', metadata: { name }, spec };
}

/** The well-formed policies among `raw`, in order; a warning for each of the others. */
export function readPolicies(raw: readonly unknown[], warnings: string[]): SavingsPolicy[] {
  const policies: SavingsPolicy[] = [];
  for (const p of raw) {
    const read = policyOf(p);
    if (!('problems' in read)) {
      policies.push(read);
      continue;
    }
    const name = str(obj(obj(p).metadata).name);
    warnings.push(
      `SavingsPolicy ${name ?? '(unnamed)'}: ${read.problems.join('; ')}; the policy is ignored`,
    );
  }
  return policies;
}
