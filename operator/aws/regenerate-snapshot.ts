#!/usr/bin/env node
/**
 * Regenerates recommender/data/prices.json from the live AWS APIs, with the same SDK clients the
 * operator uses: on-demand prices from the Pricing API (GetProducts), Spot prices from EC2
 * DescribeSpotPriceHistory, interruption bands from the public Spot Instance Advisor feed.
 * Credentials come from the SDK's default chain (environment, profile, IRSA, Pod Identity) and
 * need pricing:GetProducts and ec2:DescribeSpotPriceHistory; without them it stops and changes
 * nothing.
 *
 * Usage: node operator/aws/regenerate-snapshot.ts [--regions us-east-1,eu-west-1] [--out FILE]
 * Exit codes: 0 written, 1 no credentials or bad arguments, 2 an AWS call failed.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  buildSnapshot,
  serializeSnapshot,
  type SpotAdvisorFile,
} from '../../recommender/data/snapshot.ts';
import { getOnDemandPrices, getSpotPrices } from './calls.ts';
import { SPOT_ADVISOR_URL, liveSources, type OnDemandItem, type SpotPriceTable } from './prices.ts';
import { classifyAwsError, createAwsClients, describeAwsError } from './sdk.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** The public Spot Instance Advisor feed (a JSON file; no credentials needed). */
async function fetchSpotAdvisor(): Promise<SpotAdvisorFile> {
  const response = await fetch(SPOT_ADVISOR_URL);
  if (!response.ok) throw new Error(`Spot Advisor feed: HTTP ${response.status}`);
  const feed = (await response.json()) as Omit<SpotAdvisorFile, 'source'>;
  return { ...feed, source: `AWS Spot Instance Advisor feed (${SPOT_ADVISOR_URL})` };
}

async function main(): Promise<number> {
  let values: { regions?: string; out?: string };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { regions: { type: 'string' }, out: { type: 'string' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`regenerate-snapshot: ${(error as Error).message}\n`);
    return 1;
  }
  const regions = (values.regions ?? 'us-east-1').split(',').filter((r) => r !== '');
  if (regions.some((r) => !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(r))) {
    process.stderr.write(
      `regenerate-snapshot: --regions ${regions.join(',')}: not AWS region names\n`,
    );
    return 1;
  }
  const out = resolve(values.out ?? join(here, '..', '..', 'recommender', 'data', 'prices.json'));
  try {
    // Resolves the credentials first; without any, it throws before loading the clients.
    (await createAwsClients({ region: regions[0] ?? 'us-east-1' })).destroy();
  } catch (error) {
    if (classifyAwsError(error) !== 'NoCredentials') throw error;
    process.stderr.write(
      `regenerate-snapshot: no AWS credentials (environment, profile, IRSA or Pod Identity: ${describeAwsError(error)}); ` +
        'the embedded snapshot is left as it is. To rebuild it from recommender/data/source instead, run: ' +
        'node operator/aws/generate-snapshot.ts\n',
    );
    return 1;
  }
  try {
    const advisor = await fetchSpotAdvisor();
    const onDemand: Record<string, OnDemandItem[]> = {};
    const spot: Record<string, SpotPriceTable> = {};
    for (const region of regions) {
      const clients = await createAwsClients({ region });
      try {
        const prices = await getOnDemandPrices(clients, region);
        const spotPrices = await getSpotPrices(clients, new Date());
        onDemand[region] = prices;
        spot[region] = spotPrices;
        process.stderr.write(
          `${region}: ${prices.length} on-demand prices, Spot prices of ${spotPrices.size} types\n`,
        );
      } finally {
        clients.destroy();
      }
    }
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const sources = liveSources(now, onDemand, spot, advisor);
    const snapshot = buildSnapshot(
      sources.onDemand,
      sources.advisor,
      `operator/aws/regenerate-snapshot.ts from the live AWS APIs (${regions.join(', ')})`,
      now,
    );
    writeFileSync(out, serializeSnapshot(snapshot));
    process.stdout.write(`wrote ${out}: ${snapshot.types.length} instance types\n`);
    return 0;
  } catch (error) {
    process.stderr.write(
      `regenerate-snapshot: ${classifyAwsError(error)}: ${describeAwsError(error)}\n`,
    );
    return 2;
  }
}

process.exitCode = await main();
