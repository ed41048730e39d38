/**
 * The commerce dump (test/fixtures/commerce) as `kopek patch` reads it, and what Apply mode
 * plans for each of its workloads: what the patch tests compare the merged output with.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildFacts, parseDump, parseImagePlatforms } from '../../operator/cli/analyze.ts';
import { indexDump, workloadKey } from '../../operator/cli/patch.ts';
import { planCommit } from '../../recommender/apply/commit.ts';
import type { PodPlacement, ServicePlacement } from '../../recommender/apply/placement.ts';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';

export const COMMERCE_DUMP = fileURLToPath(
  new URL('../fixtures/commerce/dump.yaml', import.meta.url),
);
export const COMMERCE_PLATFORMS = fileURLToPath(
  new URL('../fixtures/commerce/image-platforms.json', import.meta.url),
);

export interface CommercePlans {
  /** The dumped objects by ns/Kind/name. */
  dumped: ReadonlyMap<string, Record<string, unknown>>;
  /** The pod placement Apply mode plans for the workload ns/Kind/name; throws if none. */
  planned: (key: string) => PodPlacement;
  /** The traffic settings CrossZone plans for the Service ns/Service/name; throws if none. */
  plannedService: (key: string) => ServicePlacement;
}

export function commercePlans(): CommercePlans {
  const objects = parseDump(readFileSync(COMMERCE_DUMP), COMMERCE_DUMP);
  const platforms = parseImagePlatforms(
    readFileSync(COMMERCE_PLATFORMS, 'utf8'),
    COMMERCE_PLATFORMS,
    [],
  );
  const built = buildFacts(objects, { imagePlatforms: platforms });
  const { dumped, services } = indexDump(objects);
  const plans = new Map<string, PodPlacement>();
  const servicePlans = new Map<string, ServicePlacement>();
  for (const facts of built.facts) {
    const key = workloadKey(facts);
    const plan = planCommit({
      facts,
      prices: SNAPSHOT_PRICES,
      workload: dumped.get(key) ?? {},
      services: services.get(facts.namespace) ?? new Map(),
    });
    if ('nothing' in plan) continue;
    plans.set(key, plan.planned.podSpec);
    for (const service of plan.planned.services)
      servicePlans.set(`${facts.namespace}/Service/${service.name}`, service);
  }
  const lookup =
    <T>(plansByKey: ReadonlyMap<string, T>) =>
    (key: string): T => {
      const plan = plansByKey.get(key);
      if (plan === undefined) throw new Error(`${key}: kopek plans no change for it`);
      return plan;
    };
  return { dumped, planned: lookup(plans), plannedService: lookup(servicePlans) };
}
