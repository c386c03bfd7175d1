package dev.kiln.executor;

import dev.kiln.LatencyHistogram;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Counts calls, failures and latencies of one actor method (or of a graph's executions) into a
 * {@link LatencyHistogram}'s buckets. One thread records (the actor's, or the graph's collector); any thread may take
 * a {@link #snapshot()}. Recording allocates nothing and takes no lock: opaque stores, which are plain stores on
 * x86 and ARM, so a snapshot taken while values are recorded may miss the latest ones.
 */
public final class LatencyRecorder {

    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final int FAILURES = 0;
    private static final int TOTAL = 1;
    private static final int MAX = 2;

    private final long[] counts = new long[LatencyHistogram.BUCKETS];
    /** Failures, total nanos, max nanos; apart from the counts, which many calls leave untouched. */
    private final long[] totals = new long[3];

    /**
     * Records one call; the recording thread only.
     *
     * @param nanos  how long it took
     * @param failed whether it failed
     */
    public void record(long nanos, boolean failed) {
        long v = Math.max(nanos, 0);
        int b = LatencyHistogram.bucket(v);
        long[] c = counts;
        long[] t = totals;
        LONGS.setOpaque(c, b, (long) LONGS.getOpaque(c, b) + 1);
        LONGS.setOpaque(t, TOTAL, (long) LONGS.getOpaque(t, TOTAL) + v);
        if (v > (long) LONGS.getOpaque(t, MAX)) {
            LONGS.setOpaque(t, MAX, v);
        }
        if (failed) {
            LONGS.setOpaque(t, FAILURES, (long) LONGS.getOpaque(t, FAILURES) + 1);
        }
    }

    /** @return the failures recorded so far; any thread */
    public long failures() {
        return (long) LONGS.getOpaque(totals, FAILURES);
    }

    /** @return the latencies recorded so far; any thread */
    public LatencyHistogram snapshot() {
        long[] copy = new long[counts.length];
        for (int i = 0; i < copy.length; i++) {
            copy[i] = (long) LONGS.getOpaque(counts, i);
        }
        return new LatencyHistogram(copy, (long) LONGS.getOpaque(totals, TOTAL), (long) LONGS.getOpaque(totals, MAX));
    }
}
