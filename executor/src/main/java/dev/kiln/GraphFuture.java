package dev.kiln;

import dev.kiln.executor.TaskError;

import java.time.Duration;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerFieldUpdater;

/**
 * The result of one execution of a compiled graph, as a {@link Future}. Futures of one graph may be read in any
 * order and from any thread; a thread waiting in {@link #get} also collects the results of earlier executions into
 * their futures. Each future can be read any number of times.
 *
 * <p>Unlike {@link Future#get()}, {@code get} throws the execution's failure itself (an unchecked
 * {@link ActorTaskException}, {@link ActorDiedException}, ...) rather than an {@code ExecutionException}, and a
 * timeout as {@link ChannelTimeoutException} rather than {@code TimeoutException}.
 *
 * <p>{@link #cancel} does not stop the execution: it was submitted already and runs to its end on the actors. The
 * future fails at once with {@link CancellationException}; the result is dropped when it arrives and its slot is
 * reclaimed as usual.
 *
 * <p>{@link #stage()} is a {@link CompletionStage} view completed without anyone calling {@code get}: for a future
 * of {@link CompiledGraph#executeAsync} by the graph's driver thread, which sleeps while nothing is pending.
 *
 * @param <T> the result type: the output node's type (a {@code Tuple2} to {@code Tuple4} or a {@code List} for a
 *            graph built with {@code Graph.outputs})
 */
public final class GraphFuture<T> implements Future<T> {

    private static final int PENDING = 0;
    private static final int DONE = 1;
    private static final int FAILED = 2;
    /** Claimed by one completing thread, which writes the outcome and then sets DONE or FAILED. */
    private static final int SETTLING = 3;
    private static final AtomicIntegerFieldUpdater<GraphFuture<?>> STATE = stateUpdater();

    private final CompiledGraph<?, ?> graph;
    /** Set by the graph before the execution is published. */
    long sequence = -1;
    private final Stage<T> stage;
    private volatile int state;
    private Object value;
    private RuntimeException failure;

    GraphFuture(CompiledGraph<?, ?> graph, boolean async) {
        this.graph = graph;
        this.stage = async ? new Stage<>(this) : null;
    }

    /** {@return the execution's sequence number, from 0} */
    public long sequence() {
        return sequence;
    }

    /** {@return whether the execution finished (with a result or an error) or the future was cancelled} */
    @Override
    public boolean isDone() {
        int s = state;
        return s == DONE || s == FAILED;
    }

    /**
     * Cancels waiting for the result: the future fails at once with {@link CancellationException} (and so does its
     * {@link #stage()}). The execution itself is not stopped (it was submitted already and runs on the actors); its
     * result is dropped when it arrives and its slot is reclaimed as usual.
     *
     * @param mayInterruptIfRunning ignored: no thread runs for this future alone
     * @return false if the future had finished already
     */
    @Override
    public boolean cancel(boolean mayInterruptIfRunning) {
        if (settle(FAILED, null, new CancellationException(graph + ": execution #" + sequence + " was cancelled; it "
                + "still ran, and its result was dropped"))) {
            publish();
            return true;
        }
        return false;
    }

    /** {@return whether {@link #cancel} settled this future} */
    @Override
    public boolean isCancelled() {
        return state == FAILED && failure instanceof CancellationException;
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
     * @throws CancellationException    if the future was cancelled
     */
    @Override
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
     * @throws CancellationException   if the future was cancelled
     */
    @Override
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
     * @throws CancellationException   if the future was cancelled
     */
    public T get(Duration timeout) {
        if (!isDone()) {
            graph.awaitResult(this, timeout);
        }
        return report();
    }

    /**
     * {@return the result of a future that finished normally, without waiting}
     *
     * @throws IllegalStateException if it is not done, or failed
     */
    @Override
    @SuppressWarnings("unchecked")
    public T resultNow() {
        if (state != DONE) {
            throw new IllegalStateException(this + " has no result" + (isDone() ? ": it failed" : " yet"));
        }
        return (T) value;
    }

    /**
     * {@return the failure of a future that failed, without waiting}
     *
     * @throws IllegalStateException if it is not done, or finished normally
     */
    @Override
    public Throwable exceptionNow() {
        if (state != FAILED) {
            throw new IllegalStateException(this + " did not fail" + (isDone() ? ": it has a result" : " (yet)"));
        }
        return failure;
    }

    /** {@return RUNNING, SUCCESS, FAILED or CANCELLED} */
    @Override
    public Future.State state() {
        int s = state;
        return s == DONE ? Future.State.SUCCESS : s != FAILED ? Future.State.RUNNING
                : failure instanceof CancellationException ? Future.State.CANCELLED : Future.State.FAILED;
    }

    /**
     * A {@link CompletionStage} of this execution, completed without any thread calling {@code get}. Its callbacks
     * run on the thread that collected the result, after it stopped collecting, so they may call {@code execute},
     * {@code executeAsync} or {@code get} on this graph. Cancelling it cancels this future.
     *
     * @return the stage
     * @throws IllegalStateException if the execution was started with {@code execute}: only
     *                               {@link CompiledGraph#executeAsync} keeps a driver thread collecting for it
     */
    public CompletableFuture<T> stage() {
        if (stage == null) {
            throw new IllegalStateException(this + " was started with execute, which completes it when a thread "
                    + "waits in get; start it with executeAsync for a stage that completes by itself");
        }
        return stage;
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
        return switch (f) {
            case ActorTaskException e -> new ActorTaskException(e.actor(), e.method(), e.sequence(), e.getCause());
            case ActorDiedException e -> new ActorDiedException(e.getMessage(), e);
            case GraphClosedException e -> new GraphClosedException(e.getMessage(), e);
            case GraphRestartedException e -> new GraphRestartedException(e.getMessage(), e.sequence(), e.restart(), e);
            default -> f;
        };
    }

    /**
     * Called by the collecting thread. The stage of an async execution is completed later by {@link #publish()},
     * once the collector let go of collecting, so that its callbacks may use the graph.
     *
     * @return whether this call settled the future (false if it was cancelled or failed already)
     */
    boolean complete(Object result) {
        if (result instanceof TaskError error) {
            return settle(FAILED, null, new ActorTaskException(error.actor(), error.method(), error.sequence(),
                    error.cause()));
        }
        return settle(DONE, result, null);
    }

    /** Called by close, or by an execute that raced with it; completes the stage at once. */
    void fail(RuntimeException error) {
        if (settle(FAILED, null, error)) {
            publish();
        }
    }

    /**
     * Called by a restarting graph, which holds the collector role: the execution was lost. The stage is completed
     * later by {@link #publish()}, on a thread where its callbacks may wait for the restart.
     *
     * @return whether this call settled the future
     */
    boolean lose(GraphRestartedException error) {
        return settle(FAILED, null, error);
    }

    /** Completes the stage with the outcome; after {@link #complete}, by the thread that collected it. */
    @SuppressWarnings("unchecked")
    void publish() {
        if (stage == null) {
            return;
        }
        int s = state;
        if (s == DONE) {
            stage.settle((T) value, null);
        } else if (s == FAILED) {
            stage.settle(null, failure);
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
        return stage != null;
    }

    @Override
    public String toString() {
        int s = state;
        return "GraphFuture(#" + sequence + ", " + (s == DONE ? "done" : s == FAILED ? (isCancelled() ? "cancelled"
                : "failed") : "pending") + ")";
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static AtomicIntegerFieldUpdater<GraphFuture<?>> stateUpdater() {
        return (AtomicIntegerFieldUpdater) AtomicIntegerFieldUpdater.newUpdater(GraphFuture.class, "state");
    }

    /** The stage view: completed by {@link #publish()}; its cancel cancels the execution's future. */
    private static final class Stage<T> extends CompletableFuture<T> {
        private final GraphFuture<T> owner;

        Stage(GraphFuture<T> owner) {
            this.owner = owner;
        }

        void settle(T value, Throwable failure) {
            if (failure == null) {
                super.complete(value);
            } else {
                super.completeExceptionally(failure);
            }
        }

        /** Cancels the execution's future (see {@link GraphFuture#cancel}), which completes this stage. */
        @Override
        public boolean cancel(boolean mayInterruptIfRunning) {
            return owner.cancel(mayInterruptIfRunning) || isCancelled();
        }

        /** Refused: only the graph completes the stage. */
        @Override
        public boolean complete(T value) {
            return false;
        }

        /** Refused: only the graph completes the stage. */
        @Override
        public boolean completeExceptionally(Throwable ex) {
            return false;
        }

        @Override
        public <U> CompletableFuture<U> newIncompleteFuture() {
            return new CompletableFuture<>();
        }
    }
}
