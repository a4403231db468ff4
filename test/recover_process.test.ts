// `ringledger recover` with real processes through the official client: a replica's data file
// is deleted under a paced load, rebuilt with recover while the others serve, started again;
// then it must serve with each of the others stopped in turn and lead the cluster, with every
// acknowledged transfer's balances exact.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import {
    ClusterProcesses, load_summary, replica_count, serve_and_lead, sleep,
} from './cluster_processes';
import { cli_run, load_start } from './server_process';

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
        const summary = await load_summary(cluster, load.done);
        assert.match(cluster.servers[lost]!.stdout, /rebuilt by recover/);
        await serve_and_lead(cluster, lost, summary);
        const led = [...cluster.servers[lost]!.stdout.matchAll(/primary of view (\d+)/g)];
        assert(Number(led.at(-1)![1]) >= view + 2, cluster.log());
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
