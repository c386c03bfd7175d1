package dev.kiln.executor;

import dev.kiln.LatencyHistogram;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Counts calls and failures of one actor method (or of a graph's executions), and times a sample of them (the first
 * call and then one in {@value #SAMPLE}: {@link #timeNext()}), so that the clock is read twice per {@value #SAMPLE}
 * calls, not twice per call. A timed call goes into the {@link LatencyHistogram}'s buckets for itself and for the
 * untimed calls since the previous timed one, so the histogram's count and total grow with the calls (they lag by
 * the untimed calls since the last timed one) and only grow. One thread records (the actor's, or
 * the graph's collector); any thread may take a {@link #snapshot()}. Recording allocates nothing and takes no lock:
 * opaque stores, which are plain stores on x86 and ARM, so a snapshot taken while values are recorded may miss the
 * latest ones.
 */
public final class LatencyRecorder {

    private static final VarHandle LONGS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final int FAILURES = 0;
    private static final int TOTAL = 1;
    private static final int MAX = 2;
    private static final int CALLS = 3;
    /** One call in this many is timed. */
    public static final int SAMPLE = 8;

    private final long[] counts = new long[LatencyHistogram.BUCKETS];
    /** Failures, total nanos, max nanos, calls; apart from the buckets, which many calls leave untouched. */
    private final long[] totals = new long[4];
    /** Calls asked about by {@link #timeNext()}. */
    private int tick;
    /** Calls counted untimed since the last timed one; the recording thread only. */
    private long pending;

    /**
     * Whether to time the call about to start: true for the first and then for one call in {@value #SAMPLE}. The
     * thread that starts the calls (the actor's; the submitting thread for a graph's executions, where two
     * submitting threads may race on the count, which only shifts the sample).
     *
     * @return whether to read the clock around the call and {@link #record} it, else {@link #count} it
     */
    public boolean timeNext() {
        return (tick++ & (SAMPLE - 1)) == 0;
    }

    /**
     * Counts one call that was not timed; the recording thread only.
     *
     * @param failed whether it failed
     */
    public void count(boolean failed) {
        pending++;
        long[] t = totals;
        LONGS.setOpaque(t, CALLS, (long) LONGS.getOpaque(t, CALLS) + 1);
        if (failed) {
            LONGS.setOpaque(t, FAILURES, (long) LONGS.getOpaque(t, FAILURES) + 1);
        }
    }

    /**
     * Records one timed call; the recording thread only.
     *
     * @param nanos  how long it took
     * @param failed whether it failed
     */
    public void record(long nanos, boolean failed) {
        long v = Math.max(nanos, 0);
        int b = LatencyHistogram.bucket(v);
        long[] c = counts;
        long[] t = totals;
        long weight = 1 + pending; // this call stands for itself and the untimed ones since the last timed call
        pending = 0;
        LONGS.setOpaque(c, b, (long) LONGS.getOpaque(c, b) + weight);
        LONGS.setOpaque(t, CALLS, (long) LONGS.getOpaque(t, CALLS) + 1);
        LONGS.setOpaque(t, TOTAL, (long) LONGS.getOpaque(t, TOTAL) + v * weight);
        if (v > (long) LONGS.getOpaque(t, MAX)) {
            LONGS.setOpaque(t, MAX, v);
        }
        if (failed) {
            LONGS.setOpaque(t, FAILURES, (long) LONGS.getOpaque(t, FAILURES) + 1);
        }
    }

    /** @return the calls recorded so far, timed or not; any thread */
    public long calls() {
        return (long) LONGS.getOpaque(totals, CALLS);
    }

    /** @return the failures recorded so far; any thread */
    public long failures() {
        return (long) LONGS.getOpaque(totals, FAILURES);
    }

    /** @return the latencies so far, each timed call standing for the untimed ones before it; any thread */
    public LatencyHistogram snapshot() {
        long[] copy = new long[counts.length];
        for (int i = 0; i < copy.length; i++) {
            copy[i] = (long) LONGS.getOpaque(counts, i);
        }
        return new LatencyHistogram(copy, (long) LONGS.getOpaque(totals, TOTAL), (long) LONGS.getOpaque(totals, MAX));
    }
}
