package dev.kiln.executor;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Who runs an actor's steps while a loop of it is offered to the threads of its graph ({@link SharedLoops}): the
 * thread that runs the actor (its own, or its carrier) and the threads that take turns at it each hold the turn while
 * they run it, so its methods run one at a time, and each holder sees what the previous one wrote (taking is an
 * acquiring compare-and-set, giving a releasing write).
 *
 * <p>No lost wake-up: the thread that runs the actor arms its waker before it re-checks its work, and
 * {@link #takeOrMark()} marks a turn it finds taken; the holder's {@link #give()} then says so, and the holder signals
 * that thread. Either the thread takes the turn, or the holder sees the mark (both are read-modify-writes of one
 * variable), so a thread that parks because the turn was taken is always woken once it is given back.
 */
public final class Turn {

    private static final int FREE = 0;
    private static final int TAKEN = 1;
    /** Taken, and the thread that runs the actor found it so. */
    private static final int MISSED = 2;

    private final AtomicInteger state = new AtomicInteger();

    /**
     * For a thread that takes turns at the actor: takes the turn if nobody holds it.
     *
     * @return whether it took it
     */
    public boolean tryTake() {
        return state.compareAndSet(FREE, TAKEN);
    }

    /**
     * For the thread that runs the actor: takes the turn if nobody holds it, else marks that it missed it, so the
     * holder signals it when it gives the turn back.
     *
     * @return whether it took it
     */
    public boolean takeOrMark() {
        while (true) {
            int t = state.get();
            if (t == FREE) {
                if (state.compareAndSet(FREE, TAKEN)) {
                    return true;
                }
            } else if (t == MISSED || state.compareAndSet(TAKEN, MISSED)) {
                return false;
            }
        }
    }

    /** For the thread that runs the actor: takes the turn, waiting for a holder's turn (a batch) to end. */
    public void await() {
        while (!state.compareAndSet(FREE, TAKEN) && !state.compareAndSet(MISSED, TAKEN)) {
            LockSupport.parkNanos(10_000);
        }
    }

    /**
     * Gives the turn back.
     *
     * @return whether the thread that runs the actor missed it meanwhile ({@link #takeOrMark()}): the caller, if it
     *         is not that thread, signals it
     */
    public boolean give() {
        return state.getAndSet(FREE) == MISSED;
    }
}
