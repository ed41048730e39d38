import { describe, expect, it } from 'vitest';
import { findSecretLeaks, secretForms } from './secrets.ts';

describe('the secret leak scan', () => {
  const secret = 'pa55-w0rd/with+odd=chars';

  it('finds a secret as is and in every encoding it could be logged in', async () => {
    for (const form of secretForms(secret)) {
      const leaks = await findSecretLeaks({
        secrets: [secret],
        logs: ['{"msg":"ok"}', `{"msg":"auth","header":"${form}"}`],
      });
      expect(leaks, form).toEqual([
        `log line 2: secret 1 (${form === secret ? 'as is' : 'encoded'})`,
      ]);
    }
    expect(secretForms(secret)).toContain(Buffer.from(secret).toString('base64'));
    expect(secretForms(secret)).toContain(encodeURIComponent(secret));
  });

  it('passes text without the secret, and refuses secrets short enough to match by chance', async () => {
    expect(
      await findSecretLeaks({ secrets: [secret], logs: ['nothing here'], metrics: ['kopek_x 1'] }),
    ).toEqual([]);
    await expect(findSecretLeaks({ secrets: ['abc'], logs: [] })).rejects.toThrow('under 8');
  });
});
