import fc from 'fast-check';
import { factsFromObjects, type BuildOptions } from '../../recommender/facts-from-objects.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { recommend, toWorkloadRecommendation } from '../../recommender/recommend.ts';
import { crdSchema, schemaViolations } from '../support/crd-schema.ts';
import { dumpArb, optionsArb } from './objects.ts';

const SCHEMA = crdSchema('kopek.dev_workloadrecommendations.yaml');

/** The seed `npm test` fuzzes with, so a failure there reproduces exactly. */
export const DEFAULT_SEED = 20261202;

/** What one dump gave: how many recommendations, and which verdicts. */
export interface Outcome {
  recommendations: number;
  verdicts: string[];
}

/**
 * Builds facts from `objects`, recommends for each workload and checks the object kopek would
 * write — as JSON, the way it is sent — against the CRD schema. Throws on any exception or
 * invalid field, naming the workload.
 */
export function checkDump(objects: readonly unknown[], options: BuildOptions): Outcome {
  const { facts } = factsFromObjects(objects, options);
  const verdicts: string[] = [];
  for (const workload of facts) {
    const status = recommend(workload, SNAPSHOT_PRICES);
    const written = JSON.parse(
      JSON.stringify(toWorkloadRecommendation(workload, status, '2026-12-01T00:00:00Z')),
    ) as unknown;
    const problems = schemaViolations(SCHEMA, written);
    if (problems.length > 0)
      throw new Error(
        `the recommendation of ${workload.kind} ${workload.namespace}/${workload.name} breaks the CRD schema:\n  ${problems.slice(0, 10).join('\n  ')}`,
      );
    for (const key of ['spot', 'arm64', 'crossZone'] as const) {
      const verdict = status[key]?.verdict;
      if (verdict !== undefined) verdicts.push(`${key}:${verdict}`);
    }
  }
  return { recommendations: facts.length, verdicts };
}

/** Runs `runs` seeded cases; resolves with what they covered, throws fast-check's report on failure. */
export function fuzz(
  runs: number,
  seed: number,
): { cases: number; withRecommendations: number; recommendations: number; verdicts: Set<string> } {
  let cases = 0;
  let withRecommendations = 0;
  let recommendations = 0;
  const verdicts = new Set<string>();
  fc.assert(
    fc.property(dumpArb, optionsArb, (objects, options) => {
      const outcome = checkDump(objects, options);
      cases++;
      if (outcome.recommendations > 0) withRecommendations++;
      recommendations += outcome.recommendations;
      for (const verdict of outcome.verdicts) verdicts.add(verdict);
    }),
    { numRuns: runs, seed, endOnFailure: false },
  );
  return { cases, withRecommendations, recommendations, verdicts };
}
