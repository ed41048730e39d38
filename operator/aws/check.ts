/**
 * `kopek run --check-aws`: makes each AWS call kopek uses for prices once, the way the operator
 * does (same clients, credential chain and region), and prints OK or the error for each.
 */
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';
import type { Logger } from '../log.ts';
import { LivePrices, type CallOutcome } from './live-prices.ts';
import { IAM_ACTIONS } from './sdk.ts';

/** One line per call: the IAM action, OK / ERROR / SKIPPED, and what happened. */
export function formatOutcomes(outcomes: readonly CallOutcome[]): string {
  const width = Math.max(...Object.values(IAM_ACTIONS).map((action) => action.length));
  return outcomes
    .map((o) => {
      const action = IAM_ACTIONS[o.call].padEnd(width);
      if (o.ok === true) return `${action}  OK       ${o.detail}`;
      if (o.ok === 'skipped') return `${action}  SKIPPED  ${o.detail}`;
      return `${action}  ERROR    ${o.failure}: ${o.message}`;
    })
    .join('\n');
}

/** Runs every call once; resolves with the outcomes (the caller prints them). */
export async function checkAws(options: {
  region?: string;
  nodeLabels: readonly Readonly<Record<string, string>>[];
  log: Logger;
}): Promise<CallOutcome[]> {
  const prices = new LivePrices({
    base: SNAPSHOT_PRICES,
    ...(options.region !== undefined ? { region: options.region } : {}),
    // Without nodes to read, placement scores are asked for one common general-purpose size.
    nodeLabels: () =>
      options.nodeLabels.length > 0
        ? options.nodeLabels
        : [{ 'node.kubernetes.io/instance-type': 'm6i.large', 'kubernetes.io/arch': 'amd64' }],
    refreshIntervalMs: 3_600_000,
    log: options.log,
  });
  try {
    return await prices.refresh();
  } finally {
    await prices.stop();
  }
}
