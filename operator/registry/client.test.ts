import { describe, expect, it } from 'vitest';
import { RegistryClient } from './client.ts';

// The client's network behaviour is tested against real registries in
// test/integration/registry.test.ts; here only what needs no network.
describe('RegistryClient', () => {
  it('answers an invalid reference with invalid-reference instead of throwing, asking no one', async () => {
    const asked: unknown[] = [];
    const client = new RegistryClient({ onRequest: (event) => asked.push(event) });
    expect(await client.resolve('Bad Image')).toEqual({
      image: 'Bad Image',
      error: {
        kind: 'invalid-reference',
        message: 'invalid image reference "Bad Image": it contains white space',
      },
    });
    expect(asked).toEqual([]);
  });
});
