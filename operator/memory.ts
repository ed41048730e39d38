import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** V8's gc() with the options of its `--expose-gc` extension that this module uses. */
type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collect: Collect | undefined;

/**
 * Gives back to the system the heap pages V8 keeps for reuse after full collections
 * (docs/decisions/0022): a last-resort collection, which reduces memory as the memory reducer
 * would and empties that pool. It stops the process for a few hundred milliseconds at 5,000
 * workloads, so it is for when the work is done.
 */
export function releaseFreedPages(): void {
  if (collect === undefined) {
    // V8 gives gc() to the contexts made after the flag is set, not to this one.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  }
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
