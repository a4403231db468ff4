// `ringledger format` and `ringledger start` as a user meets them: startup says what it opened
// and how it is configured; each failure exits non-zero and says what to do; replicas of a
// cluster dial each other and say when a peer cannot be reached.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { createClient } from '../lib/client/index';
import {
    ServerProcess, cli_run, data_file_path, format_data_file, port_free, root, test_data,
} from './server_process';

test('cli: start reports its configuration; failures say what to do', { timeout: 120_000 },
    async () => {
        const file = data_file_path('cli');
        format_data_file(file, ['--clients-max=8', '--accounts-max=1000', '--transfers-max=5000']);
        const capacity = ['--clients-max=8', '--accounts-max=1000', '--transfers-max=5000'];
        const port = await port_free();
        const server = await ServerProcess.start(file, port, capacity);
        try {
            assert.match(server.stdout, /opened .*: replica 0 of 1, view 0, op 0, checkpoint 0/);
            assert.match(server.stdout, /clients_max 8, connections_max 40, accounts_max 1000, /);
            assert.match(server.stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));

            const locked = cli_run(['start', `--addresses=${await port_free()}`, ...capacity,
                file]);
            assert.equal(locked.status, 1);
            assert.match(locked.stderr, /is locked by process \d+/);
            assert.match(locked.stderr, /Another ringledger may be using this file/);
        } finally {
            assert.equal(await server.stop('SIGINT'), 0, server.stderr);
        }
        assert.match(server.stdout, /SIGINT: stopping/);

        // The capacity is the file's: start needs no flag, and one that disagrees is refused
        // naming both values (before anything is opened for writing).
        for (const [flag, recorded] of [['--transfers-max=6000', 'transfers_max 5000'],
            ['--accounts-max=999', 'accounts_max 1000'], ['--clients-max=9', 'clients_max 8']]) {
            const wrong_capacity = cli_run(['start', `--addresses=${port}`, flag!, file]);
            assert.equal(wrong_capacity.status, 1);
            assert.match(wrong_capacity.stderr, new RegExp(`${flag} disagrees with the data ` +
                `file, formatted with ${recorded}: the capacity is set at \`format\``));
        }
        const plain = await ServerProcess.start(file, port);
        try {
            assert.match(plain.stdout, /clients_max 8, connections_max 40, accounts_max 1000, /);
            assert.match(plain.stdout, /transfers_max 5000, /);
        } finally {
            assert.equal(await plain.stop('SIGTERM'), 0, plain.stderr);
        }

        const missing = cli_run(['start', `--addresses=${port}`, `${test_data}/missing.rl`]);
        assert.equal(missing.status, 1);
        assert.match(missing.stderr, /create it first with `ringledger format`/);

        const again = cli_run(['format', '--cluster=0', '--replica=0', '--replica-count=1', file]);
        assert.equal(again.status, 1);
        assert.match(again.stderr, /already exists: format never overwrites a data file/);

        const typo = cli_run(['start', '--adresses=3000', file]);
        assert.equal(typo.status, 2);
        assert.match(typo.stderr, /unknown flag --adresses\nusage: ringledger start/);

        const bad_address = cli_run(['start', '--addresses=3000,x:y', file]);
        assert.equal(bad_address.status, 2);
        assert.match(bad_address.stderr, /"x:y" has no valid port/);
        for (const [text, expected] of [['[::1', /is not \[IPv6\]:port/],
            ['::1:3000', /write an IPv6 address in brackets/], ['a_b:3000', /nor a host name/]]) {
            const bad = cli_run(['start', `--addresses=${text}`, file]);
            assert.equal(bad.status, 2);
            assert.match(bad.stderr, expected as RegExp);
        }
        const unresolved = cli_run(['start', '--addresses=no-such-host.invalid:3000', file]);
        assert.equal(unresolved.status, 1);
        assert.match(unresolved.stderr,
            /cannot resolve "no-such-host.invalid" \(ENOTFOUND\): check the name/);

        const two = cli_run(['start', '--addresses=3000,3001', ...capacity, file]);
        assert.equal(two.status, 1);
        assert.match(two.stderr, /replica 0 of a cluster of 1: give --addresses with 1/);
        fs.rmSync(file, { force: true });
    });

test('cli: without io_uring, format and start say why and how to run; --io=libuv works', () => {
    // A preload makes this process's addon answer io_uring_setup with ENOSYS, as qemu-user and
    // kernels without CONFIG_IO_URING do; the libuv engine never calls it.
    fs.mkdirSync(test_data, { recursive: true });
    const preload = path.join(test_data, `io_uring_enosys-${process.pid}.js`);
    fs.writeFileSync(preload, `const native = require(${JSON.stringify(path.join(root, 'dist',
        'lib', 'io', 'binding.js'))}).binding();\n` +
        'native.engine_create = () => [null, -38, 0, 1];\nnative.engine_probe = () => [-38, 0];\n');
    const file = data_file_path('cli-no-io-uring');
    const cause = 'io_uring is not available (io_uring_setup: ENOSYS): the kernel is too old or ' +
        'was built without CONFIG_IO_URING, or a seccomp profile answers ENOSYS for ' +
        'io_uring_setup. Fix: Linux 5.11 or newer with io_uring enabled, and a seccomp profile ' +
        'that allows io_uring_setup, io_uring_enter and io_uring_register. Or use the libuv ' +
        'engine.';
    const advice = '  To run without io_uring, add --io=libuv (the libuv engine: the same data ' +
        'file format and protocol, more syscalls per operation).';
    try {
        const format_args = ['format', '--cluster=0', '--replica=0', '--replica-count=1', file];
        const refused = cli_run(format_args, ['-r', preload]);
        assert.equal(refused.status, 1);
        assert.equal(refused.stdout, '');
        assert.equal(refused.stderr, `ringledger format: ${cause}\n${advice} The data file was ` +
            'not created.\n');
        assert(!fs.existsSync(file));

        const formatted = cli_run([...format_args.slice(0, -1), '--io=libuv', file],
            ['-r', preload]);
        assert.equal(formatted.status, 0, formatted.stderr);
        const started = cli_run(['start', '--addresses=127.0.0.1:0', file], ['-r', preload]);
        assert.equal(started.status, 1);
        assert.equal(started.stderr, `ringledger start: ${cause}\n${advice}\n`);
    } finally {
        fs.rmSync(file, { force: true });
        fs.rmSync(`${file}.lock`, { force: true });
        fs.rmSync(preload, { force: true });
    }
});

test('cli: --addresses takes [IPv6]:port and host names (resolved once at startup)',
    { timeout: 120_000 }, async () => {
        const file = data_file_path('cli-addresses');
        format_data_file(file);
        const ipv6 = net_listen_works('::1');
        const port = await port_free();
        // A host name: resolved to an IP literal before the engine listens.
        for (const address of [`localhost:${port}`, ...(ipv6 ? [`[::1]:${port}`] : [])]) {
            const server = await ServerProcess.start_addresses(file, address);
            const client = createClient({ cluster_id: 0n, replica_addresses: [address] });
            try {
                assert.match(server.stdout, new RegExp(`listening on ${address.startsWith('[') ?
                    '::1' : '127\\.0\\.0\\.1'}:${port}`));
                const found = await client.lookupAccounts([1n]);
                assert.deepEqual(found, []);
            } finally {
                client.destroy();
                assert.equal(await server.stop('SIGTERM'), 0, server.stderr);
            }
        }
        fs.rmSync(file, { force: true });
    });

test('cli: replicas of a cluster dial each other; an unreachable peer is logged once',
    { timeout: 120_000 }, async () => {
        const files = [data_file_path('cli-cluster-0'), data_file_path('cli-cluster-1')];
        for (const [replica, file] of files.entries()) {
            const formatted = cli_run(['format', '--cluster=0', `--replica=${replica}`,
                '--replica-count=2', '--clients-max=8', '--accounts-max=1000',
                '--transfers-max=5000', file]);
            assert.equal(formatted.status, 0, formatted.stderr);
        }
        const ports = [await port_free()];
        for (let attempt = 0; attempt < 10 && ports.length < 2; attempt++) {
            const port = await port_free();
            if (port !== ports[0]) ports.push(port);
        }
        const addresses = ports.map((port) => `127.0.0.1:${port}`).join(',');
        const servers: ServerProcess[] = [];
        try {
            servers.push(await ServerProcess.start_addresses(files[0]!, addresses));
            const first = servers[0]!;
            assert.match(first.stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${ports[0]}`));
            // Logged after the listening line, maybe in a later chunk of output.
            await output_until(first, new RegExp('cluster of 2: dialling replica 1 at ' +
                `127\\.0\\.0\\.1:${ports[1]} `));
            // Replica 1 is not up yet: one line however often replica 0 redials meanwhile.
            await output_until(first, /cannot reach replica 1 at .*ECONNREFUSED/);
            await new Promise((resolve) => setTimeout(resolve, 500));
            assert.equal(first.stdout.match(/cannot reach replica 1/g)!.length, 1);
            servers.push(await ServerProcess.start_addresses(files[1]!, addresses));
            await output_until(first, new RegExp(`connected to replica 1 at .*:${ports[1]}`));
            await output_until(servers[1]!,
                new RegExp(`connected to replica 0 at .*:${ports[0]}`));
            assert.match(servers[1]!.stdout, /opened .*: replica 1 of 2/);
            assert.match(servers[1]!.stdout, /connections_max 42, /,
                '40 connections for clients, and 2 with replica 0');
        } finally {
            for (const server of servers) {
                assert.equal(await server.stop('SIGTERM'), 0, server.stderr);
            }
        }
        for (const file of files) fs.rmSync(file, { force: true });
    });

/** Waits (up to 30 s) for the server's output to match. */
async function output_until(server: ServerProcess, pattern: RegExp): Promise<void> {
    for (let turn = 0; turn < 1500 && !pattern.test(server.stdout); turn++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(server.stdout, pattern);
}

function net_listen_works(host: string): boolean {
    const result = child_process.spawnSync(process.execPath, ['-e', `
        const server = require('node:net').createServer().listen(0, '${host}', () =>
            server.close());
        server.on('error', () => process.exit(1));`], { timeout: 10_000 });
    return result.status === 0;
}
