import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InstanceTypeInfo, SpotPrice } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { SNAPSHOT_PRICES, onDemandPrice, spotPrice } from '../../recommender/pricing.ts';
import {
  latestSpotPrices,
  livePriceBook,
  liveSources,
  parsePriceListItem,
  placementRequests,
  specsFromInstanceTypes,
} from './prices.ts';
import { classifyAwsError } from './sdk.ts';

const here = dirname(fileURLToPath(import.meta.url));
/** A GetProducts answer shaped like the documented example (aws pricing get-products). */
const PAGE = JSON.parse(
  readFileSync(join(here, '../../test/fixtures/aws/get-products-page.json'), 'utf8'),
) as { PriceList: string[] };

/** DescribeSpotPriceHistory items as the SDK returns them (Timestamp parsed to a Date). */
const spot = (
  InstanceType: string,
  AvailabilityZone: string,
  price: string,
  at: string,
): SpotPrice => ({
  InstanceType: InstanceType as SpotPrice['InstanceType'],
  AvailabilityZone,
  ProductDescription: 'Linux/UNIX',
  SpotPrice: price,
  Timestamp: new Date(at),
});
const HISTORY: SpotPrice[] = [
  spot('m6i.xlarge', 'us-east-1a', '0.070000', '2026-11-19T08:00:00.000Z'),
  spot('m6i.xlarge', 'us-east-1a', '0.080000', '2026-11-20T08:00:00.000Z'),
  spot('m6i.xlarge', 'us-east-1b', '0.090000', '2026-11-18T08:00:00.000Z'),
  spot('m6i.xlarge', 'us-east-1f', '0.190000', '2026-11-20T09:00:00.000Z'),
  spot('m8i.xlarge', 'us-east-1a', '0.100000', '2026-11-15T00:00:00.000Z'),
];

describe('GetProducts PriceList entries', () => {
  it('reads the type, hourly price, effective date and size of a compute instance', () => {
    const items = PAGE.PriceList.map(parsePriceListItem);
    expect(items[0]).toEqual({
      instanceType: 'm6i.xlarge',
      hourly: 0.192,
      effectiveDate: '2026-08-01T00:00:00Z',
      vcpu: 4,
      memoryGiB: 16,
    });
    expect(items[2]).toMatchObject({ instanceType: 'u-6tb1.metal', vcpu: 448, memoryGiB: 6144 });
  });

  it('skips entries without a price, and what is not JSON', () => {
    expect(parsePriceListItem(PAGE.PriceList[3] ?? '')).toBeUndefined();
    expect(parsePriceListItem('not json')).toBeUndefined();
    expect(
      parsePriceListItem(
        JSON.stringify({ product: { attributes: { instanceType: 'x' } }, terms: {} }),
      ),
    ).toBeUndefined();
  });
});

describe('DescribeSpotPriceHistory and DescribeInstanceTypes answers', () => {
  it('keeps the latest price of each type in each zone', () => {
    const table = latestSpotPrices(HISTORY);
    expect(table.get('m6i.xlarge')?.get('us-east-1a')).toEqual({
      price: 0.08,
      timestamp: '2026-11-20T08:00:00.000Z',
    });
    expect([...(table.get('m6i.xlarge')?.keys() ?? [])].sort()).toEqual([
      'us-east-1a',
      'us-east-1b',
      'us-east-1f',
    ]);
  });

  it('reads vCPUs, memory and architectures', () => {
    const infos: InstanceTypeInfo[] = [
      {
        InstanceType: 'm8i.xlarge',
        VCpuInfo: { DefaultVCpus: 4 },
        MemoryInfo: { SizeInMiB: 16384 },
        ProcessorInfo: { SupportedArchitectures: ['x86_64'] },
      },
      {
        InstanceType: 'broken.large' as InstanceTypeInfo['InstanceType'],
        VCpuInfo: { DefaultVCpus: 2 },
      },
    ];
    expect([...specsFromInstanceTypes(infos)]).toEqual([
      ['m8i.xlarge', { vcpu: 4, memoryGiB: 16, architectures: ['x86_64'] }],
    ]);
  });
});

describe('live figures → PriceBook', () => {
  const book = livePriceBook(
    SNAPSHOT_PRICES,
    {
      region: 'us-east-1',
      onDemand: PAGE.PriceList.flatMap((item) => parsePriceListItem(item) ?? []),
      spot: latestSpotPrices(HISTORY),
      specs: specsFromInstanceTypes([
        {
          InstanceType: 'm8i.xlarge',
          VCpuInfo: { DefaultVCpus: 4 },
          MemoryInfo: { SizeInMiB: 16384 },
        },
      ]),
    },
    ['us-east-1a', 'us-east-1b', 'us-east-1c'],
  );

  it('is Live, with the live on-demand prices of the region over the snapshot', () => {
    expect(book.source).toBe('Live');
    expect(onDemandPrice(book, 'us-east-1', 'm6i.xlarge')?.hourly).toBe(0.192);
    expect(onDemandPrice(book, 'us-east-1', 'm8i.xlarge')?.hourly).toBe(0.21168);
    // A type the live list lacks keeps the region's snapshot price, undated.
    expect(onDemandPrice(book, 'us-east-1', 'c6i.large')).toEqual(
      onDemandPrice(SNAPSHOT_PRICES, 'us-east-1', 'c6i.large'),
    );
    expect(book.priceDates?.get('us-east-1')?.has('c6i.large')).toBe(false);
  });

  it("prices Spot at the mean of the cluster's zones, keeping the Advisor band", () => {
    // us-east-1a 0.08 and us-east-1b 0.09; us-east-1f has no node of the cluster.
    expect(spotPrice(book, 'us-east-1', 'm6i.xlarge')?.hourly).toBeCloseTo(0.085, 12);
    const figures = book.spot.get('us-east-1')?.get('m6i.xlarge');
    expect(figures?.savingsPercent).toBe(56); // 1 − 0.085 / 0.192
    expect(figures?.band).toBe(SNAPSHOT_PRICES.spot.get('us-east-1')?.get('m6i.xlarge')?.band);
    // A type priced only outside the cluster's zones uses the zones it has.
    expect(spotPrice(book, 'us-east-1', 'm8i.xlarge')?.hourly).toBeCloseTo(0.1, 12);
  });

  it('adds the size of types the snapshot lacks', () => {
    expect(SNAPSHOT_PRICES.specs.get('m8i.xlarge')).toBeUndefined();
    expect(book.specs.get('m8i.xlarge')).toEqual({ vcpu: 4, memoryGiB: 16 });
  });

  it('dates each price by when it took effect, the later of list price and Spot price', () => {
    expect(book.priceDates?.get('us-east-1')?.get('m6i.xlarge')).toBe('2026-11-20T08:00:00.000Z');
    expect(book.priceDates?.get('us-east-1')?.get('u-6tb1.metal')).toBe('2026-01-01T00:00:00Z');
    expect(book.asOf).toBe('2026-11-20T08:00:00.000Z');
  });

  it('stays a Snapshot book when only Spot prices are live', () => {
    const spotOnly = livePriceBook(
      SNAPSHOT_PRICES,
      { region: 'us-east-1', spot: latestSpotPrices(HISTORY) },
      ['us-east-1a'],
    );
    expect(spotOnly.source).toBe('Snapshot');
    expect(spotOnly.asOf).toBe(SNAPSHOT_PRICES.asOf);
    expect(spotPrice(spotOnly, 'us-east-1', 'm6i.xlarge')?.hourly).toBe(0.08);
  });
});

describe('placement-score requests', () => {
  it('asks per architecture for the types the nodes use, padded to three of the same size', () => {
    const requests = placementRequests(
      [
        { instanceType: 'm6i.xlarge', arch: 'amd64' },
        { instanceType: 'm6i.xlarge', arch: 'amd64' },
        { instanceType: 'm7g.xlarge', arch: 'arm64' },
        { instanceType: 'c7g.xlarge', arch: 'arm64' },
        { instanceType: 'c6g.xlarge', arch: 'arm64' },
      ],
      SNAPSHOT_PRICES,
      'us-east-1',
    );
    expect(requests.map((r) => [r.arch, r.targetCapacity, r.instanceTypes.length])).toEqual([
      ['amd64', 2, 3],
      ['arm64', 3, 3],
    ]);
    const amd64 = requests[0]?.instanceTypes ?? [];
    expect(amd64).toContain('m6i.xlarge');
    for (const type of amd64)
      expect(SNAPSHOT_PRICES.specs.get(type)).toEqual({ vcpu: 4, memoryGiB: 16 });
    expect(requests[1]?.instanceTypes).toEqual(['c6g.xlarge', 'c7g.xlarge', 'm7g.xlarge']);
  });
});

describe('AWS errors', () => {
  it.each([
    [{ name: 'CredentialsProviderError' }, 'NoCredentials'],
    [{ name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }, 'AccessDenied'],
    [{ name: 'UnauthorizedOperation', $metadata: { httpStatusCode: 403 } }, 'AccessDenied'],
    [{ name: 'ThrottlingException', $metadata: { httpStatusCode: 429 } }, 'Throttled'],
    [{ name: 'RequestLimitExceeded', $metadata: { httpStatusCode: 503 } }, 'Throttled'],
    [{ name: 'Error', code: 'ECONNREFUSED' }, 'Unavailable'],
    [{ name: 'InternalError', $metadata: { httpStatusCode: 500 } }, 'Unavailable'],
    [{ name: 'InvalidParameterValue', $metadata: { httpStatusCode: 400 } }, 'Failed'],
  ])('%o is %s', (error, expected) => {
    expect(classifyAwsError(error)).toBe(expected);
  });
});

describe('snapshot inputs from live figures (regenerate-snapshot)', () => {
  it('takes the mean Spot price over the zones as the saving', () => {
    const out = liveSources(
      '2026-07-20T10:00:00Z',
      { 'us-east-1': [{ instanceType: 'm6i.xlarge', hourly: 0.192, vcpu: 4, memoryGiB: 16 }] },
      { 'us-east-1': latestSpotPrices(HISTORY.slice(0, 3)) },
      {
        source: 'advisor',
        ranges: [],
        instance_types: {},
        spot_advisor: { 'us-east-1': { Linux: { 'm6i.xlarge': { s: 55, r: 1 } } } },
      },
    );
    expect(out.onDemand.regions).toEqual({ 'us-east-1': { 'm6i.xlarge': 0.192 } });
    expect(out.advisor.spot_advisor['us-east-1']?.Linux?.['m6i.xlarge']).toEqual({ s: 56, r: 1 });
    expect(out.advisor.instance_types['m6i.xlarge']).toEqual({ cores: 4, ram_gb: 16 });
  });
});

describe('regenerate-snapshot without credentials', () => {
  it('stops with a clear message and changes nothing', () => {
    // No credentials anywhere in the default chain: no variables, no profile files, no IMDS.
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
      AWS_CONFIG_FILE: '/nonexistent/config',
    };
    const r = spawnSync(
      process.execPath,
      [join(here, 'regenerate-snapshot.ts'), '--out', '/nonexistent/should-not-be-written.json'],
      { encoding: 'utf8', env },
    );
    expect(r.stderr).toMatch(/no AWS credentials .*left as it is/);
    expect(r.status).toBe(1);
  });

  it('refuses an unknown option before looking for credentials', () => {
    const r = spawnSync(process.execPath, [join(here, 'regenerate-snapshot.ts'), '--region', 'x'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toMatch(/regenerate-snapshot: Unknown option '--region'/);
    expect(r.status).toBe(1);
  });
});
