// A request that gets no reply says why, from what the client's connections saw: nothing
// listening (connection refused), a replica of another cluster (it closes the connection after
// each message; the replica logs the cluster id it rejected), or a peer that takes the messages
// and never answers. Before this, the three looked alike ("Request timed out").
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';

import { createClient, ErrorCodes, RequestError } from '../lib/client/index';
import { data_file_path, format_data_file, port_free, ServerProcess } from './server_process';

async function lookup_error(cluster_id: bigint, port: number): Promise<RequestError> {
    const client = createClient({ cluster_id, replica_addresses: [String(port)] });
    try {
        await client.lookupAccounts([1n], { timeout_ms: 1_500 });
    } catch (error) {
        assert(error instanceof RequestError);
        assert.equal(error.code, ErrorCodes.ERR_REQUEST_TIMEOUT);
        return error;
    } finally {
        client.destroy();
    }
    assert.fail('the lookup should have timed out');
}

test('client diagnosis: nothing listening is connection refused', async () => {
    const port = await port_free();
    const error = await lookup_error(0n, port);
    assert.match(error.message, /may or may not have been executed/);
    assert.match(error.message, new RegExp('No replica could be reached ' +
        `\\(127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    assert.match(error.message, /ringledger start/);
});

test('client diagnosis: a peer that never answers is told apart', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => { sockets.push(socket); socket.resume(); });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
        const port = (server.address() as net.AddressInfo).port;
        const error = await lookup_error(0n, port);
        assert.match(error.message, new RegExp(`Connected, but no replica answered from ` +
            `127\\.0\\.0\\.1:${port}`));
    } finally {
        for (const socket of sockets) socket.destroy();
        server.close();
    }
});

test('client diagnosis: another cluster is named, and the replica logs the id it rejected',
    async () => {
        const file = data_file_path('client-diagnosis');
        format_data_file(file);
        const port = await port_free();
        const replica = await ServerProcess.start(file, port);
        try {
            const error = await lookup_error(7n, port);
            assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port} closed the ` +
                'connection after our messages without answering'));
            assert.match(error.message, /another cluster\. This client's cluster_id is 7n/);
            const logged = `${replica.stdout}${replica.stderr}`;
            assert.match(logged, /closed a connection whose message names cluster 7, not ours/);
        } finally {
            await replica.stop();
            fs.rmSync(file, { force: true });
        }
    });
