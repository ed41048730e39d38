/**
 * Reasons and scores shared by every optimization. A Finding is a Reason plus the weight it
 * puts on the score. Verdict and score follow from the findings by fixed rules, so that the
 * same findings always give the same result and removing a blocker never lowers a score:
 *
 *   raw = clamp(50 + Σ Raises − Σ Lowers − Σ Requires, 0, 100)
 *   NotRecommended (any Blocks)           score = max(0, 20 − 10·(blocks − 1))   0–20
 *   Possible / Unknown                    score = 25 + round(0.3·raw)            25–55
 *   Recommended (raw ≥ 50)                score = 60 + round(0.8·(raw − 50))     60–100
 *   AlreadyOptimized 100, NotApplicable 0.
 */
import type { OptimizationResult, Reason, ReasonEffect, Verdict } from './api/v1alpha1.ts';

export interface Finding extends Reason {
  /** How much the finding moves the raw score (its sign comes from the effect). */
  weight: number;
}

/** Limits from the CRD. */
export const MAX_REASONS = 32;
export const MAX_MESSAGE = 1024;

const EFFECT_ORDER: Record<ReasonEffect, number> = {
  Blocks: 0,
  Requires: 1,
  Lowers: 2,
  Raises: 3,
  Info: 4,
};

/** Shortens text to at most `max` characters, marking the cut with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

export function finding(code: string, effect: ReasonEffect, message: string, weight = 0): Finding {
  return { code, effect, message, weight: effect === 'Info' ? 0 : weight };
}

export function hasEffect(findings: readonly Finding[], effect: ReasonEffect): boolean {
  return findings.some((f) => f.effect === effect);
}

/** 50 plus Raises minus Lowers and Requires, clamped to 0–100. */
export function rawScore(findings: readonly Finding[]): number {
  let raw = 50;
  for (const f of findings) {
    if (f.effect === 'Raises') raw += f.weight;
    else if (f.effect === 'Lowers' || f.effect === 'Requires') raw -= f.weight;
  }
  return Math.max(0, Math.min(100, raw));
}

/** The score of a verdict given its findings (see the table at the top of this file). */
export function scoreFor(verdict: Verdict, findings: readonly Finding[]): number {
  switch (verdict) {
    case 'AlreadyOptimized':
      return 100;
    case 'NotApplicable':
      return 0;
    case 'NotRecommended': {
      const blocks = findings.filter((f) => f.effect === 'Blocks').length;
      return Math.max(0, 20 - 10 * (Math.max(blocks, 1) - 1));
    }
    case 'Possible':
    case 'Unknown':
      return 25 + Math.round(0.3 * rawScore(findings));
    case 'Recommended':
      return 60 + Math.round(0.8 * Math.max(0, rawScore(findings) - 50));
  }
}

/**
 * The usual verdict of suitability findings: Blocks → NotRecommended; Requires → Possible;
 * a missing fact → Unknown; otherwise Recommended when the raw score reaches 50, else Possible.
 */
export function verdictOf(findings: readonly Finding[], missingFact: boolean): Verdict {
  if (hasEffect(findings, 'Blocks')) return 'NotRecommended';
  // Without a fact the answer is not known, whatever a patch would change: Unknown before Possible.
  if (missingFact) return 'Unknown';
  if (hasEffect(findings, 'Requires')) return 'Possible';
  return rawScore(findings) >= 50 ? 'Recommended' : 'Possible';
}

/** Findings as API reasons: ordered by effect (Blocks first), then as found; at most 32. */
export function toReasons(findings: readonly Finding[]): Reason[] {
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => EFFECT_ORDER[a.f.effect] - EFFECT_ORDER[b.f.effect] || a.i - b.i)
    .slice(0, MAX_REASONS)
    .map(({ f }) => ({ code: f.code, message: clip(f.message, MAX_MESSAGE), effect: f.effect }));
}

/** Assembles an OptimizationResult from a verdict, its findings and the savings string. */
export function result(
  verdict: Verdict,
  findings: readonly Finding[],
  monthlySavingsUSD: string,
): OptimizationResult {
  const out: OptimizationResult = {
    verdict,
    score: scoreFor(verdict, findings),
    monthlySavingsUSD,
  };
  const reasons = toReasons(findings);
  if (reasons.length > 0) out.reasons = reasons;
  return out;
}

/** "1 replica", "3 replicas". */
export function plural(n: number, word: string, pluralWord = `${word}s`): string {
  return `${n} ${n === 1 ? word : pluralWord}`;
}

/** "a", "a and b", "a, b and c". */
export function listOf(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`;
}

/** Says, in the reasons the suggested patch fixes by itself, that it does. */
export function notePatch(findings: readonly Finding[], codes: ReadonlySet<string>): Finding[] {
  return findings.map((f) =>
    codes.has(f.code) ? { ...f, message: `${f.message} The suggested patch does this.` } : f,
  );
}
