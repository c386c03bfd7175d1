package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A {@link Channel} between threads of one JVM: N slots of object references, a published
 * counter written by the writer and a released counter per reader, each on its own cache
 * line. Publication is a volatile store, followed by a wake-up of armed peers; the hot path
 * takes no lock and allocates nothing. Threading as in {@link Channel}.
 */
public final class InProcessChannel implements Channel {

    /** Longs per counter: 128 bytes, two cache lines, so no two counters share a prefetched pair. */
    private static final int STRIDE = 16;
    private static final VarHandle COUNTERS = MethodHandles.arrayElementVarHandle(long[].class);

    private final ChannelSpec spec;
    private final Object[] slots;
    private final int slotCount;
    /** [pad][published][pad][released 0][pad]...: counter i at (i + 1) * STRIDE. */
    private final long[] counters;
    private final int readerCount;
    private final Waker writerWaker;
    private final Waker[] readerWakers;
    /** Writer-local: the least released count seen, so the writer rarely scans the readers. */
    private long minReleased;

    /**
     * @param spec         the plan's channel
     * @param writerWaker  the writer's waker, signalled when a reader releases a slot
     * @param readerWakers the readers' wakers by reader index, signalled on publication
     */
    public InProcessChannel(ChannelSpec spec, Waker writerWaker, Waker[] readerWakers) {
        if (readerWakers.length != spec.readers().size()) {
            throw new IllegalArgumentException("channel c" + spec.id() + " has " + spec.readers().size()
                    + " readers, got " + readerWakers.length + " wakers");
        }
        this.spec = spec;
        this.slotCount = spec.slots();
        this.slots = new Object[slotCount];
        this.readerCount = readerWakers.length;
        this.counters = new long[(readerCount + 2) * STRIDE];
        this.writerWaker = writerWaker;
        this.readerWakers = readerWakers.clone();
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean offer(long sequence, Object value) {
        if (!isFree(sequence)) {
            return false;
        }
        slots[(int) (sequence % slotCount)] = value;
        COUNTERS.setVolatile(counters, STRIDE, sequence + 1);
        for (Waker w : readerWakers) {
            w.signal();
        }
        return true;
    }

    @Override
    public boolean isFree(long sequence) {
        long wrap = sequence - slotCount;
        if (minReleased <= wrap) {
            long min = Long.MAX_VALUE;
            for (int r = 0; r < readerCount; r++) {
                min = Math.min(min, (long) COUNTERS.getAcquire(counters, (r + 2) * STRIDE));
            }
            minReleased = min;
            return min > wrap;
        }
        return true;
    }

    @Override
    public Object poll(int reader, long sequence) {
        if ((long) COUNTERS.getAcquire(counters, STRIDE) > sequence) {
            return slots[(int) (sequence % slotCount)];
        }
        return NOT_READY;
    }

    @Override
    public void release(int reader, long sequence) {
        COUNTERS.setVolatile(counters, (reader + 2) * STRIDE, sequence + 1);
        writerWaker.signal();
    }

    @Override
    public void close() {
        java.util.Arrays.fill(slots, null);
    }

    @Override
    public String toString() {
        return "InProcessChannel(c" + spec.id() + ", published " + COUNTERS.getVolatile(counters, STRIDE) + ")";
    }
}
