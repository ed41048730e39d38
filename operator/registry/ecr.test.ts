import { systemClock } from '../clock.ts';
import { describe, expect, it } from 'vitest';
import { EcrTokenProvider, ecrRegistry, type EcrAuthorization } from './ecr.ts';

const HOST = '111122223333.dkr.ecr.eu-west-1.amazonaws.com';
const HOUR = 3_600_000;

describe('ecrRegistry', () => {
  it.each([
    [HOST, { accountId: '111122223333', region: 'eu-west-1' }],
    [
      '111122223333.dkr.ecr-fips.us-gov-west-1.amazonaws.com',
      { accountId: '111122223333', region: 'us-gov-west-1' },
    ],
    [
      '111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn',
      { accountId: '111122223333', region: 'cn-north-1' },
    ],
    ['111122223333.dkr-ecr.ap-south-1.on.aws', { accountId: '111122223333', region: 'ap-south-1' }],
  ])('%s is ECR', (host, expected) => {
    expect(ecrRegistry(host)).toEqual(expected);
  });

  it.each([
    'public.ecr.aws',
    'docker.io',
    '11112222333.dkr.ecr.eu-west-1.amazonaws.com',
    '111122223333.dkr.ecr.eu-west-1.amazonaws.com.evil.io',
    'x111122223333.dkr.ecr.eu-west-1.amazonaws.com',
  ])('%s is not a private ECR registry', (host) => {
    expect(ecrRegistry(host)).toBeUndefined();
  });
});

describe('EcrTokenProvider', () => {
  function provider(start = 0): {
    ecr: EcrTokenProvider;
    calls: string[];
    clock: { now: number };
  } {
    const calls: string[] = [];
    const clock = { now: start };
    const ecr = new EcrTokenProvider({
      clock: { ...systemClock, now: () => clock.now },
      fetchToken: async (region): Promise<EcrAuthorization> => {
        calls.push(region);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return {
          token: Buffer.from(`AWS:pw-${region}-${calls.length}`).toString('base64'),
          expiresAt: new Date(clock.now + 12 * HOUR),
        };
      },
    });
    return { ecr, calls, clock };
  }

  it('returns basic credentials for ECR hosts and nothing for others', async () => {
    const { ecr, calls } = provider();
    expect(await ecr.credentialsFor('ghcr.io')).toBeUndefined();
    expect(await ecr.credentialsFor(HOST)).toEqual({
      registry: HOST,
      username: 'AWS',
      password: 'pw-eu-west-1-1',
      source: 'Amazon ECR token for eu-west-1',
    });
    expect(calls).toEqual(['eu-west-1']);
  });

  it('shares one call among concurrent lookups and caches per region until shortly before expiry', async () => {
    const { ecr, calls, clock } = provider();
    const other = '444455556666.dkr.ecr.eu-west-1.amazonaws.com';
    await Promise.all([
      ecr.credentialsFor(HOST),
      ecr.credentialsFor(HOST),
      ecr.credentialsFor(other),
    ]);
    expect(calls).toEqual(['eu-west-1']);
    await ecr.credentialsFor('111122223333.dkr.ecr.us-east-1.amazonaws.com');
    expect(calls).toEqual(['eu-west-1', 'us-east-1']);
    clock.now += 11 * HOUR;
    expect((await ecr.credentialsFor(HOST))?.password).toBe('pw-eu-west-1-1');
    clock.now += 46 * 60_000; // 14 minutes before expiry: inside the 15-minute renewal window
    expect((await ecr.credentialsFor(HOST))?.password).toBe('pw-eu-west-1-3');
  });

  it('turns failures into an error naming the region, and retries on the next lookup', async () => {
    let fail = true;
    const ecr = new EcrTokenProvider({
      fetchToken: () =>
        fail
          ? Promise.reject(new Error('Could not load credentials from any providers'))
          : Promise.resolve({
              token: Buffer.from('AWS:x').toString('base64'),
              expiresAt: new Date(Date.now() + HOUR),
            }),
    });
    await expect(ecr.credentialsFor(HOST)).rejects.toThrow(
      'could not get an Amazon ECR token for eu-west-1: Error: Could not load credentials from any providers',
    );
    fail = false;
    expect((await ecr.credentialsFor(HOST))?.password).toBe('x');
  });

  it('rejects a malformed token without showing it', async () => {
    const ecr = new EcrTokenProvider({
      fetchToken: () =>
        Promise.resolve({
          token: Buffer.from('nocolon').toString('base64'),
          expiresAt: new Date(),
        }),
    });
    await expect(ecr.credentialsFor(HOST)).rejects.toThrow(
      /^Amazon ECR returned a malformed token for eu-west-1$/,
    );
  });
});
