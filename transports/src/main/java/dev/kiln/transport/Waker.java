package dev.kiln.transport;

import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.LockSupport;

/**
 * Lets a thread that is about to park announce it, so that a peer that makes progress for
 * it (publishes a value, releases a slot) unparks it instead of leaving it to its park
 * timeout.
 *
 * <p>Protocol: the waiting thread calls {@link #arm()}, checks its condition once more, and
 * only then parks; the peer changes its state with a volatile (full-fence) store and then
 * calls {@link #signal()}. One of the two always sees the other, so no wake-up is lost.
 * {@link #arm()}/{@link #disarm()} are called by the waiting thread only; {@link #signal()}
 * by any thread.
 */
public final class Waker {

    private volatile Thread thread;
    private volatile boolean armed;

    /** Announces that the calling thread may park soon. */
    public void arm() {
        thread = Thread.currentThread();
        armed = true;
        // The caller's re-check is often an acquire load (Channel.poll), which the memory model lets
        // move before this store; then the caller and the peer could both miss each other's store.
        VarHandle.fullFence();
    }

    /** Announces that the calling thread is busy again. */
    public void disarm() {
        if (armed) {
            armed = false;
        }
    }

    /** @return whether a thread announced it may park */
    public boolean isArmed() {
        return armed;
    }

    /** Unparks the announced thread if it may be parked; cheap (one volatile read) otherwise. */
    public void signal() {
        if (armed) {
            Thread t = thread;
            if (t != null) {
                LockSupport.unpark(t);
            }
        }
    }
}
