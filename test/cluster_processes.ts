// A cluster of real `ringledger start` processes on loopback for the tests: format, start,
// SIGKILL, SIGTERM, the primary as the replicas' logs tell it, and a deadline that fails with
// every replica's log.
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { ServerProcess, cli_run, data_file_path, load_start, port_free } from './server_process';

export const replica_count = 3;
/** A view change takes a heartbeat timeout and a few round trips; this is far beyond both. */
const primary_wait_ms = 20_000;
export const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => setTimeout(resolve, ms));

/** A formatted cluster: data files, one port per replica, and the running servers. */
export class ClusterProcesses {
    readonly files: string[] = [];
    readonly ports: number[] = [];
    readonly servers: Array<ServerProcess | null> = [];

    static async create(name: string): Promise<ClusterProcesses> {
        const cluster = new ClusterProcesses();
        for (let replica = 0; replica < replica_count; replica++) {
            const file = data_file_path(`${name}-${replica}`);
            const result = cli_run(['format', '--cluster=0', `--replica=${replica}`,
                `--replica-count=${replica_count}`, file]);
            assert.equal(result.status, 0, result.stderr);
            cluster.files.push(file);
            cluster.ports.push(await port_free());
        }
        for (let replica = 0; replica < replica_count; replica++) await cluster.start(replica);
        return cluster;
    }

    get addresses(): string {
        return this.ports.join(',');
    }

    async start(replica: number): Promise<void> {
        this.servers[replica] = await ServerProcess.start_addresses(this.files[replica]!,
            this.addresses);
    }

    async kill(replica: number): Promise<void> {
        await this.servers[replica]!.kill();
        this.servers[replica] = null;
    }

    async stop(replica: number): Promise<void> {
        const server = this.servers[replica]!;
        assert.equal(await server.stop('SIGTERM'), 0, server.stdout + server.stderr);
        this.servers[replica] = null;
    }

    /**
     * The primary of the highest view any running replica logged, once one has: after a kill,
     * the survivors first wait out their heartbeat timeout (1.5 s and jitter), so a fixed sleep
     * would race the view change on a slower or busier machine.
     */
    async primary(): Promise<number> {
        const deadline_ms = Date.now() + primary_wait_ms;
        for (;;) {
            const primary = this.primary_logged();
            if (primary !== -1) return primary;
            assert(Date.now() < deadline_ms,
                `no replica became primary in ${primary_wait_ms} ms\n${this.log()}`);
            await sleep(100);
        }
    }

    /** The replica that last logged becoming primary (of the highest view), or -1. */
    private primary_logged(): number {
        let best = -1;
        let best_view = -1;
        this.servers.forEach((server, replica) => {
            if (server === null) return;
            for (const match of server.stdout.matchAll(/primary of view (\d+)/g)) {
                if (Number(match[1]) > best_view) {
                    best_view = Number(match[1]);
                    best = replica;
                }
            }
        });
        return best;
    }

    log(): string {
        return this.servers.map((server, replica) =>
            `--- replica ${replica}\n${server === null ? '(down)' : server.stdout + server.stderr}`)
            .join('\n');
    }

    async close(): Promise<void> {
        for (const server of this.servers) if (server !== null) await server.stop('SIGKILL');
        for (const file of this.files) fs.rmSync(file, { force: true });
    }
}

/** `promise`, or a failure naming what did not finish, with every replica's log. */
export async function deadline<T>(promise: Promise<T>, timeout_ms: number, what: string,
    cluster: ClusterProcesses): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish in ${timeout_ms} ms\n` +
            cluster.log())), timeout_ms);
    });
    try {
        return await Promise.race([promise, expired]);
    } finally {
        clearTimeout(timer);
    }
}


export interface Balances { debits_posted: string; credits_posted: string }

/** The balances the official client reads through whichever replicas are running. */
export async function balances_read(cluster: ClusterProcesses, what: string): Promise<Balances> {
    const read = await deadline(load_start(0, 0, 1, 0, cluster.addresses).done, 60_000, what,
        cluster);
    assert.equal(read.code, 0, read.output + cluster.log());
    return JSON.parse(read.output.trim()) as Balances;
}

/** The paced load's last line: nothing missing, balanced, something acknowledged. */
export async function load_summary(cluster: ClusterProcesses, done: ReturnType<
    typeof load_start>['done']): Promise<Balances & Record<string, unknown>> {
    const result = await deadline(done, 60_000, 'the load', cluster);
    assert.equal(result.code, 0, result.output + cluster.log());
    const summary = JSON.parse(result.output.trim().split('\n').pop()!) as
        Balances & Record<string, unknown>;
    assert.equal(summary.missing, 0);
    assert.equal(summary.balanced, true);
    assert((summary.acknowledged as number) > 0);
    return summary;
}

/**
 * `replica` serves with each other replica stopped in turn (it is in every quorum), then
 * primaries are killed until it leads; the balances are `expected` throughout.
 */
export async function serve_and_lead(cluster: ClusterProcesses, replica: number,
    expected: Balances): Promise<void> {
    const check = (balances: Balances): void => {
        assert.equal(balances.debits_posted, expected.debits_posted, cluster.log());
        assert.equal(balances.credits_posted, expected.credits_posted);
    };
    for (let step = 1; step < replica_count; step++) {
        const down = (replica + step) % replica_count;
        await sleep(3_000); // Let a restarted replica catch up before its peer stops.
        await cluster.stop(down);
        check(await balances_read(cluster, `the balances without replica ${down}`));
        await cluster.start(down);
    }
    for (let round = 0; round < replica_count && await cluster.primary() !== replica; round++) {
        await sleep(2_000);
        const primary = await cluster.primary();
        await cluster.kill(primary);
        await balances_read(cluster, `a read after killing primary ${primary}`);
        await cluster.start(primary);
    }
    assert.equal(await cluster.primary(), replica, cluster.log());
    check(await balances_read(cluster, `the balances with replica ${replica} as primary`));
}
