package dev.kiln.compiler;

/**
 * How an actor loop (and the driver waiting for a result) waits when it has nothing to do.
 */
public enum IdleMode {
    /** Spin on the CPU: lowest latency, burns a core per waiting thread. Only with a core to spare per actor. */
    SPIN,
    /**
     * Spin a few microseconds (yielding now and then), then, where the thread's recent waits ended within 20 us, yield
     * for up to twice as long as they lasted (a wake-up costs more than that), then park until a peer wakes it: for
     * 1 ms at a time where the thread waits on channels of its JVM (every peer can wake it: an actor's next step, the
     * driver's next result), for periods growing from 1 us to 1 ms where it waits on channels of other processes, so
     * that it looks again early. A graph that goes quiet parks within 20 us. The default.
     */
    BACKOFF,
    /** Park at once until a peer wakes the thread: idle-friendly, costs a wake-up (tens of microseconds) per hop. */
    BLOCKING
}
