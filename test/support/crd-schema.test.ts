import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { crdSchema, schemaViolations, type OpenApiSchema } from './crd-schema.ts';

const EXAMPLES = fileURLToPath(new URL('../../crds/examples/', import.meta.url));
const WREC = crdSchema('kopek.dev_workloadrecommendations.yaml');

const example = (file: string): Record<string, unknown> =>
  parse(readFileSync(`${EXAMPLES}${file}`, 'utf8')) as Record<string, unknown>;

interface Result {
  verdict?: string;
  score?: number | null;
  reasons: { message: string }[];
}
interface Status {
  monthlyCostUSD: unknown;
  spot: Result;
  mood?: string;
}

/** A deep copy of the checkout example with `change` applied to its status. */
function checkout(change: (status: Status) => void): unknown {
  const object = structuredClone(example('workloadrecommendation-checkout.yaml')) as {
    status: Status;
  };
  change(object.status);
  return object;
}

describe('the CRD schema checker used by the fuzz tests', () => {
  it('accepts every WorkloadRecommendation example in crds/examples', () => {
    // (It knows the CEL rules of WorkloadRecommendations, what kopek writes; not SavingsPolicy's.)
    const files = readdirSync(EXAMPLES).filter((file) =>
      file.startsWith('workloadrecommendation-'),
    );
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const file of files) expect(schemaViolations(WREC, example(file)), file).toEqual([]);
  });

  it.each([
    ['negative money', (s: Status) => (s.monthlyCostUSD = '-1.00'), 'status.monthlyCostUSD'],
    [
      'a float where money is a string',
      (s: Status) => (s.monthlyCostUSD = 420.48),
      'must be a string',
    ],
    ['a verdict outside the enum', (s: Status) => (s.spot.verdict = 'Maybe'), 'is not in enum'],
    [
      'Unknown without a reason (CEL)',
      (s: Status) => ((s.spot.verdict = 'Unknown'), (s.spot.reasons = [])),
      'must give at least one reason',
    ],
    ['a score above 100', (s: Status) => (s.spot.score = 101), 'above the maximum'],
    ['an unknown field', (s: Status) => (s.mood = 'sunny'), 'status.mood: unknown field'],
    [
      '33 reasons',
      (s: Status) => (s.spot.reasons = Array.from({ length: 33 }, () => ({ message: 'm' }))),
      'at most 32',
    ],
    ['a NaN sent as null', (s: Status) => (s.spot.score = null), 'null is not allowed'],
    [
      'a message of 1025 characters',
      (s: Status) => (s.spot.reasons = [{ ...s.spot.reasons[0], message: 'é'.repeat(1025) }]),
      'at most 1024',
    ],
    ['a missing required field', (s: Status) => delete s.spot.verdict, 'verdict is required'],
  ])('refuses %s', (_, change, problem) => {
    expect(schemaViolations(WREC, checkout(change)).join('\n')).toContain(problem);
  });

  it('reports a CEL rule it has no evaluator for, instead of passing it', () => {
    const schema: OpenApiSchema = {
      type: 'object',
      'x-kubernetes-validations': [{ rule: 'self.a < self.b', message: 'a before b' }],
      properties: { a: { type: 'integer' }, b: { type: 'integer' } },
    };
    expect(schemaViolations(schema, { a: 1, b: 2 })).toEqual([
      '<root>: no evaluator in crd-schema.ts for CEL rule: self.a < self.b',
    ]);
  });
});
