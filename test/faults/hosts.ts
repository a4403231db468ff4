// Hosts for the fault runner: one Linux network namespace per replica, each joined by a veth pair
// to a bridge in the root namespace (where the clients run, on the bridge's own address). A run
// claims a free slot by creating its bridge (creation fails if another run holds that name), so
// parallel runs never share names or a subnet. Every partition, slow link and cut is undone by
// `heal`, and `destroy` removes all of it (also called on SIGINT/SIGTERM/exit by the runner).
//
// This kernel has no sch_netem and no tc classifiers or actions (checked: `tc qdisc add ... netem`
// answers "Specified qdisc kind is unknown"), so loss, duplication and reordering cannot be
// injected per packet. What the kernel offers, and what is used: blackhole routes (a partition
// drops every packet silently, the way a lost link does, so TCP stalls rather than resets), a
// link taken down (a host cut from the bridge), a token bucket (tbf) that adds queueing delay and
// drops beyond its queue, and a route flapped on and off (bursts of loss). Per-packet loss and
// duplication come from nftables when `nft` is installed (.ci/run installs it): a rule in the
// host's namespace drops each packet to or from its peers with a chance (`numgen random`), or
// sends a copy of each (`dup`, ip family: the inet family refuses it). Reordering has no
// stand-in built: without netem's delay queue and without tc actions no packet can be held back
// while a later one passes. Checked on this kernel (6.18): qdiscs pfifo, bfifo, tbf and htb
// exist; netem, prio, fq, fq_codel, sfq, red, cake, plug and clsact do not; tc filters (u32,
// basic, bpf) are refused. Delay is only queueing delay behind a rate (tbf, `slow`). Reordering
// could be built from nftables `meta priority set numgen random mod 2 map { ... }` steering a
// random share of packets into a slower htb class (accepted here), not done yet. Tests only.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';

const slots_max = 200;
const subnet_prefix = '10.213';
export const replica_port = 3000;

export function ip_run(args: readonly string[], allow_failure = false): boolean {
    const result = child_process.spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
    if (result.status !== 0 && !allow_failure) {
        throw new Error(`ip ${args.join(' ')}: ${result.stderr || result.error?.message}`);
    }
    return result.status === 0;
}

function tc_run(namespace: string, args: readonly string[], allow_failure = false): boolean {
    const result = child_process.spawnSync('ip', ['netns', 'exec', namespace, 'tc', ...args],
        { encoding: 'utf8', timeout: 10_000 });
    if (result.status !== 0 && !allow_failure) {
        throw new Error(`tc ${args.join(' ')} in ${namespace}: ${result.stderr}`);
    }
    return result.status === 0;
}

/** Runs an nft script (one command a line) inside a host's namespace. */
function nft_run(namespace: string, script: string, allow_failure = false): boolean {
    const result = child_process.spawnSync('ip', ['netns', 'exec', namespace, 'nft', '-f', '-'],
        { encoding: 'utf8', timeout: 10_000, input: script });
    if (result.status !== 0 && !allow_failure) {
        throw new Error(`nft in ${namespace}: ${result.stderr}\n${script}`);
    }
    return result.status === 0;
}

export class Hosts {
    readonly slot: number;
    readonly count: number;
    readonly bridge: string;
    readonly namespaces: string[] = [];
    /** Blackhole routes in place, as "from>to" host pairs (to -1: the clients' address). */
    private readonly routes_blocked = new Set<string>();
    private readonly links_slow = new Set<number>();
    private readonly links_down = new Set<number>();
    /** Hosts with an nftables table of this runner's (per-packet loss or duplication). */
    private readonly tables = new Set<number>();
    private destroyed = false;

    private constructor(slot: number, count: number) {
        assert(slot >= 0 && slot < slots_max);
        assert(count >= 1 && count <= 6);
        this.slot = slot;
        this.count = count;
        this.bridge = `rlf${slot}b`;
        for (let host = 0; host < count; host++) this.namespaces.push(`rlf${slot}h${host}`);
    }

    /** Claims the first free slot and builds its bridge and hosts. */
    static create(count: number): Hosts {
        for (let slot = 0; slot < slots_max; slot++) {
            if (!ip_run(['link', 'add', `rlf${slot}b`, 'type', 'bridge'], true)) continue;
            const hosts = new Hosts(slot, count);
            try {
                hosts.build();
            } catch (error) {
                hosts.destroy();
                throw error;
            }
            return hosts;
        }
        throw new Error(`no free fault-runner slot among ${slots_max}`);
    }

    private build(): void {
        ip_run(['addr', 'add', `${this.client_address}/24`, 'dev', this.bridge]);
        ip_run(['link', 'set', this.bridge, 'up']);
        for (let host = 0; host < this.count; host++) {
            const namespace = this.namespaces[host]!;
            const veth = `rlf${this.slot}v${host}`;
            // A veth of this slot's name may outlive an earlier run's namespace for a while
            // (the kernel tears a deleted namespace down later): the slot is ours, so is it.
            ip_run(['link', 'del', veth], true);
            ip_run(['netns', 'add', namespace]);
            ip_run(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns',
                namespace]);
            ip_run(['link', 'set', veth, 'master', this.bridge, 'up']);
            ip_run(['-n', namespace, 'addr', 'add', `${this.address(host)}/24`, 'dev', 'eth0']);
            ip_run(['-n', namespace, 'link', 'set', 'eth0', 'up']);
            ip_run(['-n', namespace, 'link', 'set', 'lo', 'up']);
        }
    }

    /** The root namespace's address on the bridge: the clients connect from here. */
    get client_address(): string {
        return `${subnet_prefix}.${this.slot}.1`;
    }

    address(host: number): string {
        assert(host >= 0 && host < this.count);
        return `${subnet_prefix}.${this.slot}.${host + 2}`;
    }

    /** Every replica's address in index order, as `start --addresses` and clients take them. */
    get addresses(): string[] {
        return this.namespaces.map((_, host) => `${this.address(host)}:${replica_port}`);
    }

    /** Drops every packet from `from` to `to` (-1: to the clients), silently. */
    block(from: number, to: number): void {
        const key = `${from}>${to}`;
        if (this.routes_blocked.has(key)) return;
        const target = to === -1 ? this.client_address : this.address(to);
        ip_run(['-n', this.namespaces[from]!, 'route', 'add', 'blackhole', `${target}/32`]);
        this.routes_blocked.add(key);
    }

    unblock(from: number, to: number): void {
        const key = `${from}>${to}`;
        if (!this.routes_blocked.delete(key)) return;
        const target = to === -1 ? this.client_address : this.address(to);
        ip_run(['-n', this.namespaces[from]!, 'route', 'del', 'blackhole', `${target}/32`], true);
    }

    /** Splits the hosts into groups that cannot reach each other (clients reach all). */
    partition(groups: readonly (readonly number[])[]): void {
        const group_of = new Map<number, number>();
        groups.forEach((group, index) => group.forEach((host) => group_of.set(host, index)));
        assert.equal(group_of.size, this.count, 'a partition places every host');
        for (let from = 0; from < this.count; from++) {
            for (let to = 0; to < this.count; to++) {
                if (group_of.get(from) !== group_of.get(to)) this.block(from, to);
            }
        }
    }

    /** A token bucket on the host's link: queueing delay up to latency_ms, drops beyond it. */
    slow(host: number, rate_kbit: number, latency_ms: number): void {
        assert(rate_kbit > 0 && latency_ms > 0);
        tc_run(this.namespaces[host]!, ['qdisc', 'replace', 'dev', 'eth0', 'root', 'tbf', 'rate',
            `${rate_kbit}kbit`, 'burst', '16kbit', 'latency', `${latency_ms}ms`]);
        this.links_slow.add(host);
    }

    /** Whether nftables can filter here (the `nft` command exists and the kernel accepts it). */
    static nft_available(): boolean {
        const result = child_process.spawnSync('nft', ['--version'], { encoding: 'utf8' });
        return result.status === 0;
    }

    /**
     * Per packet, between the host and its peers (both ways): dropped with `loss_percent`, and
     * duplicated with `duplicate_percent` (a copy sent to the same peer). Clients are spared:
     * the link faults above cover them, and replicas' messages are what repair must survive.
     */
    lossy(host: number, loss_percent: number, duplicate_percent: number): void {
        assert(loss_percent >= 0 && loss_percent < 100);
        assert(duplicate_percent >= 0 && duplicate_percent < 100);
        assert(!this.tables.has(host), 'one lossy table per host');
        const peers = this.namespaces.map((_, peer) => peer).filter((peer) => peer !== host)
            .map((peer) => this.address(peer)).join(', ');
        const rules = [`add table ip rlf`,
            `add chain ip rlf out { type filter hook output priority 0; }`,
            `add chain ip rlf in { type filter hook input priority 0; }`];
        if (loss_percent > 0) {
            rules.push(`add rule ip rlf out ip daddr { ${peers} } numgen random mod 100 < ` +
                `${loss_percent} drop`);
            rules.push(`add rule ip rlf in ip saddr { ${peers} } numgen random mod 100 < ` +
                `${loss_percent} drop`);
        }
        if (duplicate_percent > 0) {
            for (let peer = 0; peer < this.count; peer++) {
                if (peer === host) continue;
                rules.push(`add rule ip rlf out ip daddr ${this.address(peer)} numgen random ` +
                    `mod 100 < ${duplicate_percent} dup to ${this.address(peer)} device eth0`);
            }
        }
        this.tables.add(host);
        nft_run(this.namespaces[host]!, rules.join('\n'));
    }

    /** The host's link down: cut from the bridge, peers and clients alike. */
    cut(host: number): void {
        ip_run(['-n', this.namespaces[host]!, 'link', 'set', 'eth0', 'down']);
        this.links_down.add(host);
    }

    /** Undoes every partition, slow link and cut. */
    heal(): void {
        for (const key of [...this.routes_blocked]) {
            const [from, to] = key.split('>').map(Number) as [number, number];
            this.unblock(from, to);
        }
        for (const host of this.links_slow) {
            tc_run(this.namespaces[host]!, ['qdisc', 'del', 'dev', 'eth0', 'root'], true);
        }
        this.links_slow.clear();
        for (const host of this.links_down) {
            ip_run(['-n', this.namespaces[host]!, 'link', 'set', 'eth0', 'up'], true);
            // A link brought back up has lost its routes: the subnet route returns with the
            // address, which stays, so only the link's state needs restoring.
        }
        this.links_down.clear();
        for (const host of this.tables) {
            nft_run(this.namespaces[host]!, 'delete table ip rlf', true);
        }
        this.tables.clear();
        assert.equal(this.routes_blocked.size, 0);
        // The kernel agrees: no blackhole route and no token bucket is left on any host.
        for (const namespace of this.namespaces) {
            const routes = child_process.spawnSync('ip', ['-n', namespace, 'route', 'show',
                'type', 'blackhole'], { encoding: 'utf8' });
            assert.equal(routes.stdout.trim(), '', `${namespace} kept blackhole routes`);
            const qdiscs = child_process.spawnSync('ip', ['netns', 'exec', namespace, 'tc',
                'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
            assert.doesNotMatch(qdiscs.stdout, /tbf/, `${namespace} kept a token bucket`);
            if (!Hosts.nft_available()) continue;
            const tables = child_process.spawnSync('ip', ['netns', 'exec', namespace, 'nft',
                'list', 'tables'], { encoding: 'utf8' });
            assert.doesNotMatch(tables.stdout, /rlf/, `${namespace} kept an nftables table`);
        }
    }

    /** Whether any network fault is in place. */
    get faulty(): boolean {
        return this.routes_blocked.size + this.links_slow.size + this.links_down.size +
            this.tables.size > 0;
    }

    destroy(): void {
        if (this.destroyed) return;
        this.destroyed = true;
        // Deleting the root end of a veth pair deletes both ends now; a deleted namespace takes
        // its end away only once the kernel gets round to tearing it down.
        for (let host = 0; host < this.count; host++) {
            ip_run(['link', 'del', `rlf${this.slot}v${host}`], true);
        }
        for (const namespace of this.namespaces) ip_run(['netns', 'del', namespace], true);
        ip_run(['link', 'del', this.bridge], true);
    }
}
