package dev.kiln;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Where a compiled graph is in its life (starting, open, restarting, closed, died) and, once it stopped for good,
 * why. The driver reads it on every submit and wait; the graph's lifecycle moves it.
 *
 * <p>Thread-safe: any thread may read it; moves are atomic.
 */
final class GraphState {

    /** Being compiled: deaths are recorded on the deployment, and the graph acts on them once it is open. */
    static final int STARTING = 0;
    static final int OPEN = 1;
    static final int CLOSED = 2;
    static final int DIED = 3;
    /** An actor died and the restart thread replaces the deployment; {@code execute} waits. */
    static final int RESTARTING = 4;

    /** The graph's name. */
    private final String name;
    private final AtomicInteger state = new AtomicInteger(STARTING);
    /** Why the graph stopped for good; set once, before {@link #state} is CLOSED or DIED. */
    private final AtomicReference<RuntimeException> terminal = new AtomicReference<>();

    /** @param name the graph's name */
    GraphState(String name) {
        this.name = name;
    }

    /** @return STARTING, OPEN, CLOSED, DIED or RESTARTING */
    int get() {
        return state.get();
    }

    /**
     * @param expected the state it must be in
     * @param next     the state it moves to
     * @return whether it moved
     */
    boolean compareAndSet(int expected, int next) {
        return state.compareAndSet(expected, next);
    }

    /**
     * Stops the graph for good, once: records why, then moves it to {@code last}.
     *
     * @param why  what later executions fail with
     * @param last CLOSED or DIED
     * @return false if it had stopped already
     */
    boolean stop(RuntimeException why, int last) {
        if (terminal.get() != null || !terminal.compareAndSet(null, why)) {
            return false;
        }
        state.set(last);
        return true;
    }

    /** @return whether it stopped for good (closed, or died without restart) */
    boolean isClosed() {
        int s = state.get();
        return s == CLOSED || s == DIED;
    }

    /** @throws RuntimeException what a closed or dead graph fails a new execution with */
    void ensureOpen() {
        int s = state.get();
        if (s != OPEN && s != RESTARTING) {
            RuntimeException t = terminal.get();
            throw t instanceof ActorDiedException died ? new ActorDiedException(died.getMessage(), died)
                    : new GraphClosedException(name + " is closed; compile the graph again to run it");
        }
    }

    /**
     * @param seq an execution the graph will not finish
     * @return what it fails with
     */
    RuntimeException terminalFor(long seq) {
        RuntimeException t = terminal.get();
        if (t instanceof ActorDiedException died) {
            return new ActorDiedException("execution #" + seq + " lost: " + died.getMessage(), died.getCause());
        }
        return new GraphClosedException(name + " was closed before execution #" + seq + " finished");
    }
}
