// Issue 9: every client session across checkpoints, through the official client and the real
// server. A checkpoint writes one reply per session changed since the last one; with more of them
// than client-reply operations the replica used to stop with an assertion, and the data file then
// failed every restart during replay. Here: 21 sessions and 2,200 single-transfer requests (two
// checkpoints at the default WAL size), SIGKILL, restart, exact state; then clients_max sessions
// plus evictions with a SIGKILL in the middle of the load.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
    ServerProcess, children_track, data_file_path, format_data_file, port_free, root,
} from './server_process';

const script = path.join(root, 'dist', 'test', 'official_sessions.js');

interface Run {
    done: Promise<{ code: number | null; output: string }>;
    child: child_process.ChildProcess;
    /** Transfers acknowledged so far, from the script's progress lines. */
    acknowledged: () => number;
}

function sessions_run(port: number, clients: number, evictions: number, requests: number,
    base: number): Run {
    const child = children_track(child_process.spawn(process.execPath,
        [script, String(port), String(clients), String(evictions), String(requests), String(base)],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => { output += chunk; });
    // The client logs reconnection warnings while the server is down; keep the tail only.
    let errors = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => { errors = (errors + chunk).slice(-2000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    const done = new Promise<{ code: number | null; output: string }>((resolve) =>
        child.once('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, output: code === 0 ? output : `${output}\n${signal}\n${errors}` });
        }));
    const acknowledged = (): number => {
        const matches = [...output.matchAll(/acknowledged (\d+)/g)];
        return matches.length === 0 ? 0 : Number(matches[matches.length - 1]![1]);
    };
    return { done, child, acknowledged };
}

function summary_of(output: string): Record<string, unknown> {
    return JSON.parse(output.trim().split('\n').pop()!) as Record<string, unknown>;
}

function checkpoint_of(server: ServerProcess): number {
    const match = /checkpoint (\d+)/.exec(server.stdout);
    assert(match !== null, server.stdout);
    return Number(match[1]);
}

for (const io of ['io_uring', 'libuv']) {
    test(`sessions: 21 official clients, 2,200 requests over two checkpoints, SIGKILL, restart ` +
        `(${io})`, { timeout: 180_000 }, async () => {
            const file = data_file_path(`sessions-21-${io}`);
            format_data_file(file);
            const port = await port_free();
            let server = await ServerProcess.start(file, port, [`--io=${io}`]);
            try {
                const result = await sessions_run(port, 21, 0, 2_200, 1).done;
                assert.equal(result.code, 0, `${result.output}\n${server.stderr}`);
                assert.equal(summary_of(result.output).acknowledged, 2_200);
                await server.kill();
                server = await ServerProcess.start(file, port, [`--io=${io}`]);
                assert(checkpoint_of(server) >= 2_016, `two checkpoints: ${server.stdout}`);
                // The setup client, the 21 and the checking client.
                assert.match(server.stdout, / 23 client session\(s\)/);
                const check = await sessions_run(port, 2_200, 2_200, 0, 1).done;
                assert.equal(check.code, 0, check.output);
                assert.equal(summary_of(check.output).debits_posted, '2200');
            } finally {
                await server.stop('SIGTERM');
                fs.rmSync(file, { force: true });
            }
        });
}

test('sessions: clients_max sessions plus evictions, SIGKILL in the middle of the load',
    { timeout: 180_000 }, async () => {
        const file = data_file_path('sessions-64');
        format_data_file(file);
        const port = await port_free();
        let server = await ServerProcess.start(file, port);
        const clients_max = 64;
        const evictions = 3;
        const requests = 3_000;
        const run = sessions_run(port, clients_max + evictions, evictions, requests, 5);
        try {
            // Kill once the first checkpoint is durable and the load is still going: the restart
            // replays across the second checkpoint's trigger with every session changed.
            // (A probing client would register a session of its own and evict a load client.)
            const deadline = Date.now() + 120_000;
            while (run.acknowledged() < 1_400 && Date.now() < deadline &&
                run.child.exitCode === null) {
                await new Promise((resolve) => setTimeout(resolve, 20));
            }
            assert(run.acknowledged() >= 1_400, `the load reached 1,400 transfers: ${
                (await Promise.race([run.done, Promise.resolve(null)]))?.output ?? ''}`);
            await server.kill();
            server = await ServerProcess.start(file, port);
            assert(checkpoint_of(server) >= 1_008, server.stdout);
            const result = await run.done;
            assert.equal(result.code, 0, `${result.output}\n${server.stderr}`);
            const summary = summary_of(result.output);
            assert.equal(summary.sessions, clients_max);
            assert.equal(summary.acknowledged, requests);
            await server.kill();
            server = await ServerProcess.start(file, port);
            const check = await sessions_run(port, requests, requests, 0, 5).done;
            assert.equal(check.code, 0, check.output);
        } finally {
            run.child.kill('SIGKILL');
            await server.stop('SIGTERM');
            fs.rmSync(file, { force: true });
        }
    });
