'use strict';
// Builds the prebuilt addons that ship inside the package, prebuilds/<target>/ringledger.node, for
// linux-x64 and linux-arm64, glibc and musl, with the toolchains Debian's registry offers:
// g++ (x64), g++-aarch64-linux-gnu (arm64 cross), and musl-dev for each architecture with GCC's
// own C++ runtime. Each target links liburing statically (liburing-dev's liburing.a for that
// Debian architecture, fetched with a private apt state under build/prebuild-work/, so the
// system's apt configuration is untouched), and libstdc++ and libgcc statically, so a user's
// machine needs neither liburing nor a matching libstdc++. The build reads binding.gyp's sources,
// defines and C++ flags, so a source build and a prebuild are compiled alike.
//
// Usage: node scripts/build_prebuilds.js [--targets=linux-x64-glibc,...] [--install-toolchains]
// A target whose toolchain is missing is skipped with the command that installs it; the host's
// own target must build, and under `npm publish` every target must. Every undefined symbol of a
// built addon is checked against what its libc, Node-API and libuv provide, and the host's addon
// and the musl ones are loaded (musl_load_check) before it is kept.
const child_process = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const native_target = require('./native_target');

const root = path.resolve(__dirname, '..');
const work = path.join(root, 'build', 'prebuild-work');

/** The targets, with the Debian architecture and GNU triple each is built from. */
const targets = [
  { name: 'linux-x64-glibc', debian: 'amd64', gnu: 'x86_64-linux-gnu', libc: 'glibc' },
  { name: 'linux-arm64-glibc', debian: 'arm64', gnu: 'aarch64-linux-gnu', libc: 'glibc' },
  { name: 'linux-x64-musl', debian: 'amd64', gnu: 'x86_64-linux-gnu', libc: 'musl' },
  { name: 'linux-arm64-musl', debian: 'arm64', gnu: 'aarch64-linux-gnu', libc: 'musl' },
];
const host_debian = { x64: 'amd64', arm64: 'arm64' }[process.arch];

function run(command, args, options = {}) {
  const result = child_process.spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
    throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ` +
      `${output.slice(-4000) || result.error?.message}`);
  }
  return result.stdout;
}

function compiler_of(target) {
  return target.debian === host_debian ? 'g++' : `${target.gnu}-g++`;
}

function compiler_found(target) {
  return child_process.spawnSync(compiler_of(target), ['--version']).status === 0;
}

function toolchains_install() {
  const packages = ['g++-aarch64-linux-gnu', 'musl-tools', 'qemu-user-static'];
  if (process.getuid() !== 0) throw new Error('--install-toolchains needs root (apt-get)');
  run('apt-get', ['install', '-y', '-qq', ...packages],
    { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: 'inherit' });
}

/**
 * Fetches Debian packages of one architecture and unpacks them under build/prebuild-work/<arch>:
 * apt with its own lists and cache there, so no foreign architecture is added to the system.
 */
function debian_unpack(debian, packages) {
  const base = path.join(work, debian);
  const unpacked = path.join(base, 'root');
  const marker = path.join(base, `${packages.join('+')}.unpacked`);
  if (fs.existsSync(marker)) return unpacked;
  for (const directory of ['lists/partial', 'cache/archives/partial', 'debs', 'root']) {
    fs.mkdirSync(path.join(base, directory), { recursive: true });
  }
  const options = [
    `-o=Dir::State::Lists=${path.join(base, 'lists')}`, `-o=Dir::Cache=${path.join(base, 'cache')}`,
    `-o=Dir::State::status=/dev/null`, `-o=APT::Architecture=${debian}`,
    `-o=APT::Architectures::=${debian}`, '-o=APT::Sandbox::User=root', '-qq',
  ];
  if (!fs.existsSync(path.join(base, 'lists', 'updated'))) {
    run('apt-get', [...options, 'update']);
    fs.writeFileSync(path.join(base, 'lists', 'updated'), '');
  }
  const debs = path.join(base, 'debs');
  run('apt-get', [...options, 'download', ...packages.map((name) => `${name}:${debian}`)],
    { cwd: debs });
  for (const deb of fs.readdirSync(debs).filter((name) => name.endsWith('.deb'))) {
    run('dpkg-deb', ['-x', path.join(debs, deb), unpacked]);
  }
  fs.writeFileSync(marker, '');
  return unpacked;
}

/** binding.gyp's sources, defines and C++ flags (it is JSON), the one description of the build. */
function gyp_target() {
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')).targets[0];
  const flags = gyp.cflags_cc.filter((flag) => flag !== '-Werror');
  return { sources: gyp.sources, defines: gyp.defines, flags };
}

function node_includes() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const node = path.join(prefix, 'include', 'node');
  if (!fs.existsSync(path.join(node, 'node_api.h'))) {
    throw new Error(`Node's headers are not at ${node} (install the nodejs headers)`);
  }
  return [node, require('node-addon-api').include_dir];
}

function gcc_file(compiler, name) {
  return run(compiler, [`-print-file-name=${name}`]).trim();
}

/**
 * Definitions the static C++ runtime (libstdc++.a, libgcc_eh.a, built against Debian's glibc)
 * would otherwise import from the user's libc, hidden so Node and other addons never see them.
 * Both libcs: `__libc_single_threaded` (0: never assume one thread, so atomics stay on), which
 * glibc has only from 2.32 and musl not at all; defined here, the glibc prebuilds keep their floor
 * (glibc_floors in native_target.js). musl only: `__pthread_key_create` (gthreads' "are threads
 * in use" probe), `_dl_find_object` (the unwinder's lookup; -1, no unwind info: the addon is built
 * without exceptions, so an unwind is only ever a throw of bad_alloc or length_error, which aborts
 * either way) and, on arm64, `__getauxval` (libgcc's probe for LSE atomics; musl has getauxval).
 */
const shim_source_common = `
#define HIDDEN __attribute__((visibility("hidden")))
HIDDEN char __libc_single_threaded = 0;
`;
const shim_source_musl = `
#include <pthread.h>
#include <sys/auxv.h>
HIDDEN int __pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
  return pthread_key_create(key, destructor);
}
HIDDEN int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }
HIDDEN unsigned long __getauxval(unsigned long type) { return getauxval(type); }
`;

function shim_object(compiler, libc) {
  const source = path.join(work, `${libc}_shim.c`);
  const object = path.join(work, `${libc}_shim-${path.basename(compiler)}.o`);
  fs.mkdirSync(work, { recursive: true });
  fs.writeFileSync(source, shim_source_common + (libc === 'musl' ? shim_source_musl : ''));
  const c_compiler = compiler.replace(/g\+\+$/, 'gcc');
  run(c_compiler, ['-O2', '-fPIC', '-c', source, '-o', object]);
  return object;
}

/**
 * A folder holding musl's libc.so (from musl's package: /lib/<triple>/libc.so, or musl-tools'
 * copy under /usr/lib), so that the addon is linked with `-lc` and records the name `libc.so`,
 * which musl's loader answers with itself (it has no soname; a path would be recorded as is).
 */
function musl_libc_directory(target, musl_base, musl_triple) {
  const candidates = [path.join(musl_base, 'lib', musl_triple, 'libc.so'),
    path.join(path.dirname(musl_base), 'lib', musl_triple, 'libc.so')];
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (found === undefined) throw new Error(`musl's libc.so not found: ${candidates.join(', ')}`);
  const directory = path.join(work, `${target.name}-libc`);
  fs.mkdirSync(directory, { recursive: true });
  fs.copyFileSync(found, path.join(directory, 'libc.so'));
  return directory;
}

/** Compiler and linker arguments for one target: [per-source compile flags, link arguments]. */
function target_arguments(target, liburing_root) {
  const compiler = compiler_of(target);
  const gyp = gyp_target();
  const musl_base = target.libc === 'musl' ? path.join(musl_root(target), 'usr') : null;
  const musl_triple = target.gnu.replace('-gnu', '-musl');
  const compile = ['-O3', '-fPIC', '-pthread', '-fno-omit-frame-pointer', '-fno-rtti',
    ...gyp.flags, ...gyp.defines.map((define) => `-D${define}`),
    '-DNODE_GYP_MODULE_NAME=ringledger', '-DBUILDING_NODE_EXTENSION', '-D_FILE_OFFSET_BITS=64',
    '-D_LARGEFILE_SOURCE', '-ffunction-sections', '-fdata-sections',
    `-I${path.join(liburing_root, 'usr', 'include')}`,
    ...node_includes().map((directory) => `-I${directory}`)];
  const objects_end = [path.join(liburing_root, 'usr', 'lib', target.gnu, 'liburing.a')];
  const link = ['-shared', '-Wl,--gc-sections', '-Wl,--exclude-libs,ALL', '-s'];
  objects_end.unshift(shim_object(compiler, target.libc));
  if (target.libc === 'glibc') {
    link.push('-static-libstdc++');
    return { compiler, compile, link, objects_end, libc_library: null };
  }
  // musl: Debian has no musl C++ toolchain (musl-tools' musl-gcc is C only, and GCC's C++
  // headers are configured for glibc), so the addon is compiled as for glibc and linked against
  // musl's libc.so with the C++ runtime inside. That holds because the two libcs share the
  // kernel's ABI for what the addon calls (sockets, files, rlimits, errno, pthread_once); every
  // symbol is checked against musl's libc.so below, and fortify and the *64 aliases are off.
  const musl_lib = path.join(musl_base, 'lib', musl_triple);
  const libc_directory = musl_libc_directory(target, musl_base, musl_triple);
  const without = new Set(['-D_FILE_OFFSET_BITS=64', '-D_LARGEFILE_SOURCE']);
  compile.splice(0, compile.length, ...compile.filter((flag) => !without.has(flag)),
    '-U_FORTIFY_SOURCE', '-D_FORTIFY_SOURCE=0');
  link.push('-nostdlib', path.join(musl_lib, 'crti.o'), gcc_file(compiler, 'crtbeginS.o'));
  objects_end.push('-Wl,--start-group', gcc_file(compiler, 'libstdc++.a'),
    gcc_file(compiler, 'libgcc_eh.a'), gcc_file(compiler, 'libgcc.a'), '-Wl,--end-group',
    `-L${libc_directory}`, '-lc', gcc_file(compiler, 'crtendS.o'), path.join(musl_lib, 'crtn.o'));
  const libc_library = path.join(libc_directory, 'libc.so');
  return { compiler, compile, link, objects_end, libc_library };
}

async function compile_all(compiler, compile, sources, directory) {
  const objects = [];
  await Promise.all(sources.map((source) => new Promise((resolve, reject) => {
    const object = path.join(directory, `${path.basename(source, '.cc')}.o`);
    objects.push(object);
    const child = child_process.spawn(compiler, [...compile, '-c', path.join(root, source),
      '-o', object], { stdio: ['ignore', 'inherit', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk) => { errors += chunk; });
    child.on('close', (code) => code === 0 ? resolve() :
      reject(new Error(`${compiler} ${source} failed (${code}):\n${errors.slice(-4000)}`)));
  })));
  return objects.sort();
}

/** Undefined symbols of `addon` that neither its libc, Node-API nor libuv provide. */
function symbols_unresolved(target, addon, libc_library) {
  const nm = target.debian === host_debian ? 'nm' : `${target.gnu}-nm`;
  const undefined_symbols = run(nm, ['-D', '--undefined-only', addon]).split('\n')
    .map((line) => line.trim().split(/\s+/).pop()).filter((name) => name && name.length > 0)
    .map((name) => name.replace(/@.*$/, ''));
  const provided = new Set();
  if (libc_library !== null) {
    for (const line of run(nm, ['-D', '--defined-only', libc_library]).split('\n')) {
      provided.add(line.trim().split(/\s+/).pop());
    }
  }
  const weak_optional = new Set(['__gmon_start__', '_ITM_deregisterTMCloneTable',
    '_ITM_registerTMCloneTable', '__cxa_finalize']);
  return undefined_symbols.filter((name) => !name.startsWith('napi_') &&
    !name.startsWith('uv_') && !weak_optional.has(name) &&
    (libc_library === null ? false : !provided.has(name)));
}

/** The newest glibc symbol version `addon` imports, e.g. { symbol: 'memcpy', version: '2.14' }. */
function glibc_symbol_newest(target, addon) {
  const nm = target.debian === host_debian ? 'nm' : `${target.gnu}-nm`;
  let newest = { symbol: '', version: '0' };
  for (const line of run(nm, ['-D', '--undefined-only', addon]).split('\n')) {
    const match = /([^\s@]+)@+GLIBC_([0-9.]+)/.exec(line);
    if (match !== null && native_target.version_compare(match[2], newest.version) > 0) {
      newest = { symbol: match[1], version: match[2] };
    }
  }
  return newest;
}

/** Throws unless a glibc addon's symbols all exist in its floor's glibc; says which is newest. */
function glibc_floor_check(target, addon) {
  const floor = native_target.glibc_floors[target.name];
  const newest = glibc_symbol_newest(target, addon);
  if (native_target.version_compare(newest.version, floor) > 0) {
    throw new Error(`imports ${newest.symbol}@GLIBC_${newest.version}, newer than the floor ` +
      `glibc ${floor} (scripts/native_target.js): avoid the symbol or define it in the shim`);
  }
  return `glibc floor ${floor} (newest symbol ${newest.symbol}@GLIBC_${newest.version})`;
}

/** The root under which a musl target's /usr lives: this machine's, or its unpacked packages. */
function musl_root(target) {
  return target.debian === host_debian ? '/' :
    debian_unpack(target.debian, ['musl', 'musl-dev']);
}

/**
 * A command that builds C for a musl target: musl-gcc on this architecture; for another, its GNU
 * cross compiler with musl's headers, start files and libc.so in place of glibc's, and musl's
 * dynamic loader as the program's interpreter.
 */
function musl_c_compiler(target, sources, output, extra) {
  if (target.debian === host_debian) return ['musl-gcc', [...sources, '-o', output, ...extra]];
  const root_directory = musl_root(target);
  const triple = target.gnu.replace('-gnu', '-musl');
  const musl_lib = path.join(root_directory, 'usr', 'lib', triple);
  const compiler = `${target.gnu}-gcc`;
  const shared = extra.includes('-shared');
  return [compiler, ['-nostdinc', '-isystem', path.join(root_directory, 'usr', 'include', triple),
    '-isystem', run(compiler, ['-print-file-name=include']).trim(), '-nostdlib', '-no-pie',
    ...(shared ? [] : [path.join(musl_lib, 'crt1.o'), path.join(musl_lib, 'crti.o')]),
    ...sources, '-Wl,--no-as-needed', ...extra,
    `-L${path.join(root_directory, 'lib', triple)}`, '-lc',
    ...(shared ? [] : [path.join(musl_lib, 'crtn.o'),
      `-Wl,--dynamic-linker=/lib/ld-musl-${target.gnu.split('-')[0]}.so.1`]),
    '-o', output]];
}

/**
 * Loads a musl addon with musl's own dynamic loader (a C program that dlopens it, Node-API and
 * libuv stubbed), which proves every symbol and relocation resolves under musl; an arm64 one runs
 * under qemu's user-mode emulation, with the unpacked musl package as its root. No musl Node runs
 * here (none is in Debian's or npm's registry), so this is as far as the addon can be run.
 */
function musl_load_check(target, addon) {
  const native = target.debian === host_debian;
  const tool = native ? 'musl-gcc' : 'qemu-aarch64-static';
  if (!native && target.debian !== 'arm64') return 'not loaded (another architecture)';
  if (child_process.spawnSync(tool, ['--version']).status !== 0) {
    return `not loaded (${tool} missing)`;
  }
  const nm = native ? 'nm' : `${target.gnu}-nm`;
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ringledger-musl-load-'));
  try {
    const stubbed = run(nm, ['-D', '--undefined-only', addon]).split('\n')
      .map((line) => line.trim().split(/\s+/).pop()).filter((name) => /^(napi_|uv_)/.test(name));
    fs.writeFileSync(path.join(directory, 'stubs.c'),
      stubbed.map((name) => `void ${name}(void) {}\n`).join(''));
    fs.writeFileSync(path.join(directory, 'load.c'), '#include <dlfcn.h>\n#include <stdio.h>\n' +
      'int main(int c, char **v) { void *h = dlopen(v[1], RTLD_NOW);\n' +
      '  if (!h) { puts(dlerror()); return 1; }\n' +
      '  return dlsym(h, "napi_register_module_v1") ? 0 : 2; }\n');
    const stubs = path.join(directory, 'libstubs.so');
    const load = path.join(directory, 'load');
    run(...musl_c_compiler(target, [path.join(directory, 'stubs.c')], stubs,
      ['-shared', '-fPIC']));
    run(...musl_c_compiler(target, [path.join(directory, 'load.c')], load,
      [`-L${directory}`, '-lstubs', `-Wl,-rpath,${directory}`]));
    if (native) run(load, [addon]);
    else run(tool, ['-L', musl_root(target), load, addon]);
    return native ? 'loaded by musl\'s dynamic loader' :
      'loaded by musl\'s dynamic loader under qemu-aarch64';
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

async function target_build(target) {
  const liburing_root = debian_unpack(target.debian, ['liburing-dev']);
  const args = target_arguments(target, liburing_root);
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), `ringledger-${target.name}-`));
  try {
    const objects = await compile_all(args.compiler, args.compile, gyp_target().sources,
      directory);
    const output = path.join(directory, native_target.addon_name);
    run(args.compiler, [...args.link, ...objects, ...args.objects_end, '-o', output]);
    const unresolved = symbols_unresolved(target, output, args.libc_library);
    if (unresolved.length > 0) {
      throw new Error(`unresolved against ${target.libc}: ${unresolved.join(' ')}`);
    }
    const needed = run('readelf', ['-d', output]).split('\n')
      .filter((line) => line.includes('(NEEDED)')).map((line) => /\[(.*)\]/.exec(line)[1]);
    if (needed.some((name) => name.startsWith('liburing') || name.startsWith('libstdc++'))) {
      throw new Error(`links ${needed.join(', ')} dynamically`);
    }
    const floor = target.libc === 'glibc' ? `${glibc_floor_check(target, output)}; ` : '';
    let check = 'not loaded (another architecture)';
    if (target.name === native_target.target_name()) {
      run(process.execPath, ['-e', `require(${JSON.stringify(output)})`]);
      check = 'loaded by this node';
    } else if (target.libc === 'musl') {
      check = musl_load_check(target, output);
    }
    const destination = native_target.prebuild_path(target.name);
    fs.mkdirSync(path.dirname(destination), { recursive: true });
    fs.copyFileSync(output, destination);
    return { needed, bytes: fs.statSync(destination).size, check: floor + check };
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

function skip_reason(target) {
  if (!compiler_found(target)) {
    const name = compiler_of(target);
    return `${name} is not installed (apt-get install ${name === 'g++' ? 'g++' :
      'g++-' + target.gnu}, or run with --install-toolchains)`;
  }
  if (target.libc === 'musl' && target.debian === host_debian &&
      !fs.existsSync(`/usr/lib/${target.gnu.replace('-gnu', '-musl')}/libc.so`)) {
    return 'musl is not installed (apt-get install musl-tools, or run with --install-toolchains)';
  }
  return null;
}

async function main() {
  const argument = process.argv.find((arg) => arg.startsWith('--targets='));
  const wanted = argument === undefined ? targets.map((target) => target.name) :
    argument.slice('--targets='.length).split(',');
  if (process.argv.includes('--install-toolchains')) toolchains_install();
  const host = native_target.target_name();
  let failed = false;
  for (const target of targets.filter((entry) => wanted.includes(entry.name))) {
    const reason = skip_reason(target);
    if (reason !== null) {
      // A prebuild left from an earlier build would ship unchecked, older than this tree.
      fs.rmSync(native_target.prebuild_path(target.name), { force: true });
      process.stderr.write(`prebuild ${target.name}: skipped: ${reason}\n`);
      failed = failed || target_required(target.name, host);
      continue;
    }
    const started_ms = Date.now();
    try {
      const { needed, bytes, check } = await target_build(target);
      const seconds = ((Date.now() - started_ms) / 1000).toFixed(1);
      process.stderr.write(`prebuild ${target.name}: ${bytes} bytes in ${seconds} s, needs ` +
        `${needed.join(', ')}; ${check}\n`);
    } catch (error) {
      fs.rmSync(native_target.prebuild_path(target.name), { force: true });
      process.stderr.write(`prebuild ${target.name}: failed: ${error.message}\n`);
      failed = failed || target_required(target.name, host);
    }
  }
  return failed ? 1 : 0;
}

/**
 * `npm publish` (npm sets npm_command) must ship all four targets: a tarball without one would
 * send that platform's users to a source build. `npm pack` keeps the host's target only required.
 */
function target_required(target_name, host) {
  return target_name === host || process.env.npm_command === 'publish';
}

main().then((code) => { process.exitCode = code; });
