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
 * futex wait that the peer's publication or release ends). Not thread-safe: one instance per
 * waiting thread.
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

    private final IdleMode mode;
    private final Waker waker;
    private final Sleeper sleeper;
    private int spins;
    private long parkNs = MIN_PARK_NS;

    /**
     * @param mode  how to idle
     * @param waker the waker of the thread that will use this strategy
     */
    public KilnIdleStrategy(IdleMode mode, Waker waker) {
        this(mode, waker, null);
    }

    /**
     * @param mode    how to idle
     * @param waker   the waker of the thread that will use this strategy
     * @param sleeper sleeps in place of a park when the thread waits on a channel shared with
     *                another process; null to always park
     */
    public KilnIdleStrategy(IdleMode mode, Waker waker, Sleeper sleeper) {
        this.mode = mode;
        this.waker = waker;
        this.sleeper = sleeper;
    }

    /** Sleeps for the waiting thread where a park would not be ended by the peer it waits for. */
    @FunctionalInterface
    public interface Sleeper {
        /**
         * @param nanos longest sleep in nanoseconds
         * @return true if it slept (or found the wait over); false to let the caller park instead
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
                    // Yield now and then while spinning: a peer sharing this core gets to run at once.
                    if ((++spins & YIELD_EVERY_MASK) == 0) {
                        Thread.yield();
                    } else {
                        Thread.onSpinWait();
                    }
                } else if (!waker.isArmed()) {
                    waker.arm();
                } else {
                    park(parkNs);
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

    private void park(long nanos) {
        if (sleeper == null || !sleeper.sleep(nanos)) {
            LockSupport.parkNanos(nanos);
        }
    }

    @Override
    public void reset() {
        spins = 0;
        parkNs = MIN_PARK_NS;
        waker.disarm();
    }

    @Override
    public String alias() {
        return "kiln-" + mode.name().toLowerCase(java.util.Locale.ROOT);
    }
}
