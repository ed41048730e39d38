import type { LocalCluster } from '../cluster/cluster.ts';

/**
 * The one check that no secret kopek handles — a registry password, a pull secret, a scraper's
 * bearer token, AWS credentials, a Prometheus token — ever leaves it: not in a log line, not in
 * a WorkloadRecommendation or SavingsPolicy (status or anything else), not in an Event, not in
 * /metrics. Every integration test that gives kopek a secret calls expectNoSecretLeaks with the
 * secret values and everything kopek produced; a new output path is added here once and then
 * covers every secret.
 */

export interface LeakScan {
  /** The secret values as given to kopek (passwords, tokens, secret keys, "user:password"). */
  secrets: readonly string[];
  /** kopek's log lines (createLogger's write callback, or a process's log file). */
  logs?: readonly string[];
  /** /metrics texts scraped from kopek. */
  metrics?: readonly string[];
  /** Scans every WorkloadRecommendation, SavingsPolicy and Event in the cluster. */
  cluster?: LocalCluster;
}

/** The spellings a secret could leak in: as is, base64 (padded or not, URL-safe), URL- and JSON-escaped. */
export function secretForms(secret: string): string[] {
  const base64 = Buffer.from(secret).toString('base64');
  return [
    ...new Set([
      secret,
      base64,
      base64.replace(/=+$/, ''),
      Buffer.from(secret).toString('base64url'),
      encodeURIComponent(secret),
      JSON.stringify(secret).slice(1, -1),
    ]),
  ];
}

/** Where each secret appears, as "where: form" lines; empty when nothing leaked. */
export async function findSecretLeaks(scan: LeakScan): Promise<string[]> {
  for (const secret of scan.secrets)
    if (secret.length < 8) throw new Error('a secret under 8 characters would match by chance');
  const texts: { where: string; text: string }[] = [
    ...(scan.logs ?? []).map((text, i) => ({ where: `log line ${i + 1}`, text })),
    ...(scan.metrics ?? []).map((text, i) => ({ where: `/metrics scrape ${i + 1}`, text })),
  ];
  if (scan.cluster) {
    for (const resource of ['workloadrecommendations', 'savingspolicies', 'events']) {
      const listed = await scan.cluster.kubectl(['get', resource, '-A', '-o', 'json']);
      texts.push({ where: `kubectl get ${resource} -A`, text: listed.stdout });
    }
  }
  const leaks: string[] = [];
  scan.secrets.forEach((secret, index) => {
    for (const form of secretForms(secret))
      for (const { where, text } of texts)
        if (text.includes(form))
          leaks.push(`${where}: secret ${index + 1} (${form === secret ? 'as is' : 'encoded'})`);
  });
  return leaks;
}

/** Throws, naming where, if any secret appears anywhere kopek writes. */
export async function expectNoSecretLeaks(scan: LeakScan): Promise<void> {
  const leaks = await findSecretLeaks(scan);
  if (leaks.length > 0) throw new Error(`secrets leaked:\n  ${leaks.join('\n  ')}`);
}
