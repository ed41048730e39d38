import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { SNAPSHOT_PRICES } from '../../recommender/pricing.ts';

/**
 * A local stand-in for the AWS endpoints moto does not serve, speaking their real wire
 * protocols, so the AWS SDK clients are pointed at it with `endpoint` and nothing else is mocked:
 *
 * - the Pricing API (JSON 1.1, `X-Amz-Target: AWSPriceListService.GetProducts`): PriceList
 *   entries shaped like the documented example (test/fixtures/aws/get-products-page.json), the
 *   snapshot's us-east-1 price list as data (so 14 pages of 100), `NextToken` paging;
 * - EC2 GetSpotPlacementScores (EC2 Query, XML answer); every other EC2 action, and STS, is
 *   passed through to moto;
 * - an EKS Pod Identity credentials endpoint that checks the authorization token.
 *
 * Every third GetProducts and every third GetSpotPlacementScores call is throttled the way AWS
 * does it (Pricing: HTTP 429 ThrottlingException; EC2: HTTP 503 RequestLimitExceeded).
 */

const TEMPLATE = (
  JSON.parse(
    readFileSync(
      fileURLToPath(new URL('../fixtures/aws/get-products-page.json', import.meta.url)),
      'utf8',
    ),
  ) as { PriceList: string[] }
).PriceList[0];

/** The AWS calls the fake can refuse as an IAM policy without the action would. */
export type DeniableCall =
  'GetProducts' | 'DescribeSpotPriceHistory' | 'DescribeInstanceTypes' | 'GetSpotPlacementScores';

export interface ListPrice {
  usd: number;
  effectiveDate: string;
}

export interface RecordedCall {
  action: string;
  status: number;
  /** The access key id the request was signed with (from its Authorization header). */
  accessKeyId?: string;
  sessionToken: boolean;
}

export interface PodIdentity {
  token: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

const EC2_NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

function priceListItem(type: string, price: ListPrice, index: number): string {
  const doc = JSON.parse(TEMPLATE ?? '{}') as {
    product: { attributes: Record<string, string>; sku: string };
    terms: { OnDemand: Record<string, Record<string, unknown>> };
  };
  const sku = `FAKE${index.toString(36).toUpperCase().padStart(12, '0')}`;
  const spec = SNAPSHOT_PRICES.specs.get(type);
  const attributes: Record<string, string> = {
    ...doc.product.attributes,
    instanceType: type,
    usagetype: `BoxUsage:${type}`,
  };
  if (spec) {
    attributes.vcpu = String(spec.vcpu);
    attributes.memory = `${spec.memoryGiB.toLocaleString('en-US')} GiB`;
  } else {
    delete attributes.vcpu;
    delete attributes.memory;
  }
  const term = `${sku}.JRTCKXETXF`;
  const dimension = `${term}.6YS6EN2CT7`;
  return JSON.stringify({
    ...doc,
    product: { ...doc.product, attributes, sku },
    terms: {
      OnDemand: {
        [term]: {
          priceDimensions: {
            [dimension]: {
              unit: 'Hrs',
              endRange: 'Inf',
              description: `$${price.usd} per On Demand Linux ${type} Instance Hour`,
              appliesTo: [],
              rateCode: dimension,
              beginRange: '0',
              pricePerUnit: { USD: price.usd.toFixed(10) },
            },
          },
          sku,
          effectiveDate: price.effectiveDate,
          offerTermCode: 'JRTCKXETXF',
          termAttributes: {},
        },
      },
    },
  });
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class FakeAws {
  readonly region: string;
  /** us-east-1 list prices by instance type (the snapshot's, dated 2026-07-20). */
  readonly prices = new Map<string, ListPrice>();
  /** The score GetSpotPlacementScores gives a set of instance types. */
  scoreFor: (instanceTypes: readonly string[]) => number = () => 7;
  readonly denied = new Set<DeniableCall>();
  readonly calls: RecordedCall[] = [];
  /** Web identity tokens AssumeRoleWithWebIdentity was called with. */
  readonly webIdentityTokens: string[] = [];
  /** Secrets that passed through (STS-issued keys, Pod Identity keys): none may leak. */
  readonly secrets: string[] = [];
  podIdentity: PodIdentity | undefined;
  /** While set, Pricing API requests wait for it before they are answered (AWS slow to answer). */
  pricingGate: Promise<void> | undefined;
  private readonly motoUrl: string;
  private readonly counts = new Map<string, number>();
  private server: Server | undefined;
  private port = 0;

  constructor(options: { motoUrl: string; region?: string }) {
    this.motoUrl = options.motoUrl;
    this.region = options.region ?? 'us-east-1';
    for (const [type, usd] of SNAPSHOT_PRICES.onDemand.get('us-east-1') ??
      new Map<string, number>())
      this.prices.set(type, { usd, effectiveDate: '2026-07-20T00:00:00Z' });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The Pod Identity endpoint URL (AWS_CONTAINER_CREDENTIALS_FULL_URI). */
  get podIdentityUrl(): string {
    return `${this.url}/v1/credentials`;
  }

  async start(port = 0): Promise<void> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  /** Stops answering (the endpoints are "down"); start() again on the same port brings them back. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    server.closeAllConnections();
  }

  /** The calls made for an action (throttled and denied ones included). */
  callsOf(action: string): RecordedCall[] {
    return this.calls.filter((call) => call.action === action);
  }

  /** True for every third call of an action: the fake throttles it. */
  private throttle(action: string): boolean {
    const n = (this.counts.get(action) ?? 0) + 1;
    this.counts.set(action, n);
    return n % 3 === 0;
  }

  private record(request: IncomingMessage, action: string, status: number): void {
    const auth = request.headers.authorization ?? '';
    const accessKeyId = /Credential=([^/]+)\//.exec(auth)?.[1];
    this.calls.push({
      action,
      status,
      ...(accessKeyId ? { accessKeyId } : {}),
      sessionToken: request.headers['x-amz-security-token'] !== undefined,
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.url === '/v1/credentials') {
      this.credentials(request, response);
      return;
    }
    const text = await body(request);
    const target = request.headers['x-amz-target'];
    if (target === 'AWSPriceListService.GetProducts') {
      if (this.pricingGate) await this.pricingGate;
      this.getProducts(request, text, response);
      return;
    }
    const params = new URLSearchParams(text);
    const action = params.get('Action') ?? '';
    if (action === 'GetSpotPlacementScores') {
      this.placementScores(request, params, response);
      return;
    }
    if (this.denied.has(action as DeniableCall)) {
      this.record(request, action, 403);
      this.ec2Error(response, 403, 'UnauthorizedOperation', this.deniedMessage(`ec2:${action}`));
      return;
    }
    return this.passToMoto(request, text, action, params, response);
  }

  private deniedMessage(action: string): string {
    return `User: arn:aws:sts::123456789012:assumed-role/kopek/kopek is not authorized to perform: ${action} because no identity-based policy allows the ${action} action`;
  }

  private credentials(request: IncomingMessage, response: ServerResponse): void {
    const identity = this.podIdentity;
    this.calls.push({ action: 'PodIdentityCredentials', status: 0, sessionToken: false });
    if (!identity || request.headers.authorization !== identity.token) {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ code: 'AccessDeniedException', message: 'invalid authorization token' }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        AccessKeyId: identity.accessKeyId,
        SecretAccessKey: identity.secretAccessKey,
        Token: identity.sessionToken,
        AccountId: '123456789012',
        Expiration: new Date(Date.now() + 6 * 3_600_000).toISOString(),
      }),
    );
  }

  private json(response: ServerResponse, status: number, value: unknown, errorType?: string): void {
    response.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'x-amzn-requestid': randomUUID(),
      ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
    });
    response.end(JSON.stringify(value));
  }

  private getProducts(request: IncomingMessage, text: string, response: ServerResponse): void {
    const input = JSON.parse(text) as {
      Filters?: { Field: string; Value: string }[];
      MaxResults?: number;
      NextToken?: string;
    };
    if (this.denied.has('GetProducts')) {
      this.record(request, 'GetProducts', 401);
      this.json(
        response,
        401,
        { __type: 'AccessDeniedException', Message: this.deniedMessage('pricing:GetProducts') },
        'AccessDeniedException',
      );
      return;
    }
    if (this.throttle('GetProducts')) {
      this.record(request, 'GetProducts', 429);
      this.json(
        response,
        429,
        { __type: 'ThrottlingException', Message: 'Rate exceeded' },
        'ThrottlingException',
      );
      return;
    }
    this.record(request, 'GetProducts', 200);
    const region = input.Filters?.find((f) => f.Field === 'regionCode')?.Value;
    const all =
      region === this.region ? [...this.prices].sort(([a], [b]) => a.localeCompare(b)) : [];
    const size = Math.min(input.MaxResults ?? 100, 100);
    const start = input.NextToken ? Number(Buffer.from(input.NextToken, 'base64').toString()) : 0;
    const page = all.slice(start, start + size);
    const next =
      start + size < all.length ? Buffer.from(String(start + size)).toString('base64') : undefined;
    this.json(response, 200, {
      FormatVersion: 'aws_v1',
      PriceList: page.map(([type, price], i) => priceListItem(type, price, start + i)),
      ...(next ? { NextToken: next } : {}),
    });
  }

  private ec2Error(response: ServerResponse, status: number, code: string, message: string): void {
    response.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
    response.end(
      `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>`,
    );
  }

  private placementScores(
    request: IncomingMessage,
    params: URLSearchParams,
    response: ServerResponse,
  ): void {
    const action = 'GetSpotPlacementScores';
    if (this.denied.has(action)) {
      this.record(request, action, 403);
      this.ec2Error(response, 403, 'UnauthorizedOperation', this.deniedMessage(`ec2:${action}`));
      return;
    }
    if (this.throttle(action)) {
      this.record(request, action, 503);
      this.ec2Error(response, 503, 'RequestLimitExceeded', 'Request limit exceeded.');
      return;
    }
    this.record(request, action, 200);
    const list = (prefix: string): string[] =>
      [...params].filter(([key]) => key.startsWith(`${prefix}.`)).map(([, value]) => value);
    const types = list('InstanceType');
    const regions = list('RegionName');
    const scored = (regions.length > 0 ? regions : [this.region]).map((region) => ({
      region,
      score: region === this.region ? this.scoreFor(types) : 1,
    }));
    const size = Math.max(10, Number(params.get('MaxResults') ?? '10'));
    const start = Number(params.get('NextToken') ?? '0');
    const page = scored.slice(start, start + size);
    const next = start + size < scored.length ? String(start + size) : undefined;
    response.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
    response.end(
      `<?xml version="1.0" encoding="UTF-8"?>\n<GetSpotPlacementScoresResponse xmlns="${EC2_NS}">\n` +
        `    <requestId>${randomUUID()}</requestId>\n    <spotPlacementScoreSet>\n` +
        page
          .map(
            (s) =>
              `        <item>\n            <region>${s.region}</region>\n            <score>${s.score}</score>\n        </item>\n`,
          )
          .join('') +
        `    </spotPlacementScoreSet>\n` +
        (next ? `    <nextToken>${next}</nextToken>\n` : '') +
        `</GetSpotPlacementScoresResponse>`,
    );
  }

  private async passToMoto(
    request: IncomingMessage,
    text: string,
    action: string,
    params: URLSearchParams,
    response: ServerResponse,
  ): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === 'string' && !['host', 'content-length', 'connection'].includes(name))
        headers[name] = value;
    }
    const answer = await fetch(`${this.motoUrl}${request.url ?? '/'}`, {
      method: request.method ?? 'POST',
      headers,
      ...(request.method === 'GET' || request.method === 'HEAD' ? {} : { body: text }),
    });
    const reply = await answer.text();
    this.record(request, action, answer.status);
    if (action === 'AssumeRoleWithWebIdentity') {
      this.webIdentityTokens.push(params.get('WebIdentityToken') ?? '');
      for (const tag of ['SecretAccessKey', 'SessionToken']) {
        const secret = new RegExp(`<${tag}>([^<]+)</${tag}>`).exec(reply)?.[1];
        if (secret) this.secrets.push(secret);
      }
    }
    response.writeHead(answer.status, {
      'content-type': answer.headers.get('content-type') ?? 'text/xml',
    });
    response.end(reply);
  }
}
