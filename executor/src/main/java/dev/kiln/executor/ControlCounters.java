package dev.kiln.executor;

import dev.kiln.ControlStats;

import java.util.concurrent.atomic.AtomicLong;

/** The drop counts of one side of the control plane (a driver or a worker), summed over its links. Thread-safe. */
public final class ControlCounters {

    private final AtomicLong forged = new AtomicLong();
    private final AtomicLong replayed = new AtomicLong();
    private final AtomicLong malformed = new AtomicLong();

    /** Counts a message with a wrong MAC or from a sender that has not joined. */
    public void forged() {
        forged.incrementAndGet();
    }

    /** Counts an authenticated message seen before. */
    public void replayed() {
        replayed.incrementAndGet();
    }

    /** Counts a message that does not decode. */
    public void malformed() {
        malformed.incrementAndGet();
    }

    /** @return the counts now */
    public ControlStats snapshot() {
        return new ControlStats(forged.get(), replayed.get(), malformed.get());
    }

    /** @return the counts now, as a heartbeat carries them */
    Message.Heartbeat heartbeat() {
        return new Message.Heartbeat(forged.get(), replayed.get(), malformed.get());
    }
}
