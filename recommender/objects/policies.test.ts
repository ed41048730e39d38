import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { SavingsPolicy } from '../api/v1alpha1.ts';
import { factsFromObjects } from '../facts-from-objects.ts';
import { policyOf } from './policies.ts';
import type { Obj } from './read.ts';
import { deployment } from './testing.ts';

const examples = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds', 'examples');

const policy = (name: string, spec: unknown): Obj => ({
  apiVersion: 'kopek.dev/v1alpha1',
  kind: 'SavingsPolicy',
  metadata: { name },
  ...(spec === undefined ? {} : { spec }),
});

/** A well-formed policy that matches everything, below every malformed one's priority. */
const FALLBACK = policy('fallback', { priority: 0, spot: { minReplicas: 5 } });

describe('SavingsPolicies read from objects', () => {
  it.each<[string, unknown, string]>([
    ['without spec', undefined, 'it has no spec'],
    ['with a spec that is a string', 'everything', 'it has no spec'],
    [
      'with a priority that is a string',
      { priority: 'high' },
      'spec.priority is "high", not an integer',
    ],
    ['with a fractional priority', { priority: 1.5 }, 'spec.priority is 1.5, not an integer'],
    [
      'with an unknown mode',
      { mode: 'Sometimes' },
      'spec.mode is "Sometimes", not Recommend or Apply',
    ],
    [
      'with a namespaceSelector that is a string',
      { priority: 10, namespaceSelector: 'prod' },
      'spec.namespaceSelector is "prod", not a label selector',
    ],
    [
      'with matchExpressions that are not a list',
      { priority: 10, namespaceSelector: { matchExpressions: {} } },
      'spec.namespaceSelector is {"matchExpressions":{}}, not a label selector',
    ],
    [
      'with an unknown selector operator',
      { priority: 10, workloadSelector: { matchExpressions: [{ key: 'a', operator: 'Gt' }] } },
      'spec.workloadSelector is {"matchExpressions":[{"key":"a","operator":"Gt"}]}, not a label selector',
    ],
    [
      'with matchLabels values that are not strings',
      { priority: 10, workloadSelector: { matchLabels: { tier: 1 } } },
      'spec.workloadSelector is {"matchLabels":{"tier":1}}, not a label selector',
    ],
    ['with spot that is a string', { priority: 10, spot: 'yes' }, 'spec.spot is not an object'],
    [
      'with spot.enabled that is a string',
      { priority: 10, spot: { enabled: 'no' } },
      'spec.spot.enabled is "no", not true or false',
    ],
    [
      'with an unknown arm64 placement',
      { priority: 10, arm64: { placement: 'Always' } },
      'spec.arm64.placement is "Always", not Preferred or Required',
    ],
    [
      'with minMonthlySavingsUSD as a number',
      { priority: 10, crossZone: { minMonthlySavingsUSD: 12 } },
      'spec.crossZone.minMonthlySavingsUSD is 12, not a decimal string of USD like "10" or "12.50"',
    ],
    [
      'with an unknown apply action',
      { priority: 10, mode: 'Apply', apply: { actions: ['Everything'] } },
      'spec.apply.actions is ["Everything"], not a list of Spot, Arm64, CrossZone',
    ],
  ])('a policy %s gives a warning naming it and is ignored', (_, spec, problem) => {
    const objects = [deployment('web'), FALLBACK, policy('broken', spec)];
    let built: ReturnType<typeof factsFromObjects> | undefined;
    expect(() => (built = factsFromObjects(objects))).not.toThrow();
    expect(built?.facts[0]?.policy).toMatchObject({ name: 'fallback', spot: { minReplicas: 5 } });
    expect(built?.warnings).toContain(`SavingsPolicy broken: ${problem}; the policy is ignored`);
  });

  it('lists every problem of a policy in one warning', () => {
    const { warnings } = factsFromObjects([
      policy('broken', { priority: 'high', spot: { enabled: 'no', minReplicas: 'two' } }),
    ]);
    expect(warnings).toEqual([
      'SavingsPolicy broken: spec.priority is "high", not an integer; spec.spot.enabled is "no", ' +
        'not true or false; spec.spot.minReplicas is "two", not an integer; the policy is ignored',
    ]);
  });

  it('checks the policies given in the options as well, and names an unnamed one', () => {
    const broken = { kind: 'SavingsPolicy', metadata: {}, spec: {} } as unknown as SavingsPolicy;
    const { facts, warnings } = factsFromObjects([deployment('web')], { policies: [broken] });
    expect(facts[0]?.policy.name).toBeUndefined();
    expect(warnings).toEqual([
      'SavingsPolicy (unnamed): it has no metadata.name; the policy is ignored',
    ]);
  });

  it('uses the last copy of a policy that appears twice, as the warning says', () => {
    const { facts, warnings } = factsFromObjects([
      deployment('web'),
      policy('p', { spot: { minReplicas: 3 } }),
      policy('p', { spot: { minReplicas: 4 } }),
    ]);
    expect(warnings).toEqual(['SavingsPolicy p appears twice; the last one is used']);
    expect(facts[0]?.policy).toMatchObject({ name: 'p', spot: { minReplicas: 4 } });
  });

  it.each(readdirSync(examples).filter((f) => f.startsWith('savingspolicy-')))(
    'reads the example %s whole',
    (file) => {
      const example = parse(readFileSync(join(examples, file), 'utf8')) as SavingsPolicy;
      expect(policyOf(example)).toEqual({
        apiVersion: example.apiVersion,
        kind: 'SavingsPolicy',
        metadata: { name: example.metadata.name },
        spec: example.spec,
      });
    },
  );
});
