#!/usr/bin/env node
/**
 * Regenerates recommender/data/prices.json from the live AWS APIs: on-demand prices from the
 * Pricing API (GetProducts), Spot prices from EC2 DescribeSpotPriceHistory, interruption bands
 * from the public Spot Instance Advisor feed. Needs AWS credentials in the environment
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN) with
 * pricing:GetProducts and ec2:DescribeSpotPriceHistory; without them it stops and changes
 * nothing. (From a profile: eval "$(aws configure export-credentials --format env)".)
 *
 * Usage: node operator/aws/regenerate-snapshot.ts [--regions us-east-1,eu-west-1] [--out FILE]
 * Exit codes: 0 written, 1 no credentials or bad arguments, 2 an AWS call failed.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSnapshot, serializeSnapshot } from '../../recommender/data/snapshot.ts';
import {
  fetchOnDemandPrices,
  fetchSpotAdvisor,
  fetchSpotPrices,
  liveSources,
  type OnDemandItem,
} from './prices.ts';
import { credentialsFromEnv } from './sigv4.ts';

const here = dirname(fileURLToPath(import.meta.url));

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const creds = credentialsFromEnv(process.env);
  if (creds === undefined) {
    process.stderr.write(
      'regenerate-snapshot: no AWS credentials in the environment (AWS_ACCESS_KEY_ID and ' +
        'AWS_SECRET_ACCESS_KEY); the embedded snapshot is left as it is. To rebuild it from ' +
        'recommender/data/source instead, run: node operator/aws/generate-snapshot.ts\n',
    );
    return 1;
  }
  const regions = (arg('--regions') ?? 'us-east-1').split(',').filter((r) => r !== '');
  if (regions.some((r) => !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(r))) {
    process.stderr.write(
      `regenerate-snapshot: --regions ${regions.join(',')}: not AWS region names\n`,
    );
    return 1;
  }
  const out = resolve(arg('--out') ?? join(here, '..', '..', 'recommender', 'data', 'prices.json'));
  try {
    const advisor = await fetchSpotAdvisor();
    const onDemand: Record<string, OnDemandItem[]> = {};
    const spot: Record<string, Record<string, number>> = {};
    for (const region of regions) {
      onDemand[region] = await fetchOnDemandPrices(creds, region);
      spot[region] = await fetchSpotPrices(creds, region);
      process.stderr.write(
        `${region}: ${onDemand[region].length} on-demand prices, ${Object.keys(spot[region]).length} Spot prices\n`,
      );
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
  } catch (e) {
    process.stderr.write(`regenerate-snapshot: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
}

process.exitCode = await main();
