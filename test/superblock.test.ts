// The superblock: format, hash-chained updates, quorum open that picks the newest valid version
// and repairs the rest, and every fault kind per copy ending in an exact recovery or a refusal.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { test_long, test_seed } from '../lib/testing/seed';
import { StartupWaiter, storage_format } from '../lib/vsr/data_file';
import { CrashMode, WriteFault } from '../lib/storage/simulator_storage';
import type { SimulatorStorage } from '../lib/storage/simulator_storage';
import { cluster_test, simulator_make } from '../lib/testing/simulator_fixture';
import { StorageRefusal } from '../lib/storage/storage';
import { SuperBlock, VsrState, superblock_version } from '../lib/vsr/superblock';
import { checksum } from '../lib/vsr/checksum';
import { Zone, superblock_copies, superblock_copy_size } from '../lib/storage/zones';

const waiters: Map<SuperBlock, StartupWaiter> = new Map();

async function opened(storage: SimulatorStorage): Promise<SuperBlock> {
    const waiter = new StartupWaiter();
    const superblock = new SuperBlock(storage, waiter);
    waiters.set(superblock, waiter);
    superblock.open();
    await waiter.wait(storage);
    return superblock;
}

async function open_refused(storage: SimulatorStorage): Promise<StorageRefusal> {
    try {
        await opened(storage);
    } catch (error) {
        assert(error instanceof StorageRefusal);
        assert.equal(error.zone, 'superblock');
        return error;
    }
    assert.fail('open should have refused');
}

async function update_view(storage: SimulatorStorage, superblock: SuperBlock,
    view: number): Promise<void> {
    const waiter = waiters.get(superblock)!;
    const state = new VsrState();
    superblock.vsr_state_read(state);
    state.view = view;
    state.log_view = view;
    state.commit_max = view * 3;
    superblock.update(state, false);
    await waiter.wait(storage);
}

async function formatted(seed: number, latency_ticks_min = 0): Promise<SimulatorStorage> {
    // A minimum latency of 1 makes each tick complete at most one of the sequential writes.
    const storage = simulator_make(seed, { latency_ticks_min });
    await storage_format(storage, { cluster: 0x0707070707070707_0707070707070707n, replica: 1,
        replica_count: 3 });
    return storage;
}

test('superblock: format then open reads sequence 1 with the identity written', async () => {
    const storage = await formatted(1);
    const superblock = await opened(storage);
    assert.equal(superblock.sequence, 1);
    assert.equal(superblock.replica, 1);
    assert.equal(superblock.replica_count, 3);
    assert.deepEqual(superblock.cluster_bytes(), cluster_test);
    assert.equal(superblock.repaired_count, 0);
    const state = new VsrState();
    superblock.vsr_state_read(state);
    assert.equal(state.view, 0);
    assert.equal(state.checkpoint_op, 0);
});

test('superblock: an unformatted zone is refused as not found', async () => {
    const storage = simulator_make(2);
    const refusal = await open_refused(storage);
    assert.match(refusal.message, /no valid copy/);
});

test('superblock: updates chain by parent checksum and open picks the newest', async () => {
    const storage = await formatted(3);
    const superblock = await opened(storage);
    const checksums: Uint8Array[] = [superblock.checksum_bytes().slice()];
    for (let view = 1; view <= 3; view++) {
        await update_view(storage, superblock, view);
        checksums.push(superblock.checksum_bytes().slice());
    }
    assert.equal(superblock.sequence, 4);
    const reopened = await opened(storage);
    assert.equal(reopened.sequence, 4);
    const state = new VsrState();
    reopened.vsr_state_read(state);
    assert.equal(state.view, 3);
    assert.equal(state.commit_max, 9);
    // The parent field (bytes 64..80) of version 4 is the checksum of version 3.
    assert.deepEqual(storage.peek(Zone.superblock, 0, 80).subarray(64, 80), checksums[2]);
});

test('superblock: §4.1 invariants are asserted on update', async () => {
    const storage = await formatted(4);
    const superblock = await opened(storage);
    const state = new VsrState();
    superblock.vsr_state_read(state);
    state.log_view = 2;
    state.view = 1;
    assert.throws(() => superblock.update(state, false), /log_view beyond view/);
    state.view = 2;
    state.checkpoint_op = 5;
    state.commit_max = 4;
    assert.throws(() => superblock.update(state, true), /checkpoint op beyond commit_max/);
    state.commit_max = 5;
    assert.throws(() => superblock.update(state, false));
});

for (const written of [1, 2, 3]) {
    test(`superblock: crash after ${written} of 4 copies of an update`, async () => {
        const storage = await formatted(10 + written, 1);
        const superblock = await opened(storage);
        await update_view(storage, superblock, 1);
        const state = new VsrState();
        superblock.vsr_state_read(state);
        state.view = 2;
        state.log_view = 2;
        superblock.update(state, false);
        // Tick until exactly `written` copies carry sequence 3, then crash (the rest are lost).
        for (let ticks = 0; ticks < 1000; ticks++) {
            if (copies_with_sequence(storage, 3) >= written) break;
            storage.tick();
        }
        assert.equal(copies_with_sequence(storage, 3), written);
        storage.crash(CrashMode.lost);
        const reopened = await opened(storage);
        // One new copy is not a quorum: the update never happened. Two are: it did.
        assert.equal(reopened.sequence, written >= 2 ? 3 : 2);
        assert.equal(reopened.repaired_count,
            written >= 2 ? superblock_copies - written : written);
        const again = await opened(storage);
        assert.equal(again.sequence, reopened.sequence);
        assert.equal(again.repaired_count, 0);
    });
}

function copies_with_sequence(storage: SimulatorStorage, sequence: number): number {
    let count = 0;
    for (let copy = 0; copy < superblock_copies; copy++) {
        const bytes = storage.peek(Zone.superblock, copy * superblock_copy_size, 64);
        if (bytes[56] === sequence) count += 1;
    }
    return count;
}

test('superblock: every fault kind in 1, 2 or 3 copies: exact or refused', async () => {
    const kinds = ['bit_flip', 'latent_error', 'zeroed'] as const;
    for (const kind of kinds) {
        for (let damaged = 1; damaged <= 3; damaged++) {
            const storage = await formatted(100 + damaged);
            const superblock = await opened(storage);
            await update_view(storage, superblock, 5);
            for (let copy = 0; copy < damaged; copy++) {
                const at = copy * superblock_copy_size + 100 + copy;
                if (kind === 'bit_flip') storage.flip_bit(Zone.superblock, at, copy);
                if (kind === 'latent_error') storage.latent_error_set(Zone.superblock, at);
                if (kind === 'zeroed') {
                    storage.memory.fill(0, at - 100 - copy, at - 100 - copy + 4096);
                }
            }
            if (damaged <= 2) {
                const reopened = await opened(storage);
                assert.equal(reopened.sequence, 2, `${kind} x${damaged}`);
                assert.equal(reopened.repaired_count, damaged, `${kind} x${damaged}`);
                const again = await opened(storage);
                assert.equal(again.repaired_count, 0);
            } else {
                const refusal = await open_refused(storage);
                assert.match(refusal.message, /quorum lost|no valid copy/, `${kind}`);
            }
        }
    }
});

test('superblock: lost and misdirected copy writes during an update', async () => {
    for (const fault of [WriteFault.lost, WriteFault.misdirect, WriteFault.bit_flip]) {
        const storage = await formatted(200 + fault);
        const superblock = await opened(storage);
        // Copy 2 of the next update lands in slot 3 (misdirect), or not at all, or rots.
        let writes = 0;
        const original = storage.write.bind(storage);
        storage.write = (target, tag, zone, zone_offset, arena_offset, length) => {
            if (zone === Zone.superblock && writes++ === 2) {
                storage.fault_next_write(Zone.superblock, fault, 3 * superblock_copy_size);
            }
            original(target, tag, zone, zone_offset, arena_offset, length);
        };
        await update_view(storage, superblock, 7);
        storage.write = original;
        assert.equal(superblock.sequence, 2);
        const reopened = await opened(storage);
        assert.equal(reopened.sequence, 2);
        const state = new VsrState();
        reopened.vsr_state_read(state);
        assert.equal(state.view, 7);
        assert(reopened.repaired_count >= 1);
        assert.equal((await opened(storage)).repaired_count, 0);
    }
});

test('superblock: a lone newer copy (misdirected or half-written) is not trusted', async () => {
    const storage = await formatted(300);
    const superblock = await opened(storage);
    await update_view(storage, superblock, 1);
    // Plant copy 0 of a newer version in slot 0 only: one copy is below the open quorum.
    const newer = await formatted(300);
    const newer_superblock = await opened(newer);
    await update_view(newer, newer_superblock, 1);
    await update_view(newer, newer_superblock, 2);
    storage.memory.set(newer.peek(Zone.superblock, 0, superblock_copy_size),
        storage.layout.starts[Zone.superblock]!);
    const reopened = await opened(storage);
    assert.equal(reopened.sequence, 2);
    assert.equal(reopened.repaired_count, 1);
});

test('superblock: seeded random write faults: last acknowledged version or refusal', async () => {
    const seeds = test_long ? 200 : 25;
    const seed_first = test_seed(0);
    let refused = 0;
    let exact = 0;
    for (let seed = seed_first; seed < seed_first + seeds; seed++) {
        const storage = await formatted(5000 + seed);
        const superblock = await opened(storage);
        for (const fault of [WriteFault.bit_flip, WriteFault.misdirect, WriteFault.lost,
            WriteFault.latent_error]) {
            storage.fault_probability_set(Zone.superblock, fault, 0.05);
        }
        let acknowledged = 1;
        try {
            for (let view = 1; view <= 6; view++) {
                await update_view(storage, superblock, view);
                acknowledged = superblock.sequence;
            }
        } catch (error) {
            // An update that fails verification is reported, never acknowledged.
            assert(error instanceof StorageRefusal);
            assert.match(error.message, /failed verification/);
            refused += 1;
            continue;
        }
        storage.fault_probability.fill(0);
        const reopened = await opened(storage);
        assert.equal(reopened.sequence, acknowledged);
        exact += 1;
    }
    assert(exact > 0 && refused + exact === seeds);
});

test('superblock: format records every format-time setting; open reads them back', async () => {
    const storage = simulator_make(400);
    await storage_format(storage, { cluster: 9n, replica: 0, replica_count: 1,
        capacity: { accounts_max: 1234, transfers_max: 56_789 } });
    const superblock = await opened(storage);
    assert.equal(superblock.accounts_max, 1234);
    assert.equal(superblock.transfers_max, 56_789);
    assert.deepEqual(superblock.storage_config(), { ...storage.layout.config });
    assert.equal(superblock.layout_refusal(), null);
});

test('superblock: a file of another format version is refused by name, never misread',
    async () => {
        const storage = await formatted(401);
        // Rewrite every copy as version 1 with a valid checksum: a file an older release wrote.
        for (let copy = 0; copy < superblock_copies; copy++) {
            const at = storage.layout.starts[Zone.superblock]! + copy * superblock_copy_size;
            const bytes = storage.memory.subarray(at, at + superblock_copy_size);
            new DataView(bytes.buffer, bytes.byteOffset).setUint32(32, 1, true);
            checksum(bytes, 18, superblock_copy_size - 18, bytes, 0);
        }
        const before = storage.memory.slice();
        const refusal = await open_refused(storage);
        assert.match(refusal.message, new RegExp(`format version 1, and this release reads ` +
            `version ${superblock_version} only`));
        assert.deepEqual(storage.memory, before, 'nothing was changed');
    });

test('superblock: a file opened with another shape is refused naming the settings', async () => {
    const storage = await formatted(402);
    const other = simulator_make(403, {}, { ...storage.layout.config,
        slot_count: storage.layout.config.slot_count * 2 });
    other.memory.set(storage.peek(Zone.superblock, 0, superblock_copies * superblock_copy_size),
        other.layout.starts[Zone.superblock]!);
    const superblock = await opened(other);
    assert.match(superblock.layout_refusal()!.message,
        new RegExp(`slot_count ${storage.layout.config.slot_count} in the file, ` +
            `${storage.layout.config.slot_count * 2} here`));
});
