import { describe, expect, it } from 'vitest';
import {
  CPU_TO_RAM_PRICE_RATIO,
  GRAVITON_FAMILY,
  HOURS_PER_MONTH,
  amd64Candidates,
  SNAPSHOT_PRICES,
  formatUSD,
  gravitonEquivalent,
  isGravitonType,
  onDemandPrice,
  podHourly,
  pricesAsOf,
  splitNodePrice,
  spotFigures,
  spotPrice,
  sumUSD,
} from './pricing.ts';
import { estimateCost } from './savings.ts';
import { GiB, goodFacts, node, pod } from './testing.ts';

/**
 * Money to the cent, computed by hand from the embedded snapshot (us-east-1 on-demand list
 * prices of 2026-07-20; Spot Advisor savings `s`), for one pod on one node:
 *
 *   ramGiBh = P / (vCPU·7.46 + GiB), cpuh = 7.46·ramGiBh
 *   pod hourly = cpu·cpuh + mem·ramGiBh = P · (cpu·7.46 + mem) / (vCPU·7.46 + GiB)
 *   monthly = hourly × 730; Spot = on-demand × (1 − s/100); arm64 = the Graviton type's P
 *
 * 1. m6i.xlarge (4 vCPU, 16 GiB), P = 0.192, s = 55; pod 1 vCPU + 4 GiB:
 *    share = (7.46 + 4) / (29.84 + 16) = 11.46 / 45.84 = 1/4 → 0.048/h → 35.04/mo.
 *    Spot: 35.04 × 0.45 = 15.768 → 15.77, saving 19.272 → 19.27.
 *    Graviton m7g.xlarge P = 0.1632: 0.0408/h → 29.784 → 29.78, saving 5.256 → 5.26.
 *    Both (m7g.xlarge Spot, s = 62): 0.1632 × 0.38 / 4 = 0.015504/h → 11.31792 → 11.32;
 *    combined saving 35.04 − 11.31792 = 23.72208 → 23.72 (the parts would add to 24.53).
 * 2. c6i.2xlarge (8, 16), P = 0.34, s = 51; pod 1 vCPU + 2 GiB: share 9.46 / 75.68 = 1/8 →
 *    0.0425/h → 31.025 → 31.03. Spot 31.025 × 0.49 = 15.20225 → 15.20, saving 15.82275 → 15.82.
 *    Graviton c7g.2xlarge P = 0.29: 0.03625/h → 26.4625 → 26.46, saving 4.5625 → 4.56.
 * 3. r6i.large (2, 16), P = 0.126, s = 68; pod 0.5 vCPU + 4 GiB: share 7.73 / 30.92 = 1/4 →
 *    0.0315/h → 22.995 → 23.00. Spot × 0.32 = 7.3584 → 7.36, saving 15.6366 → 15.64.
 *    Graviton r7g.large P = 0.1071: 0.026775/h → 19.54575 → 19.55, saving 3.44925 → 3.45.
 * 4. t3.medium (2, 4), P = 0.0416, s = 56; pod 0.5 vCPU + 1 GiB: share 4.73 / 18.92 = 1/4 →
 *    0.0104/h → 7.592 → 7.59. Spot × 0.44 = 3.34048 → 3.34, saving 4.25152 → 4.25.
 *    Graviton t4g.medium P = 0.0336: 0.0084/h → 6.132 → 6.13, saving 1.46.
 * 5. m5.large (2, 8), P = 0.096, s = 66; pod 0.5 vCPU + 2 GiB: share 5.73 / 22.92 = 1/4 →
 *    0.024/h → 17.52. Spot × 0.34 = 5.9568 → 5.96, saving 11.5632 → 11.56.
 *    Graviton m7g.large P = 0.0816: 0.0204/h → 14.892 → 14.89, saving 2.628 → 2.63.
 *    Both (m7g.large Spot, s = 64): 0.0816 × 0.36 / 4 = 0.007344/h → 5.36112 → 5.36;
 *    combined saving 12.15888 → 12.16.
 * 6. Not a round share: m6i.xlarge, pod 2 vCPU + 1 GiB: 0.192 × 15.92 / 45.84 = 0.06668063/h
 *    → 48.676859 → 48.68.
 */
const CASES: {
  type: string;
  cpu: number;
  memGiB: number;
  cost: string;
  spot: string;
  arm64: string;
  both?: string;
}[] = [
  {
    type: 'm6i.xlarge',
    cpu: 1,
    memGiB: 4,
    cost: '35.04',
    spot: '19.27',
    arm64: '5.26',
    both: '23.72',
  },
  { type: 'c6i.2xlarge', cpu: 1, memGiB: 2, cost: '31.03', spot: '15.82', arm64: '4.56' },
  { type: 'r6i.large', cpu: 0.5, memGiB: 4, cost: '23.00', spot: '15.64', arm64: '3.45' },
  { type: 't3.medium', cpu: 0.5, memGiB: 1, cost: '7.59', spot: '4.25', arm64: '1.46' },
  {
    type: 'm5.large',
    cpu: 0.5,
    memGiB: 2,
    cost: '17.52',
    spot: '11.56',
    arm64: '2.63',
    both: '12.16',
  },
  { type: 'm6i.xlarge', cpu: 2, memGiB: 1, cost: '48.68', spot: '26.77', arm64: '7.30' },
];

describe('money, to the cent, from the snapshot', () => {
  for (const c of CASES) {
    it(`${c.type}, pod ${c.cpu} vCPU + ${c.memGiB} GiB`, () => {
      const facts = goodFacts({
        pods: [pod('p', node('n', 'us-east-1a', c.type), c.cpu, c.memGiB)],
      });
      const now = estimateCost(facts, SNAPSHOT_PRICES, { spot: false, arm64: false });
      expect(formatUSD(now.currentMonthly)).toBe(c.cost);
      expect(
        formatUSD(
          estimateCost(facts, SNAPSHOT_PRICES, { spot: true, arm64: false }).savingsMonthly,
        ),
      ).toBe(c.spot);
      expect(
        formatUSD(
          estimateCost(facts, SNAPSHOT_PRICES, { spot: false, arm64: true }).savingsMonthly,
        ),
      ).toBe(c.arm64);
      if (c.both !== undefined) {
        expect(
          formatUSD(
            estimateCost(facts, SNAPSHOT_PRICES, { spot: true, arm64: true }).savingsMonthly,
          ),
        ).toBe(c.both);
      }
    });
  }

  it('the sixth case follows from the formula', () => {
    // 26.77: 48.676859 × 0.55; 7.30: 48.676859 × (1 − 0.1632/0.192) = 48.676859 × 0.15.
    expect(formatUSD(48.676858638743454 * 0.55)).toBe('26.77');
    expect(formatUSD(48.676858638743454 * 0.15)).toBe('7.30');
  });

  it('splits a node price as OpenCost does', () => {
    const split = splitNodePrice(0.192, { vcpu: 4, memoryGiB: 16 });
    expect(split.cpuHourly / split.ramGiBHourly).toBeCloseTo(CPU_TO_RAM_PRICE_RATIO, 12);
    // The whole node costs its price.
    expect(podHourly(split, 4, 16)).toBeCloseTo(0.192, 12);
    expect(HOURS_PER_MONTH).toBe(730);
  });

  it('counts max(request, usage)', () => {
    const p = {
      ...pod('p', node('n', 'us-east-1a'), 1, 4),
      cpuUsageCores: 2,
      memoryUsageBytes: 1 * GiB,
    };
    const cost = estimateCost(goodFacts({ pods: [p] }), SNAPSHOT_PRICES, {
      spot: false,
      arm64: false,
    });
    // 2 vCPU + 4 GiB on m6i.xlarge: 0.192 × (14.92 + 4) / 45.84 = 0.0792460/h × 730 = 57.8496
    expect(formatUSD(cost.currentMonthly)).toBe('57.85');
  });

  it('prices pods already on Spot at the Spot price, and saves nothing moving them there', () => {
    const facts = goodFacts({
      pods: [pod('p', node('n', 'us-east-1a', 'm6i.xlarge', { capacityType: 'spot' }))],
    });
    const est = estimateCost(facts, SNAPSHOT_PRICES, { spot: true, arm64: false });
    expect(formatUSD(est.currentMonthly)).toBe('15.77');
    expect(est.savingsMonthly).toBe(0);
  });
});

describe('snapshot lookups', () => {
  it('keeps provenance: on-demand prices as of 2026-07-20', () => {
    expect(SNAPSHOT_PRICES.source).toBe('Snapshot');
    expect(SNAPSHOT_PRICES.asOf).toBe('2026-07-20T13:44:30Z');
    expect(SNAPSHOT_PRICES.bands).toEqual(['<5%', '5-10%', '10-15%', '15-20%', '>20%']);
    expect(SNAPSHOT_PRICES.onDemand.get('us-east-1')?.size).toBe(1367);
    expect(SNAPSHOT_PRICES.spot.size).toBe(13);
  });

  it('looks up on-demand and Spot prices by region and type', () => {
    expect(onDemandPrice(SNAPSHOT_PRICES, 'us-east-1', 'm6i.xlarge')).toEqual({
      hourly: 0.192,
      region: 'us-east-1',
      fallback: false,
    });
    expect(spotFigures(SNAPSHOT_PRICES, 'us-east-1', 'm6i.xlarge')).toMatchObject({
      savingsPercent: 55,
      band: 1,
    });
    expect(spotPrice(SNAPSHOT_PRICES, 'us-east-1', 'm6i.xlarge')?.hourly).toBeCloseTo(0.0864, 12);
    expect(onDemandPrice(SNAPSHOT_PRICES, 'us-east-1', 'x9z.huge')).toBeUndefined();
  });

  it('falls back to us-east-1 prices for a region without them, and says so', () => {
    // The snapshot has on-demand prices for us-east-1 only; the Spot Advisor covers eu-west-1.
    expect(onDemandPrice(SNAPSHOT_PRICES, 'eu-west-1', 'm6i.xlarge')).toEqual({
      hourly: 0.192,
      region: 'us-east-1',
      fallback: true,
    });
    expect(spotFigures(SNAPSHOT_PRICES, 'eu-west-1', 'm6i.xlarge')).toMatchObject({
      savingsPercent: 56,
      fallback: false,
    });
    expect(spotFigures(SNAPSHOT_PRICES, 'eu-north-1', 'm6i.xlarge')).toMatchObject({
      region: 'us-east-1',
      fallback: true,
    });
    // eu-west-1: 0.192 × (1 − 0.56) = 0.08448
    expect(spotPrice(SNAPSHOT_PRICES, 'eu-west-1', 'm6i.xlarge')).toMatchObject({
      region: 'us-east-1',
      fallback: true,
    });
    expect(spotPrice(SNAPSHOT_PRICES, 'eu-west-1', 'm6i.xlarge')?.hourly).toBeCloseTo(0.08448, 12);
  });

  it('prefers a live Spot price over the Advisor percentage', () => {
    const book = {
      ...SNAPSHOT_PRICES,
      source: 'Live' as const,
      spot: new Map([
        ['us-east-1', new Map([['m6i.xlarge', { savingsPercent: 55, band: 1, hourly: 0.07 }]])],
      ]),
    };
    expect(spotPrice(book, 'us-east-1', 'm6i.xlarge')?.hourly).toBe(0.07);
  });
});

describe('Graviton → x86, to price a move back to amd64', () => {
  it.each([
    ['m7g.xlarge', 'm7i.xlarge'],
    ['m6g.large', 'm6i.large'],
    ['c7g.2xlarge', 'c7i.2xlarge'],
    ['r6gd.xlarge', 'r6id.xlarge'],
    ['t4g.medium', 't3.medium'],
    ['m7gd.large', 'm6id.large'],
  ])('%s → %s (the first candidate the snapshot prices)', (graviton, x86) => {
    const priced = amd64Candidates(graviton).find(
      (t) => onDemandPrice(SNAPSHOT_PRICES, 'us-east-1', t) !== undefined,
    );
    expect(priced).toBe(x86);
  });

  it('has nothing for x86 types', () => {
    expect(amd64Candidates('m6i.xlarge')).toEqual([]);
  });
});

describe('x86 → Graviton table', () => {
  it.each([
    ['m5.large', 'm7g.large'],
    ['m6i.xlarge', 'm7g.xlarge'],
    ['m7i.2xlarge', 'm7g.2xlarge'],
    ['c5.xlarge', 'c7g.xlarge'],
    ['c6i.4xlarge', 'c7g.4xlarge'],
    ['c7i.large', 'c7g.large'],
    ['r5.2xlarge', 'r7g.2xlarge'],
    ['r6i.large', 'r7g.large'],
    ['r7i.xlarge', 'r7g.xlarge'],
    ['t3.medium', 't4g.medium'],
    ['t3a.small', 't4g.small'],
    ['m6id.xlarge', 'm7gd.xlarge'],
    ['c6in.2xlarge', 'c7gn.2xlarge'],
    ['m8i.xlarge', 'm8g.xlarge'],
  ])('%s → %s', (x86, arm) => {
    expect(gravitonEquivalent(x86)).toBe(arm);
  });

  it('has no equivalent for GPU and odd families', () => {
    expect(gravitonEquivalent('p4d.24xlarge')).toBeUndefined();
    expect(gravitonEquivalent('x2iedn.xlarge')).toBeUndefined();
    expect(gravitonEquivalent('m7g.xlarge')).toBeUndefined();
    expect(gravitonEquivalent('nonsense')).toBeUndefined();
  });

  it('maps every family to a Graviton family that the snapshot prices', () => {
    const priced = new Set(
      [...(SNAPSHOT_PRICES.onDemand.get('us-east-1')?.keys() ?? [])].map((t) => t.split('.')[0]),
    );
    for (const [x86, arm] of Object.entries(GRAVITON_FAMILY)) {
      expect(isGravitonType(`${arm}.large`), `${x86} → ${arm}`).toBe(true);
      expect(isGravitonType(`${x86}.large`), x86).toBe(false);
      expect(priced.has(arm), `${arm} priced`).toBe(true);
    }
  });

  it('lists Graviton savings of 15% to 27% for the same size, as list prices show', () => {
    const od = SNAPSHOT_PRICES.onDemand.get('us-east-1');
    for (const x86 of [
      'm5.xlarge',
      'm6i.xlarge',
      'c5.xlarge',
      'c6i.xlarge',
      'r5.xlarge',
      'r6i.xlarge',
      't3.large',
    ]) {
      const arm = gravitonEquivalent(x86) ?? '';
      const saving = 1 - (od?.get(arm) ?? 0) / (od?.get(x86) ?? 1);
      expect(saving, `${x86} → ${arm}`).toBeGreaterThanOrEqual(0.14);
      expect(saving, `${x86} → ${arm}`).toBeLessThanOrEqual(0.28);
    }
  });

  it('recognises Graviton types by name', () => {
    for (const t of [
      'm6g.large',
      'm7gd.xlarge',
      'c7gn.large',
      'r8g.large',
      't4g.nano',
      'x2gd.large',
      'im4gn.large',
      'is4gen.large',
      'i4g.large',
      'a1.large',
      'g5g.xlarge',
    ]) {
      expect(isGravitonType(t), t).toBe(true);
    }
    for (const t of ['m6i.large', 'g4dn.xlarge', 'c7i-flex.large', 'p5.48xlarge', 'inf2.xlarge']) {
      expect(isGravitonType(t), t).toBe(false);
    }
  });
});

describe('formatUSD', () => {
  it.each([
    [288.748, '288.75'],
    [1.005, '1.01'],
    [31.025, '31.03'],
    [0, '0.00'],
    [-3, '0.00'],
    [Number.NaN, '0.00'],
    [0.004, '0.00'],
    [1234567.891, '1234567.89'],
  ])('%s → %s', (n, s) => {
    expect(formatUSD(n)).toBe(s);
  });
});

describe('sumUSD', () => {
  it.each<[(string | undefined)[], string]>([
    [[], '0.00'],
    [['0.10', '0.20'], '0.30'],
    [['1', '2.5', '3.05'], '6.55'],
    [['999999999.99', '999999999.99', '0.02'], '2000000000.00'],
    // Not decimal USD: counted as nothing.
    [['1.00', undefined, '', 'abc', '-1.00', '1.234', '1e3', ' 2'], '1.00'],
  ])('%j → %s', (values, sum) => {
    expect(sumUSD(values)).toBe(sum);
  });

  it('stays exact where a float sum drifts', () => {
    const cents = Array.from({ length: 10_000 }, () => '0.07');
    expect(cents.reduce((a, v) => a + Number(v), 0)).not.toBe(700);
    expect(sumUSD(cents)).toBe('700.00');
  });
});

describe('pricesAsOf', () => {
  const live = {
    ...SNAPSHOT_PRICES,
    source: 'Live' as const,
    asOf: '2026-11-20T00:00:00Z',
    priceDates: new Map([
      [
        'eu-west-1',
        new Map([
          ['m6i.xlarge', '2026-03-01T00:00:00Z'],
          ['m7g.xlarge', '2026-06-01T00:00:00Z'],
          ['c6i.large', '2026-09-01T00:00:00Z'],
        ]),
      ],
    ]),
  };

  it('is the latest date among the types a workload runs on and their Graviton targets', () => {
    // m6i.xlarge maps to m7g.xlarge, dated later: the arm64 saving depends on that price too.
    expect(pricesAsOf(live, 'eu-west-1', ['m6i.xlarge'])).toBe('2026-06-01T00:00:00Z');
    expect(pricesAsOf(live, 'eu-west-1', ['m6i.xlarge', 'c6i.large'])).toBe('2026-09-01T00:00:00Z');
  });

  it("falls back to the book's asOf for undated types and for snapshot books", () => {
    expect(pricesAsOf(live, 'eu-west-1', ['x9.unknown'])).toBe('2026-11-20T00:00:00Z');
    expect(pricesAsOf(live, 'eu-west-1', [])).toBe('2026-11-20T00:00:00Z');
    expect(pricesAsOf(SNAPSHOT_PRICES, 'eu-west-1', ['m6i.xlarge'])).toBe(SNAPSHOT_PRICES.asOf);
  });
});
