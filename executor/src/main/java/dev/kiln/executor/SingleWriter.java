package dev.kiln.executor;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.LockSupport;

/**
 * The hand-off between a compiled graph's single-writer path and its locked path. The first thread that asks
 * ({@link #owned()}) owns the graph; while no other thread came, the owner runs its critical sections between
 * {@link #enter()} and {@link #exit()} with no lock and no CAS: one volatile store announces it is inside, then it
 * reads the flag a revoking thread clears first. That is a Dekker hand-off: either the owner sees the revocation and
 * stays out (it then takes the caller's lock like everyone else), or the revoking thread sees the owner inside and
 * waits in {@link #revoke} until it leaves.
 *
 * <p>Threads: {@link #owned()}, {@link #enter()}, {@link #exit()} by any thread ({@code enter} only after
 * {@code owned} returned true on that thread); {@link #share}, {@link #revoke} and {@link #reopen} by a thread that
 * holds the caller's lock (the one the locked path takes), so that at most one revokes at a time. The owner never
 * waits for another thread while inside, except in an idle strategy that the {@code wake} action of {@code revoke}
 * wakes.
 */
public final class SingleWriter {

    private static final VarHandle BUSY;
    private static final VarHandle OWNER;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            BUSY = l.findVarHandle(SingleWriter.class, "busy", int.class);
            OWNER = l.findVarHandle(SingleWriter.class, "owner", Thread.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The thread that owns the single-writer path; set once, by the first thread that asks. */
    private volatile Thread owner;
    /** Whether the owner may enter; cleared by {@link #revoke} before it looks at {@link #busy}. */
    private volatile boolean exclusive = true;
    /** Whether a second thread came: the path stays closed for good, {@link #reopen} does not open it. */
    private volatile boolean shared;
    /** 1 while the owner is inside. */
    private volatile int busy;

    /** A gate whose path is open and has no owner yet. */
    public SingleWriter() {
    }

    /**
     * {@return whether the calling thread owns the path: true for the first thread that asks, false for every other
     * thread}. The owner still {@link #enter()}s to learn whether the path is open.
     */
    public boolean owned() {
        Thread me = Thread.currentThread();
        Thread o = owner;
        if (o == me) {
            return true;
        }
        return o == null && OWNER.compareAndSet(this, null, me); // once per gate, not per call
    }

    /**
     * The owner enters its critical section. Costs one volatile store and one volatile load.
     *
     * @return true if it is inside (call {@link #exit()} after); false if the path was revoked meanwhile (it is not
     *         inside, and must take the locked path)
     */
    public boolean enter() {
        BUSY.setVolatile(this, 1);
        if (!exclusive) {
            BUSY.setRelease(this, 0);
            return false;
        }
        return true;
    }

    /** The owner leaves its critical section (a release store: what it wrote inside is seen by a revoker). */
    public void exit() {
        BUSY.setRelease(this, 0);
    }

    /** {@return whether the path is open (the owner, inside, checks this to notice a revocation and leave)} */
    public boolean isOpen() {
        return exclusive;
    }

    /** {@return whether a second thread came, so that the path stays closed for good} */
    public boolean isShared() {
        return shared;
    }

    /**
     * A second thread arrived: closes the path for good and waits for the owner to leave it. With the caller's lock
     * held.
     *
     * @param wake wakes the owner if it may sleep inside (in an idle strategy)
     */
    public void share(Runnable wake) {
        shared = true;
        revoke(wake);
    }

    /**
     * Closes the path (for a restart or a close) and waits for the owner to leave it; with the caller's lock held.
     * What the owner wrote inside is visible to the caller on return.
     *
     * @param wake wakes the owner if it may sleep inside (in an idle strategy)
     */
    public void revoke(Runnable wake) {
        if (!exclusive) {
            return;
        }
        exclusive = false;
        int spins = 0;
        while ((int) BUSY.getVolatile(this) != 0) {
            if (++spins < 100) {
                Thread.onSpinWait();
            } else {
                wake.run();
                LockSupport.parkNanos(10_000);
            }
        }
    }

    /** Opens the path again after {@link #revoke} (a restart that ended), unless a second thread came; with the lock. */
    public void reopen() {
        exclusive = !shared;
    }
}
