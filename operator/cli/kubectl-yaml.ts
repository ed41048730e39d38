/**
 * A fast reader for the YAML that kubectl prints (docs/decisions/0012-kubectl-yaml-fast-path.md):
 * block mappings and sequences, plain, quoted and literal scalars, `{}` and `[]`, full-line
 * comments and `---` between documents. It rewrites the bytes as JSON line by line, copying
 * them, and lets JSON.parse build the values: no syntax tree, no string per scalar.
 * Anything outside that subset (anchors, aliases, tags, flow collections, folded scalars, …)
 * makes it give up on the whole text, and the caller parses it with a general YAML parser.
 * Scalars resolve as YAML 1.2's core schema says, as the general parser does.
 */

/** Thrown inside the reader when the text is not in the subset; never escapes parseKubectlYaml. */
class OutsideSubset extends Error {}

function outside(): never {
  throw new OutsideSubset();
}

const SPACE = 32;
const DASH = 45;
const HASH = 35;
const TAB = 9;
const NEWLINE = 10;
const COLON = 58;
const DQUOTE = 34;
const SQUOTE = 39;
const BACKSLASH = 92;
/** First bytes that make a plain scalar or key mean something else in YAML. */
const INDICATORS = byteSet('&*!%@`?[]{}>|,#');
/** First bytes of a null, a boolean or a number. */
const MAYBE_NOT_STRING = byteSet('0123456789+-.~nNtTfF');

function byteSet(ascii: string): Set<number> {
  return new Set(Array.from({ length: ascii.length }, (_, i) => ascii.charCodeAt(i)));
}

const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;

/** A plain scalar's value under the YAML 1.2 core schema, as JSON; strings are left to the caller. */
function plainJson(s: string): string | undefined {
  switch (s) {
    case '~':
    case 'null':
    case 'Null':
    case 'NULL':
      return 'null';
    case 'true':
    case 'True':
    case 'TRUE':
      return 'true';
    case 'false':
    case 'False':
    case 'FALSE':
      return 'false';
  }
  // JSON has no Infinity or NaN.
  if (/^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$/.test(s)) outside();
  if (INT.test(s) || FLOAT.test(s)) return String(Number(s));
  if (/^0o[0-7]+$/.test(s)) return String(parseInt(s.slice(2), 8));
  if (/^0x[0-9a-fA-F]+$/.test(s)) return String(parseInt(s.slice(2), 16));
  return undefined;
}

class Reader {
  private readonly text: Buffer;
  /** The JSON text of the documents, and how much of it is written. */
  private out: Buffer;
  private written = 0;
  /** Start of the current line, its content (after the indentation) and its end. */
  private lineStart = 0;
  private start = 0;
  private end = 0;
  /** Column of the current content; -1 at the end of a document. */
  indent = -1;
  /** Where the next line starts. */
  private next = 0;
  private atDocumentEnd = false;
  /** Whether blank or comment lines came before the current line. */
  private skippedLines = false;

  constructor(text: Buffer) {
    this.text = text;
    // Quotes, commas and colons make JSON somewhat longer than YAML; grown when needed.
    this.out = Buffer.allocUnsafe(Math.max(1024, Math.ceil(text.length * 1.5)));
  }

  json(): string {
    return this.out.toString('utf8', 0, this.written);
  }

  private room(n: number): void {
    if (this.written + n <= this.out.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.written + n));
    this.out.copy(bigger, 0, 0, this.written);
    this.out = bigger;
  }

  byte(b: number): void {
    this.room(1);
    this.out[this.written++] = b;
  }

  private copy(from: number, to: number): void {
    this.room(to - from);
    this.written += this.text.copy(this.out, this.written, from, to);
  }

  private write(s: string): void {
    this.room(Buffer.byteLength(s));
    this.written += this.out.write(s, this.written);
  }

  /** Writes text[from, to) as a JSON string: copied between quotes unless it needs escaping. */
  private string(from: number, to: number): void {
    const text = this.text;
    for (let i = from; i < to; i++) {
      const b = text[i] ?? 0;
      if (b === DQUOTE || b === BACKSLASH || b < SPACE) {
        this.write(JSON.stringify(text.toString('utf8', from, to)));
        return;
      }
    }
    this.room(to - from + 2);
    const out = this.out;
    let w = this.written;
    out[w++] = DQUOTE;
    // Most scalars are short: a loop beats a call into Buffer.copy.
    for (let i = from; i < to; i++) out[w++] = text[i] ?? 0;
    out[w++] = DQUOTE;
    this.written = w;
  }

  /** Moves to the next line with content, skipping blank lines and comments. */
  advance(): void {
    const text = this.text;
    this.skippedLines = false;
    for (;;) {
      if (this.next >= text.length) {
        this.indent = -1;
        this.atDocumentEnd = true;
        return;
      }
      this.lineStart = this.next;
      let end = text.indexOf(NEWLINE, this.lineStart);
      if (end < 0) end = text.length;
      this.next = end + 1;
      let i = this.lineStart;
      while (i < end && text[i] === SPACE) i++;
      if (i === end || text[i] === HASH) {
        this.skippedLines = true;
        continue;
      }
      if (text[i] === TAB) outside();
      // Trailing spaces are not content.
      while (end > i && text[end - 1] === SPACE) end--;
      this.start = i;
      this.end = end;
      this.indent = i - this.lineStart;
      if (this.indent === 0 && text[i] === DASH && text[i + 1] === DASH && text[i + 2] === DASH) {
        if (end - i !== 3) outside();
        this.indent = -1;
        this.atDocumentEnd = true;
        return;
      }
      if (this.indent === 0 && text[i] === 46 && text[i + 1] === 46 && text[i + 2] === 46)
        outside();
      return;
    }
  }

  /** After a `---` line: whether there is another document, and moves to its first line. */
  nextDocument(): boolean {
    if (this.next >= this.text.length && this.indent === -1) return false;
    this.atDocumentEnd = false;
    this.advance();
    return true;
  }

  /** A method, not a getter: reading it again after advance() must not look redundant. */
  documentEnded(): boolean {
    return this.atDocumentEnd;
  }

  /** Whether the current content is a sequence entry (`- …` or a lone `-`). */
  private isEntry(): boolean {
    const text = this.text;
    return (
      text[this.start] === DASH && (this.start + 1 === this.end || text[this.start + 1] === SPACE)
    );
  }

  /** Where the `:` that ends a mapping key on the current content is, or -1 if it is no key. */
  private keyEnd(): number {
    const text = this.text;
    const c = text[this.start];
    if (c === DQUOTE || c === SQUOTE) {
      const close = this.quoteEnd(this.start);
      if (close < 0) return -1;
      return text[close + 1] === COLON ? close + 1 : -1;
    }
    for (let i = this.start; i < this.end; i++)
      if (text[i] === COLON && (i + 1 === this.end || text[i + 1] === SPACE)) return i;
    return -1;
  }

  /** The index of the quote closing the string that starts at `from`, on the same line; -1 if none. */
  private quoteEnd(from: number): number {
    const text = this.text;
    const quote = text[from];
    let i = from + 1;
    while (i < this.end) {
      const c = text[i];
      if (quote === DQUOTE && c === BACKSLASH) i += 2;
      else if (c === quote) {
        if (quote === SQUOTE && text[i + 1] === SQUOTE) i += 2;
        else return i;
      } else i++;
    }
    return -1;
  }

  /** Writes a quoted scalar (quotes included) as a JSON string. */
  private quoted(from: number, to: number): void {
    const text = this.text;
    if (text[from] === SQUOTE) {
      this.write(JSON.stringify(text.toString('utf8', from + 1, to).replaceAll("''", "'")));
      return;
    }
    for (let i = from + 1; i < to; i++) {
      const b = text[i] ?? 0;
      // YAML's escapes beyond JSON's (\x, \e, \N, \_, …) are rare: leave them to the general parser.
      if (b < SPACE || (b === BACKSLASH && !JSON_ESCAPES.has(text[++i] ?? 0))) outside();
    }
    this.copy(from, to + 1);
  }

  /** Writes the block node whose first line is the current one. */
  block(): void {
    if (this.isEntry()) this.sequence();
    else this.mapping();
  }

  private sequence(): void {
    const indent = this.indent;
    this.byte(91);
    for (let first = true; ; first = false) {
      if (!first) this.byte(44);
      if (this.start + 1 === this.end) {
        this.advance();
        this.nested(indent, false);
      } else {
        // `- content`: the content is a node at the column where it starts.
        let i = this.start + 1;
        while (this.text[i] === SPACE) i++;
        this.start = i;
        this.indent = i - this.lineStart;
        if (this.isEntry() || this.keyEnd() >= 0) this.block();
        else this.scalar(indent);
      }
      if (this.indent > indent) outside();
      if (this.indent < indent || !this.isEntry()) break;
    }
    this.byte(93);
  }

  private mapping(): void {
    const indent = this.indent;
    const text = this.text;
    /** Start and end of each key so far, to refuse duplicates as YAML does. */
    const keys: number[] = [];
    this.byte(123);
    for (;;) {
      const colon = this.keyEnd();
      if (colon < 0) outside();
      const from = this.start;
      const to = colon;
      // Keys that could mean something else in YAML (indicators, comments) are rare.
      if (
        from === to ||
        (INDICATORS.has(text[from] ?? 0) && text[from] !== DQUOTE && text[from] !== SQUOTE)
      )
        outside();
      for (let k = 0; k < keys.length; k += 2)
        if (this.same(keys[k] ?? 0, keys[k + 1] ?? 0, from, to)) outside();
      keys.push(from, to);
      if (keys.length > 2) this.byte(44);
      const c = text[from];
      if (c === DQUOTE || c === SQUOTE) this.quoted(from, to - 1);
      else {
        if (this.hasPair(from, to, SPACE, HASH) || text[from] === DASH) outside();
        this.string(from, to);
      }
      this.byte(COLON);
      let i = colon + 1;
      while (i < this.end && text[i] === SPACE) i++;
      if (i === this.end) {
        this.advance();
        this.nested(indent, true);
      } else {
        this.start = i;
        this.scalar(indent);
      }
      if (this.indent < indent) break;
      if (this.indent > indent || this.isEntry()) outside();
    }
    this.byte(125);
  }

  /** The node after `key:` or a lone `-` on the line above: deeper lines, or null. */
  private nested(parentIndent: number, sequenceMayAlign: boolean): void {
    if (this.documentEnded()) this.write('null');
    else if (this.indent > parentIndent) this.block();
    // kubectl writes a mapping's sequences at the key's own column.
    else if (sequenceMayAlign && this.indent === parentIndent && this.isEntry()) this.sequence();
    else this.write('null');
  }

  /** Writes the scalar (or `{}`/`[]`) from the current content to the end of the line; moves on. */
  private scalar(parentIndent: number): void {
    const text = this.text;
    const from = this.start;
    const to = this.end;
    const c = text[from] ?? 0;
    if (c === DQUOTE || c === SQUOTE) {
      const close = this.quoteEnd(from);
      if (close < 0 || close !== to - 1) outside();
      this.quoted(from, close);
      this.advance();
      return;
    }
    if (
      to - from === 2 &&
      ((c === 123 && text[from + 1] === 125) || (c === 91 && text[from + 1] === 93))
    ) {
      this.copy(from, to);
      this.advance();
      return;
    }
    if (c === 124) {
      this.write(JSON.stringify(this.literal(parentIndent, text.toString('latin1', from, to))));
      return;
    }
    if (INDICATORS.has(c) || text[to - 1] === COLON || (c === DASH && to - from === 1)) outside();
    if (this.hasPair(from, to, SPACE, HASH) || this.hasPair(from, to, COLON, SPACE)) outside();
    this.advance();
    // A plain scalar may go on over more indented lines (go-yaml folds long ones at 80 columns).
    if (!this.documentEnded() && this.indent > parentIndent && !this.startsNode())
      this.folded(parentIndent, from, to);
    else this.plain(from, to);
  }

  /** Writes a plain scalar of one line: a null, boolean or number, or else a string. */
  private plain(from: number, to: number): void {
    const text = this.text;
    const c = text[from] ?? 0;
    const length = to - from;
    const word = c === 110 || c === 78 || c === 116 || c === 84 || c === 102 || c === 70;
    if (MAYBE_NOT_STRING.has(c) && (!word || length === 4 || length === 5)) {
      const json = plainJson(text.toString('latin1', from, to));
      if (json !== undefined) {
        this.write(json);
        return;
      }
    }
    this.string(from, to);
  }

  /** Writes a plain scalar that goes on over the current and following more indented lines. */
  private folded(parentIndent: number, from: number, to: number): void {
    const text = this.text;
    let folded = text.toString('utf8', from, to);
    while (!this.documentEnded() && this.indent > parentIndent) {
      const line = text.toString('utf8', this.start, this.end);
      // Blank or comment lines inside the scalar: leave their meaning to the general parser.
      if (this.skippedLines || line.includes(' #') || line.includes(': ') || line.endsWith(':'))
        outside();
      folded += ` ${line}`;
      this.advance();
    }
    this.write(JSON.stringify(folded));
  }

  /** Whether text[aFrom, aTo) and text[bFrom, bTo) hold the same bytes. */
  private same(aFrom: number, aTo: number, bFrom: number, bTo: number): boolean {
    if (aTo - aFrom !== bTo - bFrom) return false;
    const text = this.text;
    for (let i = 0; i < aTo - aFrom; i++) if (text[aFrom + i] !== text[bFrom + i]) return false;
    return true;
  }

  /** Whether bytes a, b follow each other in text[from, to): a comment, or a key inside a scalar. */
  private hasPair(from: number, to: number, a: number, b: number): boolean {
    const text = this.text;
    for (let i = from; i < to - 1; i++) if (text[i] === a && text[i + 1] === b) return true;
    return false;
  }

  /** Whether the current line would start a node of its own (then it cannot continue a scalar). */
  private startsNode(): boolean {
    return this.isEntry() || this.keyEnd() >= 0;
  }

  /** A literal block scalar (`|`, `|-`, `|+`): its lines, more indented than the parent. */
  private literal(parentIndent: number, header: string): string {
    if (header !== '|' && header !== '|-' && header !== '|+') outside();
    const text = this.text;
    const lines: string[] = [];
    let blockIndent = -1;
    let pos = this.next;
    while (pos < text.length) {
      let end = text.indexOf(NEWLINE, pos);
      if (end < 0) end = text.length;
      let i = pos;
      while (i < end && text[i] === SPACE) i++;
      if (i === end) {
        if (blockIndent >= 0 && i - pos > blockIndent) outside();
        lines.push('');
        pos = end + 1;
        continue;
      }
      const indent = i - pos;
      if (blockIndent < 0) {
        if (indent <= parentIndent) break;
        blockIndent = indent;
      }
      if (indent < blockIndent) break;
      if (text[i] === TAB && indent === blockIndent) outside();
      lines.push(text.toString('utf8', pos + blockIndent, end));
      pos = end + 1;
    }
    // Blank lines after the block belong to the chomping, not to the next node.
    let trailing = 0;
    while (lines.length > 0 && (lines.at(-1) ?? '') === '') {
      lines.pop();
      trailing++;
    }
    this.next = pos;
    this.advance();
    if (lines.length === 0) return '';
    const body = lines.join('\n');
    if (header === '|-') return body;
    if (header === '|+') return `${body}\n${'\n'.repeat(trailing)}`;
    return `${body}\n`;
  }
}

const JSON_ESCAPES = byteSet('"\\/bfnrtu');

/**
 * The documents of a text in the subset kubectl prints, or undefined when the text goes beyond
 * it (then a general YAML parser must read it). Empty documents are left out. The bytes are
 * UTF-8 without a byte-order mark.
 */
export function parseKubectlYaml(input: Uint8Array): unknown[] | undefined {
  const text = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (text.includes(13)) return undefined; // CR: Windows line ends, read by the general parser
  const reader = new Reader(text);
  reader.byte(91);
  try {
    reader.advance();
    for (let first = true; ;) {
      if (!reader.documentEnded()) {
        if (reader.indent !== 0) outside();
        if (!first) reader.byte(44);
        first = false;
        reader.block();
        if (!reader.documentEnded()) outside();
      }
      if (!reader.nextDocument()) break;
    }
  } catch (e) {
    if (e instanceof OutsideSubset) return undefined;
    throw e;
  }
  reader.byte(93);
  // JSON.parse builds the values faster than any code here could.
  return JSON.parse(reader.json()) as unknown[];
}
