#!/usr/bin/env node
/**
 * Regenerates recommender/data/prices.json, the price snapshot embedded in the recommender,
 * from the public price facts kept in the repository (recommender/data/source/README.md says
 * where they come from):
 *
 *   aws-ondemand-prices.json  on-demand list prices, USD/hour, Linux, shared tenancy, 1,367
 *       instance types in us-east-1, as of 2026-07-20;
 *   aws-spot-advisor.json     the AWS Spot Instance Advisor feed (mid-2025) for 13 regions:
 *       Spot savings % versus on-demand and the interruption-frequency band.
 *
 * Usage (from the repository root): node operator/aws/generate-snapshot.ts [--from DIR]
 *
 * A build-time script: it lives in operator/ because it reads and writes files; the recommender
 * only imports the JSON it writes. recommender/data/snapshot.test.ts checks that prices.json is
 * what this writes. To refresh from the live AWS APIs, see regenerate-snapshot.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildSnapshot,
  GENERATED_FROM_SOURCE,
  serializeSnapshot,
  SOURCE_FILES,
  type OnDemandPriceFile,
  type SpotAdvisorFile,
} from '../../recommender/data/snapshot.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const dataDir = join(repoRoot, 'recommender', 'data');
const fromIndex = process.argv.indexOf('--from');
const fromArg = fromIndex >= 0 ? process.argv[fromIndex + 1] : undefined;
const from = resolve(fromArg ?? join(dataDir, 'source'));

const onDemand = JSON.parse(
  readFileSync(join(from, SOURCE_FILES.onDemand), 'utf8'),
) as OnDemandPriceFile;
const advisor = JSON.parse(
  readFileSync(join(from, SOURCE_FILES.spotAdvisor), 'utf8'),
) as SpotAdvisorFile;

const snapshot = buildSnapshot(onDemand, advisor, GENERATED_FROM_SOURCE);
const out = join(dataDir, 'prices.json');
writeFileSync(out, serializeSnapshot(snapshot));
process.stdout.write(
  `wrote ${out}: ${snapshot.types.length} instance types, on-demand prices for ` +
    `${Object.keys(snapshot.onDemand).join(', ')}, Spot Advisor for ` +
    `${Object.keys(snapshot.spotSavingsPercent).length} regions\n`,
);
