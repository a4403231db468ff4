// Marzullo's algorithm (internals.md §11): given one interval per clock source, each claiming
// "the true offset lies in here", find the smallest interval that the largest number of sources
// agree on. A source whose interval misses it is wrong (a bad clock, or a one-way delay far from
// half the round trip); the cluster clock (clock.ts) takes the interval only if a quorum of
// sources agrees.
//
// Intervals are closed: two that only touch agree on the touching point. The sweep runs over a
// preallocated edge buffer sorted by insertion sort (a handful of sources: at most 2 × 6 edges),
// so that a synchronisation round allocates nothing.
import assert from 'node:assert/strict';

/** The outcome of one run: [lower_ns, upper_ns] and how many sources contain it. */
export class MarzulloInterval {
    lower_ns = 0;
    upper_ns = 0;
    /** Sources whose interval contains [lower_ns, upper_ns] (0 when there were none). */
    sources_true = 0;
    /** Sources whose interval does not. */
    sources_false = 0;
}

export class Marzullo {
    readonly sources_max: number;
    /** Edge offsets, and whether each is a lower (0) or an upper (1) bound. */
    private readonly edge_ns: Float64Array;
    private readonly edge_upper: Uint8Array;

    constructor(sources_max: number) {
        assert(Number.isInteger(sources_max) && sources_max >= 1 && sources_max <= 64);
        this.sources_max = sources_max;
        this.edge_ns = new Float64Array(sources_max * 2);
        this.edge_upper = new Uint8Array(sources_max * 2);
    }

    /**
     * The smallest interval that the most sources contain. Source i claims
     * [bounds_ns[2i], bounds_ns[2i + 1]]. Among equally supported intervals the narrowest wins,
     * and among equally narrow ones the lowest (so the outcome is a function of the set).
     */
    smallest_interval(bounds_ns: Float64Array, sources: number, out: MarzulloInterval): void {
        assert(Number.isInteger(sources) && sources >= 0 && sources <= this.sources_max);
        assert(bounds_ns.length >= sources * 2);
        out.lower_ns = 0;
        out.upper_ns = 0;
        out.sources_true = 0;
        out.sources_false = sources;
        if (sources === 0) return;
        const edges = sources * 2;
        for (let source = 0; source < sources; source++) {
            const lower_ns = bounds_ns[source * 2]!;
            const upper_ns = bounds_ns[source * 2 + 1]!;
            assert(Number.isFinite(lower_ns) && Number.isFinite(upper_ns));
            assert(lower_ns <= upper_ns, 'an interval ends after it begins');
            this.edge_ns[source * 2] = lower_ns;
            this.edge_upper[source * 2] = 0;
            this.edge_ns[source * 2 + 1] = upper_ns;
            this.edge_upper[source * 2 + 1] = 1;
        }
        this.edges_sort(edges);
        this.sweep(edges, out);
        assert(out.sources_true >= 1 && out.sources_true <= sources);
        assert(out.lower_ns <= out.upper_ns);
        out.sources_false = sources - out.sources_true;
    }

    /**
     * Sorts edges by offset; at equal offsets lower bounds first, so that closed intervals that
     * touch are counted as overlapping there.
     */
    private edges_sort(edges: number): void {
        const edge_ns = this.edge_ns;
        const edge_upper = this.edge_upper;
        for (let i = 1; i < edges; i++) {
            const key_ns = edge_ns[i]!;
            const key_upper = edge_upper[i]!;
            let j = i - 1;
            while (j >= 0 && (edge_ns[j]! > key_ns ||
                (edge_ns[j] === key_ns && edge_upper[j]! > key_upper))) {
                edge_ns[j + 1] = edge_ns[j]!;
                edge_upper[j + 1] = edge_upper[j]!;
                j -= 1;
            }
            edge_ns[j + 1] = key_ns;
            edge_upper[j + 1] = key_upper;
        }
        for (let i = 1; i < edges; i++) assert(edge_ns[i - 1]! <= edge_ns[i]!);
    }

    /** The sweep: depth rises at a lower bound; the best depth spans to the next edge. */
    private sweep(edges: number, out: MarzulloInterval): void {
        let depth = 0;
        let best = 0;
        for (let i = 0; i < edges; i++) {
            if (this.edge_upper[i] === 1) {
                depth -= 1;
                assert(depth >= 0);
                continue;
            }
            depth += 1;
            // Lower bounds come before upper bounds at one offset, and every interval closes,
            // so the edge after a lower bound exists and is not below it.
            assert(i + 1 < edges);
            const lower_ns = this.edge_ns[i]!;
            const upper_ns = this.edge_ns[i + 1]!;
            const narrower = upper_ns - lower_ns < out.upper_ns - out.lower_ns;
            if (depth > best || (depth === best && narrower)) {
                best = depth;
                out.lower_ns = lower_ns;
                out.upper_ns = upper_ns;
            }
        }
        assert.equal(depth, 0, 'every interval closes');
        out.sources_true = best;
    }
}
