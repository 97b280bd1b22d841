/**
 * A minimal ZIP writer and reader for stored (uncompressed) entries, enough for PyTorch's `.pth` archives:
 * every entry's data can be aligned (PyTorch aligns tensor storages to 64 bytes with an "FB" padding extra
 * field, as its own writer does), CRC-32 is computed on write and verified on read. No compression, no
 * ZIP64 (archives and entries must stay below 4 GiB), no encryption.
 *
 * @module
 */

import { crc32 } from "../util/crc32.ts";
export { crc32 };

/** Raised for malformed archives or archives this module cannot write. */
export class ZipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZipError";
  }
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const LOCAL_HEADER = 30;
const CENTRAL_HEADER = 46;
const EOCD_SIZE = 22;
/** Extra-field id PyTorch's writer uses for its alignment padding ("FB", little-endian 0x4246). */
const PAD_FIELD_ID = 0x4246;
/** DOS date of 1980-01-01 (fixed so that archives are byte-for-byte reproducible). */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const U32_MAX = 0xffffffff;

/** One entry to store. */
export interface ZipInput {
  name: string;
  data: Uint8Array;
}

/**
 * Builds a ZIP archive of stored entries in the given order. With `align` > 1 each entry's data starts at a
 * multiple of `align` bytes from the start of the archive (padding goes in an extra field of the local
 * header, filled with `Z` like PyTorch's).
 */
export function encodeZip(entries: ZipInput[], align = 64): Uint8Array {
  const enc = new TextEncoder();
  const names = entries.map((e) => enc.encode(e.name));
  const seen = new Set<string>();
  for (const e of entries) {
    if (e.name.length === 0 || e.name.length > 0xffff) throw new ZipError(`invalid entry name "${e.name}"`);
    if (seen.has(e.name)) throw new ZipError(`duplicate entry name "${e.name}"`);
    seen.add(e.name);
  }
  // plan the layout
  const plan: { off: number; extra: number; crc: number }[] = [];
  let pos = 0;
  entries.forEach((e, i) => {
    const base = pos + LOCAL_HEADER + names[i].length + 4; // with an (at least empty) padding field
    const pad = align > 1 ? (align - (base % align)) % align : 0;
    plan.push({ off: pos, extra: 4 + pad, crc: crc32(e.data) });
    pos = base + pad + e.data.length;
  });
  const cdStart = pos;
  const cdSize = names.reduce((s, n) => s + CENTRAL_HEADER + n.length, 0);
  const total = cdStart + cdSize + EOCD_SIZE;
  if (cdStart + cdSize > U32_MAX || entries.length > 0xffff) {
    throw new ZipError(`archive too large (${total} bytes, ${entries.length} entries): ZIP64 is not supported`);
  }
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  entries.forEach((e, i) => {
    const { off, extra, crc } = plan[i];
    const n = names[i];
    v.setUint32(off, SIG_LOCAL, true);
    v.setUint16(off + 4, 20, true); // version needed: 2.0
    v.setUint16(off + 6, 0, true); // flags
    v.setUint16(off + 8, 0, true); // method: stored
    v.setUint16(off + 10, 0, true); // time
    v.setUint16(off + 12, DOS_DATE, true);
    v.setUint32(off + 14, crc, true);
    v.setUint32(off + 18, e.data.length, true);
    v.setUint32(off + 22, e.data.length, true);
    v.setUint16(off + 26, n.length, true);
    v.setUint16(off + 28, extra, true);
    out.set(n, off + LOCAL_HEADER);
    const x = off + LOCAL_HEADER + n.length;
    v.setUint16(x, PAD_FIELD_ID, true);
    v.setUint16(x + 2, extra - 4, true);
    out.fill(0x5a, x + 4, x + extra); // 'Z'
    out.set(e.data, x + extra);
  });
  let c = cdStart;
  entries.forEach((e, i) => {
    const { off, crc } = plan[i];
    const n = names[i];
    v.setUint32(c, SIG_CENTRAL, true);
    v.setUint16(c + 4, 20, true); // version made by
    v.setUint16(c + 6, 20, true); // version needed
    v.setUint16(c + 8, 0, true);
    v.setUint16(c + 10, 0, true);
    v.setUint16(c + 12, 0, true);
    v.setUint16(c + 14, DOS_DATE, true);
    v.setUint32(c + 16, crc, true);
    v.setUint32(c + 20, e.data.length, true);
    v.setUint32(c + 24, e.data.length, true);
    v.setUint16(c + 28, n.length, true);
    // extra length, comment length, disk number, internal and external attributes stay 0
    v.setUint32(c + 42, off, true);
    out.set(n, c + CENTRAL_HEADER);
    c += CENTRAL_HEADER + n.length;
  });
  v.setUint32(c, SIG_EOCD, true);
  v.setUint16(c + 8, entries.length, true);
  v.setUint16(c + 10, entries.length, true);
  v.setUint32(c + 12, cdSize, true);
  v.setUint32(c + 16, cdStart, true);
  return out;
}

/** One entry of a read archive. */
export interface ZipEntry {
  /** Path inside the archive. */
  name: string;
  /** Offset of the local header. */
  headerOffset: number;
  /** Offset of the entry's data from the start of the archive. */
  dataOffset: number;
  /** Stored size in bytes. */
  size: number;
  /** CRC-32 of the data. */
  crc: number;
  /** Compression method (only 0, stored, can be extracted). */
  method: number;
  /** General-purpose flags. */
  flags: number;
}

/** A parsed archive: its entries in central-directory order and a way to get their bytes. */
export interface ZipArchive {
  entries: ZipEntry[];
  /** Bytes of an entry (a view into the archive), after checking its CRC-32. */
  read(name: string): Uint8Array;
  has(name: string): boolean;
}

/** Parses the central directory of a ZIP archive (stored entries only can be read back). */
export function decodeZip(bytes: Uint8Array): ZipArchive {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  if (len < EOCD_SIZE) throw new ZipError(`not a ZIP archive (${len} bytes)`);
  let eocd = -1;
  for (let p = len - EOCD_SIZE; p >= Math.max(0, len - EOCD_SIZE - 0xffff); p--) {
    if (v.getUint32(p, true) === SIG_EOCD) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw new ZipError("not a ZIP archive (no end-of-central-directory record; truncated?)");
  const count = v.getUint16(eocd + 10, true);
  const cdSize = v.getUint32(eocd + 12, true);
  const cdStart = v.getUint32(eocd + 16, true);
  if (count === 0xffff || cdStart === U32_MAX) throw new ZipError("ZIP64 archives are not supported");
  if (cdStart + cdSize > eocd) throw new ZipError("central directory runs past its end record (truncated?)");
  const dec = new TextDecoder("utf-8", { fatal: false });
  const entries: ZipEntry[] = [];
  let c = cdStart;
  for (let i = 0; i < count; i++) {
    if (c + CENTRAL_HEADER > eocd || v.getUint32(c, true) !== SIG_CENTRAL) {
      throw new ZipError(`central directory entry ${i} is malformed`);
    }
    const flags = v.getUint16(c + 8, true);
    const method = v.getUint16(c + 10, true);
    const crc = v.getUint32(c + 16, true);
    const csize = v.getUint32(c + 20, true);
    const nlen = v.getUint16(c + 28, true), xlen = v.getUint16(c + 30, true), clen = v.getUint16(c + 32, true);
    const headerOffset = v.getUint32(c + 42, true);
    const name = dec.decode(bytes.subarray(c + CENTRAL_HEADER, c + CENTRAL_HEADER + nlen));
    if (headerOffset + LOCAL_HEADER > len || v.getUint32(headerOffset, true) !== SIG_LOCAL) {
      throw new ZipError(`entry "${name}": local header missing at offset ${headerOffset}`);
    }
    const lnlen = v.getUint16(headerOffset + 26, true), lxlen = v.getUint16(headerOffset + 28, true);
    const dataOffset = headerOffset + LOCAL_HEADER + lnlen + lxlen;
    if (dataOffset + csize > len) throw new ZipError(`entry "${name}": data runs past the end of the archive`);
    entries.push({ name, headerOffset, dataOffset, size: csize, crc, method, flags });
    c += CENTRAL_HEADER + nlen + xlen + clen;
  }
  const byName = new Map(entries.map((e) => [e.name, e]));
  return {
    entries,
    has: (name) => byName.has(name),
    read(name) {
      const e = byName.get(name);
      if (!e) throw new ZipError(`no entry "${name}" in the archive`);
      if (e.method !== 0) throw new ZipError(`entry "${name}" is compressed (method ${e.method}); only stored entries`);
      const data = bytes.subarray(e.dataOffset, e.dataOffset + e.size);
      const got = crc32(data);
      if (got !== e.crc) {
        throw new ZipError(
          `entry "${name}": CRC-32 mismatch (stored ${e.crc.toString(16)}, computed ${got.toString(16)})`,
        );
      }
      return data;
    },
  };
}
