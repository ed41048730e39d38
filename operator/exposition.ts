import { Gauge, type GaugeConfiguration, type Registry } from 'prom-client';

/** One series of a ComputedGauge: its labels and value. */
export interface GaugeSample {
  labels: Record<string, string>;
  value: number;
}

/**
 * A gauge whose series are computed when it is scraped, by `samples`, from what kopek keeps
 * anyway. Set series would each hold a labels object and a hash string between scrapes (the
 * per-workload gauges: ~30,000 series at 5,000 workloads) and allocate both at every set.
 * `samples` fixes the series when it is called; they may be read later.
 */
export class ComputedGauge extends Gauge {
  samples: () => Iterable<GaugeSample> = () => [];
  private readonly metricName: string;
  private readonly header: string;

  constructor(configuration: GaugeConfiguration<string>) {
    super(configuration);
    this.metricName = configuration.name;
    this.header = `# HELP ${this.metricName} ${escapeText(configuration.help)}\n# TYPE ${this.metricName} gauge`;
  }

  override async get(): ReturnType<Gauge['get']> {
    return { ...(await super.get()), values: [...this.samples()] };
  }

  /**
   * Its exposition text as prom-client formats it (without default labels: kopek sets none), in
   * chunks of about `chunkLength` characters, each made as it is asked for: at 5,000 workloads
   * one gauge's text is megabytes, which V8 would allocate in the old generation at once. The
   * series are those of the moment this is called.
   */
  text(chunkLength: number): Iterable<string> {
    return this.chunks(this.samples(), chunkLength);
  }

  private *chunks(samples: Iterable<GaugeSample>, chunkLength: number): Generator<string> {
    let chunk = this.header;
    for (const { labels, value } of samples) {
      let labelText = '';
      for (const [name, labelValue] of Object.entries(labels))
        labelText += `${labelText === '' ? '' : ','}${name}="${escapeLabelValue(labelValue)}"`;
      chunk += `\n${this.metricName}${labelText === '' ? '' : `{${labelText}}`} ${valueText(value)}`;
      if (chunk.length >= chunkLength) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk !== '') yield chunk;
  }
}

/** Escapes HELP text as the exposition format requires (and prom-client does). */
function escapeText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(value: string): string {
  // Label values (names of namespaces and workloads) almost never need it: test once.
  if (!NEEDS_ESCAPE.test(value)) return value;
  return escapeText(value).replace(/"/g, '\\"');
}

const NEEDS_ESCAPE = /[\\\n"]/;

/** A sample's value as prom-client writes it. */
function valueText(value: number): string {
  if (Number.isNaN(value)) return 'Nan';
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return `${value}`;
}

/** Characters per chunk of a computed gauge's text: small enough for V8's young generation. */
const EXPOSITION_CHUNK_LENGTH = 32 * 1024;

/**
 * The registry's exposition text, the same as `registry.metrics()` returns, in chunks: ordinary
 * metrics whole (a few lines each), computed gauges in chunks made as they are asked for.
 */
export async function* expositionChunks(registry: Registry): AsyncGenerator<string> {
  const metrics = registry.getMetricsAsArray();
  // Every computed gauge's series as of now, the turn the scrape began in (with the cluster
  // gauges computed just before it): the chunks are made over several turns.
  const computed = new Map<unknown, Iterable<string>>();
  for (const metric of metrics)
    if (metric instanceof ComputedGauge) computed.set(metric, metric.text(EXPOSITION_CHUNK_LENGTH));
  let separator = '';
  for (const metric of metrics) {
    const text = computed.get(metric);
    if (text) {
      for (const chunk of text) {
        yield separator + chunk;
        separator = '';
      }
    } else {
      yield separator + (await registry.getSingleMetricAsString(metric.name));
    }
    separator = '\n\n';
  }
  yield '\n';
}
