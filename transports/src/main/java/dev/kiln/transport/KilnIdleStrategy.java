package dev.kiln.transport;

import dev.kiln.compiler.IdleMode;
import org.agrona.concurrent.IdleStrategy;

import java.util.concurrent.locks.LockSupport;

/**
 * The idle strategy of actor loops and of the driver, for the three {@link IdleMode}s. In
 * the parking phases it arms a {@link Waker} first and returns once, so the caller's duty
 * cycle re-checks its work before the thread really parks; peers then unpark it as soon as
 * they make progress for it. A thread that waits on a channel shared with another process,
 * whose peer cannot unpark it, passes a {@link Sleeper} that sleeps in the channel instead (a
 * futex wait that the peer's publication or release ends). BACKOFF parks in periods growing from 1 us to 1 ms,
 * each a look at work nobody may signal, except where every wait of the thread is signalled, or the sleeper
 * declines the wait at hand (its peers are in this process): there it parks 1 ms at once, which the peer's signal
 * ends. Not thread-safe: one instance per waiting thread.
 *
 * <p>BACKOFF adapts to how soon the thread's work comes back. After its spins it yields, instead of
 * parking, for twice as long as its last waits that parked took, when those were short (at most
 * {@link #MAX_YIELD_NS}): a park and its wake-up cost the waking thread a system call on every hand-off and
 * the woken one a reschedule, which in a pipeline of cheap calls is most of an execution's time. A wait
 * that ends while the thread yields leaves the yielding as it is; a longer wait halves it, so a graph that
 * goes quiet parks again within {@link #MAX_YIELD_NS}. A yield gives the core to any thread that waits for
 * it: on a machine with fewer cores than Kiln threads, the yielding thread gives way to a peer with work at each call.
 */
public final class KilnIdleStrategy implements IdleStrategy {

    /**
     * Idle calls spent spinning before parking: a few microseconds, short because on a machine
     * with fewer cores than Kiln threads a spinner takes the CPU its peer needs.
     */
    private static final int MAX_SPINS = 32;
    /** Every fourth of those calls yields, so a peer waiting for this core runs at once. */
    private static final int YIELD_EVERY_MASK = 3;
    private static final long MIN_PARK_NS = 1_000;
    private static final long MAX_BACKOFF_PARK_NS = 1_000_000;
    /** A safety net only: blocked threads are woken by their peers' signals. */
    private static final long MAX_BLOCKING_PARK_NS = 20_000_000;

    /**
     * The longest BACKOFF yields on after its spins before it parks, in nanoseconds: a wake-up costs the waking
     * thread a system call and the woken one a reschedule (microseconds each on a virtual machine), so a thread
     * whose work came back within this long in its recent waits yields for it instead (see {@link #idle()}).
     */
    static final long MAX_YIELD_NS = 20_000;

    private final IdleMode mode;
    private final Waker waker;
    private final Sleeper sleeper;
    private final boolean signalled;
    private int spins;
    private long parkNs = MIN_PARK_NS;
    /** When the current wait began ({@link System#nanoTime()}); set at its first idle call. */
    private long idleSince;
    /** Whether the current wait got past spinning and yielding: it armed the waker and parks. */
    private boolean parking;
    /** How long BACKOFF yields after its spins, from 0 to {@link #MAX_YIELD_NS}: learnt from the last waits. */
    private long yieldNs;

    /**
     * @param mode  how to idle
     * @param waker the waker of the thread that will use this strategy
     */
    public KilnIdleStrategy(IdleMode mode, Waker waker) {
        this(mode, waker, null, false);
    }

    /**
     * @param mode      how to idle
     * @param waker     the waker of the thread that will use this strategy
     * @param sleeper   sleeps in place of a park when the thread waits on a channel shared with
     *                  another process; null to always park. A wait it declines is signalled (see
     *                  {@link Sleeper#sleep}): BACKOFF parks for its longest period at once
     * @param signalled whether everything the thread waits for signals its waker (channels of this process only, a
     *                  mailbox, a stop): BACKOFF then parks for its longest period at once, instead of growing
     *                  periods that each wake the thread to look (a safety net only, as in BLOCKING)
     */
    public KilnIdleStrategy(IdleMode mode, Waker waker, Sleeper sleeper, boolean signalled) {
        this.mode = mode;
        this.waker = waker;
        this.sleeper = sleeper;
        this.signalled = signalled;
    }

    /** Sleeps for the waiting thread where a park would not be ended by the peer it waits for. */
    @FunctionalInterface
    public interface Sleeper {
        /**
         * @param nanos longest sleep in nanoseconds
         * @return true if it slept (or found the wait over); false when the thread waits on peers of this process,
         *         which signal its waker: the caller parks instead, and BACKOFF then for its longest period at once
         */
        boolean sleep(long nanos);
    }

    @Override
    public void idle(int workCount) {
        if (workCount > 0) {
            reset();
        } else {
            idle();
        }
    }

    @Override
    public void idle() {
        switch (mode) {
            case SPIN -> Thread.onSpinWait();
            case BACKOFF -> {
                if (spins < MAX_SPINS) {
                    if (spins == 0) {
                        idleSince = System.nanoTime();
                    }
                    // Yield now and then while spinning: a peer sharing this core gets to run at once.
                    if ((++spins & YIELD_EVERY_MASK) == 0) {
                        Thread.yield();
                    } else {
                        Thread.onSpinWait();
                    }
                } else if (!parking && yieldNs > 0 && System.nanoTime() - idleSince < yieldNs) {
                    Thread.yield(); // the work came back this soon lately: cheaper than a park and its wake-up
                } else if (!waker.isArmed()) {
                    parking = true;
                    waker.arm();
                } else {
                    long nanos = nextParkNs();
                    if (sleeper == null || !sleeper.sleep(nanos)) {
                        // a sleeper declines a wait on peers of this process, which signal: no need to look early
                        LockSupport.parkNanos(sleeper == null ? nanos : MAX_BACKOFF_PARK_NS);
                    }
                    parkNs = Math.min(parkNs << 1, MAX_BACKOFF_PARK_NS);
                }
            }
            case BLOCKING -> {
                if (!waker.isArmed()) {
                    waker.arm();
                } else {
                    park(MAX_BLOCKING_PARK_NS);
                }
            }
        }
    }

    /**
     * @return how long BACKOFF's next park (or the sleeper's sleep in its place) lasts at most, in nanoseconds: 1 us
     *         doubling to 1 ms through a wait, or 1 ms at once for a thread whose waits are all {@code signalled}
     */
    long nextParkNs() {
        return signalled ? MAX_BACKOFF_PARK_NS : parkNs;
    }

    private void park(long nanos) {
        if (sleeper == null || !sleeper.sleep(nanos)) {
            LockSupport.parkNanos(nanos);
        }
    }

    @Override
    public void reset() {
        if (parking) {
            learn();
        }
        spins = 0;
        parkNs = MIN_PARK_NS;
        waker.disarm();
    }

    /**
     * After a BACKOFF wait that parked: sets how long the next waits yield, from how long this one lasted (from its
     * first idle call to the peer's signal; to now, if no signal woke it).
     */
    private void learn() {
        parking = false;
        long signalled = waker.signalledAt();
        yieldNs = nextYieldNs(yieldNs, (signalled - idleSince > 0 ? signalled : System.nanoTime()) - idleSince);
    }

    /**
     * @param yieldNs  how long waits yield now, in nanoseconds
     * @param waitedNs how long a wait that parked lasted
     * @return how long the next waits yield: twice a wait of at most {@link #MAX_YIELD_NS} (yielding that long would
     *         have caught it), never less than now and never more than {@link #MAX_YIELD_NS}; half of now after a
     *         longer wait, so that a thread whose work comes rarely soon parks at once again
     */
    static long nextYieldNs(long yieldNs, long waitedNs) {
        return waitedNs <= MAX_YIELD_NS ? Math.min(MAX_YIELD_NS, Math.max(yieldNs, 2 * waitedNs)) : yieldNs >> 1;
    }

    @Override
    public String alias() {
        return "kiln-" + mode.name().toLowerCase(java.util.Locale.ROOT);
    }
}
