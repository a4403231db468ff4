// Every code block of README.md runs as written, in a project whose node_modules holds this
// checkout as `ringledger` (and tigerbeetle-node, as a user installs it). Shell blocks run with
// bash -e from the project folder with npx; a js block runs as example.mjs while a replica
// listens on port 3000, as the README says. After each block nothing listens on the ports it
// used: `kill $!` on `npx ringledger start &` must stop the server (lib/cli/npm_parent.ts).
// Two blocks are run elsewhere: `npm install ringledger` by test/package_install.test.ts (from
// the packed tarball), and the clone's two commands by .ci/run itself (checked here) and
// `npm run demo` below.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';

import { children_track, cli_main, root, test_data } from './server_process';

interface CodeBlock { language: string; text: string; line: number }

function readme_blocks(): CodeBlock[] {
    const lines = fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n');
    const blocks: CodeBlock[] = [];
    let open: CodeBlock | null = null;
    lines.forEach((line, index) => {
        if (open === null && line.startsWith('```') && line.length > 3) {
            open = { language: line.slice(3).trim(), text: '', line: index + 1 };
        } else if (open !== null && line === '```') {
            blocks.push(open);
            open = null;
        } else if (open !== null) {
            open.text += `${line}\n`;
        }
    });
    assert.equal(open, null, 'README.md: a code block is not closed');
    return blocks;
}

const ports_used = [3000, 3001, 3002];

function port_listening(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.once('connect', () => { socket.destroy(); resolve(true); });
        socket.once('error', () => resolve(false));
    });
}

async function ports_quiet(what: string): Promise<void> {
    for (const port of ports_used) {
        assert.equal(await port_listening(port), false, `${what}: something listens on ${port}`);
    }
}

/** A user's project: node_modules/ringledger is this checkout, its bin linked as npm links it. */
function project_create(): string {
    const project = path.join(test_data, `readme-${process.pid}`);
    fs.rmSync(project, { recursive: true, force: true });
    fs.mkdirSync(path.join(project, 'node_modules', '.bin'), { recursive: true });
    fs.writeFileSync(path.join(project, 'package.json'),
        JSON.stringify({ name: 'readme-project', version: '1.0.0', private: true }));
    fs.symlinkSync(root, path.join(project, 'node_modules', 'ringledger'));
    fs.symlinkSync(path.join(root, 'node_modules', 'tigerbeetle-node'),
        path.join(project, 'node_modules', 'tigerbeetle-node'));
    fs.chmodSync(cli_main, 0o755); // npm sets the bin's mode when it installs the package.
    fs.symlinkSync(cli_main, path.join(project, 'node_modules', '.bin', 'ringledger'));
    return project;
}

function run_bash(script: string, cwd: string, timeout_ms: number) {
    const result = child_process.spawnSync('bash', ['-e', '-c', script], {
        cwd, encoding: 'utf8', timeout: timeout_ms, killSignal: 'SIGKILL',
        env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

async function js_block_run(block: CodeBlock, project: string): Promise<string> {
    const file = path.join(project, `readme-${block.line}.ringledger`);
    const format = run_bash(`npx ringledger format --cluster=0 --replica=0 --replica-count=1 ` +
        file, project, 60_000);
    assert.equal(format.status, 0, format.output);
    const replica = children_track(child_process.spawn(process.execPath,
        [cli_main, 'start', '--addresses=3000', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let log = '';
    replica.stdout!.on('data', (chunk) => { log += chunk; });
    try {
        const deadline = Date.now() + 30_000;
        while (!log.includes('listening on') && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        fs.writeFileSync(path.join(project, 'example.mjs'), block.text);
        const run = run_bash('node example.mjs', project, 60_000);
        assert.equal(run.status, 0, `README.md:${block.line}:\n${run.output}`);
        return run.output;
    } finally {
        replica.kill('SIGTERM');
        await new Promise((resolve) => replica.once('exit', resolve));
        fs.rmSync(file, { force: true });
    }
}

test('readme: every code block runs as written', { timeout: 600_000 }, async () => {
    await ports_quiet('before the README blocks');
    const project = project_create();
    const blocks = readme_blocks();
    assert(blocks.length >= 5, 'README.md has fewer code blocks than expected');
    let ran = 0;
    try {
        for (const block of blocks) {
            const where = `README.md:${block.line}`;
            if (block.text.trim() === 'npm install ringledger') continue;
            if (block.text.includes('bash scripts/setup.sh')) {
                const ci = fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8');
                assert.match(ci, /\nbash scripts\/setup\.sh\n[^]*\nnpm test\n/,
                    `${where}: .ci/run differs`);
                continue;
            }
            if (block.language === 'js') {
                const output = await js_block_run(block, project);
                assert.match(output, /\[ 'created', 'created' \]\ncreated\n100n\n/, where);
            } else {
                assert.equal(block.language, 'sh', `${where}: a block in an unknown language`);
                // Each block starts as a user who begins with it: no data files yet.
                for (const name of fs.readdirSync(project)) {
                    if (name.endsWith('.ringledger')) fs.rmSync(path.join(project, name));
                }
                const result = run_bash(block.text, project, 300_000);
                assert.equal(result.status, 0, `${where}:\n${result.output}`);
            }
            await ports_quiet(`after ${where}`);
            ran += 1;
        }
    } finally {
        fs.rmSync(project, { recursive: true, force: true });
    }
    assert(ran >= 4, `only ${ran} README blocks ran`);
});

test('readme: npm run demo keeps an unchanged addon and explains itself', { timeout: 120_000 },
    () => {
        const started_ms = Date.now();
        const result = child_process.spawnSync('npm', ['run', 'demo', '--', '--seconds=1'],
            { cwd: root, encoding: 'utf8', timeout: 110_000 });
        const output = `${result.stdout}${result.stderr}`;
        assert.equal(result.status, 0, output);
        assert.doesNotMatch(output, /building the native addon|gyp info/);
        assert.match(output, /half the batches took at most p50/);
        assert.match(output, /Try next:\n {2}npx ringledger format/);
        assert.doesNotMatch(output, /replayed to op|messages of 1048576 bytes/);
        // tsc --incremental with nothing changed and no C++ build: seconds, not the 13 s of old.
        assert(Date.now() - started_ms < 60_000);
    });
