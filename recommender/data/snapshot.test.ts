import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { priceBookFromSnapshot } from '../pricing.ts';
import {
  buildSnapshot,
  serializeSnapshot,
  type OnDemandPriceFile,
  type SpotAdvisorFile,
} from './snapshot.ts';

const here = dirname(fileURLToPath(import.meta.url));
const shared = join(here, '..', '..', '..', 'shared', 'data');

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

  it.skipIf(!existsSync(shared))(
    'matches what operator/aws/generate-snapshot.ts builds from ../shared/data',
    () => {
      const onDemand = JSON.parse(
        readFileSync(join(shared, 'aws-ondemand-prices.json'), 'utf8'),
      ) as OnDemandPriceFile;
      const advisor = JSON.parse(
        readFileSync(join(shared, 'aws-spot-advisor.json'), 'utf8'),
      ) as SpotAdvisorFile;
      const embedded = JSON.parse(readFileSync(join(here, 'prices.json'), 'utf8')) as {
        provenance: { generatedBy: string };
      };
      expect(embedded).toEqual(buildSnapshot(onDemand, advisor, embedded.provenance.generatedBy));
    },
  );
});
