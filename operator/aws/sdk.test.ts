import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IAM_ACTIONS } from './sdk.ts';

describe("the chart README's IAM policy", () => {
  it('grants exactly the actions the price calls use', () => {
    const readme = readFileSync(new URL('../../charts/kopek/README.md', import.meta.url), 'utf8');
    const json = /```json\n(\{[\s\S]*?"Sid": "Prices"[\s\S]*?\n\})\n```/.exec(readme)?.[1];
    const policy = JSON.parse(json ?? '{}') as {
      Statement?: { Sid?: string; Action?: string[] }[];
    };
    const prices = policy.Statement?.find((statement) => statement.Sid === 'Prices');
    expect([...(prices?.Action ?? [])].sort()).toEqual(Object.values(IAM_ACTIONS).sort());
  });
});
