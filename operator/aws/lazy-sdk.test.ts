import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CLI = fileURLToPath(new URL('../cli/kopek.ts', import.meta.url));
const DUMP = fileURLToPath(new URL('../../test/fixtures/commerce/dump.yaml', import.meta.url));
/** Makes any import of the Pricing or EC2 SDK client fail, so loading one shows. */
const NO_SDK = `data:text/javascript,${encodeURIComponent(
  `import { registerHooks } from 'node:module';
   registerHooks({ resolve(specifier, context, next) {
     if (/^@aws-sdk\\/client-(ec2|pricing)/.test(specifier)) throw new Error('AWS SDK loaded: ' + specifier);
     return next(specifier, context);
   } });`,
)}`;

function analyze(
  extra: string[] = [],
  credentials: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    AWS_CONFIG_FILE: '/nonexistent/config',
    ...credentials,
  };
  return spawnSync(
    process.execPath,
    ['--import', NO_SDK, CLI, 'analyze', '-f', DUMP, '-o', 'json', ...extra],
    {
      encoding: 'utf8',
      env,
    },
  );
}

describe('the AWS SDK is loaded only when live prices are asked for', () => {
  it('kopek analyze without --live-prices never imports it', () => {
    const result = analyze();
    expect(result.stderr).not.toContain('AWS SDK loaded');
    expect(result.status).toBe(0);
  }, 60_000);

  it('nor does kopek analyze --live-prices without credentials: it says so', () => {
    const result = analyze(['--live-prices', '--region', 'us-east-1']);
    expect(result.stderr).not.toContain('AWS SDK loaded');
    expect(result.stderr).toContain('pricing:GetProducts: no AWS credentials');
    expect(result.status).toBe(0);
  }, 60_000);

  it('kopek analyze --live-prices with credentials does (and says so when it cannot)', () => {
    const result = analyze(['--live-prices', '--region', 'us-east-1'], {
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    });
    expect(result.stderr).toContain('AWS SDK loaded: @aws-sdk/client-');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('"source": "Snapshot"');
  }, 60_000);
});
