/**
 * The subset of Python's pickle format that PyTorch checkpoints need: a protocol-2 writer of low-level
 * opcodes with a memo (the same opcodes `torch.save` emits, all of which PyTorch 1.13's
 * `weights_only` unpickler accepts), and a small unpickling machine that reads them back (plus a few
 * protocol-4 opcodes) into JavaScript values, with hooks for globals, `REDUCE` and persistent ids.
 *
 * @module
 */

/** Raised for malformed or unsupported pickles. */
export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PickleError";
  }
}

/** Opcode bytes (see CPython's Lib/pickle.py). */
export const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  NONE: 0x4e, // N
  BINPERSID: 0x51, // Q
  REDUCE: 0x52, // R
  SHORT_BINSTRING: 0x55, // U
  BINUNICODE: 0x58, // X
  APPEND: 0x61, // a
  BUILD: 0x62, // b
  GLOBAL: 0x63, // c
  APPENDS: 0x65, // e
  BINGET: 0x68, // h
  LONG_BINGET: 0x6a, // j
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  SETITEM: 0x73, // s
  TUPLE: 0x74, // t
  SETITEMS: 0x75, // u
  EMPTY_DICT: 0x7d, // }
  EMPTY_LIST: 0x5d, // ]
  EMPTY_TUPLE: 0x29, // )
  BINFLOAT: 0x47, // G
  PROTO: 0x80,
  NEWOBJ: 0x81,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c,
  EMPTY_SET: 0x8f,
  MEMOIZE: 0x94,
  FRAME: 0x95,
} as const;

const OP_NAME = new Map<number, string>(Object.entries(OP).map(([k, v]) => [v, k]));

/** Name of an opcode byte (`0x..` when unknown). */
export function opName(code: number): string {
  return OP_NAME.get(code) ?? `0x${code.toString(16)}`;
}

/**
 * Emits protocol-2 pickle opcodes. Strings and globals are memoised (`BINPUT` once, `BINGET` after), as
 * CPython's pickler does for objects it has seen.
 */
export class PickleWriter {
  #buf = new Uint8Array(4096);
  #len = 0;
  #memo = new Map<string, number>();
  #enc = new TextEncoder();

  constructor() {
    this.byte(OP.PROTO).byte(2);
  }

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  /** One raw byte (an opcode). */
  byte(b: number): this {
    this.#grow(1);
    this.#buf[this.#len++] = b;
    return this;
  }

  #bytes(b: Uint8Array): this {
    this.#grow(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  #u32(n: number): this {
    this.#grow(4);
    new DataView(this.#buf.buffer).setUint32(this.#len, n, true);
    this.#len += 4;
    return this;
  }

  /** Stores the top of the stack in the memo under `key`; later {@link recall} pushes it again. */
  #put(key: string): this {
    const idx = this.#memo.size;
    this.#memo.set(key, idx);
    return idx < 256 ? this.byte(OP.BINPUT).byte(idx) : this.byte(OP.LONG_BINPUT).#u32(idx);
  }

  /** Pushes a memoised object if `key` was stored; returns whether it did. */
  recall(key: string): boolean {
    const idx = this.#memo.get(key);
    if (idx === undefined) return false;
    if (idx < 256) this.byte(OP.BINGET).byte(idx);
    else this.byte(OP.LONG_BINGET).#u32(idx);
    return true;
  }

  /** A `str` (BINUNICODE, memoised). */
  str(s: string): this {
    if (this.recall(`s:${s}`)) return this;
    const b = this.#enc.encode(s);
    this.byte(OP.BINUNICODE).#u32(b.length).#bytes(b);
    return this.#put(`s:${s}`);
  }

  /** An `int` as CPython's protocol 2 writes it (BININT1/BININT2/BININT, else LONG1). */
  int(n: number | bigint): this {
    const big = BigInt(n);
    if (big >= 0n && big < 256n) return this.byte(OP.BININT1).byte(Number(big));
    if (big >= 0n && big < 65536n) {
      const v = Number(big);
      return this.byte(OP.BININT2).byte(v & 0xff).byte(v >> 8);
    }
    if (big >= -(2n ** 31n) && big < 2n ** 31n) {
      this.byte(OP.BININT);
      this.#grow(4);
      new DataView(this.#buf.buffer).setInt32(this.#len, Number(big), true);
      this.#len += 4;
      return this;
    }
    // LONG1: minimal little-endian two's complement
    const out: number[] = [];
    let x = big;
    for (;;) {
      const b = Number(x & 0xffn);
      out.push(b);
      x >>= 8n;
      if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) break;
    }
    if (out.length > 255) throw new PickleError(`integer ${big} is too large`);
    return this.byte(OP.LONG1).byte(out.length).#bytes(Uint8Array.from(out));
  }

  /** A `float` (BINFLOAT, big-endian double). PyTorch 1.13's weights_only unpickler does not accept it. */
  float(x: number): this {
    this.byte(OP.BINFLOAT);
    this.#grow(8);
    new DataView(this.#buf.buffer).setFloat64(this.#len, x, false);
    this.#len += 8;
    return this;
  }

  /** `True`/`False`. */
  bool(b: boolean): this {
    return this.byte(b ? OP.NEWTRUE : OP.NEWFALSE);
  }

  /** `None`. */
  none(): this {
    return this.byte(OP.NONE);
  }

  /** A global `module.name` (GLOBAL, memoised). */
  global(module: string, name: string): this {
    const key = `g:${module}\n${name}`;
    if (this.recall(key)) return this;
    if (/[\n]/.test(module + name)) throw new PickleError(`invalid global ${module}.${name}`);
    this.byte(OP.GLOBAL).#bytes(this.#enc.encode(`${module}\n${name}\n`));
    return this.#put(key);
  }

  /** Packs the last `n` (≤ 3) pushed items into a tuple (EMPTY_TUPLE, TUPLE1-3); longer tuples use MARK … TUPLE. */
  tuple(n: 0 | 1 | 2 | 3): this {
    return this.byte([OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3][n]);
  }

  /** A MARK (for TUPLE, SETITEMS, APPENDS). */
  mark(): this {
    return this.byte(OP.MARK);
  }

  /** Memoises the top of the stack under a fresh anonymous key (as the pickler does for every object). */
  memoize(): this {
    return this.#put(`o:${this.#memo.size}`);
  }

  /** The pickle bytes, terminated by STOP. */
  finish(): Uint8Array {
    this.byte(OP.STOP);
    return this.#buf.slice(0, this.#len);
  }
}

/** A Python global as read back: `module.name`. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get path(): string {
    return `${this.module}.${this.name}`;
  }
}

/** The result of a `REDUCE` that no hook handled: the callable and its argument tuple. */
export class PyReduce {
  constructor(readonly callable: unknown, readonly args: unknown[]) {}
}

/** A Python tuple as read back (a frozen array). */
export type PyTuple = readonly unknown[];

/** Hooks of {@link unpickle}. */
export interface UnpickleHooks {
  /** Called for REDUCE; return `undefined` to get a {@link PyReduce}. */
  reduce?: (callable: unknown, args: unknown[]) => unknown;
  /** Resolves a persistent id (BINPERSID). */
  persistentLoad?: (pid: unknown) => unknown;
}

/** What {@link unpickle} returns: the value and the sequence of opcode names it executed. */
export interface Unpickled {
  value: unknown;
  opcodes: string[];
}

/**
 * Runs a pickle. dicts become `Map`s (keys as read), lists arrays, tuples frozen arrays, ints numbers
 * (bigints beyond 2^53), strings strings, globals {@link PyGlobal}s.
 */
export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks = {}): Unpickled {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8");
  const opcodes: string[] = [];
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw new PickleError(`pickle truncated at byte ${p}`);
  };
  const u8 = () => (need(1), bytes[p++]);
  const u32 = () => (need(4), p += 4, v.getUint32(p - 4, true));
  const readLine = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw new PickleError(`unterminated line at byte ${p}`);
    const s = dec.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const str = (n: number) => (need(n), p += n, dec.decode(bytes.subarray(p - n, p)));
  const pop = () => {
    if (stack.length === 0) throw new PickleError(`stack underflow at byte ${p}`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new PickleError(`stack underflow at byte ${p}`);
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw new PickleError(`no MARK at byte ${p}`);
    stack = prev;
    return items;
  };
  const setItems = (d: unknown, items: unknown[]) => {
    if (!(d instanceof Map)) throw new PickleError(`SETITEM(S) on a non-dict at byte ${p}`);
    for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
  };
  const toNum = (b: bigint) => (b >= -(2n ** 53n) && b <= 2n ** 53n ? Number(b) : b);
  for (;;) {
    const op = u8();
    opcodes.push(opName(op));
    switch (op) {
      case OP.PROTO:
        u8();
        break;
      case OP.FRAME:
        need(8);
        p += 8;
        break;
      case OP.STOP:
        if (stack.length !== 1 || marks.length) throw new PickleError("pickle ended with an unbalanced stack");
        return { value: stack[0], opcodes };
      case OP.MARK:
        marks.push(stack);
        stack = [];
        break;
      case OP.EMPTY_DICT:
        stack.push(new Map());
        break;
      case OP.EMPTY_LIST:
        stack.push([]);
        break;
      case OP.EMPTY_TUPLE:
        stack.push(Object.freeze([]));
        break;
      case OP.EMPTY_SET:
        stack.push(new Set());
        break;
      case OP.TUPLE: {
        const items = popMark(); // before reading `stack`, which popMark replaces
        stack.push(Object.freeze(items));
        break;
      }
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const n = op - OP.TUPLE1 + 1;
        if (stack.length < n) throw new PickleError(`stack underflow at byte ${p}`);
        stack.push(Object.freeze(stack.splice(stack.length - n, n)));
        break;
      }
      case OP.NONE:
        stack.push(null);
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.BININT1:
        stack.push(u8());
        break;
      case OP.BININT2:
        need(2), stack.push(v.getUint16(p, true)), p += 2;
        break;
      case OP.BININT:
        need(4), stack.push(v.getInt32(p, true)), p += 4;
        break;
      case OP.LONG1: {
        const n = u8();
        need(n);
        let x = 0n;
        for (let i = n - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[p + i]);
        if (n > 0 && bytes[p + n - 1] & 0x80) x -= 1n << BigInt(8 * n);
        p += n;
        stack.push(toNum(x));
        break;
      }
      case OP.BINFLOAT:
        need(8), stack.push(v.getFloat64(p, false)), p += 8;
        break;
      case OP.BINUNICODE:
        stack.push(str(u32()));
        break;
      case OP.SHORT_BINUNICODE:
      case OP.SHORT_BINSTRING:
        stack.push(str(u8()));
        break;
      case OP.GLOBAL: {
        const module = readLine();
        stack.push(new PyGlobal(module, readLine()));
        break;
      }
      case OP.REDUCE: {
        const args = pop();
        const fn = pop();
        if (!Array.isArray(args)) throw new PickleError(`REDUCE with non-tuple arguments at byte ${p}`);
        const r = hooks.reduce?.(fn, args as unknown[]);
        stack.push(r === undefined ? new PyReduce(fn, args as unknown[]) : r);
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const inst = top();
        // OrderedDict/tensor state from PyTorch pickles is an empty or metadata dict: keep it aside
        if (inst && typeof inst === "object") (inst as { __state__?: unknown }).__state__ = state;
        break;
      }
      case OP.NEWOBJ: {
        const args = pop();
        const cls = pop();
        stack.push(new PyReduce(cls, args as unknown[]));
        break;
      }
      case OP.BINPERSID: {
        const pid = pop();
        if (!hooks.persistentLoad) throw new PickleError("persistent id without a persistent_load hook");
        stack.push(hooks.persistentLoad(pid));
        break;
      }
      case OP.BINPUT:
        memo.set(u8(), top());
        break;
      case OP.LONG_BINPUT:
        memo.set(u32(), top());
        break;
      case OP.MEMOIZE:
        memo.set(memo.size, top());
        break;
      case OP.BINGET:
      case OP.LONG_BINGET: {
        const i = op === OP.BINGET ? u8() : u32();
        if (!memo.has(i)) throw new PickleError(`memo key ${i} missing at byte ${p}`);
        stack.push(memo.get(i));
        break;
      }
      case OP.SETITEM: {
        const val = pop();
        const key = pop();
        setItems(top(), [key, val]);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case OP.APPEND: {
        const item = pop();
        const l = top();
        if (!Array.isArray(l)) throw new PickleError(`APPEND to a non-list at byte ${p}`);
        l.push(item);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) throw new PickleError(`APPENDS to a non-list at byte ${p}`);
        l.push(...items);
        break;
      }
      default:
        throw new PickleError(`unsupported opcode ${opName(op)} at byte ${p - 1}`);
    }
  }
}
