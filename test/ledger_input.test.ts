// The ledger reads create batches in place when they are 4-byte aligned and copies them
// otherwise, and stages transfer records into free slots: whichever path a batch takes, the
// replies and the state must be the same, the caller's input must never change, and the free
// slots must be zero again after every batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../lib/ledger/ledger';
import { Operation, TransferFlags as TF } from '../lib/ledger/constants';
import { TransferInput, encode_accounts, encode_ids, encode_transfers } from '../lib/ledger/codec';
import { Prng } from '../lib/prng';

interface Batch { operation: number; bytes: Uint8Array }

/** Accounts, then transfer batches mixing successes, failures, linked chains and two-phase. */
function batches(seed: number): Batch[] {
    const prng = new Prng(seed);
    const result: Batch[] = [{ operation: Operation.create_accounts, bytes: encode_accounts(
        Array.from({ length: 12 }, (_, i) => ({ id: BigInt(i + 1), flags: i === 3 ? 2 : 0 }))) }];
    let id = 1;
    for (let b = 0; b < 12; b++) {
        const events: TransferInput[] = [];
        for (let e = 0; e < 50; e++) {
            const kind = prng.int(8);
            const flags = (prng.int(5) === 0 ? TF.linked : 0) |
                (kind === 0 ? TF.pending : kind === 1 ? TF.post_pending_transfer : 0);
            events.push({
                // Some ids repeat (exists), some accounts are missing or equal (failures).
                id: BigInt(prng.int(6) === 0 ? 1 + prng.int(id) : id++),
                debit_account_id: kind === 1 ? 0n : BigInt(1 + prng.int(13)),
                credit_account_id: kind === 1 ? 0n : BigInt(1 + prng.int(13)),
                amount: BigInt(prng.int(50)), flags,
                pending_id: kind === 1 ? BigInt(1 + prng.int(id)) : 0n,
            });
        }
        events[events.length - 1].flags! &= ~TF.linked;
        result.push({ operation: Operation.create_transfers, bytes: encode_transfers(events) });
    }
    return result;
}

/** Places `bytes` at byte `offset` of a larger buffer with guard bytes around it. */
function placed(bytes: Uint8Array, offset: number): Uint8Array {
    const buffer = new Uint8Array(offset + bytes.length + 8).fill(0xa5);
    buffer.set(bytes, offset);
    return buffer;
}

function free_slots_zero(ledger: Ledger): boolean {
    const used = ledger.transfers_count * 128;
    return ledger.transfer_bytes.subarray(used).every((byte) => byte === 0);
}

function run(offset: number, as_subarray: boolean): { replies: Uint8Array[]; ledger: Ledger } {
    const ledger = new Ledger({ accounts_max: 16, transfers_max: 1024 });
    const output = new Uint8Array(64 * 1024);
    const replies: Uint8Array[] = [];
    let clock = 1_000_000n;
    for (const { operation, bytes } of batches(7)) {
        const buffer = placed(bytes, offset);
        const before = buffer.slice();
        clock += BigInt(bytes.length / 128);
        const length = as_subarray ?
            ledger.execute(operation, clock, buffer.subarray(offset, offset + bytes.length), 0,
                bytes.length, output, 0) :
            ledger.execute(operation, clock, buffer, offset, bytes.length, output, 0);
        assert.deepEqual(buffer, before, `offset ${offset}: execute changed its input`);
        assert(free_slots_zero(ledger), `offset ${offset}: a free transfer slot is not zero`);
        replies.push(output.slice(0, length));
    }
    return { replies, ledger };
}

test('create batches at unaligned offsets: same replies and state as aligned, input intact', () => {
    const aligned = run(0, false);
    // The workload must exercise both outcomes, or the comparison proves little.
    const statuses = aligned.replies.slice(1).flatMap((reply) => Array.from(
        { length: reply.length / 16 }, (_, i) => new DataView(reply.buffer).getUint32(i * 16 + 8,
            true)));
    assert(statuses.filter((status) => status === 0xffffffff).length > 100);
    assert(statuses.filter((status) => status !== 0xffffffff).length > 100);
    for (const offset of [1, 2, 3, 4, 8]) {
        for (const as_subarray of [false, true]) {
            const other = run(offset, as_subarray);
            assert.deepEqual(other.replies, aligned.replies, `offset ${offset}`);
            assert.equal(other.ledger.checksum_state(), aligned.ledger.checksum_state());
            const segments = other.ledger.state_segments();
            aligned.ledger.state_segments().forEach((segment, index) =>
                assert.deepEqual(segments[index], segment, `offset ${offset} segment ${index}`));
        }
    }
});

test('lookups leave their input intact and agree at any offset', () => {
    const { ledger } = run(0, false);
    const ids = encode_ids([1n, 2n, 5n, 999n, 3n, 13n]);
    const output = new Uint8Array(8192);
    const expected = output.slice(0, ledger.execute(Operation.lookup_transfers, 1n, ids, 0,
        ids.length, output, 0));
    assert(expected.length >= 128 * 3);
    for (const offset of [1, 2, 4]) {
        const buffer = placed(ids, offset);
        const before = buffer.slice();
        const length = ledger.execute(Operation.lookup_transfers, 1n, buffer, offset, ids.length,
            output, 0);
        assert.deepEqual(buffer, before);
        assert.deepEqual(output.slice(0, length), expected);
    }
});

test('a failed linked chain leaves the free transfer slots zero', () => {
    const ledger = new Ledger({ accounts_max: 4, transfers_max: 64 });
    const output = new Uint8Array(4096);
    const accounts = encode_accounts([{ id: 1n }, { id: 2n }]);
    ledger.execute(Operation.create_accounts, 10n, accounts, 0, accounts.length, output, 0);
    const chain = encode_transfers([
        { id: 100n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n, flags: TF.linked },
        { id: 101n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n, flags: TF.linked },
        { id: 102n, debit_account_id: 1n, credit_account_id: 9n, amount: 5n },
        { id: 103n, debit_account_id: 2n, credit_account_id: 1n, amount: 7n },
    ]);
    const length = ledger.execute(Operation.create_transfers, 20n, chain, 0, chain.length,
        output, 0);
    const view = new DataView(output.buffer);
    const statuses = Array.from({ length: length / 16 }, (_, i) => view.getUint32(i * 16 + 8,
        true));
    assert.deepEqual(statuses, [1, 1, 22, 0xffffffff]); // linked_event_failed, not_found.
    assert.equal(ledger.transfers_count, 1);
    assert.equal(ledger.transfer_words[0], 103); // Moved down from its staged slot.
    assert(free_slots_zero(ledger));
});
