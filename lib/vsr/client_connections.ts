// ClientConnections: for the message bus's send_to_client, the connection each client last sent a
// request or a ping_client from. A reply or an eviction names its client by id (u128), never by
// socket, so the bus keeps this map, fixed at construction: open addressing with linear probing,
// keys as four u32 limbs (limb 0 least significant) in one Uint32Array, values connection indexes.
//
// The capacity is a power of two of at least twice `entries_max`, so the load stays at most 1/2
// and a probe for a key always meets an empty slot within the table. Removal shifts the entries
// after the hole back along their probe path (backward-shift deletion) instead of leaving
// tombstones, so deletes never lengthen a run and a lookup may stop at the first empty slot.
// Nothing allocates after construction; every probe loop is bounded by the capacity.
import assert from 'node:assert/strict';

/** The value of a free slot (connections are indexes >= 0). */
const slot_empty = -1;
/** Table capacities stay below 2^25 slots (4 limbs each: 512 MiB would be a sizing bug). */
const capacity_max = 1 << 25;

export class ClientConnections {
    /** Slots, a power of two >= 2 * entries_max. */
    readonly capacity: number;
    /** The most keys held at once; one more is a programming error (the owner bounds it). */
    readonly entries_max: number;
    /** Keys held now. */
    count = 0;
    private readonly mask: number;
    /** Four limbs per slot: slot s holds limbs keys[4s .. 4s + 3]. */
    private readonly keys: Uint32Array;
    /** The connection per slot, or slot_empty. */
    private readonly values: Int32Array;

    constructor(entries_max: number) {
        assert(Number.isInteger(entries_max) && entries_max >= 1);
        let capacity = 2;
        // Bounded: the capacity doubles until it covers twice the entries or hits the ceiling.
        while (capacity < 2 * entries_max && capacity < capacity_max) capacity *= 2;
        assert(capacity >= 2 * entries_max, 'client table: entries_max too large');
        assert.equal(capacity & (capacity - 1), 0);
        this.capacity = capacity;
        this.entries_max = entries_max;
        this.mask = capacity - 1;
        this.keys = new Uint32Array(4 * capacity);
        this.values = new Int32Array(capacity).fill(slot_empty);
    }

    /** The connection the client maps to, or -1. */
    get(limb0: number, limb1: number, limb2: number, limb3: number): number {
        const slot = this.slot_of(limb0, limb1, limb2, limb3);
        if (slot === -1) return -1;
        const connection = this.values[slot]!;
        assert(connection >= 0);
        return connection;
    }

    /** Maps the client to `connection`; returns the connection it mapped to before, or -1. */
    set(limb0: number, limb1: number, limb2: number, limb3: number, connection: number): number {
        assert(Number.isInteger(connection) && connection >= 0);
        const home = client_hash(limb0, limb1, limb2, limb3) & this.mask;
        for (let probe = 0; probe < this.capacity; probe++) {
            const slot = (home + probe) & this.mask;
            const value = this.values[slot]!;
            if (value === slot_empty) {
                assert(this.count < this.entries_max, 'client table: more keys than entries_max');
                this.key_write(slot, limb0, limb1, limb2, limb3);
                this.values[slot] = connection;
                this.count += 1;
                return -1;
            }
            if (this.key_equal(slot, limb0, limb1, limb2, limb3)) {
                this.values[slot] = connection;
                return value;
            }
        }
        assert.fail('client table: no empty slot (the load bound is broken)');
    }

    /** Removes the client; returns the connection it mapped to, or -1 when it was absent. */
    remove(limb0: number, limb1: number, limb2: number, limb3: number): number {
        const slot = this.slot_of(limb0, limb1, limb2, limb3);
        if (slot === -1) return -1;
        const connection = this.values[slot]!;
        assert(connection >= 0 && this.count > 0);
        this.shift_back(slot);
        this.count -= 1;
        return connection;
    }

    /**
     * Checks every invariant by a full scan (tests; O(capacity)): the count, and that each key
     * is reachable from its home slot without crossing an empty one, and held only once.
     */
    verify(): void {
        let count = 0;
        for (let slot = 0; slot < this.capacity; slot++) {
            if (this.values[slot] === slot_empty) {
                for (let limb = 0; limb < 4; limb++) assert.equal(this.keys[4 * slot + limb], 0);
                continue;
            }
            count += 1;
            const k = 4 * slot;
            const found = this.slot_of(this.keys[k]!, this.keys[k + 1]!, this.keys[k + 2]!,
                this.keys[k + 3]!);
            assert.equal(found, slot, 'client table: an entry is unreachable or duplicated');
        }
        assert.equal(count, this.count);
        assert(count <= this.entries_max);
    }

    /** The slot holding the key, or -1: probing stops at the first empty slot. */
    private slot_of(limb0: number, limb1: number, limb2: number, limb3: number): number {
        const home = client_hash(limb0, limb1, limb2, limb3) & this.mask;
        for (let probe = 0; probe < this.capacity; probe++) {
            const slot = (home + probe) & this.mask;
            if (this.values[slot] === slot_empty) return -1;
            if (this.key_equal(slot, limb0, limb1, limb2, limb3)) return slot;
        }
        assert.fail('client table: no empty slot (the load bound is broken)');
    }

    /**
     * Empties `hole` and closes the gap: each later entry of the run moves back into the hole
     * when the hole lies on its probe path (between its home and where it sits), so every entry
     * stays reachable from its home without an empty slot in between.
     */
    private shift_back(hole: number): void {
        let gap = hole;
        for (let probe = 1; probe < this.capacity; probe++) {
            const slot = (hole + probe) & this.mask;
            if (this.values[slot] === slot_empty) break;
            const k = 4 * slot;
            const home = client_hash(this.keys[k]!, this.keys[k + 1]!, this.keys[k + 2]!,
                this.keys[k + 3]!) & this.mask;
            // Distances along the probe order, wrapping: the entry may move back to the gap
            // when it sits at least as far from its home as from the gap.
            if (((slot - home) & this.mask) >= ((slot - gap) & this.mask)) {
                this.key_write(gap, this.keys[k]!, this.keys[k + 1]!, this.keys[k + 2]!,
                    this.keys[k + 3]!);
                this.values[gap] = this.values[slot]!;
                gap = slot;
            }
        }
        assert(this.values[gap] !== slot_empty);
        this.key_write(gap, 0, 0, 0, 0);
        this.values[gap] = slot_empty;
    }

    private key_equal(slot: number, limb0: number, limb1: number, limb2: number,
        limb3: number): boolean {
        const k = 4 * slot;
        return this.keys[k] === limb0 && this.keys[k + 1] === limb1 &&
            this.keys[k + 2] === limb2 && this.keys[k + 3] === limb3;
    }

    private key_write(slot: number, limb0: number, limb1: number, limb2: number,
        limb3: number): void {
        const k = 4 * slot;
        this.keys[k] = limb0;
        this.keys[k + 1] = limb1;
        this.keys[k + 2] = limb2;
        this.keys[k + 3] = limb3;
    }
}

/**
 * A 32-bit hash of a u128 given as four u32 limbs (Murmur3's block and finalisation steps):
 * client ids are random, but a mixing hash keeps ids that differ in one limb (sequential ids in
 * tests, say) from landing in one run.
 */
export function client_hash(limb0: number, limb1: number, limb2: number, limb3: number): number {
    let hash = limb_mix(limb_mix(limb_mix(limb_mix(0x9e3779b9, limb0), limb1), limb2), limb3);
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    hash ^= hash >>> 16;
    return hash >>> 0;
}

function limb_mix(hash: number, limb: number): number {
    let k = Math.imul(limb, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    let mixed = hash ^ k;
    mixed = (mixed << 13) | (mixed >>> 19);
    return (Math.imul(mixed, 5) + 0xe6546b64) | 0;
}
