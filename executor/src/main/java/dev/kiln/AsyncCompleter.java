package dev.kiln;

import java.util.concurrent.locks.LockSupport;

/**
 * The driver thread of {@code executeAsync}: collects while async executions are pending and the graph is open,
 * waiting for outputs with the graph's idle strategy; otherwise it parks until an async submit, a collector that
 * lets go while async executions are pending, a restart that ends, or the close wakes it. Started by the first async
 * submit; ends when the graph stops for good.
 *
 * <p>{@link #start} and {@link #wake} may be called from any thread; the loop runs on the completer's own thread.
 */
final class AsyncCompleter {

    /** The graph's name. */
    private final String name;
    private final GraphState state;
    private final GraphDriver driver;
    private volatile Thread thread;

    /**
     * @param name   the graph's name
     * @param state  the graph's state
     * @param driver the driver it collects for
     */
    AsyncCompleter(String name, GraphState state, GraphDriver driver) {
        this.name = name;
        this.state = state;
        this.driver = driver;
    }

    /** Starts the thread, or wakes it if it runs; called under the driver's submit lock. */
    void start() {
        Thread t = thread;
        if (t == null) {
            t = Thread.ofPlatform().name("kiln-driver-" + name).daemon(true).unstarted(this::run);
            thread = t;
            t.start();
        } else {
            LockSupport.unpark(t);
        }
    }

    /** Wakes the thread, if it was started, to look at the graph again. */
    void wake() {
        LockSupport.unpark(thread);
    }

    private void run() {
        while (!state.isClosed()) {
            if (!driver.collectAsync()) {
                LockSupport.park(this);
            }
        }
    }
}
