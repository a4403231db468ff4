// The replicas of a fault run: one `ringledger start` per host namespace (through `ip netns
// exec`, which execs, so the child's pid is the server's and signals reach it directly), each on
// its own data file. Kills, pauses and restarts go through here, and so does damage to a stopped
// replica's data file, aimed at one zone of its layout. Tests only (allocates freely).
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { exit_sync_restart } from '../../lib/cli/start';
import { Prng } from '../../lib/prng';
import { data_file_config } from '../../lib/server/config';
import type { Capacity } from '../../lib/server/config';
import {
    Zone, ZoneLayout, header_size, sector_size, superblock_copies, superblock_copy_size, zone_names,
} from '../../lib/storage/zones';
import { frame } from '../../lib/vsr/header_layout';
import { reference_size } from '../../lib/vsr/grid';

/** The root block's fixed body before its manifest references (lib/ledger/checkpoint.ts). */
const root_body_fixed = 48 + 16 * 8;
const frame_size = frame.size;
import { children_track, cli_main, test_data } from '../server_process';
import type { Hosts } from './hosts';

export const capacity: Capacity = { clients_max: 16, accounts_max: 64, transfers_max: 200_000 };
const start_wait_ms = 60_000;

export type ReplicaState = 'running' | 'paused' | 'down';

/** A replica's end: its exit and the last state line it logged ("state at commit N: ..."). */
export interface ReplicaExit {
    replica: number;
    code: number | null;
    signal: string | null;
    commit: number;
    checksum: string;
    /** WAL repair of this incarnation: requests sent and prepares repaired (-1: not logged). */
    repairs_requested: number;
    prepares_repaired: number;
}

export interface ReplicaStatus {
    view: number;
    op: number;
    commit: number;
}

/** A byte range inside a zone, relative to the zone's start. */
export interface CorruptRegion {
    start: number;
    size: number;
}

const status_wait_steps = 100;

export class Replicas {
    readonly hosts: Hosts;
    readonly directory: string;
    readonly files: string[] = [];
    readonly children: Array<child_process.ChildProcess | null> = [];
    readonly states: ReplicaState[] = [];
    /** Every replica's whole output, across restarts (for the report on a failure). */
    readonly logs: string[] = [];
    /** The output of each replica's current process. */
    private readonly outputs: string[] = [];

    constructor(hosts: Hosts, run_name: string) {
        this.hosts = hosts;
        this.directory = path.join(test_data, `faults-${run_name}-${process.pid}`);
        fs.rmSync(this.directory, { recursive: true, force: true });
        fs.mkdirSync(this.directory, { recursive: true });
        for (let replica = 0; replica < hosts.count; replica++) {
            this.files.push(path.join(this.directory, `replica-${replica}.ringledger`));
            this.children.push(null);
            this.states.push('down');
            this.logs.push('');
            this.outputs.push('');
        }
    }

    /** What the replica's current process has logged (empty once it is down). */
    output(replica: number): string {
        return this.states[replica] === 'down' ? '' : this.outputs[replica]!;
    }

    get count(): number {
        return this.hosts.count;
    }

    /** Formats every data file, in parallel (each writes its whole WAL). */
    async format(): Promise<void> {
        const formats = this.files.map((file, replica) => new Promise<void>((resolve, reject) => {
            child_process.execFile(process.execPath, [cli_main, 'format', '--cluster=0',
                `--replica=${replica}`, `--replica-count=${this.count}`,
                `--clients-max=${capacity.clients_max}`, `--accounts-max=${capacity.accounts_max}`,
                `--transfers-max=${capacity.transfers_max}`, file], { timeout: 120_000 },
            (error, _stdout, stderr) => (error === null ? resolve() :
                reject(new Error(`format replica ${replica}: ${stderr}`))));
        }));
        await Promise.all(formats);
    }

    /**
     * Starts the replica and waits until it listens; false (with its output logged) when it
     * exits first, e.g. refusing a damaged data file.
     */
    async start(replica: number): Promise<boolean> {
        assert.equal(this.states[replica], 'down');
        const child = children_track(child_process.spawn('ip', ['netns', 'exec',
            this.hosts.namespaces[replica]!, process.execPath, cli_main, 'start',
            `--addresses=${this.hosts.addresses.join(',')}`, this.files[replica]!],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
        this.children[replica] = child;
        this.outputs[replica] = '';
        this.states[replica] = 'running';
        const append = (chunk: string): void => {
            this.outputs[replica] += chunk;
            this.logs[replica] += chunk;
        };
        child.stdout!.setEncoding('utf8');
        child.stderr!.setEncoding('utf8');
        child.stdout!.on('data', append);
        child.stderr!.on('data', append);
        child.once('exit', (code) => {
            if (this.children[replica] !== child) return;
            this.children[replica] = null;
            this.states[replica] = 'down';
            // After a state sync `ringledger start` exits for its supervisor to start it again
            // over the adopted checkpoint (lib/cli/start.ts): this runner is that supervisor.
            if (code !== exit_sync_restart) return;
            this.start(replica).catch((error: Error) => {
                this.logs[replica] += `restart after a state sync failed: ${error.message}\n`;
            });
        });
        const deadline_ms = Date.now() + start_wait_ms;
        while (!this.outputs[replica]!.includes('listening on')) {
            if (child.exitCode !== null || child.signalCode !== null) return false;
            assert(Date.now() < deadline_ms, `replica ${replica} did not listen in time`);
            await sleep(20);
        }
        return true;
    }

    async kill(replica: number): Promise<void> {
        const child = this.children[replica];
        if (child === null || child === undefined) return;
        if (this.states[replica] === 'paused') child.kill('SIGCONT');
        await signal_and_wait(child, 'SIGKILL');
    }

    pause(replica: number): void {
        assert.equal(this.states[replica], 'running');
        this.children[replica]!.kill('SIGSTOP');
        this.states[replica] = 'paused';
    }

    resume(replica: number): void {
        if (this.states[replica] !== 'paused') return;
        this.children[replica]!.kill('SIGCONT');
        this.states[replica] = 'running';
    }

    /** SIGTERM: the replica logs its commit number and state checksum as it stops. */
    async stop(replica: number): Promise<ReplicaExit> {
        const child = this.children[replica];
        if (child === null || child === undefined) {
            return { replica, code: null, signal: 'down', commit: -1, checksum: '',
                repairs_requested: -1, prepares_repaired: -1 };
        }
        this.resume(replica);
        const output_before = this.outputs[replica]!.length;
        await signal_and_wait(child, 'SIGTERM');
        const output = this.outputs[replica]!.slice(output_before);
        const match = /state at commit (\d+): checksum ([0-9a-f]+)/.exec(output);
        const repair = /(\d+) repairs requested, (\d+) prepares repaired/.exec(output);
        return {
            replica, code: child.exitCode, signal: child.signalCode,
            commit: match === null ? -1 : Number(match[1]), checksum: match?.[2] ?? '',
            repairs_requested: repair === null ? -1 : Number(repair[1]),
            prepares_repaired: repair === null ? -1 : Number(repair[2]),
        };
    }

    /** Where a running replica is (SIGUSR2 makes it log a status line), or null if silent. */
    async status(replica: number): Promise<ReplicaStatus | null> {
        const child = this.children[replica];
        if (child === null || child === undefined || this.states[replica] !== 'running') {
            return null;
        }
        const output_before = this.outputs[replica]!.length;
        child.kill('SIGUSR2');
        const pattern = /status: view (\d+), op (\d+), commit (\d+)/;
        for (let wait = 0; wait < status_wait_steps; wait++) {
            const match = pattern.exec(this.outputs[replica]!.slice(output_before));
            if (match !== null) {
                return { view: Number(match[1]), op: Number(match[2]), commit: Number(match[3]) };
            }
            await sleep(20);
        }
        return null;
    }

    /** The replica that most recently logged becoming primary, among those running, or -1. */
    primary(): number {
        let best = -1;
        let best_view = -1;
        for (let replica = 0; replica < this.count; replica++) {
            if (this.states[replica] === 'down') continue;
            for (const match of this.outputs[replica]!.matchAll(/primary of view (\d+)/g)) {
                if (Number(match[1]) > best_view) {
                    best_view = Number(match[1]);
                    best = replica;
                }
            }
        }
        return best;
    }

    /**
     * Flips `bytes` random bytes of a stopped replica's data file, inside one region of one zone
     * (offsets relative to the zone, drawn from the seed); returns where, for the report.
     */
    corrupt(replica: number, zone: Zone, region: CorruptRegion, bytes: number,
        prng: Prng): string {
        assert.equal(this.states[replica], 'down', 'damage only a stopped replica\'s file');
        assert(zone !== Zone.grid_padding && bytes >= 1 && bytes <= 64);
        const layout = new ZoneLayout(data_file_config(capacity));
        assert(region.size > 0 && region.start + region.size <= layout.sizes[zone]!);
        const descriptor = fs.openSync(this.files[replica]!, 'r+');
        try {
            const byte = Buffer.alloc(1);
            for (let index = 0; index < bytes; index++) {
                const offset = region.start + prng.int(region.size);
                const position = layout.starts[zone]! + offset;
                fs.readSync(descriptor, byte, 0, 1, position);
                byte[0] = byte[0]! ^ (1 + prng.int(255));
                fs.writeSync(descriptor, byte, 0, 1, position);
            }
        } finally {
            fs.closeSync(descriptor);
        }
        return `${bytes} byte(s) of ${zone_names[zone]} in [${region.start}, ` +
            `${region.start + region.size})`;
    }

    /**
     * The grid addresses a stopped replica's durable checkpoint uses: its root (named by the
     * newest superblock copy), the root's manifests and their chunks (docs/data-file.md §4, §7).
     * Empty before the first checkpoint. Read without verifying: damage aims at these blocks,
     * and the replica itself judges what it reads back.
     */
    /**
     * Whether the replica's file holds a durable checkpoint: a superblock copy names a root
     * block (read while it runs: its O_DIRECT writes invalidate the page cache, and a copy torn
     * by a concurrent write only makes this answer false once).
     */
    checkpointed(replica: number): boolean {
        const descriptor = fs.openSync(this.files[replica]!, 'r');
        try {
            const bytes = Buffer.alloc(8);
            for (let copy = 0; copy < superblock_copies; copy++) {
                fs.readSync(descriptor, bytes, 0, 8, copy * superblock_copy_size + 144);
                if (bytes.readBigUInt64LE(0) !== 0n) return true;
            }
            return false;
        } finally {
            fs.closeSync(descriptor);
        }
    }

    grid_live_blocks(replica: number): number[] {
        assert.equal(this.states[replica], 'down', 'read only a stopped replica\'s file');
        const layout = Replicas.layout();
        const block_size = layout.config.block_size;
        const descriptor = fs.openSync(this.files[replica]!, 'r');
        try {
            const read = (position: number, size: number): Buffer => {
                const buffer = Buffer.alloc(size);
                fs.readSync(descriptor, buffer, 0, size, position);
                return buffer;
            };
            let sequence = -1n;
            let root = 0;
            for (let copy = 0; copy < superblock_copies; copy++) {
                const bytes = read(copy * superblock_copy_size, sector_size);
                if (bytes.readBigUInt64LE(56) <= sequence) continue;
                sequence = bytes.readBigUInt64LE(56);
                root = Number(bytes.readBigUInt64LE(144));
            }
            const grid = layout.starts[Zone.grid]!;
            const block_count = layout.config.grid_block_count;
            if (root < 1 || root > block_count) return [];
            const address_of = (bytes: Buffer, reference: number): number =>
                Number(bytes.readBigUInt64LE(reference + 16));
            const blocks = [root];
            const root_block = read(grid + (root - 1) * block_size, block_size);
            const manifest_count = Math.min(root_block.readUInt32LE(header_size + 12), 64);
            for (let manifest = 0; manifest < manifest_count; manifest++) {
                const address = address_of(root_block, header_size + root_body_fixed +
                    manifest * reference_size);
                if (address < 1 || address > block_count) continue;
                blocks.push(address);
                const block = read(grid + (address - 1) * block_size, block_size);
                const size = block.readUInt32LE(frame_size);
                const references = Math.min((size - header_size) / reference_size,
                    (block_size - header_size) / reference_size);
                for (let index = 0; index < references; index++) {
                    const chunk = address_of(block, header_size + index * reference_size);
                    if (chunk >= 1 && chunk <= block_count) blocks.push(chunk);
                }
            }
            return [...new Set(blocks)];
        } finally {
            fs.closeSync(descriptor);
        }
    }

    /** The layout of every replica's data file (all are formatted alike). */
    static layout(): ZoneLayout {
        return new ZoneLayout(data_file_config(capacity));
    }

    async close(): Promise<void> {
        for (let replica = 0; replica < this.count; replica++) await this.kill(replica);
        fs.rmSync(this.directory, { recursive: true, force: true });
    }
}

function signal_and_wait(child: child_process.ChildProcess, signal: NodeJS.Signals):
    Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    return exited;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    setTimeout(resolve, ms);
});
