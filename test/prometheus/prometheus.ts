import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Component, waitUntil } from '../cluster/process.ts';
import { freePort } from '../support/ports.ts';

/** A Prometheus API answer (`/api/v1/...`). */
export interface ApiResponse<T> {
  status: 'success' | 'error';
  data?: T;
  errorType?: string;
  error?: string;
  warnings?: string[];
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface StartOptions {
  /** Working directory: configuration, rule file, TSDB and log. */
  dir: string;
  /** prometheus.yml, without rule_files (added when `rules` is given). */
  config: Record<string, unknown>;
  /** A rule file's content: `{ groups: [...] }`. */
  rules?: Record<string, unknown>;
  /** Loopback port to listen on (a restart keeps its URL); default: a free one. */
  port?: number;
}

/**
 * Runs a command and resolves with its exit code and output (never rejects on a non-zero exit).
 */
function run(
  command: string,
  args: string[],
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, (error, stdout, stderr) => {
      const exitCode = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      // A command that could not start (e.g. not installed) has no stderr: say why instead.
      resolve({ exitCode, stdout, stderr: stderr || (error?.message ?? '') });
    });
  });
}

/**
 * Debian's Prometheus (package `prometheus`, 2.42 in bookworm) on a free loopback port, under
 * the same guard as the control plane's components, so it never outlives the test process.
 */
export class LocalPrometheus {
  readonly url: string;
  readonly component: Component;
  readonly rulesPath: string;

  private constructor(url: string, component: Component, rulesPath: string) {
    this.url = url;
    this.component = component;
    this.rulesPath = rulesPath;
  }

  /** `promtool check rules` on a rule file: exit code and output. */
  static checkRules(path: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    return run('promtool', ['check', 'rules', path]);
  }

  static async start(options: StartOptions): Promise<LocalPrometheus> {
    await mkdir(join(options.dir, 'data'), { recursive: true });
    const rulesPath = join(options.dir, 'rules.yaml');
    const configPath = join(options.dir, 'prometheus.yml');
    if (options.rules) await writeFile(rulesPath, stringify(options.rules));
    await writeFile(
      configPath,
      stringify({ ...options.config, ...(options.rules ? { rule_files: [rulesPath] } : {}) }),
    );
    const check = await run('promtool', ['check', 'config', configPath]);
    if (check.exitCode !== 0) {
      throw new Error(
        `promtool check config ${configPath} failed:\n${check.stdout}${check.stderr}`,
      );
    }
    const port = options.port ?? (await freePort());
    const component = new Component({
      name: 'prometheus',
      command: 'prometheus',
      args: [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${join(options.dir, 'data')}`,
        '--storage.tsdb.retention.time=1h',
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      logPath: join(options.dir, 'prometheus.log'),
    });
    const prometheus = new LocalPrometheus(`http://127.0.0.1:${port}`, component, rulesPath);
    component.start();
    await waitUntil(component, 'became ready', async () => {
      return (await fetch(`${prometheus.url}/-/ready`)).ok;
    });
    return prometheus;
  }

  /** GET an API path (e.g. `/api/v1/targets`) with query parameters; errors come back as data. */
  async api<T>(
    path: string,
    params: Record<string, string | string[]> = {},
  ): Promise<ApiResponse<T>> {
    const url = new URL(path, this.url);
    for (const [name, value] of Object.entries(params)) {
      for (const item of Array.isArray(value) ? value : [value])
        url.searchParams.append(name, item);
    }
    const response = await fetch(url);
    const text = await response.text();
    try {
      return JSON.parse(text) as ApiResponse<T>;
    } catch {
      return { status: 'error', errorType: `http ${response.status}`, error: text };
    }
  }

  /** An instant query. */
  query(expr: string): Promise<ApiResponse<{ resultType: string; result: Sample[] }>> {
    return this.api('/api/v1/query', { query: expr });
  }

  async stop(): Promise<void> {
    await this.component.stop();
  }
}
