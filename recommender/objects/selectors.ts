/**
 * Label selectors read from untyped objects. `matchesSelector` trusts its selector's types (a
 * `matchExpressions` that is not a list would throw), so every selector from the input is read
 * here first: a well-formed one comes back typed, anything else as undefined.
 */
import type { LabelSelector, LabelSelectorRequirement } from '../api/v1alpha1.ts';
import { arr, isRecord } from './read.ts';

const OPERATORS: ReadonlySet<string> = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function requirementOf(v: unknown): LabelSelectorRequirement | undefined {
  if (!isRecord(v) || typeof v.key !== 'string' || typeof v.operator !== 'string') return undefined;
  if (!OPERATORS.has(v.operator)) return undefined;
  const req: LabelSelectorRequirement = {
    key: v.key,
    operator: v.operator as LabelSelectorRequirement['operator'],
  };
  if (v.values === undefined || v.values === null) return req;
  if (!isStrings(v.values)) return undefined;
  req.values = v.values;
  return req;
}

/** A label selector with the types Kubernetes gives it, or undefined when `v` is not one. */
export function labelSelectorOf(v: unknown): LabelSelector | undefined {
  if (!isRecord(v)) return undefined;
  const selector: LabelSelector = {};
  const { matchLabels, matchExpressions } = v;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isRecord(matchLabels) || !Object.values(matchLabels).every((x) => typeof x === 'string'))
      return undefined;
    selector.matchLabels = matchLabels as Record<string, string>;
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) return undefined;
    const reqs = arr(matchExpressions).map(requirementOf);
    if (reqs.some((r) => r === undefined)) return undefined;
    selector.matchExpressions = reqs.filter((r) => r !== undefined);
  }
  return selector;
}
