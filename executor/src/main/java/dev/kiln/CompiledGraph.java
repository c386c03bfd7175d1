package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.LatencyRecorder;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.TraceWindow;
import dev.kiln.graph.Node;
import dev.kiln.transport.Waker;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A compiled graph, ready to execute again and again: its channels are allocated and each of
 * its actors runs its schedule on its own thread (or one it shares with other actors of the graph, when a JVM hosts
 * more of them than it has cores: {@code CompileOptions.actorThreads}), in the driver's JVM or in a worker JVM.
 * Created by {@link Kiln#compile}.
 *
 * <p>Three ways to run it, from the fastest:
 * <ul>
 *   <li><b>{@link #submit(Object)} / {@link #take(long)}, the allocation-free path</b>: {@code submit} writes the
 *       input into the input channel and returns the execution's sequence number; {@code take(seq)} waits for its
 *       result. The result waits in a cell the graph preallocated for the execution's slot, so nothing is
 *       allocated per execution: 0 bytes on the submitting thread and on the actors' threads for a graph of one
 *       output (whose values the actors do not allocate). A graph of several arguments uses
 *       {@link #submitArgs(Object...)} with an array the caller reuses (its {@code submit} takes the tuple of the
 *       arguments and allocates an array of them); a graph of several outputs
 *       ({@code Graph.outputs}) uses {@link #take(long, Object[])} with an array the caller reuses.
 *   <li><b>{@link #execute(Object)}</b>: the same, returning a {@link GraphFuture} (a {@link java.util.concurrent.Future});
 *       the future is the only allocation (and, for several outputs, the tuple or list of them; for several
 *       arguments, an array of the input tuple's components).
 *   <li><b>{@link #executeAsync(Object)}</b>: a {@link CompletableFuture} completed without anyone waiting, by a
 *       driver thread that collects while async executions are pending and sleeps otherwise.
 * </ul>
 * At most {@code maxInflight} executions are unfinished at once; a submit waits for room up to
 * {@code submitTimeout}. Results are collected by whichever thread waits ({@code get}, {@code take}, or a submit
 * when the graph is full) or by the async driver thread. When one output of a multi-output execution fails, the
 * execution fails at once, without waiting for its slower outputs (which still run, and give their slot back when
 * they finish).
 *
 * <p>Threads: the graph starts single-writer. The first thread that submits or waits owns it, and while it is the
 * only one, a submit takes no lock and no CAS (plain writes, release stores and one volatile store that a second
 * thread's arrival is checked against). The first time another thread submits, waits, or {@code executeAsync} is
 * called, the graph moves for good to its shared path: submissions are serialized by a lock (uncontended when one
 * thread submits) and results are collected by one thread at a time; every call stays correct from any number of
 * threads, futures may be read from any thread, in any order, and each {@code take} must be of a sequence this
 * thread or another returned from {@code submit}, once. Using the graph from one thread keeps it on the fast path.
 *
 * <p>{@link #close()} fails every unfinished future with {@link GraphClosedException}, stops the
 * actor loops (the actors stay alive for other graphs and dynamic calls) and frees the
 * channels, removing their shared-memory files.
 *
 * <p>When an actor of the graph dies (its thread ended on an error, its worker JVM ended, its
 * joined worker was lost), the graph follows its {@link CompileOptions#onActorDeath() policy}.
 * With {@link ActorDeathPolicy#FAIL} (the default) every pending and later execution fails with
 * {@link ActorDiedException} naming the actor or worker, and the graph closes. With
 * {@link ActorDeathPolicy#RESTART} the executions in flight fail with
 * {@link GraphRestartedException} (those whose results had already arrived complete normally),
 * the dead actors are recreated from their factories where their options place them, the plan is
 * compiled again for the new placement and a new deployment (channels, loops) replaces the old
 * one; {@code execute} meanwhile waits for the restart, up to {@code submitTimeout}.
 * {@link #restarts()} counts the restarts; each is logged.
 *
 * <p>What it does can be seen three ways: {@link #statistics()} (executions, failures, latency histograms per actor
 * method, queue depths), {@link #startTrace(int)} (a Perfetto timeline of a window of executions), and JFR events
 * ({@code dev.kiln.Execution}, {@code dev.kiln.ActorOperation}, {@code dev.kiln.ChannelWait}, under "Kiln" in JDK
 * Mission Control). See docs/observability.md.
 *
 * @param <I> the input type ({@code execute(I)}): the input node's type; a {@code Tuple2} to {@code Tuple8} for
 *            several arguments ({@code Graph.input2()} to {@code input8()})
 * @param <O> the result type: the output node's type; a {@code Tuple2} to {@code Tuple4} or a {@code List} for
 *            several outputs ({@code Graph.outputs})
 */
public final class CompiledGraph<I, O> implements AutoCloseable {

    private static final AtomicLong IDS = new AtomicLong();

    private final long id = IDS.incrementAndGet();
    private final String name = "graph-" + id;
    private final CompileOptions options;
    private final Waker driverWaker = new Waker();
    /** The graph's statistics and trace window in this JVM; before the first deployment, which its loops use. */
    private final GraphProbe probe;
    private final GraphState state = new GraphState(name);
    private final GraphDriver driver;
    private final GraphLifecycle lifecycle;

    /**
     * A graph wired to its first deployment, which starts nothing; the caller holds its actors and calls
     * {@link #start}.
     *
     * @param deploy wires the first deployment of this graph
     */
    CompiledGraph(Kiln kiln, Node<?> output, CompileOptions options,
                  java.util.function.Function<CompiledGraph<I, O>, Deployment> deploy) {
        this.options = options;
        this.probe = new GraphProbe(name, options.statistics());
        this.driver = new GraphDriver(name, output, options, state, driverWaker, probe, deploy.apply(this),
                (d, why) -> failed(d, why, null));
        this.lifecycle = new GraphLifecycle(this, kiln, output, options, state, driver);
    }

    /** @return the deployment that runs now */
    Deployment live() {
        return driver.live();
    }

    /** @return the graph's instrumentation in this JVM, which its loops here record into */
    GraphProbe probe() {
        return probe;
    }

    /**
     * A snapshot of the graph's statistics: executions, failures, the latency histogram of the executions and of each
     * method of each actor in this JVM (histograms of a sample: the first and then one in 8 of the executions and
     * calls), executions in flight and queued at each actor. Costs a few counter writes per method call, and two
     * clock reads per timed one, while the graph runs; any thread.
     *
     * @return the statistics so far
     * @throws IllegalStateException if the graph was compiled with {@code CompileOptions.statistics(false)}
     */
    public GraphStatistics statistics() {
        LatencyRecorder latency = driver.latency();
        if (latency == null) {
            throw new IllegalStateException(name + " keeps no statistics: it was compiled with "
                    + "CompileOptions.statistics(false); compile it with statistics(true) (the default)");
        }
        long sub = driver.submitted();
        long col = driver.collected();
        long at = driver.liveBase();
        List<GraphStatistics.ActorStatistics> actors = new ArrayList<>();
        for (GraphProbe.Actor a : probe.actors()) {
            GraphLoop loop = a.loop()[0];
            long queued = loop == null ? 0 : Math.max(0, sub - at - loop.executionsDone());
            List<GraphStatistics.MethodStatistics> methods = new ArrayList<>();
            a.methods().forEach((m, r) -> {
                LatencyHistogram h = r.snapshot();
                methods.add(new GraphStatistics.MethodStatistics(m, r.calls(), r.failures(), h));
            });
            actors.add(new GraphStatistics.ActorStatistics(a.name(), queued, methods));
        }
        LatencyHistogram h = latency.snapshot();
        int slots = driver.slots();
        return new GraphStatistics(name, sub, latency.calls(), latency.failures(), (int) Math.max(0, sub - col), slots, h,
                actors);
    }

    /**
     * Starts recording a trace of the next {@code executions} executions (a Perfetto timeline: one track for the
     * executions, one per actor in this JVM). The executions in flight when it starts may show in part. Stop it and
     * write it with {@link GraphTrace#writeTo}.
     *
     * @param executions how many executions to record, 1 to 100,000 (20 bytes per method call recorded)
     * @return the trace being recorded
     * @throws IllegalArgumentException if {@code executions} is out of range
     * @throws IllegalStateException    if a trace of this graph is being recorded already
     */
    public GraphTrace startTrace(int executions) {
        TraceWindow window = new TraceWindow(name, executions);
        if (!probe.startTrace(window)) {
            throw new IllegalStateException(name + " is recording a trace already: close it (GraphTrace.close or "
                    + "writeTo) before starting another");
        }
        return new GraphTrace(probe, window);
    }

    /** @return the waker of the driver's threads, which a deployment's channels signal */
    Waker driverWaker() {
        return driverWaker;
    }

    /**
     * Opens the first deployment in every JVM and opens the graph; a death reported meanwhile is acted on once the
     * graph is open (by its policy).
     *
     * @throws dev.kiln.compiler.GraphCompileException if a worker JVM cannot take its part
     */
    void start() {
        lifecycle.start();
    }

    /** {@return the plan this graph runs now (a restart compiles it again for where the new actors live)} */
    public ExecutionPlan plan() {
        return driver.live().plan();
    }

    /** {@return the plan as Graphviz DOT} */
    public String toDot() {
        return driver.live().plan().toDot();
    }

    /** {@return the options the graph was compiled with} */
    public CompileOptions options() {
        return options;
    }

    /**
     * {@return how many times the graph restarted after an actor died ({@link ActorDeathPolicy#RESTART}): restarts
     *         that finished, with the new deployment running; 0 with {@link ActorDeathPolicy#FAIL}}
     */
    public int restarts() {
        return lifecycle.restarts();
    }

    /**
     * Starts an execution.
     *
     * @param input the input value: for a graph built on {@code Graph.input2()} to {@code input8()}, a
     *              {@code Tuple2} to {@code Tuple8} of the arguments; ignored by a graph that reads no input
     * @return the future of the result
     * @throws CapacityExceededException if {@code maxInflight} executions stayed unfinished for {@code submitTimeout},
     *                                   or a restart did not finish within it; nothing was started
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws NullPointerException      if the graph reads the components of a tuple input and {@code input} is null
     */
    public GraphFuture<O> execute(I input) {
        GraphFuture<O> f = new GraphFuture<>(this, false);
        driver.startInput(input, f);
        return f;
    }

    /**
     * Like {@link #execute(Object)}, with a future whose {@link GraphFuture#stage() stage} completes without any
     * thread calling {@code get}: the graph's driver thread collects results while async executions are pending, and
     * sleeps (no polling) while none is. Its callbacks run on the thread that collected the result, after it stopped
     * collecting, so they may call {@code execute}, {@code executeAsync} or {@code get} on this graph. Cancelling
     * the stage cancels the execution's future (see {@link GraphFuture#cancel}). The first call moves the graph to
     * its shared path (see the class description).
     *
     * @param input the input value, as for {@link #execute(Object)}
     * @return the stage, completed with the result or the execution's exception
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws NullPointerException      if the graph reads the components of a tuple input and {@code input} is null
     */
    public CompletableFuture<O> executeAsync(I input) {
        GraphFuture<O> f = new GraphFuture<>(this, true);
        driver.startInput(input, f);
        return f.stage();
    }

    /**
     * The allocation-free path: starts an execution with the graph's single input and returns its sequence number,
     * whose result {@link #take(long)} returns. Nothing is allocated per execution: the result waits in a cell the
     * graph preallocated for the execution's slot (see the class description for the threads that may call it).
     * Take each sequence once, in any order; a result nobody takes keeps its cell, and a later submit that needs
     * that cell fails.
     *
     * @param input the input value, as for {@link #execute(Object)}
     * @return the execution's sequence number
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws IllegalStateException     if the slot of this execution still holds the result of execution
     *                                   {@code sequence - maxInflight} (or earlier) that nobody took
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws NullPointerException      if the graph reads the components of a tuple input and {@code input} is null
     */
    public long submit(I input) {
        return driver.startInput(input, null);
    }

    /**
     * The allocation-free path for a graph of several input arguments: like {@link #submit(Object)}; the arguments
     * are copied into the slot's preallocated array, so the caller may reuse {@code args} as soon as this returns.
     *
     * @param args the arguments in the order of the input tuple's components ({@code args[0]} for
     *             {@code first()}, ...)
     * @return the execution's sequence number
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws IllegalStateException     as {@link #submit(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws IllegalArgumentException  if the number of arguments differs from the graph's, or it takes one
     */
    public long submitArgs(Object... args) {
        return driver.submitArgs(args);
    }

    /**
     * Waits up to {@code getTimeout} for the result of an execution started by {@link #submit} or
     * {@link #submitArgs}, and gives its cell back. Allocates nothing on its way for a graph of one output; for a
     * graph built with {@code Graph.outputs}, {@link #take(long, Object[])} fills an array the caller owns instead of
     * allocating the tuple or list this returns.
     *
     * @param sequence what {@code submit} returned
     * @return the result
     * @throws ActorTaskException       if an actor method threw in this execution
     * @throws ActorDiedException       if an actor of the graph died (and the graph closed)
     * @throws GraphRestartedException  if an actor died while the execution was in flight and the graph restarted
     * @throws GraphClosedException     if the graph was closed before the execution finished
     * @throws ChannelTimeoutException  if the result did not arrive in time (the execution goes on; take it again)
     * @throws IllegalArgumentException if {@code sequence} was not returned by {@code submit}, or was taken already
     */
    @SuppressWarnings("unchecked")
    public O take(long sequence) {
        return (O) driver.take(sequence);
    }

    /**
     * Like {@link #take(long)} for a graph built with {@code Graph.outputs}: copies the outputs, in the order
     * {@code Graph.outputs} lists them, into {@code outputs}, which the caller owns and may reuse; allocates nothing.
     *
     * @param sequence what {@code submit} returned
     * @param outputs  receives output {@code i} at index {@code i}; at least as long as the graph has outputs
     * @throws ActorTaskException       if an actor method threw in this execution
     * @throws ActorDiedException       if an actor of the graph died (and the graph closed)
     * @throws GraphRestartedException  if an actor died while the execution was in flight and the graph restarted
     * @throws GraphClosedException     if the graph was closed before the execution finished
     * @throws ChannelTimeoutException  if the result did not arrive in time (the execution goes on; take it again)
     * @throws IllegalArgumentException if {@code sequence} was not returned by {@code submit}, or was taken already,
     *                                  or {@code outputs} is too short
     */
    public void take(long sequence, Object[] outputs) {
        driver.take(sequence, outputs);
    }

    /** Called by {@link GraphFuture#get}. */
    void awaitResult(GraphFuture<?> future, Duration timeout) {
        driver.awaitResult(future, timeout);
    }

    /**
     * This graph as one stage of a {@link java.util.concurrent.Flow} pipeline (Reactive Streams, which Pekko Streams,
     * Reactor and RxJava bridge to): each element from upstream is one execution, each result goes downstream in
     * input order. Same as {@link #asProcessor(java.util.function.Function) asProcessor(null)}: the first execution
     * that fails fails the stream.
     *
     * @return a new processor, for one upstream and one downstream subscriber
     */
    public java.util.concurrent.Flow.Processor<I, O> asProcessor() {
        return asProcessor(null);
    }

    /**
     * This graph as one stage of a {@link java.util.concurrent.Flow} pipeline: each element from upstream is one
     * execution ({@link #executeAsync(Object)}; for a graph of several arguments, the element is their tuple), each
     * result goes downstream in input order. The contract:
     * <ul>
     * <li><b>Back-pressure.</b> It requests from upstream only up to {@code min(downstream's demand, emitted +
     * maxInflight)} elements ({@link CompileOptions#maxInflight()}): at most {@code maxInflight} executions are open
     * and at most {@code maxInflight} results wait for an earlier one; nothing is buffered beyond that. A slow
     * downstream slows upstream down. It assumes it is the graph's only submitter: other {@code execute} calls on the
     * same graph share its {@code maxInflight}, and an element that finds no capacity within {@code submitTimeout}
     * fails with {@link CapacityExceededException}.</li>
     * <li><b>An execution fails.</b> When an actor method threw ({@link ActorTaskException}) or a restart lost the
     * execution ({@link GraphRestartedException}), and {@code failureValue} is not null, its value (not null) is
     * emitted in that element's place and the stream goes on. Otherwise, and for any other failure (the graph
     * closed, an actor died, no capacity), the results before it are emitted, then upstream is cancelled and
     * downstream gets {@code onError} with that exception; the executions still in flight are dropped.</li>
     * <li><b>Upstream completes or fails.</b> The executions in flight are finished and emitted (as downstream's
     * demand allows), then downstream gets {@code onComplete}, or {@code onError} with upstream's error.</li>
     * <li><b>Downstream cancels.</b> No more elements are requested or submitted, upstream is cancelled, and the
     * results of the executions in flight are dropped when they arrive. The graph stays open and usable.</li>
     * </ul>
     * The processor follows the Reactive Streams rules (the TCK for {@code Flow} runs against it): signals to
     * downstream are never concurrent, and it has no thread of its own: results are emitted on the thread that
     * completed the execution, or on the thread of downstream's {@code request}. Closing the graph fails the stream
     * with {@link GraphClosedException}; closing is the caller's business, not the processor's.
     *
     * @param failureValue maps a failed element ({@link ActorTaskException} or {@link GraphRestartedException}) to
     *                     the value emitted in its place (if it throws, the stream fails with what it threw); null:
     *                     such a failure fails the stream
     * @return a new processor, for one upstream and one downstream subscriber (a second subscriber gets
     *         {@code onError})
     */
    public java.util.concurrent.Flow.Processor<I, O> asProcessor(
            java.util.function.Function<? super RuntimeException, ? extends O> failureValue) {
        return new GraphProcessor<>(this, failureValue);
    }

    /**
     * Closes the graph: every unfinished future fails with {@link GraphClosedException}, the
     * actor loops stop (waiting up to {@code teardownTimeout} for methods still running) and
     * the channels are freed. The actors stay usable. A restart in progress is abandoned. Idempotent;
     * returns in bounded time.
     */
    @Override
    public void close() {
        lifecycle.close();
    }

    /** {@return whether {@link #close()} was called or an actor died and the graph did not restart} */
    public boolean isClosed() {
        return state.isClosed();
    }

    /**
     * A loop of deployment {@code d} in this JVM died, on its actor's thread.
     *
     * @param d     the deployment
     * @param actor the actor
     * @param cause what it died of
     */
    void actorDied(Deployment d, ActorThread actor, Throwable cause) {
        lifecycle.actorDied(d, actor, cause);
    }

    /**
     * A worker reported that deployment {@code deploymentId} of this graph lost an actor or a peer; stale reports
     * (of a deployment a restart replaced) are ignored. Called by the runtime on its control-plane thread.
     *
     * @param deploymentId the deployment's id
     * @param why          what happened, naming the actor or the worker
     */
    void reported(long deploymentId, String why) {
        lifecycle.reported(deploymentId, why);
    }

    /**
     * A worker JVM ended: the deployment fails if it had actors there. Called by the runtime on its control-plane or
     * process-reaper thread.
     *
     * @param worker the worker
     * @param why    why, naming the worker
     */
    void workerDied(RemoteHost worker, String why) {
        lifecycle.workerDied(worker, why);
    }

    /**
     * Deployment {@code d} cannot run any more (an actor died, its worker ended, a channel lost its peer): by the
     * policy, the graph dies, or it restarts on a thread of its own. Reports about a deployment that is not the live
     * one are recorded on it only. Any thread; never waits.
     *
     * @param d     the deployment
     * @param why   what happened
     * @param cause the actor's error, when it died in this JVM
     */
    void failed(Deployment d, String why, Throwable cause) {
        lifecycle.failed(d, why, cause);
    }

    @Override
    public String toString() {
        return name;
    }
}
