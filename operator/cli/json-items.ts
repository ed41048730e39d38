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

/** Reads through a UTF-8 JSON text's bytes; every method throws SyntaxError where it is not JSON. */
class Scanner {
  private readonly bytes: Buffer;
  at = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
      this.at = start;
      return this.fail((error as Error).message);
    }
  }

  fail(why: string): never {
    throw new SyntaxError(`not valid JSON at byte ${this.at}: ${why}`);
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

/**
 * The items of a JSON array, or of the `items` array of a JSON object (a List), each parsed on
 * its own; undefined when the text is an object without `items` (one object: there is nothing
 * to split). Throws SyntaxError where the text is not JSON.
 */
export function jsonItems(bytes: Uint8Array): unknown[] | undefined {
  const scanner = new Scanner(bytes);
  const items: unknown[] = [];
  const readArray = (): void => {
    scanner.expect(OPEN_ARRAY);
    if (scanner.peek() === CLOSE_ARRAY) {
      scanner.at++;
      return;
    }
    do items.push(scanner.parse(scanner.skipValue()));
    while (scanner.more(CLOSE_ARRAY));
  };
  let found = false;
  if (scanner.peek() === OPEN_ARRAY) {
    readArray();
    found = true;
  } else {
    scanner.expect(OPEN_OBJECT);
    if (scanner.peek() === CLOSE_OBJECT) scanner.at++;
    else
      do {
        if (scanner.peek() !== QUOTE) scanner.fail('expected a key');
        const key = scanner.string();
        scanner.expect(COLON);
        if (key === 'items' && !found && scanner.peek() === OPEN_ARRAY) {
          readArray();
          found = true;
        } else scanner.skipValue();
      } while (scanner.more(CLOSE_OBJECT));
  }
  if (scanner.peek() !== undefined) scanner.fail('more text after the end');
  return found ? items : undefined;
}
