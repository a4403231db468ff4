// A request that gets no reply says why, from what the client's connections saw, in words and as
// RequestError.diagnosis_kind: nothing listening (connection_refused), a replica of another
// cluster (it closes the connection after each message and logs both cluster ids:
// cluster_mismatch), a peer that takes the messages and never answers (no_reply), or replicas
// that answer but not this request (reply_late). Before this, they looked alike ("Request timed
// out"). Each against a real `ringledger start` where one can show it, and the fake server.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';

import { createClient, ErrorCodes, RequestError } from '../lib/client/index';
import type { Client, RequestDiagnosisKind } from '../lib/client/index';
import { Operation } from '../lib/vsr/constants';
import { FakeServer } from './client_fake_server';
import { data_file_path, format_data_file, port_free, ServerProcess } from './server_process';

async function lookup_error_from(client: Client): Promise<RequestError> {
    try {
        await client.lookupAccounts([1n], { timeout_ms: 1_500 });
    } catch (error) {
        assert(error instanceof RequestError);
        assert.equal(error.code, ErrorCodes.ERR_REQUEST_TIMEOUT);
        assert.match(error.message, /may or may not have been executed/);
        return error;
    }
    assert.fail('the lookup should have timed out');
}

async function lookup_error(cluster_id: bigint, port: number,
    kind: RequestDiagnosisKind): Promise<RequestError> {
    const client = createClient({ cluster_id, replica_addresses: [String(port)] });
    try {
        const error = await lookup_error_from(client);
        assert.equal(error.diagnosis_kind, kind, error.message);
        return error;
    } finally {
        client.destroy();
    }
}

test('client diagnosis: nothing listening is connection refused', async () => {
    const port = await port_free();
    const error = await lookup_error(0n, port, 'connection_refused');
    assert.match(error.message, new RegExp('No replica could be reached ' +
        `\\(127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    assert.match(error.message, /ringledger start/);
});

test('client diagnosis: a replica that stopped is connection refused too', async () => {
    const file = data_file_path('client-diagnosis-stopped');
    format_data_file(file);
    const port = await port_free();
    const replica = await ServerProcess.start(file, port);
    const client = createClient({ cluster_id: 0n, replica_addresses: [String(port)] });
    try {
        assert.deepEqual(await client.lookupAccounts([1n]), []);
        await replica.stop();
        const error = await lookup_error_from(client);
        assert.equal(error.diagnosis_kind, 'connection_refused', error.message);
        assert.match(error.message, new RegExp('No replica can be reached any more ' +
            `\\(127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    } finally {
        client.destroy();
        await replica.stop();
        fs.rmSync(file, { force: true });
    }
});

test('client diagnosis: a peer that never answers is no reply', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => { sockets.push(socket); socket.resume(); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
        const port = (server.address() as net.AddressInfo).port;
        const error = await lookup_error(0n, port, 'no_reply');
        assert.match(error.message, new RegExp(`Connected, but no replica answered from ` +
            `127\\.0\\.0\\.1:${port}`));
    } finally {
        for (const socket of sockets) socket.destroy();
        server.close();
    }
});

test('client diagnosis: another cluster is named, and the replica logs both ids',
    async () => {
        const file = data_file_path('client-diagnosis');
        format_data_file(file);
        const port = await port_free();
        const replica = await ServerProcess.start(file, port);
        try {
            const error = await lookup_error(7n, port, 'cluster_mismatch');
            assert.match(error.message, new RegExp(`Cluster mismatch: 127\\.0\\.0\\.1:${port} ` +
                'closed the connection after our messages without answering'));
            assert.match(error.message, /another cluster\. This client's cluster_id is 7n/);
            const logged = `${replica.stdout}${replica.stderr}`;
            assert.match(logged,
                /closed a connection whose message names cluster 7, not ours \(0\)/);
        } finally {
            await replica.stop();
            fs.rmSync(file, { force: true });
        }
    });

test('client diagnosis: the fake server of another cluster is a cluster mismatch', async () => {
    const server = new FakeServer({ cluster: 5n });
    const port = await server.start();
    try {
        const error = await lookup_error(7n, port, 'cluster_mismatch');
        assert.match(error.message, /This client's cluster_id is 7n/);
        assert.equal(server.requests.length, 0);
    } finally {
        await server.close();
    }
});

test('client diagnosis: a registered session whose request is dropped is reply late',
    async () => {
        const server = new FakeServer();
        const port = await server.start();
        server.on_request = (info) =>
            info.operation === Operation.register ? undefined : { kind: 'drop' };
        try {
            const error = await lookup_error(0n, port, 'reply_late');
            assert.match(error.message, /Every replica is connected and has answered, but not /);
            assert(server.requests.some((info) => info.operation === Operation.register));
            assert(server.requests.some((info) => info.operation !== Operation.register));
        } finally {
            await server.close();
        }
    });
