/**
 * Live AWS prices: on-demand list prices from the AWS Pricing API (GetProducts), current Spot
 * prices from EC2 DescribeSpotPriceHistory, and the public Spot Instance Advisor feed for the
 * interruption bands. Plain fetch + SigV4, no SDK. The parsers are pure and tested; the fetchers
 * take `fetch` and the clock as arguments so the operator's price source can reuse them.
 */
import type { OnDemandPriceFile, SpotAdvisorFile } from '../../recommender/data/snapshot.ts';
import { sign, type Credentials } from './sigv4.ts';

export const PRICING_ENDPOINT = 'https://api.pricing.us-east-1.amazonaws.com/';
export const SPOT_ADVISOR_URL = 'https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json';

type Fetch = (url: URL | string, init?: RequestInit) => Promise<Response>;

/** One on-demand price from a GetProducts PriceList entry (itself a JSON string). */
export interface OnDemandItem {
  instanceType: string;
  hourly: number;
  vcpu?: number;
  memoryGiB?: number;
}

/** Parses a GetProducts PriceList entry; undefined for entries that are not a usable price. */
export function parsePriceListItem(item: string): OnDemandItem | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(item);
  } catch {
    return undefined;
  }
  const o = doc as {
    product?: { attributes?: Record<string, string> };
    terms?: {
      OnDemand?: Record<
        string,
        { priceDimensions?: Record<string, { pricePerUnit?: { USD?: string } }> }
      >;
    };
  };
  const attrs = o.product?.attributes ?? {};
  const instanceType = attrs.instanceType;
  if (instanceType === undefined) return undefined;
  const prices = Object.values(o.terms?.OnDemand ?? {}).flatMap((t) =>
    Object.values(t.priceDimensions ?? {}).map((d) => Number(d.pricePerUnit?.USD)),
  );
  const hourly = prices.find((p) => Number.isFinite(p) && p > 0);
  if (hourly === undefined) return undefined;
  const out: OnDemandItem = { instanceType, hourly };
  const vcpu = Number(attrs.vcpu);
  const mem = Number((attrs.memory ?? '').replace(/,/g, '').replace(/\s*GiB$/, ''));
  if (Number.isFinite(vcpu) && vcpu > 0) out.vcpu = vcpu;
  if (Number.isFinite(mem) && mem > 0) out.memoryGiB = mem;
  return out;
}

/** Parses a DescribeSpotPriceHistory XML page. */
export function parseSpotPriceHistory(xml: string): {
  items: { instanceType: string; zone: string; price: number }[];
  nextToken?: string;
} {
  const items: { instanceType: string; zone: string; price: number }[] = [];
  const tag = (s: string, name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(s)?.[1];
  for (const m of xml.matchAll(/<item>([\s\S]*?)<\/item>/g)) {
    const body = m[1] ?? '';
    const instanceType = tag(body, 'instanceType');
    const zone = tag(body, 'availabilityZone');
    const price = Number(tag(body, 'spotPrice'));
    if (instanceType !== undefined && zone !== undefined && Number.isFinite(price))
      items.push({ instanceType, zone, price });
  }
  const token = tag(xml.replace(/<item>[\s\S]*?<\/item>/g, ''), 'nextToken');
  return token === undefined || token === '' ? { items } : { items, nextToken: token };
}

async function checked(res: Response, what: string): Promise<string> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

/** On-demand Linux prices (shared tenancy, no pre-installed software) of every type in a region. */
export async function fetchOnDemandPrices(
  creds: Credentials,
  region: string,
  fetchFn: Fetch = fetch,
  now: () => Date = () => new Date(),
): Promise<OnDemandItem[]> {
  const filter = (Field: string, Value: string) => ({ Type: 'TERM_MATCH', Field, Value });
  const out: OnDemandItem[] = [];
  let nextToken: string | undefined;
  do {
    const body = JSON.stringify({
      ServiceCode: 'AmazonEC2',
      FormatVersion: 'aws_v1',
      MaxResults: 100,
      Filters: [
        filter('regionCode', region),
        filter('operatingSystem', 'Linux'),
        filter('tenancy', 'Shared'),
        filter('preInstalledSw', 'NA'),
        filter('capacitystatus', 'Used'),
        filter('licenseModel', 'No License required'),
      ],
      ...(nextToken === undefined ? {} : { NextToken: nextToken }),
    });
    const url = new URL(PRICING_ENDPOINT);
    const headers = sign(
      {
        method: 'POST',
        url,
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': 'AWSPriceListService.GetProducts',
        },
        body,
      },
      creds,
      'us-east-1',
      'pricing',
      now(),
    );
    const page = JSON.parse(
      await checked(await fetchFn(url, { method: 'POST', headers, body }), 'Pricing GetProducts'),
    ) as {
      PriceList?: string[];
      NextToken?: string;
    };
    for (const item of page.PriceList ?? []) {
      const parsed = parsePriceListItem(item);
      if (parsed !== undefined) out.push(parsed);
    }
    nextToken = page.NextToken;
  } while (nextToken !== undefined && nextToken !== '');
  return out;
}

/** The current Linux Spot price of each instance type in a region (the mean over its zones). */
export async function fetchSpotPrices(
  creds: Credentials,
  region: string,
  fetchFn: Fetch = fetch,
  now: () => Date = () => new Date(),
): Promise<Record<string, number>> {
  const sums = new Map<string, { total: number; n: number }>();
  let nextToken: string | undefined;
  do {
    const t = now();
    const url = new URL(`https://ec2.${region}.amazonaws.com/`);
    url.searchParams.set('Action', 'DescribeSpotPriceHistory');
    url.searchParams.set('Version', '2016-11-15');
    url.searchParams.set('ProductDescription.1', 'Linux/UNIX');
    url.searchParams.set('StartTime', t.toISOString());
    url.searchParams.set('EndTime', t.toISOString());
    url.searchParams.set('MaxResults', '1000');
    if (nextToken !== undefined) url.searchParams.set('NextToken', nextToken);
    const headers = sign({ method: 'GET', url, headers: {}, body: '' }, creds, region, 'ec2', t);
    const page = parseSpotPriceHistory(
      await checked(await fetchFn(url, { headers }), 'EC2 DescribeSpotPriceHistory'),
    );
    for (const item of page.items) {
      const s = sums.get(item.instanceType) ?? { total: 0, n: 0 };
      s.total += item.price;
      s.n += 1;
      sums.set(item.instanceType, s);
    }
    nextToken = page.nextToken;
  } while (nextToken !== undefined);
  return Object.fromEntries([...sums].map(([type, s]) => [type, s.total / s.n]));
}

/** The public Spot Instance Advisor feed (no credentials needed). */
export async function fetchSpotAdvisor(fetchFn: Fetch = fetch): Promise<SpotAdvisorFile> {
  const feed = JSON.parse(
    await checked(await fetchFn(SPOT_ADVISOR_URL), 'Spot Advisor feed'),
  ) as Omit<SpotAdvisorFile, 'source'>;
  return { ...feed, source: `AWS Spot Instance Advisor feed (${SPOT_ADVISOR_URL})` };
}

/**
 * Combines live figures into the raw files the snapshot is built from: on-demand prices per
 * region, and the Advisor feed with `s` replaced by the live Spot saving where one is known.
 */
export function liveSources(
  generatedAt: string,
  onDemand: Record<string, OnDemandItem[]>,
  spot: Record<string, Record<string, number>>,
  advisor: SpotAdvisorFile,
): { onDemand: OnDemandPriceFile; advisor: SpotAdvisorFile } {
  const regions: Record<string, Record<string, number>> = {};
  const specs = { ...advisor.instance_types };
  const spotAdvisor = structuredClone(advisor.spot_advisor);
  for (const [region, items] of Object.entries(onDemand)) {
    const prices: Record<string, number> = {};
    for (const item of items) {
      prices[item.instanceType] = item.hourly;
      if (
        specs[item.instanceType] === undefined &&
        item.vcpu !== undefined &&
        item.memoryGiB !== undefined
      ) {
        specs[item.instanceType] = { cores: item.vcpu, ram_gb: item.memoryGiB };
      }
    }
    regions[region] = prices;
    const linux = (spotAdvisor[region] ??= {}).Linux ?? {};
    for (const [type, price] of Object.entries(spot[region] ?? {})) {
      const od = prices[type];
      if (od === undefined || od <= 0) continue;
      const s = Math.max(0, Math.round((1 - price / od) * 100));
      linux[type] = { s, r: linux[type]?.r ?? 4 };
    }
    (spotAdvisor[region] ??= {}).Linux = linux;
  }
  return {
    onDemand: {
      generatedAt,
      source: `AWS Pricing API GetProducts (live, ${Object.keys(regions).join(', ')})`,
      regions,
    },
    advisor: {
      ...advisor,
      source: `${advisor.source}; s from EC2 DescribeSpotPriceHistory (live)`,
      instance_types: specs,
      spot_advisor: spotAdvisor,
    },
  };
}
