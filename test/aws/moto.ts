import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Component, waitUntil } from '../cluster/process.ts';
import { freePort } from '../support/ports.ts';

const MOTO_SH = fileURLToPath(new URL('moto.sh', import.meta.url));

/**
 * moto in server mode (EC2, STS) on a free loopback port, installed once by test/aws/moto.sh
 * into a cache outside git, and run under the same guard as the control plane's components so
 * it never outlives the test process.
 */
export class LocalMoto {
  readonly url: string;
  readonly component: Component;

  private constructor(url: string, component: Component) {
    this.url = url;
    this.component = component;
  }

  static async start(dir: string): Promise<LocalMoto> {
    const { stdout } = await promisify(execFile)('bash', [MOTO_SH], { maxBuffer: 1 << 20 });
    const sitePackages = join(stdout.trim(), 'site-packages');
    const port = await freePort();
    const component = new Component({
      name: 'moto',
      command: 'python3',
      args: ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)],
      logPath: join(dir, 'moto.log'),
      env: { ...process.env, PYTHONPATH: sitePackages, PYTHONNOUSERSITE: '1' },
    });
    const moto = new LocalMoto(`http://127.0.0.1:${port}`, component);
    component.start();
    await moto.ready();
    return moto;
  }

  private async ready(): Promise<void> {
    await waitUntil(this.component, 'answered', async () => {
      return (await fetch(`${this.url}/moto-api/data.json`)).ok;
    });
  }

  async restart(): Promise<void> {
    await this.component.stop();
    this.component.start();
    await this.ready();
  }
}
