/**
 * A small exporter of the series traffic telemetry exposes (Grafana Beyla, Istio, Kubecost),
 * in the Prometheus text format, for a real Prometheus to scrape: every counter grows at a
 * fixed rate from 1 TiB, and each sample carries the exporter's own timestamp, so the rate
 * Prometheus computes over any window is exactly the rate set here — what tests check kopek's
 * bytes and dollars against.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from '../support/ports.ts';

/** A counter growing at `perSecond`; a histogram family exposes _bucket, _sum and _count. */
export interface GrowingSeries {
  /** The counter's name (…_total), or the histogram family's name (istio_request_bytes). */
  name: string;
  labels: Readonly<Record<string, string>>;
  /** Growth of the counter (of the histogram's _sum) per second. */
  perSecond: number;
  histogram?: boolean;
}

/** Where counters start: far from zero, so no extrapolation stops at a counter's birth. */
const START = 2 ** 40;

interface Running {
  series: GrowingSeries;
  since: number;
  base: number;
}

const escape = (value: string): string =>
  value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');

function labelText(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

const keyOf = (s: GrowingSeries): string => `${s.name}${labelText(s.labels)}`;

export class TrafficExporter {
  readonly url: string;
  /** host:port, for a scrape config. */
  readonly target: string;
  private readonly server: Server;
  private running = new Map<string, Running>();

  private constructor(server: Server, port: number) {
    this.server = server;
    this.target = `127.0.0.1:${port}`;
    this.url = `http://${this.target}/metrics`;
  }

  static async start(series: readonly GrowingSeries[] = []): Promise<TrafficExporter> {
    const port = await freePort();
    const server = createServer();
    const exporter = new TrafficExporter(server, port);
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if ((request.url ?? '').split('?')[0] !== '/metrics') {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      response.end(exporter.exposition(Date.now()));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    exporter.set(series);
    return exporter;
  }

  /**
   * Serves these series from now on: one already served keeps its value and grows at its new
   * rate, a new one starts at 1 TiB, one left out is no longer served.
   */
  set(series: readonly GrowingSeries[], now = Date.now()): void {
    const next = new Map<string, Running>();
    for (const s of series) {
      const before = this.running.get(keyOf(s));
      const base = before === undefined ? START : this.valueAt(before, now);
      next.set(keyOf(s), { series: s, since: now, base });
    }
    this.running = next;
  }

  private valueAt(r: Running, now: number): number {
    return r.base + (r.series.perSecond * (now - r.since)) / 1000;
  }

  /** The text format at time `now` (ms), every sample stamped with it. */
  exposition(now: number): string {
    const families = new Map<string, Running[]>();
    for (const r of this.running.values())
      families.set(r.series.name, [...(families.get(r.series.name) ?? []), r]);
    const lines: string[] = [];
    for (const [name, list] of families) {
      const histogram = list[0]?.series.histogram === true;
      lines.push(`# TYPE ${name} ${histogram ? 'histogram' : 'counter'}`);
      for (const r of list) {
        const value = this.valueAt(r, now);
        if (!histogram) {
          lines.push(`${name}${labelText(r.series.labels)} ${value} ${now}`);
          continue;
        }
        // One observation a second, each of the average size.
        const count = Math.floor((now - r.since) / 1000) + 1_000_000;
        lines.push(
          `${name}_bucket${labelText({ ...r.series.labels, le: '+Inf' })} ${count} ${now}`,
          `${name}_sum${labelText(r.series.labels)} ${value} ${now}`,
          `${name}_count${labelText(r.series.labels)} ${count} ${now}`,
        );
      }
    }
    return `${lines.join('\n')}\n`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
      this.server.closeAllConnections();
    });
  }
}
