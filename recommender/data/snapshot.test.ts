import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { onDemandPrice, priceBookFromSnapshot, SNAPSHOT_PRICES } from '../pricing.ts';
import {
  buildSnapshot,
  GENERATED_FROM_SOURCE,
  serializeSnapshot,
  SOURCE_FILES,
  type OnDemandPriceFile,
  type SpotAdvisorFile,
} from './snapshot.ts';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'source');
const readJson = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));

const ONDEMAND: OnDemandPriceFile = {
  generatedAt: '2026-07-20T13:44:30Z',
  source: 'test',
  regions: { 'us-east-1': { 'm6i.xlarge': 0.192, 'm7g.xlarge': 0.1632, 'c8a.large': 0.1 } },
};
const ADVISOR: SpotAdvisorFile = {
  source: 'advisor',
  ranges: [
    { index: 1, label: '5-10%', max: 11 },
    { index: 0, label: '<5%', max: 5 },
  ],
  instance_types: {
    'm6i.xlarge': { cores: 4, ram_gb: 16 },
    'm7g.xlarge': { cores: 4, ram_gb: 16 },
    'x.large': { cores: 2, ram_gb: 8 },
  },
  spot_advisor: {
    'eu-west-1': {
      Linux: { 'm6i.xlarge': { s: 56, r: 1 } },
      Windows: { 'm6i.xlarge': { s: 1, r: 4 } },
    },
    'us-east-1': { Linux: { 'm6i.xlarge': { s: 55, r: 1 }, 'x.large': { s: 70, r: 0 } } },
  },
};

describe('the embedded price snapshot', () => {
  it('is columnar, keeps provenance, and only types with an on-demand price', () => {
    const snap = buildSnapshot(ONDEMAND, ADVISOR, 'test');
    expect(snap).toEqual({
      provenance: {
        onDemand: { source: 'test', asOf: '2026-07-20T13:44:30Z' },
        spotAdvisor: { source: 'advisor', asOf: 'mid-2025' },
        generatedBy: 'test',
      },
      bands: ['<5%', '5-10%'],
      types: ['c8a.large', 'm6i.xlarge', 'm7g.xlarge'],
      vcpu: [null, 4, 4],
      memoryGiB: [null, 16, 16],
      onDemand: { 'us-east-1': [0.1, 0.192, 0.1632] },
      spotSavingsPercent: { 'eu-west-1': [null, 56, null], 'us-east-1': [null, 55, null] },
      spotBand: { 'eu-west-1': [null, 1, null], 'us-east-1': [null, 1, null] },
    });
    const book = priceBookFromSnapshot(JSON.parse(serializeSnapshot(snap)) as typeof snap);
    expect(book.onDemand.get('us-east-1')?.get('c8a.large')).toBe(0.1);
    expect(book.spot.get('eu-west-1')?.get('m6i.xlarge')).toEqual({ savingsPercent: 56, band: 1 });
    expect(book.specs.has('c8a.large')).toBe(false);
  });

  it('is exactly what operator/aws/generate-snapshot.ts builds from data/source', () => {
    const onDemand = readJson(join(source, SOURCE_FILES.onDemand)) as OnDemandPriceFile;
    const advisor = readJson(join(source, SOURCE_FILES.spotAdvisor)) as SpotAdvisorFile;
    const rebuilt = serializeSnapshot(buildSnapshot(onDemand, advisor, GENERATED_FROM_SOURCE));
    expect(rebuilt).toBe(readFileSync(join(here, 'prices.json'), 'utf8'));
  });

  // Checked by hand against the AWS on-demand price list for us-east-1 (Linux, shared tenancy).
  it.each([
    ['m5.large', 0.096],
    ['m6i.xlarge', 0.192],
    ['m7g.xlarge', 0.1632],
    ['c6i.large', 0.085],
    ['c7g.large', 0.0725],
    ['r6i.2xlarge', 0.504],
    ['t3.medium', 0.0416],
    ['t4g.medium', 0.0336],
  ])('prices %s at $%s an hour in us-east-1', (type, usd) => {
    expect(onDemandPrice(SNAPSHOT_PRICES, 'us-east-1', type)).toEqual({
      hourly: usd,
      region: 'us-east-1',
      fallback: false,
    });
  });

  it('carries the Spot Advisor figures and instance sizes of its source', () => {
    expect(SNAPSHOT_PRICES.spot.get('us-east-1')?.get('m6i.xlarge')).toEqual({
      savingsPercent: 55,
      band: 1,
    });
    expect(SNAPSHOT_PRICES.specs.get('m7g.xlarge')).toEqual({ vcpu: 4, memoryGiB: 16 });
    expect(SNAPSHOT_PRICES.spot.size).toBe(13);
  });
});
