'use strict';
// Runs the linux-arm64-glibc prebuild on an x64 machine, under qemu's user-mode emulation, with
// Debian 12's arm64 Node (18.20.4, Node-API 9, which the addon asks for): the loader picks the
// arm64 prebuild, the addon loads (its checksum self-test runs at load), `format` without io_uring
// says why, `format` and `start` with --io=libuv work, and a client creates two accounts and a
// transfer and reads both balances back. Each step is a qemu process started from here: qemu-user
// has no io_uring (ENOSYS), and a guest cannot start children without binfmt_misc.
//
// The arm64 root filesystem (debootstrap's first stage, its packages unpacked with dpkg-deb, as
// the second stage needs an arm64 machine) is made once under os.tmpdir() and kept for later runs.
// The prebuild is built first (scripts/build_prebuilds.js, about 15 s), so what runs is this tree.
// Usage (as root): node scripts/qemu_arm64.js   (test/qemu_arm64.test.ts, RINGLEDGER_TEST_ARM64=1)
const child_process = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const native_target = require('./native_target');

const root = path.resolve(__dirname, '..');
const target = 'linux-arm64-glibc';
const rootfs = path.join(os.tmpdir(), 'ringledger-arm64-bookworm');
const rootfs_ready = path.join(rootfs, '.ringledger-ready');
const qemu = 'qemu-aarch64-static';
const step_timeout_ms = 120_000;

function run(command, args, options = {}) {
  const result = child_process.spawnSync(command, args,
    { encoding: 'utf8', timeout: step_timeout_ms, maxBuffer: 16 * 1024 * 1024, ...options });
  return { status: result.status, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim(),
    error: result.error };
}

function run_checked(command, args, options = {}) {
  const result = run(command, args, options);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ` +
      `${result.output.slice(-2000) || result.error?.message}`);
  }
  return result.output;
}

function tools_ensure() {
  const missing = [['qemu-user-static', qemu], ['debootstrap', 'debootstrap']]
    .filter(([, command]) => run('sh', ['-c', `command -v ${command}`]).status !== 0)
    .map(([name]) => name);
  if (missing.length === 0) return;
  if (process.getuid() !== 0) throw new Error(`needs ${missing.join(', ')} (apt-get, as root)`);
  run_checked('apt-get', ['install', '-y', '-qq', ...missing],
    { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 });
}

/** Debian 12 arm64 with nodejs: debootstrap's first stage, then every package unpacked. */
function rootfs_ensure() {
  if (fs.existsSync(rootfs_ready)) return 'kept from an earlier run';
  if (process.getuid() !== 0) throw new Error('making the arm64 root filesystem needs root');
  fs.rmSync(rootfs, { recursive: true, force: true });
  const started_ms = Date.now();
  run_checked('debootstrap', ['--arch=arm64', '--foreign', '--variant=minbase',
    '--include=nodejs', 'bookworm', rootfs, 'http://deb.debian.org/debian'],
  { timeout: 900_000 });
  const archives = path.join(rootfs, 'var', 'cache', 'apt', 'archives');
  const debs = fs.readdirSync(archives).filter((name) => name.endsWith('.deb'));
  for (const deb of debs) {
    // --keep-directory-symlink: Debian 12's /lib is a link to usr/lib, and must stay one.
    run_checked('sh', ['-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x --keep-directory-symlink ' +
      '-C "$2"', 'unpack', path.join(archives, deb), rootfs]);
  }
  if (!fs.existsSync(path.join(rootfs, 'usr', 'bin', 'node'))) {
    throw new Error(`no usr/bin/node in ${rootfs} after unpacking ${debs.length} packages`);
  }
  fs.writeFileSync(rootfs_ready, '');
  return `made in ${((Date.now() - started_ms) / 1000).toFixed(0)} s (${debs.length} packages)`;
}

/** Builds prebuilds/linux-arm64-glibc from this tree; the line build_prebuilds.js prints. */
function prebuild_build() {
  const compiler_missing = run('aarch64-linux-gnu-g++', ['--version']).status !== 0;
  const install = compiler_missing && process.getuid() === 0 ? ['--install-toolchains'] : [];
  const output = run_checked(process.execPath, [path.join(__dirname, 'build_prebuilds.js'),
    `--targets=${target}`, ...install], { timeout: 600_000 });
  const line = output.split('\n').find((entry) => entry.startsWith(`prebuild ${target}: `));
  if (line === undefined || !/: \d+ bytes in /.test(line)) {
    throw new Error(`the ${target} prebuild was not built:\n${output}`);
  }
  return line;
}

/** The package as npm installs it, with only the arm64 prebuild (and so no source build). */
function package_stage(directory) {
  const prebuild = native_target.prebuild_path(target);
  if (!fs.existsSync(path.join(root, 'dist', 'lib', 'index.js'))) {
    throw new Error('no dist/lib: run `npm run build:ts`');
  }
  fs.mkdirSync(path.join(directory, 'scripts'), { recursive: true });
  fs.mkdirSync(path.join(directory, 'prebuilds', target), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(directory, 'package.json'));
  fs.copyFileSync(path.join(root, 'scripts', 'native_target.js'),
    path.join(directory, 'scripts', 'native_target.js'));
  fs.copyFileSync(prebuild, path.join(directory, 'prebuilds', target, 'ringledger.node'));
  fs.cpSync(path.join(root, 'dist', 'lib'), path.join(directory, 'dist', 'lib'),
    { recursive: true, filter: (source) => !source.endsWith('.map') });
}

function guest_args(args) {
  return ['-L', rootfs, path.join(rootfs, 'usr', 'bin', 'node'), ...args];
}

/** Which addon the loader picks and loads here, printed by the guest as one JSON line. */
const loader_script = `
const native_target = require('./scripts/native_target.js');
const { binding } = require('./dist/lib/io/binding.js');
const native = binding();
const loaded = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
console.log(JSON.stringify({ node: process.version, napi: process.versions.napi,
  arch: process.arch, target: native_target.target_name(), glibc: native_target.glibc_version(),
  refusal: native_target.prebuild_refusal(), loaded,
  checksum: native.checksum_implementation() }));
`;

/** Two accounts, one transfer of 25 between them, both balances read back. */
const client_script = `
const { createClient, id, CreateAccountStatus, CreateTransferStatus } = require('./dist/lib');
const account = (account_id) => ({ id: account_id, debits_pending: 0n, debits_posted: 0n,
  credits_pending: 0n, credits_posted: 0n, user_data_128: 0n, user_data_64: 0n, user_data_32: 0,
  reserved: 0, ledger: 1, code: 1, flags: 0, timestamp: 0n });
(async () => {
  const client = createClient({ cluster_id: 0n, replica_addresses: [process.argv[1]] });
  const ids = [id(), id()];
  const accounts = await client.createAccounts(ids.map(account));
  const transfers = await client.createTransfers([{ id: id(), debit_account_id: ids[0],
    credit_account_id: ids[1], amount: 25n, pending_id: 0n, user_data_128: 0n, user_data_64: 0n,
    user_data_32: 0, timeout: 0, ledger: 1, code: 1, flags: 0, timestamp: 0n }]);
  const found = await client.lookupAccounts(ids);
  client.destroy();
  console.log(JSON.stringify({
    accounts: accounts.map((result) => result.status === CreateAccountStatus.created),
    transfers: transfers.map((result) => result.status === CreateTransferStatus.created),
    balances: found.map((entry) => [String(entry.debits_posted), String(entry.credits_posted)]),
  }));
})().catch((error) => { console.error(error); process.exit(1); });
`;

function guest_json(directory, script, extra = []) {
  const output = run_checked(qemu, guest_args(['-e', script, ...extra]), { cwd: directory });
  return JSON.parse(output.split('\n').pop());
}

/** `start --io=libuv` under qemu, until it logs its port; resolves to [port, stop]. */
function replica_start(directory, file) {
  const child = child_process.spawn(qemu, guest_args([path.join('dist', 'lib', 'cli', 'main.js'),
    'start', '--io=libuv', '--addresses=127.0.0.1:0', file]), { cwd: directory });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      void stop().then(() => reject(new Error(`start did not listen in time:\n${log}`)));
    }, step_timeout_ms);
    const on_data = (chunk) => {
      log += chunk;
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (match === null) return;
      clearTimeout(timeout);
      child.stdout.off('data', on_data);
      resolve({ port: match[1], stop });
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', on_data);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => { log += chunk; });
    void exited.then((code) => {
      clearTimeout(timeout);
      reject(new Error(`start exited (${code}) before listening:\n${log}`));
    });
  });
}

async function main() {
  const started_ms = Date.now();
  const say = (line) => process.stdout.write(`qemu_arm64: ${line}\n`);
  tools_ensure();
  say(`root filesystem ${rootfs}: ${rootfs_ensure()}`);
  say(prebuild_build());
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ringledger-arm64-package-'));
  try {
    package_stage(directory);
    say(`loader: ${JSON.stringify(guest_json(directory, loader_script))}`);
    const file = path.join(directory, 'arm64.ringledger');
    const format = ['format', '--cluster=0', '--replica=0', '--replica-count=1', file];
    const cli = path.join('dist', 'lib', 'cli', 'main.js');
    const refused = run(qemu, guest_args([cli, ...format]), { cwd: directory });
    say(`format without io_uring: exit ${refused.status}: ${refused.output.split('\n')[0]}`);
    run_checked(qemu, guest_args([cli, ...format.slice(0, -1), '--io=libuv', file]),
      { cwd: directory });
    say('format --io=libuv: ok');
    const replica = await replica_start(directory, file);
    try {
      say(`client: ${JSON.stringify(guest_json(directory, client_script,
        [`127.0.0.1:${replica.port}`]))}`);
    } finally {
      say(`start --io=libuv: exit ${await replica.stop()} on SIGTERM`);
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
  say(`done in ${((Date.now() - started_ms) / 1000).toFixed(1)} s`);
  return 0;
}

main().then((code) => { process.exitCode = code; }, (error) => {
  process.stderr.write(`qemu_arm64: ${error.message}\n`);
  process.exitCode = 1;
});
