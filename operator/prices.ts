/**
 * Where the controller gets its prices: a PriceSource. The embedded snapshot is one that never
 * changes; the live AWS source (operator/aws/live-prices.ts) replaces its book when AWS's prices
 * move and asks the controller to recompute.
 */
import type { Condition } from '../recommender/api/v1alpha1.ts';
import type { WorkloadFacts } from '../recommender/facts.ts';
import type { PriceBook } from '../recommender/pricing.ts';

/** A condition the price source adds to every recommendation (e.g. an AWS permission missing). */
export type PriceCondition = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

export interface PriceSource {
  /** The price book to recommend with now. */
  book(): PriceBook;
  /** The live Spot placement score (1–10) of the instance types the workload would use, if known. */
  spotPlacementScore(facts: WorkloadFacts): number | undefined;
  /** A condition to show on recommendations, or undefined when there is nothing to say. */
  condition(): PriceCondition | undefined;
  /** Age of the prices in use, for kopek_prices_age_seconds{source}. */
  age(now: number): { source: 'live' | 'snapshot'; seconds: number };
}

/** A price source that always answers with one book (the embedded snapshot, in kopek). */
export function fixedPrices(book: PriceBook): PriceSource {
  return {
    book: () => book,
    spotPlacementScore: () => undefined,
    condition: () => undefined,
    age: (now) => ({
      source: book.source === 'Live' ? 'live' : 'snapshot',
      seconds: Math.max(0, (now - Date.parse(book.asOf)) / 1000),
    }),
  };
}
