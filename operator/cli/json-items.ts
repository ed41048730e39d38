/**
 * The items of a JSON dump read one at a time from its bytes: what `kubectl get -o json` prints
 * for a large cluster (a List, or an array) can be longer than the longest string V8 makes
 * (2^29 − 24 characters), so it cannot be one string for JSON.parse. Each item is.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/**
 * Reads through a UTF-8 JSON text's bytes; throws SyntaxError where it is not JSON, saying at
 * which byte of the file (`offset`: where the text starts in it).
 */
class Scanner {
  private readonly bytes: Buffer;
  private readonly offset: number;
  at = 0;

  constructor(bytes: Uint8Array, offset: number) {
    this.bytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = offset;
  }

  /** The next byte that is not white space (undefined at the end), without taking it. */
  peek(): number | undefined {
    while (isSpace(this.bytes[this.at])) this.at++;
    return this.bytes[this.at];
  }

  expect(byte: number): void {
    if (this.peek() !== byte) this.fail(`expected ${String.fromCharCode(byte)}`);
    this.at++;
  }

  /** Takes a `,` before the next member (true) or the closing `end` (false). */
  more(end: number): boolean {
    const next = this.peek();
    if (next === end) {
      this.at++;
      return false;
    }
    if (next !== COMMA) this.fail(`expected , or ${String.fromCharCode(end)}`);
    this.at++;
    return true;
  }

  /** Skips one value; returns where it started (after the white space before it). */
  skipValue(): number {
    const first = this.peek();
    const start = this.at;
    if (first === QUOTE) {
      this.skipString();
      return start;
    }
    if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) {
      // A number, true, false or null: up to the next delimiter (JSON.parse judges it).
      while (this.at < this.bytes.length) {
        const byte = this.bytes[this.at];
        if (byte === COMMA || byte === CLOSE_OBJECT || byte === CLOSE_ARRAY || isSpace(byte)) break;
        this.at++;
      }
      if (this.at === start) this.fail('expected a value');
      return start;
    }
    let depth = 0;
    do {
      const byte = this.bytes[this.at];
      if (byte === undefined) this.fail('the text ends inside an object or array');
      if (byte === QUOTE) {
        this.skipString();
        continue;
      }
      if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) depth++;
      else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) depth--;
      this.at++;
    } while (depth > 0);
    return start;
  }

  /** A string's bytes, quotes included, parsed. */
  string(): string {
    const start = this.at;
    this.skipString();
    return this.parse(start) as string;
  }

  /** The value from `start` to where the scanner is, parsed. */
  parse(start: number): unknown {
    try {
      return JSON.parse(this.bytes.toString('utf8', start, this.at));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      // JSON.parse counts from the value's start: say which value, by where it is in the file.
      throw new SyntaxError(
        `not valid JSON in the value at byte ${this.offset + start}: ${error.message}`,
        { cause: error },
      );
    }
  }

  fail(why: string): never {
    throw new SyntaxError(`not valid JSON at byte ${this.offset + this.at}: ${why}`);
  }

  private skipString(): void {
    this.at++; // the opening quote
    for (;;) {
      const byte = this.bytes[this.at++];
      if (byte === undefined) this.fail('the text ends inside a string');
      if (byte === BACKSLASH) this.at++;
      else if (byte === QUOTE) return;
    }
  }
}

/** The elements of the array the scanner is at, each parsed on its own. */
function readArray(scanner: Scanner): unknown[] {
  const items: unknown[] = [];
  scanner.expect(OPEN_ARRAY);
  if (scanner.peek() === CLOSE_ARRAY) {
    scanner.at++;
    return items;
  }
  do items.push(scanner.parse(scanner.skipValue()));
  while (scanner.more(CLOSE_ARRAY));
  return items;
}

/** The items of the List object the scanner is at; undefined if it is not a List. */
function readList(scanner: Scanner): unknown[] | undefined {
  let items: unknown[] | undefined;
  let kind: unknown;
  scanner.expect(OPEN_OBJECT);
  if (scanner.peek() === CLOSE_OBJECT) {
    scanner.at++;
    return undefined;
  }
  do {
    if (scanner.peek() !== QUOTE) scanner.fail('expected a key');
    const key = scanner.string();
    scanner.expect(COLON);
    if (key === 'items' && scanner.peek() === OPEN_ARRAY) items = readArray(scanner);
    else {
      const value = scanner.parse(scanner.skipValue());
      if (key === 'items') items = undefined;
      if (key === 'kind') kind = value;
    }
  } while (scanner.more(CLOSE_OBJECT));
  return typeof kind === 'string' && kind.endsWith('List') ? items : undefined;
}

/**
 * The items of a JSON array, or of the `items` array of a JSON object whose kind ends in List
 * (as kubectl prints a List), each parsed on its own, as JSON.parse would read them (of a key
 * given twice, the last); undefined for any other object: there is nothing to split. The
 * object's other fields are parsed too (they are small), so any text that is not JSON throws
 * SyntaxError, saying at which byte of the file (`offset`: where `bytes` start in it).
 */
export function jsonItems(bytes: Uint8Array, offset = 0): unknown[] | undefined {
  const scanner = new Scanner(bytes, offset);
  const items = scanner.peek() === OPEN_ARRAY ? readArray(scanner) : readList(scanner);
  if (scanner.peek() !== undefined) scanner.fail('more text after the end');
  return items;
}
