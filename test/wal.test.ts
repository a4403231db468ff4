// The WAL: prepares written to their slot then their redundant header, recovery classifying every
// slot per internals §6.3, and each fault kind in each WAL zone ending in an exact recovery or a
// refusal naming zone and op, never a silently wrong log.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StartupWaiter, storage_format } from '../lib/storage/data_file';
import { Decision, Journal } from '../lib/storage/journal';
import { header_op } from '../lib/storage/prepare_header';
import { CrashMode, WriteFault } from '../lib/storage/simulator_storage';
import type { SimulatorStorage } from '../lib/storage/simulator_storage';
import { PrepareBuilder, cluster_test, simulator_make } from '../lib/storage/simulator_fixture';
import { StorageRefusal } from '../lib/storage/storage';
import { Zone, config_test, header_size, sector_size } from '../lib/storage/zones';

const slot_count = config_test.slot_count;
const message_size_max = config_test.message_size_max;

interface Log {
    storage: SimulatorStorage;
    journal: Journal;
    waiter: StartupWaiter;
    builder: PrepareBuilder;
    /** op → the header written for it. */
    written: Map<number, Uint8Array>;
}

async function log_make(seed: number, replica_count: number, ops: number): Promise<Log> {
    const storage = simulator_make(seed);
    await storage_format(storage, { cluster: 0x0707070707070707_0707070707070707n, replica: 0,
        replica_count });
    const { journal, waiter } = await recovered(storage, replica_count);
    const builder = new PrepareBuilder(storage.arena, message_size_max,
        journal.headers.subarray(0, 16));
    const log: Log = { storage, journal, waiter, builder, written: new Map() };
    for (let op = 1; op <= ops; op++) await prepare_write(log, op);
    return log;
}

async function prepare_write(log: Log, op: number): Promise<void> {
    // Bodies of varied size, some spanning two sectors.
    const body_size = (op * 977) % (message_size_max - header_size);
    log.written.set(op, log.builder.build(op, 1, body_size));
    log.journal.write_prepare(log.builder.offset);
    await log.waiter.wait(log.storage);
    assert.equal(log.waiter.written_op, op);
    assert.equal(log.waiter.written_result, 0);
}

async function recovered(storage: SimulatorStorage, replica_count: number):
    Promise<{ journal: Journal; waiter: StartupWaiter }> {
    const waiter = new StartupWaiter();
    const journal = new Journal(storage, waiter, cluster_test, replica_count);
    journal.recover();
    await waiter.wait(storage);
    return { journal, waiter };
}

/** Every op still in the ring is exactly what was written; returns the head op. */
function assert_exact(log: Log, journal: Journal, op_last: number, op_cut: number = -1): void {
    for (let op = Math.max(1, op_last - slot_count + 1); op <= op_last; op++) {
        const slot = op % slot_count;
        const header = journal.headers.subarray(slot * header_size, (slot + 1) * header_size);
        if (op === op_cut) {
            assert.equal(journal.decisions[slot], Decision.cut_torn, `op ${op} cut`);
            continue;
        }
        assert.deepEqual(header, log.written.get(op), `op ${op} recovered exactly`);
        assert.equal(journal.faulty[slot], 0);
    }
    assert.equal(journal.op_max, op_cut === op_last ? op_last - 1 : op_last);
}

/** Recovery outcome: exact, or a refusal that names the zone and an op that was written. */
async function recover_checked(log: Log, replica_count: number, op_last: number,
    expect: 'exact' | 'refused' | 'faulty', suspect_ops: readonly number[],
    zone: string = 'wal_prepares'): Promise<Journal | null> {
    try {
        const { journal } = await recovered(log.storage, replica_count);
        if (expect === 'refused') assert.fail(`expected a refusal naming op ${suspect_ops}`);
        if (expect === 'exact') assert_exact(log, journal, op_last);
        if (expect === 'faulty') {
            for (let slot = 0; slot < slot_count; slot++) {
                if (journal.faulty[slot] === 0) continue;
                assert(suspect_ops.includes(journal.faulty_op[slot]!),
                    `faulty op ${journal.faulty_op[slot]} expected among ${suspect_ops}`);
            }
            assert(journal.faulty.includes(1), 'a damaged slot must be faulty, never absent');
        }
        return journal;
    } catch (error) {
        if (!(error instanceof StorageRefusal)) throw error;
        assert.equal(expect, 'refused', `unexpected refusal: ${error.message}`);
        assert.equal(error.zone, zone, error.message);
        assert(suspect_ops.includes(error.op), `${error.message}: op not in ${suspect_ops}`);
        return null;
    }
}

test('wal: a clean log recovers exactly across a wrap, and again after reopening', async () => {
    const log = await log_make(1, 1, 45);
    const { journal } = await recovered(log.storage, 1);
    assert_exact(log, journal, 45);
    for (let slot = 0; slot < slot_count; slot++) {
        assert.equal(journal.decisions[slot], Decision.eql);
    }
    assert.equal(journal.op_max, 45);
});

test('wal: a fresh log is root plus reserved slots, none faulty', async () => {
    const log = await log_make(2, 1, 3);
    const { journal } = await recovered(log.storage, 1);
    assert.equal(journal.decisions[0], Decision.eql);
    for (let slot = 4; slot < slot_count; slot++) {
        assert.equal(journal.decisions[slot], Decision.nil);
        assert.equal(header_op(journal.headers, slot * header_size), slot);
    }
    assert.equal(journal.op_max, 3);
});

for (const replica_count of [1, 3]) {
    const cluster = replica_count === 1 ? 'solo' : 'cluster';
    const damaged = replica_count === 1 ? 'refused' : 'faulty';

    test(`wal (${cluster}): corrupt prepares are never treated as absent`, async () => {
        for (const op of [40, 33, 45]) {
            const log = await log_make(10 + op, replica_count, 45);
            const slot = op % slot_count;
            log.storage.flip_bit(Zone.wal_prepares, slot * message_size_max + 300, 3);
            await recover_checked(log, replica_count, 45, damaged, [op]);
        }
    });

    test(`wal (${cluster}): unreadable prepare sectors are refused or faulty`, async () => {
        const log = await log_make(20, replica_count, 45);
        log.storage.latent_error_set(Zone.wal_prepares, (44 % slot_count) * message_size_max);
        await recover_checked(log, replica_count, 45, damaged, [44]);
    });

    test(`wal (${cluster}): a corrupt or unreadable header sector`, async () => {
        for (const fault of ['bit_flip', 'latent_error']) {
            const log = await log_make(30, replica_count, 45);
            // Sector 0 holds slots 0..15: ops 32..45 and 16..17 wrapped... all intact prepares.
            if (fault === 'bit_flip') log.storage.flip_bit(Zone.wal_headers, 5 * header_size + 9);
            else log.storage.latent_error_set(Zone.wal_headers, 0);
            // Solo: fixed from the intact prepares. Cluster: fixed only for the head (@F); the
            // others (@E) are repaired from peers, since the prepare may be a misdirected read.
            if (replica_count === 1) {
                const journal = await recover_checked(log, 1, 45, 'exact', []);
                assert(journal !== null);
                const again = await recovered(log.storage, 1);
                assert_exact(log, again.journal, 45);
            } else {
                const ops = fault === 'bit_flip' ? [37] : [32, 33, 34, 35, 36, 37, 38, 39, 40,
                    41, 42, 43, 44, 45, 14, 15];
                await recover_checked(log, 3, 45, 'faulty', ops);
            }
        }
    });

    test(`wal (${cluster}): lost and misdirected prepare writes`, async () => {
        for (const fault of [WriteFault.lost, WriteFault.misdirect, WriteFault.bit_flip]) {
            const log = await log_make(40 + fault, replica_count, 44);
            const target = (20 % slot_count) * message_size_max;
            log.storage.fault_next_write(Zone.wal_prepares, fault, target);
            await prepare_write(log, 45);
            // The slot's header names op 45; the prepare there is stale, so 45 is suspect, and a
            // misdirected copy clobbered op 20's slot, so 20 is suspect too.
            await recover_checked(log, replica_count, 45, damaged, [45, 20]);
        }
    });

    test(`wal (${cluster}): lost and misdirected header writes`, async () => {
        for (const fault of [WriteFault.lost, WriteFault.misdirect]) {
            const log = await log_make(50 + fault, replica_count, 44);
            log.storage.fault_next_write(Zone.wal_headers, fault, sector_size);
            await prepare_write(log, 45);
            if (replica_count === 1 || fault === WriteFault.lost) {
                // The prepare is intact and newer than its stale header (@J): fixed locally.
                // A misdirected sector clobbers slots 16..31, whose prepares are intact (@E).
                await recover_checked(log, replica_count, 45, 'exact', []);
            } else {
                const ops: number[] = [];
                for (let op = 16; op < 32; op++) ops.push(op);
                await recover_checked(log, replica_count, 45, 'faulty', ops);
            }
        }
    });
}

test('wal: a crash mid-prepare truncates the torn head or keeps the whole op', async () => {
    for (const mode of [CrashMode.lost, CrashMode.torn, CrashMode.applied]) {
        const log = await log_make(60 + mode, 1, 44);
        log.written.set(45, log.builder.build(45, 1, 3000));
        log.journal.write_prepare(log.builder.offset);
        log.storage.crash(mode);
        const { journal } = await recovered(log.storage, 1);
        // Applied: op 45 is whole (@J, header fixed). Lost: the slot still holds op 13 intact and
        // op 45 never existed. Torn: the half-written prepare is truncated (cut), not repaired.
        if (mode === CrashMode.applied) assert_exact(log, journal, 45);
        if (mode === CrashMode.lost) assert_exact(log, journal, 44);
        if (mode === CrashMode.torn) assert_exact(log, journal, 45, 45);
        // The log can go on from the recovered head.
        const again = await recovered(log.storage, 1);
        assert.equal(again.journal.op_max, journal.op_max);
    }
});

test('wal: a crash mid-header-write is fixed from the intact prepares', async () => {
    for (const mode of [CrashMode.torn, CrashMode.lost]) {
        const log = await log_make(70 + mode, 1, 44);
        log.written.set(45, log.builder.build(45, 1, 100));
        log.journal.write_prepare(log.builder.offset);
        for (let ticks = 0; ticks < 100 && log.storage.in_flight > 0; ticks++) {
            if (log.journal.redundant()[(45 % slot_count) * header_size] ===
                log.written.get(45)![0]) break;
            log.storage.tick();
        }
        // The prepare is durable and the header sector write is in flight: crash now.
        log.storage.crash(mode);
        const { journal } = await recovered(log.storage, 1);
        assert_exact(log, journal, 45);
    }
});

test('wal: seeded random faults in both rings never yield a silently wrong log', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 400 : 40;
    let refusals = 0;
    let exact = 0;
    for (let seed = 0; seed < seeds; seed++) {
        const log = await log_make(1000 + seed, 1, 30);
        const storage = log.storage;
        for (const zone of [Zone.wal_headers, Zone.wal_prepares]) {
            for (const fault of [WriteFault.bit_flip, WriteFault.misdirect, WriteFault.lost,
                WriteFault.latent_error]) {
                storage.fault_probability_set(zone, fault, 0.02);
            }
        }
        for (let op = 31; op <= 50; op++) await prepare_write(log, op);
        try {
            const { journal } = await recovered(storage, 1);
            // Accepted: every op still in the ring must be exactly what was written.
            assert_exact(log, journal, 50);
            exact += 1;
        } catch (error) {
            if (!(error instanceof StorageRefusal)) throw error;
            assert.match(error.zone, /^wal_(headers|prepares)$/);
            assert(error.slot >= 0 && error.slot < slot_count);
            refusals += 1;
        }
    }
    assert.equal(refusals + exact, seeds);
    assert(refusals > 0 && exact > 0, `refusals ${refusals} exact ${exact}`);
});

test('wal: seeded random crashes mid-write recover exactly, cutting only a torn head', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 300 : 30;
    const outcomes = [0, 0, 0];
    for (let seed = 0; seed < seeds; seed++) {
        const op = 30 + (seed % 12);
        const log = await log_make(2000 + seed, 1, op - 1);
        log.written.set(op, log.builder.build(op, 1, (seed * 1013) % 7000));
        log.journal.write_prepare(log.builder.offset);
        const ticks = log.storage.random_below(8);
        for (let tick = 0; tick < ticks; tick++) log.storage.tick();
        if (!log.journal.busy) continue;
        log.storage.crash(CrashMode.random);
        const { journal } = await recovered(log.storage, 1);
        if (journal.op_max === op) {
            assert_exact(log, journal, op);
            outcomes[0]! += 1;
        } else if (journal.decisions[op % slot_count] === Decision.cut_torn) {
            assert_exact(log, journal, op, op);
            outcomes[1]! += 1;
        } else {
            assert_exact(log, journal, op - 1);
            outcomes[2]! += 1;
        }
    }
    assert(outcomes[0]! > 0 && outcomes[1]! + outcomes[2]! > 0, `outcomes ${outcomes}`);
});

test('wal (cluster): seeded random faults leave every slot exact or faulty', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 300 : 30;
    let faulty = 0;
    for (let seed = 0; seed < seeds; seed++) {
        const log = await log_make(3000 + seed, 3, 30);
        for (const zone of [Zone.wal_headers, Zone.wal_prepares]) {
            for (const fault of [WriteFault.bit_flip, WriteFault.misdirect, WriteFault.lost,
                WriteFault.latent_error]) {
                log.storage.fault_probability_set(zone, fault, 0.02);
            }
        }
        for (let op = 31; op <= 50; op++) await prepare_write(log, op);
        const { journal } = await recovered(log.storage, 3);
        for (let op = 19; op <= 50; op++) {
            const slot = op % slot_count;
            if (journal.faulty[slot] === 1) {
                // Faulty names the op an intact copy claimed, or none: never a made-up op.
                const named = journal.faulty_op[slot]!;
                assert(named === -1 || log.written.has(named), `slot ${slot} named ${named}`);
                faulty += 1;
                continue;
            }
            const header = journal.headers.subarray(slot * header_size, (slot + 1) * header_size);
            assert.deepEqual(header, log.written.get(op), `seed ${seed} op ${op}`);
        }
    }
    assert(faulty > 0);
});

test('wal (solo): a lost prepare under an unreadable newer header is refused', async () => {
    // Op 34's prepare write is lost (slot 2 keeps op 2), then its header sector becomes
    // unreadable. The table alone (@E) would accept op 2; the contiguity of a solo log refuses.
    const log = await log_make(90, 1, 33);
    log.storage.fault_next_write(Zone.wal_prepares, WriteFault.lost);
    await prepare_write(log, 34);
    await prepare_write(log, 35);
    log.storage.latent_error_set(Zone.wal_headers, 0);
    await recover_checked(log, 1, 35, 'refused', [34]);
});

test('wal: write_prepare asserts a recovered journal and the same-view hash chain', async () => {
    const log = await log_make(95, 1, 5);
    const unchained = new PrepareBuilder(log.storage.arena, message_size_max,
        new Uint8Array(16));
    unchained.build(6, 1, 10);
    assert.throws(() => log.journal.write_prepare(unchained.offset), /does not chain/);
    // The same op chained correctly is accepted.
    await prepare_write(log, 6);
    const waiter = new StartupWaiter();
    const fresh = new Journal(log.storage, waiter, cluster_test, 1);
    log.builder.build(7, 1, 10);
    assert.throws(() => fresh.write_prepare(log.builder.offset), /before format or recovery/);
});
