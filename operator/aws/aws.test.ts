import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  fetchSpotPrices,
  liveSources,
  parsePriceListItem,
  parseSpotPriceHistory,
} from './prices.ts';
import { credentialsFromEnv, sign, signingKey } from './sigv4.ts';

const here = dirname(fileURLToPath(import.meta.url));

describe('SigV4', () => {
  // The IAM ListUsers example of the AWS Signature Version 4 documentation.
  const creds = {
    accessKeyId: 'AKIDEXAMPLE',
    secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  };
  const now = new Date('2015-08-30T12:36:00Z');

  it('derives the documented signing key', () => {
    expect(signingKey(creds.secretAccessKey, '20150830', 'us-east-1', 'iam').toString('hex')).toBe(
      'c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9',
    );
  });

  it('signs the documented request to the documented signature', () => {
    const headers = sign(
      {
        method: 'GET',
        url: new URL('https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08'),
        headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: '',
      },
      creds,
      'us-east-1',
      'iam',
      now,
    );
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, ' +
        'SignedHeaders=content-type;host;x-amz-date, ' +
        'Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
    );
    expect(headers['x-amz-date']).toBe('20150830T123600Z');
  });

  it('reads credentials from the environment, and only complete ones', () => {
    expect(credentialsFromEnv({})).toBeUndefined();
    expect(credentialsFromEnv({ AWS_ACCESS_KEY_ID: 'a' })).toBeUndefined();
    expect(
      credentialsFromEnv({
        AWS_ACCESS_KEY_ID: 'a',
        AWS_SECRET_ACCESS_KEY: 'b',
        AWS_SESSION_TOKEN: 't',
      }),
    ).toEqual({
      accessKeyId: 'a',
      secretAccessKey: 'b',
      sessionToken: 't',
    });
  });
});

describe('AWS price parsing', () => {
  it('reads a GetProducts PriceList entry', () => {
    const item = JSON.stringify({
      product: { attributes: { instanceType: 'm6i.xlarge', vcpu: '4', memory: '16 GiB' } },
      terms: {
        OnDemand: {
          'X.JRTCKXETXF': {
            priceDimensions: {
              'X.JRTCKXETXF.6YS6EN2CT7': { unit: 'Hrs', pricePerUnit: { USD: '0.1920000000' } },
            },
          },
        },
      },
    });
    expect(parsePriceListItem(item)).toEqual({
      instanceType: 'm6i.xlarge',
      hourly: 0.192,
      vcpu: 4,
      memoryGiB: 16,
    });
    expect(
      parsePriceListItem(
        JSON.stringify({ product: { attributes: { instanceType: 'x' } }, terms: {} }),
      ),
    ).toBeUndefined();
    expect(parsePriceListItem('not json')).toBeUndefined();
    expect(
      parsePriceListItem(
        JSON.stringify({
          product: {
            attributes: { instanceType: 'u-6tb1.metal', vcpu: '448', memory: '6,144 GiB' },
          },
          terms: { OnDemand: { a: { priceDimensions: { b: { pricePerUnit: { USD: '40' } } } } } },
        }),
      ),
    ).toMatchObject({ memoryGiB: 6144 });
  });

  const PAGE = `<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>r</requestId>
    <spotPriceHistorySet>
      <item><instanceType>m6i.xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.080000</spotPrice><timestamp>2026-07-20T10:00:00.000Z</timestamp><availabilityZone>us-east-1a</availabilityZone></item>
      <item><instanceType>m6i.xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.090000</spotPrice><timestamp>2026-07-20T10:00:00.000Z</timestamp><availabilityZone>us-east-1b</availabilityZone></item>
    </spotPriceHistorySet>
    <nextToken>NEXT</nextToken>
  </DescribeSpotPriceHistoryResponse>`;

  it('reads a DescribeSpotPriceHistory page', () => {
    expect(parseSpotPriceHistory(PAGE)).toEqual({
      items: [
        { instanceType: 'm6i.xlarge', zone: 'us-east-1a', price: 0.08 },
        { instanceType: 'm6i.xlarge', zone: 'us-east-1b', price: 0.09 },
      ],
      nextToken: 'NEXT',
    });
  });

  it('pages through Spot prices and averages the zones, with signed requests', async () => {
    const seen: string[] = [];
    const fake = (url: URL | string, init?: RequestInit) => {
      seen.push(String(url));
      expect(new Headers(init?.headers).get('authorization')).toMatch(
        /^AWS4-HMAC-SHA256 Credential=a\/\d{8}\/us-east-1\/ec2\/aws4_request/,
      );
      const last = String(url).includes('NextToken=NEXT');
      return Promise.resolve(
        new Response(last ? PAGE.replace('<nextToken>NEXT</nextToken>', '') : PAGE),
      );
    };
    const prices = await fetchSpotPrices(
      { accessKeyId: 'a', secretAccessKey: 'b' },
      'us-east-1',
      fake,
      () => new Date('2026-07-20T10:00:00Z'),
    );
    expect(seen).toHaveLength(2);
    expect(prices['m6i.xlarge']).toBeCloseTo(0.085, 12);
  });

  it("turns live figures into the snapshot's raw inputs", () => {
    const advisor = {
      source: 'advisor',
      ranges: [],
      instance_types: {},
      spot_advisor: { 'us-east-1': { Linux: { 'm6i.xlarge': { s: 55, r: 1 } } } },
    };
    const out = liveSources(
      '2026-07-20T10:00:00Z',
      { 'us-east-1': [{ instanceType: 'm6i.xlarge', hourly: 0.192, vcpu: 4, memoryGiB: 16 }] },
      { 'us-east-1': { 'm6i.xlarge': 0.096 } },
      advisor,
    );
    expect(out.onDemand.regions).toEqual({ 'us-east-1': { 'm6i.xlarge': 0.192 } });
    expect(out.advisor.spot_advisor['us-east-1']?.Linux?.['m6i.xlarge']).toEqual({
      s: 50,
      r: 1,
    });
    expect(out.advisor.instance_types['m6i.xlarge']).toEqual({ cores: 4, ram_gb: 16 });
  });
});

describe('regenerate-snapshot without credentials', () => {
  it('stops with a clear message and changes nothing', () => {
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')),
    );
    const r = spawnSync(
      process.execPath,
      [join(here, 'regenerate-snapshot.ts'), '--out', '/nonexistent/should-not-be-written.json'],
      { encoding: 'utf8', env },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no AWS credentials in the environment .*left as it is/);
  });
});
