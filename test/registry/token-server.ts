/**
 * A small token service for the registry's `token` authentication, so tests exercise the real
 * Bearer challenge flow: the registry answers 401 with `WWW-Authenticate: Bearer realm, service,
 * scope`, the client asks this service for a token, and the registry verifies the JWT against
 * the certificate it was given (`rootcertbundle`).
 *
 * Policy, like Docker Hub's: anyone may pull repositories under the public prefixes; valid
 * basic credentials (or a known refresh token) get every action they ask for; wrong
 * credentials get 401; an anonymous request for anything else gets a token without access,
 * which the registry then refuses.
 */
import { randomUUID, sign, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { selfSignedCertificate } from '../cluster/pki.ts';

export interface TokenServerOptions {
  /** Where the signing key and certificate are written. */
  dir: string;
  /** username → password. */
  users: Readonly<Record<string, string>>;
  /** OAuth2 refresh token → username, for identity-token logins. */
  refreshTokens?: Readonly<Record<string, string>>;
  /** Repositories anyone may pull: names starting with one of these. */
  publicPrefixes: readonly string[];
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** One token request as the server saw it; never a password. */
export interface TokenRequest {
  user?: string;
  scopes: string[];
  status: number;
}

const base64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export class TokenServer {
  readonly service = 'kopek-test-registry';
  readonly issuer = 'kopek-test-token-server';
  readonly certPath: string;
  readonly requests: TokenRequest[] = [];
  private readonly options: TokenServerOptions;
  private readonly key: string;
  private readonly certDer: string;
  private readonly server: Server;
  private port = 0;

  private constructor(options: TokenServerOptions, certPath: string, key: string, certPem: string) {
    this.options = options;
    this.certPath = certPath;
    this.key = key;
    this.certDer = new X509Certificate(certPem).raw.toString('base64');
    this.server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        res.writeHead(500).end();
      });
    });
  }

  /** The realm URL the registry sends clients to. */
  get realm(): string {
    return `http://127.0.0.1:${this.port}/token`;
  }

  /** Makes an EC P-256 key and self-signed certificate with openssl, then listens on loopback. */
  static async start(options: TokenServerOptions): Promise<TokenServer> {
    const keyPath = join(options.dir, 'token-signing.key');
    const certPath = join(options.dir, 'token-signing.crt');
    await selfSignedCertificate(
      options.dir,
      'token-signing.key',
      'token-signing.crt',
      '/CN=kopek-test-token-server',
      2,
    );
    const server = new TokenServer(
      options,
      certPath,
      await readFile(keyPath, 'utf8'),
      await readFile(certPath, 'utf8'),
    );
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(0, '127.0.0.1', () => {
        resolve();
      });
    });
    const address = server.server.address();
    if (address === null || typeof address !== 'object')
      throw new Error('token server has no port');
    server.port = address.port;
    return server;
  }

  /**
   * A signed ES256 JWT granting `access`. The certificate travels in the `x5c` header; the
   * registry checks it chains to its root bundle (the same certificate).
   */
  mint(access: readonly Access[], subject = ''): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [this.certDer] };
    const claims = {
      iss: this.issuer,
      sub: subject,
      aud: this.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const payload = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(payload), {
      key: this.key,
      dsaEncoding: 'ieee-p1363',
    });
    return `${payload}.${base64url(signature)}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  /** The user a request authenticates as: undefined when anonymous, null when the credentials are wrong. */
  private user(req: IncomingMessage, form: URLSearchParams): string | undefined | null {
    if (form.get('grant_type') === 'refresh_token')
      return this.options.refreshTokens?.[form.get('refresh_token') ?? ''] ?? null;
    const header = req.headers.authorization;
    if (header === undefined) return undefined;
    const match = /^Basic (.+)$/i.exec(header);
    const decoded = Buffer.from(match?.[1] ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    return colon > 0 && this.options.users[user] === decoded.slice(colon + 1) ? user : null;
  }

  private grant(scope: string, user: string | undefined): Access | undefined {
    const [type = '', name = '', actions = ''] = scope.split(':');
    const wanted = actions.split(',').filter((a) => a !== '');
    const allowed =
      user !== undefined
        ? wanted
        : this.options.publicPrefixes.some((p) => name.startsWith(p))
          ? wanted.filter((a) => a === 'pull')
          : [];
    return type === '' || name === '' ? undefined : { type, name, actions: allowed };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form =
      req.method === 'POST'
        ? new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
        : url.searchParams;
    const scopes = form.getAll('scope');
    if (url.pathname !== '/token' || form.get('service') !== this.service) {
      this.requests.push({ scopes, status: 400 });
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"details":"bad request"}');
      return;
    }
    const user = this.user(req, form);
    if (user === null) {
      this.requests.push({ scopes, status: 401 });
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"details":"incorrect username or password"}');
      return;
    }
    const access = scopes
      .map((s) => this.grant(s, user))
      .filter((a): a is Access => a !== undefined);
    const token = this.mint(access, user ?? '');
    this.requests.push(
      user === undefined ? { scopes, status: 200 } : { user, scopes, status: 200 },
    );
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: 300,
        issued_at: new Date().toISOString(),
      }),
    );
  }
}
