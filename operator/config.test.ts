import { describe, expect, it } from 'vitest';
import { ConfigError, parseDuration, parseRunConfig } from './config.ts';

describe('kopek run configuration', () => {
  it('has sensible defaults', () => {
    const config = parseRunConfig([], {}, 'kopek-system');
    expect(config).toMatchObject({
      metricsHost: '0.0.0.0',
      metricsPort: 8080,
      leaderElect: true,
      leaderElectionNamespace: 'kopek-system',
      leaderElectionId: 'kopek',
      workers: 4,
      logLevel: 'info',
      readPullSecrets: false,
      insecureRegistries: [],
      metricsSecure: true,
      metricsAuthCacheTtlMs: 60_000,
      clientRefreshIntervalMs: 60_000,
      memorySaver: false,
      heapGrowingPercent: 20,
      compactFragmentedHeap: true,
    });
    expect(config.kubeconfig).toBeUndefined();
    expect(config.metricsCertDir).toBeUndefined();
  });

  it('reads flags before the environment', () => {
    const config = parseRunConfig(
      ['--workers=8', '--metrics-bind-address', ':9090', '--leader-elect', 'false'],
      {
        KOPEK_WORKERS: '2',
        KOPEK_LOG_LEVEL: 'debug',
        KUBECONFIG: '/a:/b',
        KOPEK_MEMORY_SAVER: 'true',
        KOPEK_HEAP_GROWING_PERCENT: '0',
        KOPEK_COMPACT_FRAGMENTED_HEAP: 'false',
      },
    );
    expect(config).toMatchObject({
      memorySaver: true,
      heapGrowingPercent: 0,
      compactFragmentedHeap: false,
      workers: 8,
      metricsPort: 9090,
      leaderElect: false,
      logLevel: 'debug',
      kubeconfig: '/a',
    });
  });

  it('serves plain, open metrics only when asked, and reads a certificate directory', () => {
    expect(
      parseRunConfig(['--metrics-secure=false'], { KOPEK_METRICS_CERT_DIR: '/certs' }),
    ).toMatchObject({ metricsSecure: false, metricsCertDir: '/certs' });
    expect(parseRunConfig(['--metrics-auth-cache-ttl', '10s'], {}).metricsAuthCacheTtlMs).toBe(
      10_000,
    );
  });

  it('reads the client refresh interval from a flag or the environment', () => {
    expect(parseRunConfig(['--client-refresh-interval', '15s'], {}).clientRefreshIntervalMs).toBe(
      15_000,
    );
    expect(
      parseRunConfig([], { KOPEK_CLIENT_REFRESH_INTERVAL: '2m' }).clientRefreshIntervalMs,
    ).toBe(120_000);
    expect(() => parseRunConfig(['--client-refresh-interval', 'often'], {})).toThrow(
      '--client-refresh-interval must be a duration like 500ms, 10s or 5m, got "often"',
    );
  });

  it('binds IPv6 addresses written in brackets', () => {
    expect(parseRunConfig(['--metrics-bind-address', '[::]:9443'], {})).toMatchObject({
      metricsHost: '::',
      metricsPort: 9443,
    });
  });

  it.each([
    [['--workers', 'many'], {}, '--workers must be a whole number from 1 to 64, got "many"'],
    [[], { KOPEK_WORKERS: '0' }, 'KOPEK_WORKERS must be a whole number from 1 to 64, got "0"'],
    [['--metrics-bind-address', '8080'], {}, '--metrics-bind-address must be host:port'],
    [['--leader-elect', 'yes'], {}, '--leader-elect must be true or false, got "yes"'],
    [[], { KOPEK_METRICS_SECURE: 'off' }, 'KOPEK_METRICS_SECURE must be true or false, got "off"'],
    [
      ['--heap-growing-percent', '150'],
      {},
      '--heap-growing-percent must be a whole number from 0 to 100, got "150"',
    ],
    [
      [],
      { KOPEK_HEAP_GROWING_PERCENT: '12.5' },
      'KOPEK_HEAP_GROWING_PERCENT must be a whole number from 0 to 100, got "12.5"',
    ],
    [['--log-level', 'loud'], {}, '--log-level must be debug, info, warn or error, got "loud"'],
    [
      ['--batch-interval', 'soon'],
      {},
      '--batch-interval must be a duration like 500ms, 10s or 5m, got "soon"',
    ],
    [['--colour', 'red'], {}, 'unknown flag --colour'],
    [['--workers'], {}, 'flag --workers needs a value'],
    [['kubeconfig.yaml'], {}, 'kopek run takes only flags'],
  ])('refuses %j %j with a clear message', (args, env, message) => {
    expect(() => parseRunConfig(args, env)).toThrow(ConfigError);
    expect(() => parseRunConfig(args, env)).toThrow(message);
  });

  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('5 m')).toBeUndefined();
  });
});
