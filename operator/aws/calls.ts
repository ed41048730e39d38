/**
 * The AWS calls behind live prices, each paged with the SDK's paginator. Throttling and 5xx
 * answers are retried by the SDK's standard retry strategy (see sdk.ts); what still fails is
 * thrown to the caller, which keeps its last good data.
 */
import type { SpotPrice } from '@aws-sdk/client-ec2';
import {
  latestSpotPrices,
  parsePriceListItem,
  specsFromInstanceTypes,
  type LiveSpec,
  type OnDemandItem,
  type PlacementRequest,
  type SpotPriceTable,
} from './prices.ts';
import type { AwsClients } from './sdk.ts';

/** pricing:GetProducts — on-demand Linux prices (shared tenancy, no pre-installed software) in a region. */
export async function getOnDemandPrices(
  clients: AwsClients,
  region: string,
): Promise<OnDemandItem[]> {
  const term = (Field: string, Value: string) => ({ Type: 'TERM_MATCH' as const, Field, Value });
  const pages = clients.pricingSdk.paginateGetProducts(
    { client: clients.pricing, pageSize: 100 },
    {
      ServiceCode: 'AmazonEC2',
      FormatVersion: 'aws_v1',
      Filters: [
        term('regionCode', region),
        term('productFamily', 'Compute Instance'),
        term('operatingSystem', 'Linux'),
        term('tenancy', 'Shared'),
        term('preInstalledSw', 'NA'),
        term('capacitystatus', 'Used'),
        term('licenseModel', 'No License required'),
      ],
    },
  );
  const out: OnDemandItem[] = [];
  for await (const page of pages) {
    for (const item of page.PriceList ?? []) {
      const parsed = parsePriceListItem(String(item));
      if (parsed !== undefined) out.push(parsed);
    }
  }
  return out;
}

/**
 * ec2:DescribeSpotPriceHistory — the current Linux Spot price of every type in the given zones
 * (the cluster's; every zone of the region when none is given).
 */
export async function getSpotPrices(
  clients: AwsClients,
  now: Date,
  zones: readonly string[] = [],
): Promise<SpotPriceTable> {
  const history: SpotPrice[] = [];
  const pages = clients.ec2Sdk.paginateDescribeSpotPriceHistory(
    { client: clients.ec2, pageSize: 1000 },
    {
      ProductDescriptions: ['Linux/UNIX', 'Linux/UNIX (Amazon VPC)'],
      // A start time of now returns the price in force now for each type and zone.
      StartTime: now,
      ...(zones.length > 0 ? { Filters: [{ Name: 'availability-zone', Values: [...zones] }] } : {}),
    },
  );
  for await (const page of pages) history.push(...(page.SpotPriceHistory ?? []));
  return latestSpotPrices(history);
}

/** Instance types per DescribeInstanceTypes filter (a filter, unlike InstanceTypes, accepts unknown names). */
const TYPES_PER_FILTER = 100;

/** ec2:DescribeInstanceTypes — vCPUs, memory and architectures of the given types. */
export async function getInstanceTypes(
  clients: AwsClients,
  types: readonly string[],
): Promise<Map<string, LiveSpec>> {
  const specs = new Map<string, LiveSpec>();
  for (let start = 0; start < types.length; start += TYPES_PER_FILTER) {
    const pages = clients.ec2Sdk.paginateDescribeInstanceTypes(
      { client: clients.ec2, pageSize: 100 },
      {
        Filters: [{ Name: 'instance-type', Values: types.slice(start, start + TYPES_PER_FILTER) }],
      },
    );
    for await (const page of pages) {
      for (const [type, spec] of specsFromInstanceTypes(page.InstanceTypes ?? []))
        specs.set(type, spec);
    }
  }
  return specs;
}

/** ec2:GetSpotPlacementScores — the region's score (1–10) for each configuration, by architecture. */
export async function getPlacementScores(
  clients: AwsClients,
  requests: readonly PlacementRequest[],
): Promise<Map<string, number>> {
  const scores = new Map<string, number>();
  for (const request of requests) {
    const pages = clients.ec2Sdk.paginateGetSpotPlacementScores(
      { client: clients.ec2, pageSize: 10 },
      {
        InstanceTypes: request.instanceTypes,
        TargetCapacity: request.targetCapacity,
        TargetCapacityUnitType: 'units',
        SingleAvailabilityZone: false,
        RegionNames: [clients.region],
      },
    );
    for await (const page of pages) {
      for (const score of page.SpotPlacementScores ?? []) {
        if (score.Region === clients.region && score.Score !== undefined)
          scores.set(request.arch, score.Score);
      }
    }
  }
  return scores;
}
