// Open-addressing hash table mapping u128 ids (four u32 limbs, least significant first) to
// record slots. The keys live in the records themselves (`words` with `stride_words` per
// record), so the table only stores `slot + 1` (0 means empty) and needs no allocation.
// An optional secondary key source shares the table (entries stored negated, `-(slot + 1)`):
// the transfers table keeps the ids burnt by transient failures there, so one probe answers
// both. Hashes and entries are int32 so that they stay small integers in V8's optimised code
// (a u32 above 2^31 is a double, and boxing one per probe would allocate).
import assert from 'node:assert/strict';

const empty = 0;
// In a grouped table, ids that differ only in their low 3 bits hash to neighbouring buckets
// of one cache line (8 buckets of 8 bytes): sequential ids then cost one cache and TLB miss per
// 8 creates instead of one each, which matters because the transfers table is tens of MiB. At
// most 8 ids share a group, so no choice of ids can make a probe chain longer than random
// hashing would by more than those 8. But whole groups collide: with sequential ids a lookup
// averaged 2.8 probes at a load of 0.3 (1.2 with random hashing), so a table looked up at
// random (accounts, by the transfers between them) is not grouped.
const group_mask_grouped = 7;

/**
 * A 32-bit hash of a u128 id, as an int32; its bits under `group_mask` (7, or 0 for an
 * ungrouped table) are the id's own.
 */
export function id_hash(id_0: number, id_1: number, id_2: number, id_3: number,
    group_mask: number): number {
    let mixed = Math.imul((id_0 & ~group_mask) ^ 0x5bd1e995, 0x9e3779b1);
    mixed = Math.imul(mixed ^ id_1 ^ (mixed >>> 15), 0x85ebca77);
    mixed = Math.imul(mixed ^ id_2 ^ (mixed >>> 13), 0xc2b2ae3d);
    mixed = Math.imul(mixed ^ id_3 ^ (mixed >>> 16), 0x27d4eb2f);
    return ((mixed ^ (mixed >>> 15)) & ~group_mask) | (id_0 & group_mask);
}

export class IdTable {
    /** Pairs of (hash, entry); the stored hash filters out most mismatches without touching the
     * record, and lives in the same cache line as the entry. */
    readonly table: Int32Array;
    readonly mask: number;
    readonly group_mask: number;
    count = 0;
    // The bucket where the last `find` that missed stopped, and its id: inserting that id next
    // (the usual create path: look up, validate, insert) reuses the probe instead of hashing and
    // probing again. `version` counts changes, so a stale probe is never reused.
    // miss: version, bucket, hash, then the id's four words (typed, so u32s are never boxed).
    private version = 0;
    private readonly miss = new Int32Array(7).fill(-1);

    constructor(
        readonly words: Uint32Array,
        readonly stride_words: number,
        readonly slots_max: number,
        readonly secondary_words: Uint32Array = words,
        readonly secondary_stride_words: number = stride_words,
        grouped = true,
    ) {
        this.group_mask = grouped ? group_mask_grouped : 0;
        assert(Number.isInteger(slots_max) && slots_max > 0 && slots_max < 0x7fffffff);
        assert(stride_words >= 4 && secondary_stride_words >= 4, 'id_table: an id is 4 words');
        assert(words.length % stride_words === 0, 'id_table: partial records');
        // A load factor of at most one half keeps linear probes short.
        let size = 16;
        while (size < slots_max * 2) size *= 2;
        this.table = new Int32Array(size * 2);
        this.mask = size - 1;
        assert((size & this.mask) === 0 && size >= slots_max * 2, 'id_table: size');
    }

    /**
     * Returns the primary slot whose id equals key[key_offset..+4], `-2 - slot` for a
     * secondary slot, or -1 when absent.
     */
    find(key: Uint32Array, key_offset: number): number {
        const id_0 = key[key_offset], id_1 = key[key_offset + 1];
        const id_2 = key[key_offset + 2], id_3 = key[key_offset + 3];
        const words = this.words;
        const stride = this.stride_words;
        const hash = id_hash(id_0, id_1, id_2, id_3, this.group_mask);
        const table = this.table;
        const mask = this.mask;
        let index = hash & mask;
        for (let probe = 0; probe <= mask; probe++) {
            const entry = table[index * 2 + 1];
            if (entry === empty) {
                const miss = this.miss;
                miss[0] = this.version; miss[1] = index; miss[2] = hash;
                miss[3] = id_0; miss[4] = id_1; miss[5] = id_2; miss[6] = id_3;
                return -1;
            }
            if (table[index * 2] !== hash) {
                // A different id: skip without reading the record.
            } else if (entry < 0) {
                const slot = -entry - 1;
                const base = slot * this.secondary_stride_words;
                const other = this.secondary_words;
                if (other[base] === id_0 && other[base + 1] === id_1 &&
                    other[base + 2] === id_2 && other[base + 3] === id_3) {
                    return -2 - slot;
                }
            } else {
                const base = (entry - 1) * stride;
                if (words[base] === id_0 && words[base + 1] === id_1 &&
                    words[base + 2] === id_2 && words[base + 3] === id_3) {
                    return entry - 1;
                }
            }
            index = (index + 1) & mask;
        }
        return -1;
    }

    /**
     * Looks up two ids per record for `count` records (stride `stride_words` apart from
     * key[key_offset]), the second `second_words` after the first, writing the slots (or -1)
     * to out[i * 2] and out[i * 2 + 1]. For primary ids only (a secondary match counts as
     * absent), and it records no miss: for lookups, not inserts. One loop instead of a call per
     * id saves V8's per-call checks, and the independent probes overlap their cache misses.
     */
    find_pairs(key: Uint32Array, key_offset: number, stride_words: number, second_words: number,
        count: number, out: Int32Array): void {
        // Per call (a chunk of ids), not per id: every key and result lies inside its array.
        assert(count >= 0 && count * 2 <= out.length);
        assert(key_offset >= 0 && second_words >= 0 &&
            key_offset + (count - 1) * stride_words + second_words + 4 <= key.length);
        for (let record = 0; record < count; record++) {
            const first = key_offset + record * stride_words;
            out[record * 2] = this.find_primary(key[first], key[first + 1], key[first + 2],
                key[first + 3]);
            const second = first + second_words;
            out[record * 2 + 1] = this.find_primary(key[second], key[second + 1],
                key[second + 2], key[second + 3]);
        }
    }

    private find_primary(id_0: number, id_1: number, id_2: number, id_3: number): number {
        const words = this.words, stride = this.stride_words;
        const table = this.table, mask = this.mask;
        const hash = id_hash(id_0, id_1, id_2, id_3, this.group_mask);
        let index = hash & mask;
        for (let probe = 0; probe <= mask; probe++) {
            const entry = table[index * 2 + 1];
            if (entry === empty) return -1;
            if (entry > 0 && table[index * 2] === hash) {
                const base = (entry - 1) * stride;
                if (words[base] === id_0 && words[base + 1] === id_1 &&
                    words[base + 2] === id_2 && words[base + 3] === id_3) {
                    return entry - 1;
                }
            }
            index = (index + 1) & mask;
        }
        return -1;
    }

    /**
     * Touches the home bucket of each of `count` ids (stride `stride_words` words apart).
     * The loads are independent, so the CPU overlaps their cache misses; the probes that
     * follow then hit the cache. Returns a value only so the loads are not optimised away.
     */
    warm(key: Uint32Array, key_offset: number, stride_words: number, count: number): number {
        assert(count >= 0 && key_offset + (count - 1) * stride_words + 4 <= key.length);
        let sink = 0;
        const table = this.table, mask = this.mask, group = this.group_mask;
        for (let record = 0; record < count; record++) {
            const id = key_offset + record * stride_words;
            const index = id_hash(key[id], key[id + 1], key[id + 2], key[id + 3], group) & mask;
            sink ^= table[index * 2 + 1];
        }
        return sink;
    }

    insert(slot: number): void {
        if (this.count >= this.slots_max || !(slot >= 0 && slot < this.slots_max)) {
            assert.fail('id_table: insert beyond slots_max');
        }
        const words = this.words, base = slot * this.stride_words;
        const id_0 = words[base] | 0, id_1 = words[base + 1] | 0, id_2 = words[base + 2] | 0;
        const id_3 = words[base + 3] | 0;
        const table = this.table, miss = this.miss;
        if (miss[0] === this.version && miss[3] === id_0 && miss[4] === id_1 && miss[5] === id_2 &&
            miss[6] === id_3) {
            const index = miss[1];
            if (table[index * 2 + 1] !== empty) assert.fail('id_table: stale probe');
            table[index * 2] = miss[2];
            table[index * 2 + 1] = slot + 1;
            this.count++;
            this.version = (this.version + 1) | 0;
        } else {
            this.insert_entry(id_hash(id_0, id_1, id_2, id_3, this.group_mask), slot + 1);
        }
    }

    insert_secondary(slot: number): void {
        assert(this.count < this.slots_max);
        assert(slot >= 0 &&
            (slot + 1) * this.secondary_stride_words <= this.secondary_words.length);
        const words = this.secondary_words, base = slot * this.secondary_stride_words;
        const hash = id_hash(words[base], words[base + 1], words[base + 2], words[base + 3],
            this.group_mask);
        this.insert_entry(hash, -(slot + 1));
    }

    private insert_entry(hash: number, entry: number): void {
        const table = this.table, mask = this.mask;
        // At most half full (see the constructor), so the probe below finds an empty bucket.
        if (this.count >= (mask + 1) >>> 1) assert.fail('id_table: over half full');
        if (entry === empty) assert.fail('id_table: inserting the empty entry');
        let index = hash & mask;
        while (table[index * 2 + 1] !== empty) index = (index + 1) & mask;
        table[index * 2] = hash;
        table[index * 2 + 1] = entry;
        this.count++;
        this.version = (this.version + 1) | 0;
    }

    /** Removes primary `slot` by backward-shift deletion, which keeps probe chains unbroken. */
    remove(slot: number): void {
        assert(this.count > 0 && slot >= 0 && slot < this.slots_max);
        const table = this.table, mask = this.mask;
        const base = slot * this.stride_words;
        const words = this.words;
        let index = id_hash(words[base], words[base + 1], words[base + 2], words[base + 3],
            this.group_mask) & mask;
        while (table[index * 2 + 1] !== slot + 1) {
            assert(table[index * 2 + 1] !== empty, 'id_table: removing an absent slot');
            index = (index + 1) & mask;
        }
        table[index * 2] = 0;
        table[index * 2 + 1] = empty;
        this.count--;
        this.version = (this.version + 1) | 0;
        let hole = index;
        let next = (index + 1) & mask;
        while (table[next * 2 + 1] !== empty) {
            const home = table[next * 2] & mask;
            // Move the entry into the hole when the hole lies cyclically in [home, next).
            if (((hole - home) & mask) < ((next - home) & mask)) {
                table[hole * 2] = table[next * 2];
                table[hole * 2 + 1] = table[next * 2 + 1];
                table[next * 2] = 0;
                table[next * 2 + 1] = empty;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        // Backward shift leaves the hole where a probe chain ends: an empty bucket.
        assert.equal(table[hole * 2 + 1], empty, 'id_table: removal left no hole');
    }

    clear(): void {
        this.table.fill(0);
        this.count = 0;
        this.version = (this.version + 1) | 0;
    }
}
