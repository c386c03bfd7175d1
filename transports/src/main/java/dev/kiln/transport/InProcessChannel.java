package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A {@link Channel} between threads of one JVM: slots of object references (a power of two of them,
 * indexed with a mask), a published counter written by the writer and a released counter per reader,
 * each on its own pair of cache lines. The hot path takes no lock and allocates nothing. Threading as in
 * {@link Channel}.
 *
 * <p>It {@link #batches() batches}: {@link #write} stores a value and only moves a writer-local count;
 * {@link #publish()} stores the published counter once (a release store), then fences once and wakes
 * the readers that announced they sleep ({@link Waker}). {@link #release} gives back every slot up to a
 * sequence with one release store, a fence and a check of the writer's waker, so a reader that runs a
 * batch releases once for all of it. {@link #offer} is {@link #write} then {@link #publish()}.
 *
 * <p>No wake-up is lost: a sleeper stores its announcement, fences, then checks the counter; a peer
 * stores the counter, fences, then checks the announcement (a Dekker pair, one fence on each side).
 *
 * <p>A channel whose writer and every reader have the same waker is run by one thread (actors that share a thread:
 * their channels wake the thread that runs them), which never waits on itself: its publications and releases are
 * plain release stores, with no fence and no wake-up check, so a hand-off inside a thread costs a write and a read.
 * {@link #shareEnd(boolean)} turns that off while another thread may run one of its ends (a heavy actor that the
 * threads of its graph take turns running) and back on when that is over.
 */
public final class InProcessChannel implements Channel {

    /** Longs per counter: 128 bytes, two cache lines, so no two counters share a prefetched pair. */
    private static final int STRIDE = 16;
    private static final VarHandle COUNTERS = MethodHandles.arrayElementVarHandle(long[].class);

    private final ChannelSpec spec;
    private final Object[] slots;
    /** The plan's slot count: the writer of sequence n waits until every reader released n - slotCount. */
    private final int slotCount;
    private final int mask;
    /** [pad][published][pad][released 0][pad]...: counter i at (i + 1) * STRIDE. */
    private final long[] counters;
    private final int readerCount;
    private final Waker writerWaker;
    private final Waker[] readerWakers;
    /** Whether the writer and every reader have one waker: one thread may run them all. */
    private final boolean sameWaker;
    /**
     * Whether one thread runs the writer and every reader, so nobody is to be woken: {@link #sameWaker} while no end
     * is shared ({@link #shareEnd(boolean)}). Plain: written by the thread that runs both ends, and published to any
     * other thread by the hand-over that lets that thread run an end.
     */
    private boolean oneThread;
    /** Ends that other threads may run now, of a channel with {@link #sameWaker}; as {@link #oneThread}. */
    private int sharedEnds;
    /** Readers that other threads may run now ({@link #alsoWake}); under this channel's lock. */
    private int alsoWakeReaders;
    /** More wakers to signal on publication ({@link #alsoWake}), or null. */
    private volatile Waker[] alsoWake;
    /** Writer-local: the least released count seen, so the writer rarely scans the readers. */
    private long minReleased;
    /** Writer-local: sequences written, published or not. */
    private long written;
    /** Writer-local: the published counter as last stored. */
    private long published;

    /**
     * @param spec         the plan's channel (any slot count; the slot array is rounded up to a power of two)
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
        int capacity = powerOfTwo(slotCount);
        this.slots = new Object[capacity];
        this.mask = capacity - 1;
        this.readerCount = readerWakers.length;
        this.counters = new long[(readerCount + 2) * STRIDE];
        this.writerWaker = writerWaker;
        this.readerWakers = readerWakers.clone();
        this.sameWaker = java.util.Arrays.stream(readerWakers).allMatch(r -> r == writerWaker);
        this.oneThread = sameWaker;
    }

    /** @return whether one thread writes and reads this channel (see the class description) */
    public boolean isOneThread() {
        return oneThread;
    }

    /**
     * Says that another thread may run one of the channel's ends from now on (its steps, not at once with the thread
     * of its waker), or no longer; called by the thread of that end's waker, before it lets another thread run the end
     * (true) or after it took it back (false), each time through a hand-over that orders this call before the other
     * thread's steps (a lock, a volatile write and read). While any end is shared, every publication and release fences
     * and checks the wakers, as between threads. No effect on a channel whose ends have different wakers: those always
     * do.
     *
     * @param shared whether the end is shared from now on
     */
    public void shareEnd(boolean shared) {
        if (sameWaker) {
            sharedEnds += shared ? 1 : -1;
            oneThread = sharedEnds == 0;
        }
    }

    /**
     * @param n a count, at least 1
     * @return the least power of two that is at least {@code n}
     */
    public static int powerOfTwo(int n) {
        if (n < 1 || n > 1 << 30) {
            throw new IllegalArgumentException("a slot count must be between 1 and 2^30, got " + n);
        }
        return n == 1 ? 1 : Integer.highestOneBit(n - 1) << 1;
    }

    @Override
    public ChannelSpec spec() {
        return spec;
    }

    @Override
    public boolean batches() {
        return true;
    }

    @Override
    public boolean offer(long sequence, Object value) {
        if (!write(sequence, value)) {
            return false;
        }
        publish();
        return true;
    }

    @Override
    public boolean write(long sequence, Object value) {
        if (!isFree(sequence)) {
            return false;
        }
        slots[(int) sequence & mask] = value;
        written = sequence + 1;
        return true;
    }

    @Override
    public void publish() {
        long w = written;
        if (w != published) {
            published = w;
            COUNTERS.setRelease(counters, STRIDE, w);
            if (oneThread) {
                return;
            }
            VarHandle.fullFence(); // the store above before the readers' announcements below
            for (Waker r : readerWakers) {
                r.signal();
            }
            Waker[] also = alsoWake;
            if (also != null) {
                for (Waker r : also) {
                    r.signal();
                }
            }
        }
    }

    /**
     * Has every publication also wake these threads, when they announced they sleep, while a reader may be run by them
     * (beside the thread its waker belongs to); once for each such reader, and once more with null when that is over.
     * Any thread; a publication sees the change at the latest after its next fence.
     *
     * @param wakers the threads that may run a reader, or null: one reader less may
     */
    public synchronized void alsoWake(Waker[] wakers) {
        alsoWakeReaders += wakers != null ? 1 : -1;
        if (wakers != null) {
            alsoWake = wakers.clone();
        } else if (alsoWakeReaders == 0) {
            alsoWake = null;
        }
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
            return slots[(int) sequence & mask];
        }
        return NOT_READY;
    }

    @Override
    public void release(int reader, long sequence) {
        COUNTERS.setRelease(counters, (reader + 2) * STRIDE, sequence + 1);
        if (oneThread) {
            return;
        }
        VarHandle.fullFence(); // the store above before the writer's announcement below
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
