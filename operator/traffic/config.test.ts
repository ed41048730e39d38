import { describe, expect, it } from 'vitest';
import { ConfigError, parseRunConfig } from '../config.ts';

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => parseRunConfig(args, env, 'kopek');

describe('kopek run: traffic flags', () => {
  it('reads nothing from Prometheus without --prometheus-url', () => {
    expect(run([]).traffic).toBeUndefined();
  });

  it('defaults to auto-detection over 7 days, refreshed every 15 minutes', () => {
    expect(run(['--prometheus-url', 'http://prometheus:9090']).traffic).toEqual({
      prometheusUrl: 'http://prometheus:9090',
      timeoutMs: 30_000,
      source: 'auto',
      window: '7d',
      refreshIntervalMs: 900_000,
      queries: {},
    });
  });

  it('takes every setting from flags or the environment', () => {
    const config = run(
      [
        '--prometheus-url=https://thanos:10902',
        '--prometheus-bearer-token-file=/var/run/secrets/token',
        '--prometheus-ca-file',
        '/etc/ca.pem',
        '--traffic-source=istio',
        '--traffic-window=1d',
        '--traffic-query-istio=sum by (source_workload) (rate(x[$window]))',
      ],
      { KOPEK_PROMETHEUS_TIMEOUT: '5s', KOPEK_TRAFFIC_REFRESH_INTERVAL: '1m' },
    );
    expect(config.traffic).toEqual({
      prometheusUrl: 'https://thanos:10902',
      bearerTokenFile: '/var/run/secrets/token',
      caFile: '/etc/ca.pem',
      timeoutMs: 5000,
      source: 'istio',
      window: '1d',
      refreshIntervalMs: 60_000,
      queries: { istio: 'sum by (source_workload) (rate(x[$window]))' },
    });
  });

  it.each([
    [['--prometheus-url', 'prometheus:9090'], /--prometheus-url: prometheus:9090 must be an http/],
    [
      ['--prometheus-url', 'http://p', '--traffic-source', 'cilium'],
      /--traffic-source must be auto, beyla, istio, kubecost, got "cilium"/,
    ],
    [
      ['--prometheus-url', 'http://p', '--traffic-window', '7 days'],
      /--traffic-window must be a Prometheus duration/,
    ],
    [
      ['--prometheus-url', 'http://p', '--traffic-refresh-interval', 'often'],
      /--traffic-refresh-interval must be a duration/,
    ],
    [['--traffic-source', 'istio'], /--traffic-source needs --prometheus-url/],
  ])('refuses %j', (args, message) => {
    expect(() => run(args)).toThrow(ConfigError);
    expect(() => run(args)).toThrow(message);
  });
});
