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

/**
 * Lets V8 collect the young generation while a full collection marks the heap. By default
 * (`--separate-gc-phases`) Node 24's V8 runs no scavenge until the marking is done, and what
 * kopek allocates meanwhile stays in a young generation that grows past its semi-space: 12–59
 * MiB in the 100–200 ms of a marking at 5,000 workloads, on top of the old generation at its
 * limit: what put the peak over 256 MiB (docs/decisions/0025). Set after start, it takes effect.
 */
export function collectYoungDuringMarking(): void {
  setFlagsFromString('--no-separate-gc-phases');
}

/**
 * Lets V8's heap grow at most `percent` past what its last full collection kept before it starts
 * the next (0: V8's own factor, 30% under a 512 MiB limit). The old generation fills up to that
 * limit with what kopek made since, garbage by then for the most part, so the committed heap
 * follows the factor times the live heap, and resident memory with it (docs/decisions/0026). Set
 * after start, it takes effect at the next full collection.
 */
export function limitHeapGrowth(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
