package dev.kiln;

import dev.kiln.executor.TaskError;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;

/**
 * The result of one execution of a compiled graph. Futures of one graph may be read in any
 * order and from any thread; a thread waiting in {@link #get} also collects the results of
 * earlier executions into their futures. Each future can be read any number of times.
 *
 * @param <T> the result type ({@code List<Object>} for a graph built with {@code Graph.outputs})
 */
public final class GraphFuture<T> {

    private static final int PENDING = 0;
    private static final int DONE = 1;
    private static final int FAILED = 2;
    /** Claimed by one completing thread, which writes the outcome and then sets DONE or FAILED. */
    private static final int SETTLING = 3;
    private static final AtomicIntegerFieldUpdater<GraphFuture<?>> STATE = stateUpdater();

    private final CompiledGraph<?, ?> graph;
    private final long sequence;
    private final CompletableFuture<T> async;
    private volatile int state;
    private Object value;
    private RuntimeException failure;
    /** When it was submitted ({@code System.nanoTime()}), while the graph keeps statistics or traces; else 0. */
    long submittedAt;
    /** Its JFR event while a recording has executions enabled, else null; ends when the result is collected. */
    dev.kiln.executor.KilnEvents.Execution event;

    GraphFuture(CompiledGraph<?, ?> graph, long sequence, CompletableFuture<T> async) {
        this.graph = graph;
        this.sequence = sequence;
        this.async = async;
    }

    /** {@return the execution's sequence number, from 0} */
    public long sequence() {
        return sequence;
    }

    /** {@return whether the execution finished (with a result or an error)} */
    public boolean isDone() {
        int s = state;
        return s == DONE || s == FAILED;
    }

    /**
     * Waits for the result for at most the graph's {@code getTimeout}.
     *
     * @return the result
     * @throws ActorTaskException       if an actor method threw in this execution
     * @throws ActorDiedException       if an actor of the graph died (and the graph closed)
     * @throws GraphRestartedException  if an actor died while the execution was in flight and the graph restarted
     * @throws GraphClosedException     if the graph was closed before the execution finished
     * @throws ChannelTimeoutException  if the result did not arrive in time (the execution goes on)
     */
    public T get() {
        return get(graph.options().getTimeout());
    }

    /**
     * Waits for the result for at most {@code timeout}.
     *
     * @param timeout how long to wait
     * @param unit    its unit
     * @return the result
     * @throws ActorTaskException      if an actor method threw in this execution
     * @throws ActorDiedException      if an actor of the graph died (and the graph closed)
     * @throws GraphRestartedException if an actor died while the execution was in flight and the graph restarted
     * @throws GraphClosedException    if the graph was closed before the execution finished
     * @throws ChannelTimeoutException if the result did not arrive in time (the execution goes on)
     */
    public T get(long timeout, TimeUnit unit) {
        return get(Duration.ofNanos(unit.toNanos(timeout)));
    }

    /**
     * Waits for the result for at most {@code timeout}.
     *
     * @param timeout how long to wait
     * @return the result
     * @throws ActorTaskException      if an actor method threw in this execution
     * @throws ActorDiedException      if an actor of the graph died (and the graph closed)
     * @throws GraphRestartedException if an actor died while the execution was in flight and the graph restarted
     * @throws GraphClosedException    if the graph was closed before the execution finished
     * @throws ChannelTimeoutException if the result did not arrive in time (the execution goes on)
     */
    public T get(Duration timeout) {
        if (!isDone()) {
            graph.awaitResult(this, timeout);
        }
        return report();
    }

    @SuppressWarnings("unchecked")
    private T report() {
        if (state == DONE) {
            return (T) value;
        }
        RuntimeException f = failure;
        throw copyForCaller(f);
    }

    /** Rethrown exceptions get the caller's stack on top of the original one. */
    private static RuntimeException copyForCaller(RuntimeException f) {
        RuntimeException copy = switch (f) {
            case ActorTaskException e -> new ActorTaskException(e.actor(), e.method(), e.sequence(), e.getCause());
            case ActorDiedException e -> new ActorDiedException(e.getMessage(), e);
            case GraphClosedException e -> new GraphClosedException(e.getMessage(), e);
            case GraphRestartedException e -> new GraphRestartedException(e.getMessage(), e.sequence(), e.restart(), e);
            default -> f;
        };
        return copy;
    }

    /**
     * Called by the collecting thread. The {@link CompletableFuture} of an async execution is
     * completed later by {@link #publish()}, once the collector let go of collecting, so that
     * its callbacks may use the graph.
     */
    void complete(Object result) {
        if (result instanceof TaskError error) {
            settle(FAILED, null, new ActorTaskException(error.actor(), error.method(), error.sequence(), error.cause()));
        } else {
            settle(DONE, result, null);
        }
    }

    /** Called by close, or by an execute that raced with it; completes the async future at once. */
    void fail(RuntimeException error) {
        if (settle(FAILED, null, error)) {
            publish();
        }
    }

    /**
     * Called by a restarting graph, which holds the collector role: the execution was lost. The async future is
     * completed later by {@link #publish()}, on a thread where its callbacks may wait for the restart.
     *
     * @return whether this call settled the future
     */
    boolean lose(GraphRestartedException error) {
        return settle(FAILED, null, error);
    }

    /** Completes the async future with the outcome; after {@link #complete}, by the thread that collected it. */
    @SuppressWarnings("unchecked")
    void publish() {
        if (async == null) {
            return;
        }
        int s = state;
        if (s == DONE) {
            async.complete((T) value);
        } else if (s == FAILED) {
            async.completeExceptionally(failure);
        }
    }

    /** The first caller wins; the outcome is written before the state that publishes it. */
    private boolean settle(int outcome, Object result, RuntimeException error) {
        if (!STATE.compareAndSet(this, PENDING, SETTLING)) {
            return false;
        }
        value = result;
        failure = error;
        state = outcome;
        return true;
    }

    boolean isAsync() {
        return async != null;
    }

    CompletableFuture<T> async() {
        return async;
    }

    @Override
    public String toString() {
        int s = state;
        return "GraphFuture(#" + sequence + ", " + (s == DONE ? "done" : s == FAILED ? "failed" : "pending") + ")";
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static AtomicIntegerFieldUpdater<GraphFuture<?>> stateUpdater() {
        return (AtomicIntegerFieldUpdater) AtomicIntegerFieldUpdater.newUpdater(GraphFuture.class, "state");
    }
}
