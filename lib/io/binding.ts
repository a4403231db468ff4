// Loads the C++ addon. A missing or broken binary is reported with the loader's original error and
// the steps that fix it, never swallowed: users of native packages lose most time on exactly this.
import path from 'node:path';

/** The functions the addon exports. Each component adds its own; see native/*.cc. */
export interface Binding {
    arena_alignment_offset(view: Uint8Array, alignment: number): number;
    /** An exclusive, non-blocking flock(2) on `fd`: 0, or -errno (-EWOULDBLOCK when held). */
    file_lock(fd: number): number;
    [name: string]: unknown;
}

let binding_loaded: Binding | null = null;

export function binding(): Binding {
    if (binding_loaded !== null) return binding_loaded;
    const root = path.resolve(__dirname, '..', '..', '..');
    const candidates = [
        path.join(root, 'build', 'Release', 'ringledger.node'),
        path.join(root, 'build', 'Debug', 'ringledger.node'),
    ];
    const errors: string[] = [];
    for (const candidate of candidates) {
        try {
            binding_loaded = require(candidate) as Binding;
            return binding_loaded;
        } catch (error) {
            errors.push(`  ${candidate}: ${(error as Error).message}`);
        }
    }
    throw new Error(
        'ringledger: the native addon could not be loaded.\n' +
            errors.join('\n') +
            '\nPossible fixes: install liburing (Debian/Ubuntu `apt-get install liburing-dev`, ' +
            'Fedora `dnf install liburing-devel`, Alpine `apk add liburing-dev`), then run ' +
            '`npm rebuild ringledger` (pnpm 10 and Bun skip install scripts unless allowed).',
    );
}
