// Grid repair (issue #13 item 2): a cluster replica whose checkpoint has blocks that fail their
// checksum against their parent's reference (bit rot) or cannot be read (a latent sector error)
// fetches each from a peer by (address, checksum) with request_blocks, verifies it, writes it
// back and goes on restoring; a single replica still refuses to start, naming the address. Each
// case builds the broken state directly on one replica's disk, runs the cluster and checks the
// exact end state: the repaired blocks' bytes equal the peers', the ledgers' state checksums are
// equal, and the counters say how many blocks were asked for, served and repaired.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Zone } from '../lib/storage/zones';
import { block_request_size, header_size } from '../lib/vsr/constants';
import { HeaderView, cluster_bytes, header_init, seal } from '../lib/vsr/header';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { connection_none } from '../lib/vsr/network';
import { Status, release_server } from '../lib/vsr/replica';
import type { Replica } from '../lib/vsr/replica';
import { VsrState } from '../lib/vsr/superblock';
import { HeaderValidator, Reason } from '../lib/vsr/validate';
import { Cluster } from './cluster_harness';
import type { LinkFilter } from './cluster_harness';
import {
    account_event, cluster_sim, config_sim, ids_body, multi_batch_body,
} from './replica_harness';
import { Operation } from '../lib/vsr/constants';

const config = { ...config_sim, slot_count: 32 };
/** The root block's body: fixed fields (checkpoint.ts), then the manifest references. */
const root_references_at = 48 + 16 * 8;
const reference_size = 32;

interface Checkpointed {
    cluster: Cluster;
    lines: string[];
    /** The durable checkpoint's blocks (root first, then manifests, then chunks). */
    addresses: number[];
}

function u32(bytes: Uint8Array, at: number): number {
    return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
}

/** A block of a replica's grid as its disk holds it (its header's size). */
function block_bytes(cluster: Cluster, replica: number, address: number): Uint8Array {
    const storage = cluster.storages[replica]!;
    const at = (address - 1) * cluster.config.block_size;
    const header = storage.peek(Zone.grid, at, header_size);
    const size = u32(header, frame.size);
    assert(size >= header_size && size <= cluster.config.block_size);
    return storage.peek(Zone.grid, at, size);
}

/** The references in a block's body, from `first` on: the addresses that are not 0. */
function referenced(block: Uint8Array, first: number): number[] {
    const addresses: number[] = [];
    const size = u32(block, frame.size);
    for (let at = header_size + first; at + reference_size <= size; at += reference_size) {
        const address = u32(block, at + 16);
        if (address !== 0) addresses.push(address);
    }
    return addresses;
}

/** Every block of the checkpoint the replica's superblock names, read from its disk. */
function tree_addresses(cluster: Cluster, replica: number): number[] {
    const state = new VsrState();
    cluster.replicas[replica]!.superblock.vsr_state_read(state);
    assert(state.checkpoint_root_address > 0, 'a checkpoint with blocks');
    const root = block_bytes(cluster, replica, state.checkpoint_root_address);
    const manifests = referenced(root, root_references_at);
    const chunks: number[] = [];
    for (const manifest of manifests) {
        chunks.push(...referenced(block_bytes(cluster, replica, manifest), 0));
    }
    assert(manifests.length >= 1 && chunks.length >= 1);
    return [state.checkpoint_root_address, ...manifests, ...chunks];
}

/**
 * Three replicas commit accounts and lookups until each has a checkpoint past format (the
 * same one everywhere), and stop there: every replica's grid holds the same tree, block for
 * block, at the same addresses (the grid is a function of the committed ops).
 */
async function checkpointed(seed: number): Promise<Checkpointed> {
    const lines: string[] = [];
    const cluster = await Cluster.create({
        seed, replica_count: 3, clients: 1, config, log: (line) => lines.push(line),
    });
    cluster.register_all();
    const client = cluster.clients[0]!;
    const submit = (operation: number, body: Uint8Array): void => {
        const count = client.exchanges.length + 1;
        client.submit(operation, body);
        cluster.run_until(() => client.exchanges.length === count, 20_000);
    };
    submit(Operation.create_accounts, multi_batch_body([account_event(1n), account_event(2n)],
        128));
    for (let index = 0; index < 30; index++) {
        if (cluster.replicas.every((replica) => replica.checkpoint_op > 0)) break;
        submit(Operation.lookup_accounts, multi_batch_body([ids_body(1n)], 16));
    }
    cluster.run_until(() => cluster.replicas.every((replica) =>
        replica.checkpoint_op > 0 &&
        replica.checkpoint_op === cluster.replicas[0]!.checkpoint_op &&
        replica.commit_min === cluster.replicas[0]!.commit_min &&
        replica.status === Status.normal && !replica.checkpointer.busy), 20_000);
    const addresses = tree_addresses(cluster, 0);
    for (let replica = 1; replica < 3; replica++) {
        assert.deepEqual(tree_addresses(cluster, replica), addresses);
        for (const address of addresses) {
            assert.deepEqual(block_bytes(cluster, replica, address),
                block_bytes(cluster, 0, address), `block ${address} differs between replicas`);
        }
    }
    return { cluster, lines, addresses };
}

/** Rots a bit of a block's body, or makes its first sector unreadable. */
function damage(cluster: Cluster, replica: number, address: number,
    kind: 'bit_flip' | 'latent_error'): void {
    const at = (address - 1) * cluster.config.block_size;
    const storage = cluster.storages[replica]!;
    if (kind === 'bit_flip') storage.flip_bit(Zone.grid, at + header_size + 5, 2);
    else storage.latent_error_set(Zone.grid, at);
}

function states_equal(cluster: Cluster): void {
    const state = cluster.ledgers[0]!.checksum_state();
    for (const ledger of cluster.ledgers) assert.equal(ledger.checksum_state(), state);
}

function served(cluster: Cluster): number {
    return cluster.replicas.reduce((sum, replica) => sum + replica.grid_repair!.blocks_served, 0);
}

const grid_blocked: LinkFilter = (from, to, command) => from >= 0 && to >= 0 &&
    (command === Command.request_blocks || command === Command.block);

for (const kind of ['bit_flip', 'latent_error'] as const) {
    test(`grid repair (${kind}): a backup restarts over a damaged root, manifest and chunk, ` +
        'fetches each from a peer, writes it back and serves again', async () => {
        const { cluster, lines, addresses } = await checkpointed(61);
        const backup = (cluster.primary() + 1) % 3;
        const damaged = [addresses[0]!, addresses[1]!, addresses[addresses.length - 1]!];
        for (const address of damaged) damage(cluster, backup, address, kind);
        await cluster.crash(backup);
        await cluster.restart(backup, false);
        const replica = cluster.replicas[backup]!;
        cluster.run_until(() => replica.status === Status.normal, 5_000);
        const checkpointer = replica.checkpointer as unknown as {
            blocks_corrupt: number; blocks_repaired: number;
        };
        // Root, then a manifest it names, then a chunk: each waited for its own fetch.
        assert.equal(checkpointer.blocks_corrupt, 3);
        assert.equal(checkpointer.blocks_repaired, 3);
        const repair = replica.grid_repair!;
        assert.equal(repair.blocks_repaired, 3);
        assert.equal(repair.wanted_count, 0);
        assert(!repair.timeout.ticking);
        assert(repair.blocks_requested >= 3);
        // Every block a peer served reached the backup: repaired, or a late duplicate.
        for (let tick = 0; tick < 50; tick++) cluster.tick();
        assert.equal(served(cluster), repair.blocks_repaired + repair.blocks_unwanted);
        for (const address of addresses) {
            assert.deepEqual(block_bytes(cluster, backup, address),
                block_bytes(cluster, cluster.primary(), address));
        }
        for (const address of damaged) {
            assert.equal(lines.filter((line) => line.includes(`replica ${backup}: grid block ` +
                `address ${address} corrupt or unreadable: fetching it from a peer`)).length, 1);
        }
        states_equal(cluster);
        // The repaired disk opens on its own now: nothing is fetched a second time.
        await cluster.crash(backup);
        await cluster.restart(backup);
        assert.equal(cluster.replicas[backup]!.grid_repair!.blocks_requested, 0);
        states_equal(cluster);
    });
}

test('grid repair: blocks of checkpoint C come from peers already at C + 1 (a checkpoint\'s ' +
    'blocks are freed only once the next one is durable)', async () => {
    const { cluster, addresses } = await checkpointed(65);
    const backup = (cluster.primary() + 1) % 3;
    const replica_before = cluster.replicas[backup]!;
    const checkpoint = replica_before.checkpoint_op;
    const commit = replica_before.commit_min;
    const state = cluster.ledgers[backup]!.checksum_state();
    const damaged = [addresses[0]!, addresses[addresses.length - 1]!];
    for (const address of damaged) damage(cluster, backup, address, 'bit_flip');
    const checksums = damaged.map((address) => block_bytes(cluster, cluster.primary(), address)
        .slice(0, 16));
    await cluster.crash(backup);
    // The two others go on to their next checkpoint without it.
    const client = cluster.clients[0]!;
    const peers = [0, 1, 2].filter((index) => index !== backup);
    for (let index = 0; index < 40; index++) {
        if (peers.every((peer) => cluster.replicas[peer]!.checkpoint_op > checkpoint)) break;
        const count = client.exchanges.length + 1;
        client.submit(Operation.lookup_accounts, multi_batch_body([ids_body(2n)], 16));
        cluster.run_until(() => client.exchanges.length === count, 20_000);
    }
    cluster.run_until(() => peers.every((peer) => !cluster.replicas[peer]!.checkpointer.busy &&
        cluster.replicas[peer]!.checkpoint_op > checkpoint), 5_000);
    // Each damaged block of C is still on a peer's disk: nothing reused C's blocks yet.
    damaged.forEach((address, index) => {
        assert(peers.some((peer) => {
            const bytes = block_bytes(cluster, peer, address);
            return Buffer.from(bytes.subarray(0, 16)).equals(Buffer.from(checksums[index]!));
        }), `block ${address} of checkpoint ${checkpoint} kept by a peer`);
    });
    await cluster.restart(backup, false);
    const replica = cluster.replicas[backup]!;
    cluster.run_until(() => replica.status >= Status.normal, 5_000);
    assert.equal(replica.checkpoint_op, checkpoint);
    assert.equal(replica.grid_repair!.blocks_repaired, 2);
    // The replay goes as far as the superblock's commit_max; every op after the accounts'
    // creation is a lookup, so the state is the one it had whatever op it reached.
    assert(replica.commit_min >= checkpoint && replica.commit_min <= commit);
    assert.equal(cluster.ledgers[backup]!.checksum_state(), state);
});

test('grid repair: after a power loss two replicas restore at once over damaged blocks and ' +
    'repair each other while both are restoring', async () => {
    const { cluster, addresses } = await checkpointed(66);
    const root = addresses[0]!;
    const chunk = addresses[addresses.length - 1]!;
    damage(cluster, 0, root, 'bit_flip');
    damage(cluster, 1, chunk, 'latent_error');
    for (let replica = 0; replica < 3; replica++) await cluster.crash(replica);
    // Replica 2, the intact one, takes no part in grid repair: 0 and 1 must fetch from each
    // other (0 waits at its root, 1 at a chunk), and neither can finish its restore before the
    // other served it: the first block served goes out from a replica still restoring.
    cluster.network.filter = (from, to, command) => (from === 2 || to === 2) &&
        (command === Command.request_blocks || command === Command.block);
    for (let replica = 0; replica < 3; replica++) await cluster.restart(replica, false);
    cluster.run_until(() => cluster.replicas.every((replica) =>
        replica.status >= Status.normal), 5_000);
    assert.deepEqual(cluster.replicas.map((replica) => replica.grid_repair!.blocks_served),
        [1, 1, 0]);
    assert.deepEqual(cluster.replicas.map((replica) => replica.grid_repair!.blocks_repaired),
        [1, 1, 0]);
    for (let replica = 0; replica < 2; replica++) {
        for (const address of addresses) {
            assert.deepEqual(block_bytes(cluster, replica, address),
                block_bytes(cluster, 2, address));
        }
    }
    cluster.run_until(() => cluster.primary() !== -1, 20_000);
    states_equal(cluster);
});

test('grid repair: while no block gets through, the replica waits in restoring and asks each ' +
    'peer in turn with backoff; once they do, it restores', async () => {
    const { cluster, addresses } = await checkpointed(62);
    const backup = (cluster.primary() + 1) % 3;
    const chunk = addresses[addresses.length - 1]!;
    damage(cluster, backup, chunk, 'bit_flip');
    cluster.network.filter = grid_blocked;
    const asked = [0, 0, 0];
    const filter_count: LinkFilter = (from, to, command) => {
        if (from === backup && command === Command.request_blocks) asked[to]! += 1;
        return grid_blocked(from, to, command);
    };
    cluster.network.filter = filter_count;
    await cluster.crash(backup);
    await cluster.restart(backup, false);
    const replica = cluster.replicas[backup]!;
    for (let tick = 0; tick < 1_000; tick++) cluster.tick();
    assert.equal(replica.status, Status.restoring);
    assert.equal(wanted_address(replica), chunk);
    // Rounds alternate between the two peers; the period backed off (10 ticks, up to 160).
    const rounds = asked[(backup + 1) % 3]! + asked[(backup + 2) % 3]!;
    assert(rounds >= 6 && rounds <= 40, `rounds ${rounds}`);
    assert(Math.abs(asked[(backup + 1) % 3]! - asked[(backup + 2) % 3]!) <= 1);
    assert.equal(asked[backup], 0);
    cluster.network.filter = null;
    cluster.run_until(() => replica.status === Status.normal, 5_000);
    assert.equal(replica.grid_repair!.blocks_repaired, 1);
    assert.deepEqual(block_bytes(cluster, backup, chunk),
        block_bytes(cluster, cluster.primary(), chunk));
    states_equal(cluster);
});

/** The address of the only block a replica wants. */
function wanted_address(replica: Replica): number {
    const repair = replica.grid_repair!;
    assert.equal(repair.wanted_count, 1);
    for (let entry = 0; entry < repair.wanted_max; entry++) {
        const wanted = repair.wanted_entry(entry);
        if (wanted !== null) return wanted.address;
    }
    assert.fail('no wanted block');
}

/** A sealed request_blocks from replica `from` with the given BlockRequests' bytes. */
function request_blocks_bytes(from: number, requests: Uint8Array): Uint8Array {
    const bytes = new Uint8Array(header_size + requests.length);
    const header = header_init(new HeaderView(), bytes, 0, Command.request_blocks,
        bytes.length, release_server);
    header.copy16_from(frame.cluster, cluster_bytes(cluster_sim), 0);
    header.replica = from;
    bytes.set(requests, header_size);
    seal(header);
    return bytes;
}

function block_request(checksum: Uint8Array, address: number, reserved = 0): Uint8Array {
    const bytes = new Uint8Array(block_request_size);
    bytes.set(checksum.subarray(0, 16), 0);
    new DataView(bytes.buffer).setUint32(16, address, true);
    bytes[24] = reserved;
    return bytes;
}

function deliver(replica: Replica, bytes: Uint8Array): void {
    const validator = new HeaderValidator(cluster_sim);
    assert.equal(validator.message(bytes, 0, bytes.length), Reason.ok);
    const message = replica.pool.acquire();
    assert(message !== -1);
    replica.pool.bytes.set(bytes, replica.pool.offset(message));
    replica.on_message(connection_none, message);
    replica.pool.unref(message);
}

test('grid repair: a peer refuses malformed block requests with a reason, answers only the ' +
    'checksum it holds, and a block nobody wants changes nothing', async () => {
    const { cluster, lines, addresses } = await checkpointed(63);
    const peer = cluster.replicas[cluster.primary()]!;
    const other = (cluster.primary() + 1) % 3;
    const root = block_bytes(cluster, peer.replica, addresses[0]!);
    const repair = peer.grid_repair!;
    const grid_blocks = cluster.config.grid_block_count;
    const requests = new Uint8Array(4 * block_request_size);
    requests.set(block_request(root, 0), 0);
    requests.set(block_request(root, grid_blocks + 1), block_request_size);
    requests.set(block_request(root, addresses[0]!, 1), 2 * block_request_size);
    // The right address with another block's checksum: not held, so no answer.
    requests.set(block_request(block_bytes(cluster, peer.replica, addresses[1]!),
        addresses[0]!), 3 * block_request_size);
    deliver(peer, request_blocks_bytes(other, requests));
    assert.equal(repair.requests_refused, 3);
    for (const reason of ['block address 0', `block address ${grid_blocks + 1} beyond the grid`,
        'reserved bytes are not zero']) {
        assert(lines.some((line) => line.includes(`replica ${peer.replica}: request_blocks ` +
            `from replica ${other} refused: ${reason}`)), reason);
    }
    for (let tick = 0; tick < 20; tick++) cluster.tick();
    assert.equal(repair.blocks_not_held, 1);
    assert.equal(repair.blocks_served, 0);
    // The right checksum: one block, sent as it is on disk; the receiver wants none of it.
    const receiver = cluster.replicas[other]!;
    deliver(peer, request_blocks_bytes(other, block_request(root, addresses[0]!)));
    cluster.run_until(() => receiver.grid_repair!.blocks_unwanted === 1, 50);
    assert.equal(repair.blocks_served, 1);
    assert.equal(receiver.grid_repair!.blocks_repaired, 0);
    assert.equal(receiver.status, Status.normal);
    // A request with no block at all fails validation before any replica sees it.
    const empty = request_blocks_bytes(other, new Uint8Array(0));
    assert.equal(new HeaderValidator(cluster_sim).message(empty, 0, empty.length),
        Reason.body_size_invalid);
    // A block itself is a valid message (it names a release: sealed as one).
    assert.equal(new HeaderValidator(cluster_sim).message(root, 0, root.length), Reason.ok);
    assert.equal(new HeaderView().attach(root, 0).u64(offsets.block.address), addresses[0]);
});

test('grid repair: a single replica still refuses to start, naming the block address',
    async () => {
        const cluster = await Cluster.create({ seed: 64, replica_count: 1, clients: 1, config });
        cluster.register_all();
        const client = cluster.clients[0]!;
        for (let index = 0; index < 40 && cluster.replicas[0]!.checkpoint_op === 0; index++) {
            const count = client.exchanges.length + 1;
            client.submit(Operation.create_accounts,
                multi_batch_body([account_event(BigInt(10 + index))], 128));
            cluster.run_until(() => client.exchanges.length === count, 20_000);
        }
        cluster.run_until(() => !cluster.replicas[0]!.checkpointer.busy, 1_000);
        const addresses = tree_addresses(cluster, 0);
        const chunk = addresses[addresses.length - 1]!;
        damage(cluster, 0, chunk, 'bit_flip');
        await cluster.crash(0);
        await assert.rejects(cluster.restart(0), (error: Error) => {
            assert.match(error.message, new RegExp(`block address ${chunk}: chunk \\d+ of \\w+ ` +
                'corrupt'));
            return true;
        });
        assert.equal(cluster.replicas[0]!.grid_repair, null);
    });
