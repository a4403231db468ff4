// `ringledger recover` with real processes through the official client: a replica's data file
// is deleted under a paced load, rebuilt with recover while the others serve, started again;
// then it must serve with each of the others stopped in turn and lead the cluster, with every
// acknowledged transfer's balances exact.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import { ClusterProcesses, deadline, replica_count, sleep } from './cluster_processes';
import { cli_run, load_start } from './server_process';

interface Balances { debits_posted: string; credits_posted: string }

/** The balances the official client reads through whichever replicas are running. */
async function balances_read(cluster: ClusterProcesses, what: string): Promise<Balances> {
    const read = await deadline(load_start(0, 0, 1, 0, cluster.addresses).done, 60_000, what,
        cluster);
    assert.equal(read.code, 0, read.output + cluster.log());
    return JSON.parse(read.output.trim()) as Balances;
}

test('recover: a replica whose data file was deleted is rebuilt, catches up, serves with each ' +
    'peer stopped in turn and leads, with exact balances', { timeout: 300_000 }, async () => {
    const cluster = await ClusterProcesses.create('recover');
    // Bounded by a count and paced: the cluster's WAL still reaches op 1 when the rebuilt
    // replica catches up (beyond it, state sync).
    const load = load_start(0, 6_000, 1, 100_000, cluster.addresses, 60);
    try {
        await sleep(1_500);
        const lost = (await cluster.primary() + 1) % replica_count;
        await cluster.kill(lost);
        fs.rmSync(cluster.files[lost]!);
        const recovered = cli_run(['recover', '--cluster=0', `--replica=${lost}`,
            `--replica-count=${replica_count}`, `--addresses=${cluster.addresses}`,
            cluster.files[lost]!]);
        assert.equal(recovered.status, 0, recovered.stdout + recovered.stderr + cluster.log());
        const view = Number(/committed 8 requests in view (\d+)/.exec(recovered.stdout)![1]);
        // Recover never overwrites a file, and refuses clusters that cannot vouch for it.
        const again = cli_run(['recover', '--cluster=0', `--replica=${lost}`,
            `--replica-count=${replica_count}`, `--addresses=${cluster.addresses}`,
            cluster.files[lost]!]);
        assert.equal(again.status, 1);
        assert.match(again.stderr, /never overwrites one/);
        await cluster.start(lost);
        const result = await deadline(load.done, 60_000, 'the load', cluster);
        assert.equal(result.code, 0, result.output + cluster.log());
        const summary = JSON.parse(result.output.trim().split('\n').pop()!) as
            Balances & Record<string, unknown>;
        assert.equal(summary.missing, 0);
        assert.equal(summary.balanced, true);
        assert((summary.acknowledged as number) > 0);
        assert.match(cluster.servers[lost]!.stdout, /rebuilt by recover/);
        // With each other replica stopped, the rebuilt one is in every quorum.
        for (let step = 1; step < replica_count; step++) {
            const down = (lost + step) % replica_count;
            await sleep(3_000); // Let a restarted replica catch up before its peer stops.
            await cluster.stop(down);
            const balances = await balances_read(cluster, `the balances without replica ${down}`);
            assert.equal(balances.debits_posted, summary.debits_posted, cluster.log());
            assert.equal(balances.credits_posted, summary.credits_posted);
            await cluster.start(down);
        }
        // Kill primaries until the rebuilt replica leads (a view at least view + 2).
        for (let round = 0; round < replica_count && await cluster.primary() !== lost; round++) {
            await sleep(2_000);
            const primary = await cluster.primary();
            await cluster.kill(primary);
            await balances_read(cluster, `a read after killing primary ${primary}`);
            await cluster.start(primary);
        }
        assert.equal(await cluster.primary(), lost, cluster.log());
        const led = [...cluster.servers[lost]!.stdout.matchAll(/primary of view (\d+)/g)];
        assert(Number(led.at(-1)![1]) >= view + 2, cluster.log());
        const balances = await balances_read(cluster, 'the balances with the rebuilt primary');
        assert.equal(balances.debits_posted, summary.debits_posted, cluster.log());
        assert.equal(balances.credits_posted, summary.credits_posted);
    } finally {
        load.child.kill('SIGKILL');
        await cluster.close();
    }
});

test('recover refuses a cluster of 2 (nothing can vouch for the lost file)', () => {
    const result = cli_run(['recover', '--cluster=0', '--replica=1', '--replica-count=2',
        '--addresses=3001,3002', data_file_path_unused()]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /cannot commit without this replica/);
});

function data_file_path_unused(): string {
    return `/tmp/ringledger-recover-unused-${process.pid}`;
}
