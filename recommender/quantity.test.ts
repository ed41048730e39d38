import { describe, expect, it } from 'vitest';
import { parseQuantity } from './quantity.ts';

describe('quantities', () => {
  it.each([
    ['500m', 0.5],
    ['1', 1],
    ['1.5', 1.5],
    ['2k', 2000],
    ['512Mi', 512 * 1024 ** 2],
    ['1Gi', 1024 ** 3],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1E', 1e18],
    ['100n', 1e-7],
    [4, 4],
  ])('%s → %s', (q, n) => {
    expect(parseQuantity(q)).toBeCloseTo(n, 12);
  });
  it.each(['lots', '', '1Gb', '--1', '1.2.3', 'Mi'])('%s is not a quantity', (q) => {
    expect(parseQuantity(q)).toBeUndefined();
  });

  it('gives the same answers from its table of parsed strings, also after the table starts over', () => {
    const check = (i: number): void => {
      expect(parseQuantity(`${i}m`)).toBeCloseTo(i / 1000, 12);
      expect(parseQuantity(`${i}x`)).toBeUndefined();
    };
    // Each read twice in a row: the second is a lookup, of a quantity and of a non-quantity.
    for (let i = 0; i < 1_000; i++) {
      check(i);
      check(i);
    }
    // More distinct strings than the table keeps, twice over: it starts over and fills again.
    for (let round = 0; round < 2; round++) for (let i = 0; i < 10_000; i++) check(i);
  });
});
