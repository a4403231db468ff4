// The cluster fault atlas (internals.md §17, after TigerBeetle's ClusterFaultAtlas): where the
// simulator's random storage faults may land, per replica, so that the cluster can always
// recover from them. Data survives while one intact copy of each committed datum exists
// somewhere (internals.md §16); an op is committed on quorum_replication replicas, so if at most
// quorum_replication - 1 replicas may be damaged in any one place, one copy of every committed op
// stays intact, and a view change that hears every replica always finds it.
//
// A WAL area is one sector of the wal_headers ring (headers_per_sector slots) together with the
// same slots' prepares in wal_prepares: a header sector write rewrites its 16 neighbours' headers
// too, so the two rings of those slots fail together or not at all on a given replica. Each area
// is open to faults on exactly quorum_replication - 1 replicas, chosen from the seed. A single
// replica has no peer to repair from (it refuses to start on a faulty WAL), so none of its areas
// is open.
//
// A client replies slot (one per session, message_size_max bytes) is open to faults on exactly
// quorum_replication - 1 replicas too, chosen after the WAL areas: every reply is held by every
// replica that committed its op, so a replica that loses its copy always has a peer to fetch it
// from (request_reply, lib/vsr/reply_repair.ts).
//
// The superblock gets only crash faults: with 4 copies and flexible quorums, one extra fault
// could lose the quorum (internals.md §17). The grid gets no write faults here: its blocks rot
// while a replica is down instead (grid_faults.ts, with an atlas of its own per address), and
// grid repair (lib/vsr/grid_repair.ts) fetches them back.
import assert from 'node:assert/strict';

import type { Prng } from '../prng';
import type { StorageFaultFilter } from '../storage/simulator_storage';
import { Zone, header_size, headers_per_sector, sector_size } from '../storage/zones';
import { quorum_replication } from '../vsr/quorums';

export class ClusterFaultAtlas {
    readonly replica_count: number;
    readonly slot_count: number;
    readonly message_size_max: number;
    /** WAL areas: header sectors of the wal_headers ring. */
    readonly wal_area_count: number;
    /** Per area, per replica (area * replica_count + replica): 1 when faults may land there. */
    private readonly wal_area_faulty: Uint8Array;
    /** Client replies slots: one per session. */
    readonly reply_slot_count: number;
    /** Per slot, per replica (slot * replica_count + replica): 1 when faults may land there. */
    private readonly reply_slot_faulty: Uint8Array;
    private readonly filters: ReplicaFaultFilter[] = [];

    constructor(prng: Prng, replica_count: number, slot_count: number, message_size_max: number,
        reply_slot_count: number) {
        assert(replica_count >= 1 && replica_count <= 6);
        assert(Number.isInteger(reply_slot_count) && reply_slot_count >= 1);
        assert(slot_count % headers_per_sector === 0 && slot_count >= headers_per_sector);
        assert(message_size_max % sector_size === 0 && message_size_max > 0);
        this.replica_count = replica_count;
        this.slot_count = slot_count;
        this.message_size_max = message_size_max;
        this.wal_area_count = slot_count / headers_per_sector;
        this.wal_area_faulty = new Uint8Array(this.wal_area_count * replica_count);
        // Exactly quorum_replication - 1 distinct replicas per area (none for one replica).
        const faulty_per_area = quorum_replication(replica_count) - 1;
        assert(faulty_per_area < replica_count);
        for (let area = 0; area < this.wal_area_count; area++) {
            choose_faulty(prng, this.wal_area_faulty, area, replica_count, faulty_per_area);
            assert.equal(this.wal_area_faulty_count(area), faulty_per_area);
        }
        // Drawn after the WAL areas, so that those stay what each seed drew before.
        this.reply_slot_count = reply_slot_count;
        this.reply_slot_faulty = new Uint8Array(reply_slot_count * replica_count);
        for (let slot = 0; slot < reply_slot_count; slot++) {
            choose_faulty(prng, this.reply_slot_faulty, slot, replica_count, faulty_per_area);
        }
        for (let replica = 0; replica < replica_count; replica++) {
            this.filters.push(new ReplicaFaultFilter(this, replica));
        }
    }

    /** The filter to give replica `replica`'s SimulatorStorage. */
    filter(replica: number): StorageFaultFilter {
        assert(replica >= 0 && replica < this.replica_count);
        return this.filters[replica]!;
    }

    /** The WAL area of a slot. */
    wal_area(slot: number): number {
        assert(slot >= 0 && slot < this.slot_count);
        return Math.floor(slot / headers_per_sector);
    }

    /** Whether faults may land on `replica`'s copy of WAL area `area`. */
    wal_faulty(replica: number, area: number): boolean {
        assert(replica >= 0 && replica < this.replica_count);
        assert(area >= 0 && area < this.wal_area_count);
        return this.wal_area_faulty[area * this.replica_count + replica] === 1;
    }

    wal_area_faulty_count(area: number): number {
        assert(area >= 0 && area < this.wal_area_count);
        return faulty_count(this.wal_area_faulty, area, this.replica_count);
    }

    /** Whether faults may land on `replica`'s client replies slot `slot`. */
    reply_faulty(replica: number, slot: number): boolean {
        assert(replica >= 0 && replica < this.replica_count);
        assert(slot >= 0 && slot < this.reply_slot_count);
        return this.reply_slot_faulty[slot * this.replica_count + replica] === 1;
    }

    reply_slot_faulty_count(slot: number): number {
        assert(slot >= 0 && slot < this.reply_slot_count);
        return faulty_count(this.reply_slot_faulty, slot, this.replica_count);
    }

    /** Whether every client replies slot the byte range touches is open on `replica`. */
    reply_range_faulty(replica: number, zone_offset: number, length: number): boolean {
        assert(zone_offset >= 0 && length > 0);
        const first = Math.floor(zone_offset / this.message_size_max);
        const last = Math.floor((zone_offset + length - 1) / this.message_size_max);
        assert(last < this.reply_slot_count, 'fault atlas: a range past the client replies');
        for (let slot = first; slot <= last; slot++) {
            if (!this.reply_faulty(replica, slot)) return false;
        }
        return true;
    }

    /** Whether every WAL area the byte range of a WAL zone touches is open on `replica`. */
    wal_range_faulty(replica: number, zone: Zone, zone_offset: number, length: number): boolean {
        assert(zone === Zone.wal_headers || zone === Zone.wal_prepares);
        assert(zone_offset >= 0 && length > 0);
        // Bytes per area: one header sector, or its slots' prepares.
        const area_size = zone === Zone.wal_headers ? headers_per_sector * header_size
            : headers_per_sector * this.message_size_max;
        const first = Math.floor(zone_offset / area_size);
        const last = Math.floor((zone_offset + length - 1) / area_size);
        assert(last < this.wal_area_count, 'fault atlas: a range past the WAL');
        for (let area = first; area <= last; area++) {
            if (!this.wal_faulty(replica, area)) return false;
        }
        return true;
    }
}

/** One replica's view of the atlas, as its storage consults it (allocation-free). */
class ReplicaFaultFilter implements StorageFaultFilter {
    private readonly atlas: ClusterFaultAtlas;
    private readonly replica: number;

    constructor(atlas: ClusterFaultAtlas, replica: number) {
        this.atlas = atlas;
        this.replica = replica;
    }

    fault_allowed(zone: Zone, zone_offset: number, length: number): boolean {
        if (zone === Zone.client_replies) {
            return this.atlas.reply_range_faulty(this.replica, zone_offset, length);
        }
        // Only the WAL and the client replies are mapped: the other zones stay free of random
        // faults (see above).
        if (zone !== Zone.wal_headers && zone !== Zone.wal_prepares) return false;
        return this.atlas.wal_range_faulty(this.replica, zone, zone_offset, length);
    }
}

/** On how many replicas place `place` (area or slot) is open to faults. */
function faulty_count(faulty: Uint8Array, place: number, replica_count: number): number {
    let count = 0;
    for (let replica = 0; replica < replica_count; replica++) {
        count += faulty[place * replica_count + replica]!;
    }
    assert(count <= replica_count);
    return count;
}

/** Opens place `place` (area or slot) to faults on exactly `count` distinct replicas. */
export function choose_faulty(prng: Prng, faulty: Uint8Array, place: number, replica_count: number,
    count: number): void {
    assert(count < replica_count);
    let chosen = 0;
    while (chosen < count) {
        const index = place * replica_count + prng.int(replica_count);
        if (faulty[index] === 1) continue;
        faulty[index] = 1;
        chosen += 1;
    }
}
