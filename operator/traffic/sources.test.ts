import { describe, expect, it } from 'vitest';
import { PrometheusError, parseAnswer } from './prometheus.ts';
import {
  SOURCES,
  TRAFFIC_SOURCES,
  detectedSources,
  detectionQuery,
  windowSeconds,
  withWindow,
} from './sources.ts';

const sample = (metric: Record<string, string>, value: number) => ({ metric, value });

describe('Beyla rows', () => {
  it('reads the owners, namespaces and zones of both ends', () => {
    const m = SOURCES.beyla.measurement(
      [
        sample(
          {
            k8s_src_namespace: 'shop',
            k8s_src_owner_name: 'web',
            k8s_src_owner_type: 'Deployment',
            k8s_dst_namespace: 'shop',
            k8s_dst_owner_name: 'checkout',
            src_zone: 'us-east-1a',
            dst_zone: 'us-east-1b',
          },
          12.5,
        ),
        sample({ src_zone: 'us-east-1a', dst_zone: 'us-east-1c' }, 3),
      ],
      '7d',
    );
    expect(m).toEqual({
      source: 'Beyla',
      window: '7d',
      flows: [
        {
          from: { namespace: 'shop', name: 'web', kind: 'Deployment' },
          to: { namespace: 'shop', name: 'checkout' },
          fromZone: 'us-east-1a',
          toZone: 'us-east-1b',
          bytesPerSecond: 12.5,
        },
        {
          from: { namespace: '', name: '' },
          to: { namespace: '', name: '' },
          fromZone: 'us-east-1a',
          toZone: 'us-east-1c',
          bytesPerSecond: 3,
        },
      ],
    });
  });
});

describe('Istio rows', () => {
  const edge = { source_workload_namespace: 'shop', source_workload: 'web' };
  const to = { destination_workload_namespace: 'shop', destination_workload: 'checkout' };

  it("uses the server proxy's report, else the client's, never both", () => {
    const m = SOURCES.istio.measurement(
      [
        sample({ ...edge, ...to, reporter: 'destination' }, 100),
        sample({ ...edge, ...to, reporter: 'source' }, 101),
        sample(
          {
            ...edge,
            destination_workload_namespace: 'db',
            destination_workload: 'pg',
            reporter: 'source',
          },
          7,
        ),
        sample(
          {
            source_workload_namespace: 'unknown',
            source_workload: 'unknown',
            ...to,
            reporter: 'destination',
          },
          5,
        ),
      ],
      '1d',
    );
    expect(m).toEqual({
      source: 'Istio',
      window: '1d',
      flows: [
        {
          from: { namespace: 'shop', name: 'web' },
          to: { namespace: 'shop', name: 'checkout' },
          bytesPerSecond: 100,
        },
        {
          from: { namespace: 'shop', name: 'web' },
          to: { namespace: 'db', name: 'pg' },
          bytesPerSecond: 7,
        },
        {
          from: { namespace: '', name: '' },
          to: { namespace: 'shop', name: 'checkout' },
          bytesPerSecond: 5,
        },
      ],
    });
  });

  it('sums the parts of an edge a custom query gives without a reporter label', () => {
    const m = SOURCES.istio.measurement(
      [
        sample({ ...edge, ...to, kopek_part: 'request' }, 1),
        sample({ ...edge, ...to, kopek_part: 'response' }, 4),
      ],
      '7d',
    );
    expect(m).toMatchObject({ flows: [{ bytesPerSecond: 5 }] });
  });
});

describe('Kubecost rows', () => {
  it('takes the pod from pod_name, or pod after relabelling, and skips rows without one', () => {
    const m = SOURCES.kubecost.measurement(
      [
        sample({ namespace: 'shop', pod_name: 'web-1' }, 2),
        sample({ namespace: 'shop', pod: 'web-2' }, 3),
        sample({ namespace: 'shop' }, 4),
      ],
      '7d',
    );
    expect(m).toEqual({
      source: 'Kubecost',
      window: '7d',
      podEgress: [
        { namespace: 'shop', pod: 'web-1', bytesPerSecond: 2 },
        { namespace: 'shop', pod: 'web-2', bytesPerSecond: 3 },
      ],
    });
  });
});

describe('queries', () => {
  it('reads each source with one query over the window, and the labels its rows need', () => {
    for (const id of TRAFFIC_SOURCES) {
      const query = withWindow(SOURCES[id].query, '7d');
      expect(query, id).not.toContain('$window');
      expect(query, id).toContain('[7d]');
      expect(query, id).toMatch(/^sum by \(/);
    }
    expect(SOURCES.beyla.query).toMatch(
      /k8s_src_owner_name.*k8s_dst_owner_name.*src_zone, dst_zone/,
    );
    expect(SOURCES.istio.query).toContain(
      'source_workload, destination_workload_namespace, destination_workload',
    );
    expect(SOURCES.kubecost.query).toContain('same_zone="false", same_region="true"');
    expect(withWindow('rate(x[${window}]) + rate(y[$window])', '1h')).toBe(
      'rate(x[1h]) + rate(y[1h])',
    );
  });

  it('detects every source in one query and prefers zone pairs, then edges, then egress', () => {
    expect(detectionQuery().match(/kopek_source/g)).toHaveLength(3);
    const found = (ids: string[]) => ids.map((id) => sample({ kopek_source: id }, 1));
    expect(detectedSources(found(['kubecost', 'istio']))).toEqual(['istio', 'kubecost']);
    expect(detectedSources(found(['kubecost', 'beyla']))).toEqual(['beyla', 'kubecost']);
    expect(detectedSources([])).toEqual([]);
  });

  it('takes Prometheus durations as windows', () => {
    expect(windowSeconds('7d')).toBe(604_800);
    expect(windowSeconds('1h30m')).toBe(5400);
    expect(windowSeconds('2w')).toBe(1_209_600);
    for (const bad of ['', '7', '7 days', '1.5h', '0s', '-1d'])
      expect(windowSeconds(bad), bad).toBeUndefined();
  });
});

describe('Prometheus answers', () => {
  const url = 'http://prometheus:9090';
  const vector = (result: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({ status: 'success', data: { resultType: 'vector', result }, ...extra });

  it('reads an instant vector, dropping values that are not bytes', () => {
    const answer = parseAnswer(
      vector([
        { metric: { a: 'x' }, value: [1, '12.5'] },
        { metric: { a: 'y' }, value: [1, 'NaN'] },
        { metric: { a: 'z' }, value: [1, '-1'] },
      ]),
      200,
      url,
    );
    expect(answer).toEqual({ samples: [{ metric: { a: 'x' }, value: 12.5 }], warnings: [] });
  });

  it('keeps warnings (partial data) for the caller to refuse', () => {
    expect(parseAnswer(vector([], { warnings: ['store unavailable'] }), 200, url).warnings).toEqual(
      ['store unavailable'],
    );
  });

  it.each([
    ['<html>502 Bad Gateway</html>', 502, /answered HTTP 502 without the API's JSON: <html>502/],
    [
      JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }),
      400,
      /HTTP 400: bad_data: parse error at char 5/,
    ],
    [
      JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } }),
      200,
      /instant vector.*matrix/,
    ],
  ])('says what is wrong with %s', (text, status, message) => {
    expect(() => parseAnswer(text, status, url)).toThrow(PrometheusError);
    expect(() => parseAnswer(text, status, url)).toThrow(message);
  });
});
