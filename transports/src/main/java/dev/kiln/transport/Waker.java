package dev.kiln.transport;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.LockSupport;

/**
 * Lets a thread that is about to park announce it, so that a peer that makes progress for
 * it (publishes a value, releases a slot) unparks it instead of leaving it to its park
 * timeout; as the Disruptor's {@code LiteBlockingWaitStrategy}, a peer pays for a wake-up only
 * while the thread announced it sleeps.
 *
 * <p>Protocol (a Dekker pair): the waiting thread calls {@link #arm()} (a store and a full
 * fence), checks its condition once more, and only then parks; the peer changes its state,
 * fences once (for its whole batch: {@link InProcessChannel#publish()}, or a volatile store),
 * then calls {@link #signal()}, which reads the announcement and, if set, clears it and unparks
 * the thread. One of the two always sees the other's store, so no wake-up is lost; a cleared
 * announcement always comes with an unpark, so the thread parks again only after it re-armed
 * and re-checked. {@link #arm()}/{@link #disarm()} are called by the waiting thread only;
 * {@link #signal()} by any thread.
 *
 * <p>The announcement sits alone on its cache lines (padded on both sides), so a peer's
 * check does not contend with unrelated writes.
 */
public final class Waker extends WakerFields {

    @SuppressWarnings("unused")
    private long q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15;

    /** Announces that the calling thread may park soon, then fences. */
    public void arm() {
        thread = Thread.currentThread();
        ARMED.setVolatile(this, 1);
        // The caller's re-check is often an acquire load (Channel.poll), which the memory model lets
        // move before a release store; the full fence keeps it after the announcement.
        VarHandle.fullFence();
    }

    /** Announces that the calling thread is busy again. */
    public void disarm() {
        if ((int) ARMED.getOpaque(this) != 0) {
            ARMED.setOpaque(this, 0);
        }
    }

    /**
     * @return the {@link System#nanoTime()} of the last {@link #signal()} that unparked the thread (0 if none): when
     *         the work it was woken for arrived, give or take the signaller's fence; read by the woken thread
     */
    public long signalledAt() {
        return (long) SIGNALLED.getOpaque(this);
    }

    /** @return whether the thread announced it may park (and no peer has woken it since) */
    public boolean isArmed() {
        return (int) ARMED.getVolatile(this) != 0;
    }

    /**
     * Unparks the announced thread if it may be parked, and clears the announcement; cheap (one
     * load) otherwise. The caller fenced after the store that made progress for the thread.
     */
    public void signal() {
        if ((int) ARMED.getVolatile(this) != 0) {
            ARMED.setOpaque(this, 0);
            SIGNALLED.setOpaque(this, System.nanoTime());
            Thread t = thread;
            if (t != null) {
                LockSupport.unpark(t);
            }
        }
    }
}

/** Padding before the {@link Waker}'s fields. */
abstract class WakerPad {
    @SuppressWarnings("unused")
    private long p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15;
}

/** The {@link Waker}'s fields, between two pads. */
abstract class WakerFields extends WakerPad {
    static final VarHandle ARMED;
    static final VarHandle SIGNALLED;

    static {
        try {
            ARMED = MethodHandles.lookup().findVarHandle(WakerFields.class, "armed", int.class);
            SIGNALLED = MethodHandles.lookup().findVarHandle(WakerFields.class, "signalled", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The announced thread; written by that thread before it arms. */
    volatile Thread thread;
    /** 1 while the thread announced it may park. */
    int armed;
    /** When a peer last unparked the thread ({@link System#nanoTime()}); opaque accesses. */
    long signalled;
}
