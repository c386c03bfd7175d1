package dev.kiln;

import java.util.Arrays;

/**
 * A snapshot of latencies in nanoseconds, counted in log-linear buckets: four buckets per power of two, so a
 * percentile is within 25 % of the true value (exact below 8 ns). Immutable.
 */
public final class LatencyHistogram {

    /** Number of buckets: values 0..3 have one each, then four per power of two up to {@code Long.MAX_VALUE}. */
    public static final int BUCKETS = 248;

    private static final LatencyHistogram EMPTY = new LatencyHistogram(new long[BUCKETS], 0, 0);

    private final long[] counts;
    private final long count;
    private final long totalNanos;
    private final long maxNanos;

    /**
     * @param counts     the count of each bucket (copied), {@link #BUCKETS} of them
     * @param totalNanos the sum of the values
     * @param maxNanos   the largest value
     * @throws IllegalArgumentException if {@code counts} does not have {@link #BUCKETS} entries or one is negative
     */
    public LatencyHistogram(long[] counts, long totalNanos, long maxNanos) {
        if (counts.length != BUCKETS) {
            throw new IllegalArgumentException("a latency histogram has " + BUCKETS + " buckets, got " + counts.length);
        }
        long n = 0;
        for (long c : counts) {
            if (c < 0) {
                throw new IllegalArgumentException("bucket counts must be >= 0, got " + c);
            }
            n += c;
        }
        this.counts = counts.clone();
        this.count = n;
        this.totalNanos = totalNanos;
        this.maxNanos = maxNanos;
    }

    /** @return a histogram with no values */
    public static LatencyHistogram empty() {
        return EMPTY;
    }

    /**
     * @param nanos a value, >= 0
     * @return the index of its bucket
     */
    public static int bucket(long nanos) {
        if (nanos < 4) {
            return (int) Math.max(nanos, 0);
        }
        int e = 63 - Long.numberOfLeadingZeros(nanos);
        return 4 * (e - 1) + (int) ((nanos >>> (e - 2)) & 3);
    }

    /**
     * @param bucket a bucket index
     * @return the largest value that falls in it
     */
    public static long upperBound(int bucket) {
        if (bucket < 4) {
            return bucket;
        }
        int e = bucket / 4 + 1;
        long next = (5L + bucket % 4) << (e - 2);
        return next <= 0 ? Long.MAX_VALUE : next - 1;
    }

    /** @return the number of values */
    public long count() {
        return count;
    }

    /** @return the sum of the values, in nanoseconds */
    public long totalNanos() {
        return totalNanos;
    }

    /** @return the largest value, in nanoseconds; 0 if there is none */
    public long maxNanos() {
        return maxNanos;
    }

    /** @return the mean, in nanoseconds; 0 if there is no value */
    public double meanNanos() {
        return count == 0 ? 0 : (double) totalNanos / count;
    }

    /**
     * @param bucket a bucket index, 0 to {@link #BUCKETS} - 1
     * @return how many values fell in it
     */
    public long countAt(int bucket) {
        return counts[bucket];
    }

    /**
     * @param percentile in [0, 100], e.g. 99.9
     * @return a value that at least {@code percentile} % of the values do not exceed: the upper bound of the bucket
     *         that holds that rank, capped at {@link #maxNanos()}; 0 if there is no value
     * @throws IllegalArgumentException if {@code percentile} is outside [0, 100]
     */
    public long percentileNanos(double percentile) {
        if (!(percentile >= 0 && percentile <= 100)) {
            throw new IllegalArgumentException("percentile must be in [0, 100], got " + percentile);
        }
        if (count == 0) {
            return 0;
        }
        long rank = Math.max(1, (long) Math.ceil(percentile / 100 * count));
        long seen = 0;
        for (int b = 0; b < BUCKETS; b++) {
            seen += counts[b];
            if (seen >= rank) {
                return Math.min(upperBound(b), maxNanos);
            }
        }
        return maxNanos;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LatencyHistogram h && h.count == count && h.totalNanos == totalNanos
                && h.maxNanos == maxNanos && Arrays.equals(h.counts, counts);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(counts) * 31 + Long.hashCode(totalNanos);
    }

    @Override
    public String toString() {
        return count == 0 ? "LatencyHistogram(empty)" : String.format("LatencyHistogram(count %d, mean %.0f ns, "
                + "p50 %d ns, p99 %d ns, max %d ns)", count, meanNanos(), percentileNanos(50), percentileNanos(99),
                maxNanos);
    }
}
