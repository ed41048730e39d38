import { afterEach, describe, expect, it } from 'vitest';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import { RESOURCES } from '../kube/resources.ts';
import { fixedPrices, type PriceCondition, type PriceSource } from '../prices.ts';
import {
  deployment,
  recommendationOf,
  startFakeOperator,
  type FakeOperator,
} from '../testing/harness.ts';

let operator: FakeOperator | undefined;
afterEach(async () => {
  await operator?.stop();
  operator = undefined;
});

describe('recommendations follow their price source', () => {
  it('recomputes on request and writes only the recommendations that changed', async () => {
    const said: { condition?: PriceCondition } = {};
    const prices: PriceSource = {
      ...fixedPrices(SNAPSHOT_PRICES),
      condition: () => said.condition,
    };
    operator = await startFakeOperator({ prices });
    const op = operator;
    op.kube.put(RESOURCES.deployments, deployment('shop', 'web', { replicas: 3 }));
    await op.until(() => recommendationOf(op.kube, 'shop', 'web')?.status !== undefined);
    const writes = (): number => op.kube.count('apply') + op.kube.count('apply-status');
    const before = writes();

    // The same prices again: every workload is reconciled, nothing is written.
    op.controller.recomputeAll();
    await op.clock.advance(5000);
    expect(writes()).toBe(before);

    // The source now has something to say (an AWS permission went missing): the facts did not
    // change, so only recomputeAll brings it to the recommendation.
    said.condition = {
      type: 'LivePrices',
      status: 'False',
      reason: 'AccessDenied',
      message: "AWS denied kopek's role pricing:GetProducts.",
    };
    op.controller.recomputeAll();
    const conditions = (): string[] =>
      (
        recommendationOf(op.kube, 'shop', 'web') as
          { status?: { conditions?: { type: string }[] } } | undefined
      )?.status?.conditions?.map((c) => c.type) ?? [];
    await op.until(() => conditions().includes('LivePrices'));
    expect(conditions()).toEqual(['Ready', 'LivePrices']);
    expect(writes()).toBe(before + 1);
  });
});
