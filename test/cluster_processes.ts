// A cluster of real `ringledger start` processes on loopback for the tests: format, start,
// SIGKILL, SIGTERM, the primary as the replicas' logs tell it, and a deadline that fails with
// every replica's log.
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { ServerProcess, cli_run, data_file_path, port_free } from './server_process';

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

