// `npm install ringledger` as a user runs it: the tarball `npm pack` makes (prepack builds the
// TypeScript and the prebuilt addons) is complete, and installs without compiling anything.
// The short version runs in CI: pack, check the contents, install into an empty project with every
// compiler on PATH replaced by one that fails (so a source build would show), then run
// `npx ringledger demo` and a client script through require and import. With
// RINGLEDGER_TEST_CLEAN_ROOTFS=1 the same install runs in a clean Debian 12 root filesystem
// (debootstrap minbase: Node copied in, no compiler, no liburing), as root; see
// scripts/clean_rootfs_install.sh.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { root, test_data } from './server_process';

const native_target = require(path.join(root, 'scripts', 'native_target.js')) as
    { target_name(): string };

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env,
    timeout_ms = 300_000) {
    const result = child_process.spawnSync(command, args, { cwd, env, encoding: 'utf8',
        timeout: timeout_ms, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 });
    const output = `${result.stdout}${result.stderr}`;
    assert.equal(result.status, 0, `${command} ${args.join(' ')}:\n${output}`);
    return output;
}

/**
 * The prebuilds a tarball must hold: the host's, and with RINGLEDGER_TEST_PREBUILDS_ALL=1 (CI,
 * which installs the cross and musl toolchains) all four targets.
 */
function prebuilds_expected(): string[] {
    if (process.env.RINGLEDGER_TEST_PREBUILDS_ALL !== '1') return [native_target.target_name()];
    return ['linux-x64-glibc', 'linux-arm64-glibc', 'linux-x64-musl', 'linux-arm64-musl'];
}

/** Packs the package (prepack included) into `directory`; the tarball's path. */
export function package_pack(directory: string): string {
    fs.mkdirSync(directory, { recursive: true });
    run('npm', ['pack', `--pack-destination=${directory}`], root);
    const tarballs = fs.readdirSync(directory).filter((name) => name.endsWith('.tgz'));
    assert.equal(tarballs.length, 1, `npm pack made ${tarballs.join(', ')}`);
    return path.join(directory, tarballs[0]!);
}

function tarball_files(tarball: string): string[] {
    return run('tar', ['-tzf', tarball], root).split('\n').filter((line) => line !== '')
        .map((line) => line.replace(/^package\//, ''));
}

/** Every relative require() of a shipped .js file names a shipped file. */
function requires_missing(files: readonly string[], unpacked: string): string[] {
    const shipped = new Set(files);
    const missing: string[] = [];
    for (const file of files.filter((name) => name.endsWith('.js') && name.startsWith('dist/'))) {
        const source = fs.readFileSync(path.join(unpacked, file), 'utf8');
        for (const match of source.matchAll(/require\("(\.{1,2}\/[^"]+)"\)/g)) {
            const target = path.posix.join(path.posix.dirname(file), match[1]!);
            const candidates = [target, `${target}.js`, `${target}/index.js`];
            if (!candidates.some((candidate) => shipped.has(candidate))) {
                missing.push(`${file} -> ${match[1]}`);
            }
        }
    }
    return missing;
}

const client_script = `
const assert = require('node:assert/strict');
const { createClient, id, CreateAccountStatus } = require('ringledger');
(async () => {
    const esm = await import('ringledger');
    assert.equal(esm.createClient, createClient, 'import and require share one module');
    const client = createClient({ cluster_id: 0n, replica_addresses: [process.argv[2]] });
    const account = { id: id(), debits_pending: 0n, debits_posted: 0n, credits_pending: 0n,
        credits_posted: 0n, user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0,
        ledger: 1, code: 1, flags: 0, timestamp: 0n };
    const [result] = await client.createAccounts([account]);
    assert.equal(result.status, CreateAccountStatus.created);
    const [found] = await client.lookupAccounts([account.id]);
    assert.equal(found.id, account.id);
    client.destroy();
    console.log('client script: ok');
})().catch((error) => { console.error(error); process.exit(1); });
`;

test('package: the tarball is complete and installs without compiling', { timeout: 600_000 },
    async (context) => {
        const work = path.join(test_data, `package-${process.pid}`);
        fs.rmSync(work, { recursive: true, force: true });
        try {
            const tarball = package_pack(work);
            const files = tarball_files(tarball);
            const size_bytes = fs.statSync(tarball).size;
            context.diagnostic(`tarball ${path.basename(tarball)}: ${size_bytes} bytes, ` +
                `${files.length} files`);
            for (const needed of ['LICENSE', 'package.json', 'dist/lib/index.js',
                'dist/lib/index.mjs', 'dist/lib/index.d.ts', 'dist/lib/index.d.mts',
                'dist/lib/cli/main.js', 'scripts/install.js', 'binding.gyp',
                ...prebuilds_expected().map((target) => `prebuilds/${target}/ringledger.node`)]) {
                assert(files.includes(needed), `the tarball lacks ${needed}`);
            }
            const unwanted_pattern =
                /\.map$|^test\/|^dist\/test\/|^dist\/bench\/|_fixture\.|^\.test-data|^build\//;
            const unwanted = files.filter((file) => unwanted_pattern.test(file));
            assert.deepEqual(unwanted, []);
            const unpacked = path.join(work, 'unpacked');
            fs.mkdirSync(unpacked);
            run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], root);
            assert.deepEqual(requires_missing(files, unpacked), []);
            const install_ms = await install_and_run(tarball, path.join(work, 'project'));
            context.diagnostic(`npm install of the tarball: ${install_ms} ms`);
        } finally {
            fs.rmSync(work, { recursive: true, force: true });
        }
    });

/** Installs with compilers that fail on PATH, then runs the demo and the client script. */
async function install_and_run(tarball: string, project: string): Promise<number> {
    const poisoned = path.join(project, '..', 'poisoned-bin');
    fs.mkdirSync(poisoned, { recursive: true });
    const marker = path.join(project, '..', 'compiler-called');
    for (const name of ['cc', 'c++', 'gcc', 'g++', 'make', 'clang', 'clang++']) {
        fs.writeFileSync(path.join(poisoned, name),
            `#!/bin/sh\necho "$0 $*" >> ${marker}\nexit 1\n`, { mode: 0o755 });
    }
    fs.mkdirSync(project, { recursive: true });
    fs.writeFileSync(path.join(project, 'package.json'),
        JSON.stringify({ name: 'user-project', version: '1.0.0', private: true }));
    const env = { ...process.env, PATH: `${poisoned}:${process.env.PATH}`, CC: 'false',
        CXX: 'false', npm_config_update_notifier: 'false', npm_config_fund: 'false',
        npm_config_audit: 'false' };
    const started_ms = Date.now();
    run('npm', ['install', tarball], project, env);
    const install_ms = Date.now() - started_ms;
    assert.equal(fs.existsSync(marker), false, 'the install called a compiler');
    const installed = path.join(project, 'node_modules', 'ringledger');
    assert.equal(fs.existsSync(path.join(installed, 'build')), false, 'a source build ran');
    const demo = run('npx', ['ringledger', 'demo', '--seconds=1'], project, env, 120_000);
    assert.match(demo, /balance check .*: ok/);
    fs.writeFileSync(path.join(project, 'client.js'), client_script);
    const file = path.join(project, 'client.ringledger');
    run('npx', ['ringledger', 'format', '--cluster=0', '--replica=0', '--replica-count=1', file],
        project, env);
    const bin = path.join(project, 'node_modules', '.bin', 'ringledger');
    const replica = child_process.spawn(bin, ['start', '--addresses=127.0.0.1:0', file],
        { cwd: project, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => replica.once('exit', resolve));
    try {
        const port = await replica_port(replica);
        const output = run(process.execPath, ['client.js', port], project, env, 60_000);
        assert.match(output, /client script: ok/);
    } finally {
        replica.kill('SIGTERM');
        await exited;
    }
    return install_ms;
}

/** The port `ringledger start --addresses=127.0.0.1:0` logs that it listens on. */
async function replica_port(replica: child_process.ChildProcess): Promise<string> {
    let log = '';
    replica.stdout!.setEncoding('utf8');
    replica.stdout!.on('data', (chunk: string) => { log += chunk; });
    const deadline = Date.now() + 30_000;
    for (;;) {
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (match !== null) return match[1]!;
        assert(Date.now() < deadline && replica.exitCode === null, `no replica:\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

// In CI (.ci/run sets it) and on demand: the same install in a clean Debian 12 root filesystem.
if (process.env.RINGLEDGER_TEST_CLEAN_ROOTFS === '1') {
    test('package: installs and runs in a clean root filesystem (no compiler, no liburing)',
        { timeout: 420_000 }, (context) => {
            const work = path.join(test_data, `package-rootfs-${process.pid}`);
            fs.rmSync(work, { recursive: true, force: true });
            try {
                const tarball = package_pack(work);
                const script = path.join(work, 'client.js');
                fs.writeFileSync(script, client_script);
                const output = run('bash', [path.join(root, 'scripts', 'clean_rootfs_install.sh'),
                    tarball, script], root, process.env, 400_000);
                assert.match(output, /client script: ok/);
                assert.match(output, /balance check .*: ok/);
                for (const line of output.split('\n')) {
                    if (line.startsWith('clean_rootfs_install: ')) context.diagnostic(line);
                }
            } finally {
                fs.rmSync(work, { recursive: true, force: true });
            }
        });
}
