#!/usr/bin/env node
/**
 * Regenerates recommender/data/prices.json, the price snapshot embedded in the recommender,
 * from the public price facts kept next to the repository:
 *
 *   ../shared/data/aws-ondemand-prices.json  on-demand list prices, USD/hour, Linux, shared
 *       tenancy, 1,367 instance types in us-east-1, generated 2026-07-20 from the AWS Price List
 *       (as tabulated in aws/karpenter-provider-aws's generated price table);
 *   ../shared/data/aws-spot-advisor.json     the AWS Spot Instance Advisor feed (mid-2025) for 13
 *       regions: Spot savings % versus on-demand and the interruption-frequency band.
 *
 * Usage (from the repository root): node operator/aws/generate-snapshot.ts [--from DIR]
 *
 * A build-time script: it lives in operator/ because it reads and writes files; the recommender
 * only imports the JSON it writes. To refresh from the live AWS APIs, see regenerate-snapshot.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildSnapshot,
  serializeSnapshot,
  type OnDemandPriceFile,
  type SpotAdvisorFile,
} from '../../recommender/data/snapshot.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const dataDir = join(repoRoot, 'recommender', 'data');
const fromIndex = process.argv.indexOf('--from');
const fromArg = fromIndex >= 0 ? process.argv[fromIndex + 1] : undefined;
const from = resolve(fromArg ?? join(repoRoot, '..', 'shared', 'data'));

const onDemand = JSON.parse(
  readFileSync(join(from, 'aws-ondemand-prices.json'), 'utf8'),
) as OnDemandPriceFile;
const advisor = JSON.parse(
  readFileSync(join(from, 'aws-spot-advisor.json'), 'utf8'),
) as SpotAdvisorFile;

const snapshot = buildSnapshot(
  onDemand,
  advisor,
  'operator/aws/generate-snapshot.ts from ../shared/data (aws-ondemand-prices.json, aws-spot-advisor.json)',
);
const out = join(dataDir, 'prices.json');
writeFileSync(out, serializeSnapshot(snapshot));
process.stdout.write(
  `wrote ${out}: ${snapshot.types.length} instance types, on-demand prices for ` +
    `${Object.keys(snapshot.onDemand).join(', ')}, Spot Advisor for ` +
    `${Object.keys(snapshot.spotSavingsPercent).length} regions\n`,
);
