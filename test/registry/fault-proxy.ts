/**
 * A loopback HTTP proxy in front of a real registry that can misbehave on purpose: answer a
 * status of its choosing (429 with Retry-After, 503), hang, or pass a request on after a delay.
 * The registry itself never rate-limits or stalls, so these failure modes need a stand-in.
 * It also records what passed through and how many requests were in flight at once.
 */
import {
  createServer,
  request,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';

export type FaultAction =
  | { action: 'pass'; delayMs?: number }
  | { action: 'hang' }
  | { action: 'respond'; status: number; headers?: Record<string, string>; body?: string };

export type FaultRule = (request: { method: string; path: string }) => FaultAction;

export interface ProxiedRequest {
  method: string;
  path: string;
  at: number;
  status?: number;
}

export const PASS: FaultRule = () => ({ action: 'pass' });

export class FaultProxy {
  /** Decides what happens to each request; change it between tests. */
  rule: FaultRule = PASS;
  readonly requests: ProxiedRequest[] = [];
  /** The most requests that were in flight at the same time. */
  maxInFlight = 0;
  private inFlight = 0;
  private readonly target: string;
  private readonly server: Server;
  private port = 0;

  private constructor(target: string) {
    this.target = target;
    this.server = createServer((req, res) => {
      this.handle(req, res);
    });
  }

  /** host:port of the proxy. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts a proxy for the registry at `target` (host:port). */
  static async start(target: string): Promise<FaultProxy> {
    const proxy = new FaultProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => {
        resolve();
      });
    });
    const address = proxy.server.address();
    if (address === null || typeof address !== 'object') throw new Error('proxy has no port');
    proxy.port = address.port;
    return proxy;
  }

  reset(rule: FaultRule = PASS): void {
    this.rule = rule;
    this.requests.length = 0;
    this.maxInFlight = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const record: ProxiedRequest = { method, path, at: Date.now() };
    this.requests.push(record);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.on('close', () => {
      this.inFlight--;
    });
    const decision = this.rule({ method, path });
    if (decision.action === 'hang') return;
    if (decision.action === 'respond') {
      record.status = decision.status;
      res.writeHead(decision.status, decision.headers).end(decision.body ?? '');
      return;
    }
    setTimeout(() => {
      this.forward(req, res, record);
    }, decision.delayMs ?? 0);
  }

  private forward(req: IncomingMessage, res: ServerResponse, record: ProxiedRequest): void {
    const [hostname = '127.0.0.1', port = '80'] = this.target.split(':');
    const upstream = request(
      { hostname, port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        record.status = answer.statusCode ?? 502;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      record.status = 502;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  }
}
