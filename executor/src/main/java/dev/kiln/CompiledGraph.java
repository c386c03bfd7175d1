package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.KilnEvents;
import dev.kiln.executor.LatencyRecorder;
import dev.kiln.executor.TraceWindow;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.TaskError;
import dev.kiln.graph.Node;
import dev.kiln.transport.Channel;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.Waker;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A compiled graph, ready to execute again and again: its channels are allocated and each of
 * its actors runs its schedule on its own thread, in the driver's JVM or in a worker JVM.
 * Created by {@link Kiln#compile}.
 *
 * <p>{@code execute} writes the input into the input channel and returns a
 * {@link GraphFuture}; at most {@code maxInflight} executions are unfinished at once. Results
 * are collected in order by whichever thread waits ({@code get}, or {@code execute} when the
 * graph is full) or, for {@code executeAsync}, by a driver thread started on first use.
 *
 * <p>Thread-safe: {@code execute} calls are serialized by a lock (taken once per call,
 * uncontended when one thread submits); futures may be read from any thread, in any order.
 * {@link #close()} fails every unfinished future with {@link GraphClosedException}, stops the
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
 * @param <I> the input type ({@code execute(I)}); for several arguments use {@code execute(a, b, ...)}
 * @param <O> the result type
 */
public final class CompiledGraph<I, O> implements AutoCloseable {

    private static final AtomicLong IDS = new AtomicLong();
    private static final System.Logger LOG = System.getLogger("dev.kiln");
    /** Only asked whether JFR records executions: an execution's event is allocated only when it does. */
    private static final KilnEvents.Execution EXECUTION_EVENTS = new KilnEvents.Execution();
    /** Being compiled: deaths are recorded on the deployment, and {@link #start} acts on them once it is open. */
    private static final int STARTING = 0;
    private static final int OPEN = 1;
    private static final int CLOSED = 2;
    private static final int DIED = 3;
    /** An actor died and the restart thread replaces the deployment; {@code execute} waits. */
    private static final int RESTARTING = 4;

    private final long id = IDS.incrementAndGet();
    private final String name = "graph-" + id;
    private final Kiln kiln;
    private final Node<?> output;
    private final CompileOptions options;
    private final ActorDeathPolicy policy;
    private final int slots;
    private final GraphFuture<?>[] pending;
    private final Waker driverWaker = new Waker();
    private final KilnIdleStrategy driverIdle;
    private final ReentrantLock submitLock = new ReentrantLock();
    /** Signalled under {@link #submitLock} when a restart ends, or the graph stops for good. */
    private final Condition deployed = submitLock.newCondition();
    private final AtomicBoolean collecting = new AtomicBoolean();
    /** Async futures settled by the collector and not yet published; guarded by {@link #collecting}. */
    private final List<GraphFuture<?>> settledAsync = new ArrayList<>();
    private final AtomicInteger state = new AtomicInteger(STARTING);
    private final AtomicInteger asyncPending = new AtomicInteger();
    private volatile long submitted;
    private volatile long collected;
    /** The deployment that runs; a restart replaces it while it holds the submit lock and the collector role. */
    private volatile Deployment live;
    /** The deployment a restart is starting, until it replaces {@link #live}; for the runtime's death reports. */
    private volatile Deployment next;
    /** The graph's sequence number of {@link #live}'s execution 0; read and written under the driver's roles. */
    private long base;
    /** Why the graph stopped for good; set once, before {@link #state} is CLOSED or DIED. */
    private final AtomicReference<RuntimeException> terminal = new AtomicReference<>();
    private volatile Thread completer;
    private volatile Thread restarter;
    private int outProgress;
    /** When each restart within the policy's window began (nanoTime); guarded by itself. */
    private final ArrayDeque<Long> restartTimes = new ArrayDeque<>();
    private final AtomicInteger restartsBegun = new AtomicInteger();
    private volatile int restartsDone;
    /** The graph's statistics and trace window in this JVM; before {@link #live}, which its loops register with. */
    private final GraphProbe probe;
    /** Executions' latencies and failures, recorded by the collecting thread; null when statistics are off. */
    private final LatencyRecorder latency;
    /** {@link #base}, for {@link #statistics()} on other threads. */
    private volatile long liveBase;

    /**
     * A graph wired to its first deployment, which starts nothing; the caller holds its actors and calls
     * {@link #start}.
     *
     * @param deploy wires the first deployment of this graph
     */
    CompiledGraph(Kiln kiln, Node<?> output, CompileOptions options,
                  java.util.function.Function<CompiledGraph<I, O>, Deployment> deploy) {
        this.kiln = kiln;
        this.output = output;
        this.options = options;
        this.policy = options.onActorDeath();
        this.slots = options.maxInflight();
        this.driverIdle = new KilnIdleStrategy(options.idle(), driverWaker, this::sleepOnOutput);
        this.pending = new GraphFuture<?>[slots];
        this.probe = new GraphProbe(name, options.statistics());
        this.latency = options.statistics() ? new LatencyRecorder() : null;
        this.live = deploy.apply(this);
    }

    /** @return the deployment that runs now */
    Deployment live() {
        return live;
    }

    /** @return the graph's instrumentation in this JVM, which its loops here record into */
    GraphProbe probe() {
        return probe;
    }

    /**
     * A snapshot of the graph's statistics: executions, failures, the latency histogram of the executions and of each
     * method of each actor in this JVM, executions in flight and queued at each actor. Costs a few clock reads and
     * counter writes per method call while the graph runs; any thread.
     *
     * @return the statistics so far
     * @throws IllegalStateException if the graph was compiled with {@code CompileOptions.statistics(false)}
     */
    public GraphStatistics statistics() {
        if (latency == null) {
            throw new IllegalStateException(name + " keeps no statistics: it was compiled with "
                    + "CompileOptions.statistics(false); compile it with statistics(true) (the default)");
        }
        long sub = submitted;
        long col = collected;
        long at = liveBase;
        List<GraphStatistics.ActorStatistics> actors = new ArrayList<>();
        for (GraphProbe.Actor a : probe.actors()) {
            GraphLoop loop = a.loop()[0];
            long queued = loop == null ? 0 : Math.max(0, sub - at - loop.executionsDone());
            List<GraphStatistics.MethodStatistics> methods = new ArrayList<>();
            a.methods().forEach((m, r) -> {
                LatencyHistogram h = r.snapshot();
                methods.add(new GraphStatistics.MethodStatistics(m, h.count(), r.failures(), h));
            });
            actors.add(new GraphStatistics.ActorStatistics(a.name(), queued, methods));
        }
        LatencyHistogram h = latency.snapshot();
        return new GraphStatistics(name, sub, h.count(), latency.failures(), (int) Math.max(0, sub - col), slots, h,
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
        Deployment first = live;
        first.start();
        state.compareAndSet(STARTING, OPEN);
        String failure = first.failure();
        if (failure != null) {
            failed(first, failure, null);
        }
    }

    /**
     * The driver's sleep while it waits for an output written in another JVM, whose writer cannot
     * unpark it. A writer on another host that stays unreachable fails the deployment.
     */
    private boolean sleepOnOutput(long nanos) {
        Deployment d = live;
        int o = outProgress;
        if (o < d.outChannels.length && d.outCrosses[o] && collected < submitted) {
            if (!d.outChannels[o].awaitPublished(d.outReaders[o], collected - base, nanos)) {
                String lost = d.outChannels[o].peerLoss(d.outReaders[o]);
                if (lost != null) {
                    failed(d, lost, null);
                }
            }
            return true;
        }
        return false;
    }

    /** {@return the plan this graph runs now (a restart compiles it again for where the new actors live)} */
    public ExecutionPlan plan() {
        return live.plan();
    }

    /** {@return the plan as Graphviz DOT} */
    public String toDot() {
        return live.plan().toDot();
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
        return restartsDone;
    }

    /**
     * Starts an execution with the graph's single input.
     *
     * @param input the input value (ignored by a graph that reads no input)
     * @return the future of the result
     * @throws CapacityExceededException if {@code maxInflight} executions stayed unfinished for {@code submitTimeout},
     *                                   or a restart did not finish within it; nothing was started
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws IllegalArgumentException  if the graph takes several input arguments
     */
    public GraphFuture<O> execute(I input) {
        checkArity(1);
        return submit(input, false);
    }

    /**
     * Starts an execution with positional arguments: {@code InputNode.arg(i)} reads argument {@code i}.
     *
     * @param first  argument 0
     * @param second argument 1
     * @param more   arguments 2...
     * @return the future of the result
     * @throws CapacityExceededException if {@code maxInflight} executions stayed unfinished for {@code submitTimeout},
     *                                   or a restart did not finish within it; nothing was started
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     * @throws IllegalArgumentException  if the number of arguments differs from the graph's
     */
    public GraphFuture<O> execute(Object first, Object second, Object... more) {
        Object[] args = arguments(first, second, more);
        return submit(args, false);
    }

    /**
     * Like {@link #execute(Object)}, with a {@link CompletableFuture} that completes without any
     * thread calling {@code get} (a driver thread collects results while async executions are pending).
     * Its callbacks run on the thread that collected the result, after it stopped collecting, so
     * they may call {@code execute}, {@code executeAsync} or {@code get} on this graph.
     *
     * @param input the input value
     * @return a future completed with the result or the execution's exception
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     */
    public CompletableFuture<O> executeAsync(I input) {
        checkArity(1);
        return submit(input, true).async();
    }

    /**
     * Like {@link #execute(Object, Object, Object...)}, with a {@link CompletableFuture}.
     *
     * @param first  argument 0
     * @param second argument 1
     * @param more   arguments 2...
     * @return a future completed with the result or the execution's exception
     * @throws CapacityExceededException as {@link #execute(Object)}
     * @throws GraphClosedException      if the graph is closed
     * @throws ActorDiedException        if an actor of the graph died and the graph closed
     */
    public CompletableFuture<O> executeAsync(Object first, Object second, Object... more) {
        Object[] args = arguments(first, second, more);
        return submit(args, true).async();
    }

    private Object[] arguments(Object first, Object second, Object[] more) {
        checkArity(2 + more.length);
        Object[] args = new Object[2 + more.length];
        args[0] = first;
        args[1] = second;
        System.arraycopy(more, 0, args, 2, more.length);
        return args;
    }

    private void checkArity(int given) {
        int arity = live.plan().inputArity();
        if (given == 1 ? arity > 1 : given != arity) {
            throw new IllegalArgumentException(name + " takes " + arity + " input argument" + (arity == 1 ? "" : "s")
                    + " (InputNode.arg(0.." + Math.max(arity - 1, 0) + ")), execute got " + given);
        }
    }

    private GraphFuture<O> submit(Object record, boolean async) {
        long deadline = System.nanoTime() + options.submitTimeout().toNanos();
        submitLock.lock();
        try {
            while (true) {
                if (state.get() != OPEN) {
                    awaitDeployed(deadline);
                }
                if (submitted - collected >= slots && !awaitCapacity(deadline)) {
                    continue; // a restart began meanwhile
                }
                // Read after waiting: a callback run meanwhile on this thread may have submitted (the lock is reentrant).
                long seq = submitted;
                Deployment d = live;
                GraphFuture<O> future = new GraphFuture<>(this, seq, async ? new CompletableFuture<>() : null);
                if (latency != null || probe.trace() != null) {
                    future.submittedAt = System.nanoTime();
                }
                if (EXECUTION_EVENTS.isEnabled()) {
                    KilnEvents.Execution e = new KilnEvents.Execution();
                    e.begin();
                    future.event = e;
                }
                int slot = (int) (seq % slots);
                pending[slot] = future;
                try {
                    if (!d.input.offer(seq - base, record) && !offerSlowly(d, seq, record, deadline)) {
                        pending[slot] = null; // a restart began: submit to the next deployment
                        continue;
                    }
                } catch (RuntimeException e) {
                    pending[slot] = null; // not started: nothing will complete it
                    if (d.inputCrosses && e instanceof IllegalArgumentException) {
                        throw new IllegalArgumentException(name + ": cannot send the input of execution #" + seq
                                + " to another JVM, it was not started: " + GraphLoop.explain(e), e);
                    }
                    throw e;
                }
                if (async) {
                    asyncPending.incrementAndGet(); // before the collector can see the execution
                }
                submitted = seq + 1;
                int s = state.get();
                if (s == CLOSED || s == DIED) {
                    future.fail(terminalFor(seq)); // closed while we published: nobody else will finish it
                }
                if (async) {
                    ensureCompleter();
                }
                return future;
            }
        } finally {
            submitLock.unlock();
        }
    }

    /**
     * While the graph restarts, waits for it (giving up the submit lock meanwhile) until {@code deadline}; the
     * submit lock is held again on return.
     *
     * @throws CapacityExceededException if the restart did not finish in time
     * @throws ActorDiedException        if the graph died (the restart failed, or an actor died without restart)
     * @throws GraphClosedException      if the graph was closed
     */
    private void awaitDeployed(long deadline) {
        while (true) {
            int s = state.get();
            if (s == OPEN) {
                return;
            }
            if (s != RESTARTING) {
                ensureOpen();
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new CapacityExceededException(name + " is restarting after an actor died and did not finish "
                        + "within " + options.submitTimeout() + " (submitTimeout); execution #" + submitted + " was "
                        + "not started: submit it again later, or raise submitTimeout if restarts take longer "
                        + "(starting a worker JVM, waiting up to ActorDeathPolicy.placementTimeout for a worker)");
            }
            try {
                deployed.awaitNanos(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CapacityExceededException("interrupted while " + name + " restarts; execution #" + submitted
                        + " was not started", e);
            }
        }
    }

    /**
     * The input slot of {@code seq - maxInflight} can still be held for a moment after that
     * execution's result arrived: an actor releases its reads once its whole schedule is done.
     *
     * @return false if the graph began restarting (nothing was published)
     */
    private boolean offerSlowly(Deployment d, long seq, Object record, long deadline) {
        int tries = 0;
        while (!d.input.offer(seq - base, record)) {
            if (state.get() == RESTARTING) {
                return false;
            }
            ensureOpen();
            if (System.nanoTime() - deadline > 0) {
                throw new CapacityExceededException(name + ": the input slot of execution #" + (seq - slots)
                        + " was not released within " + options.submitTimeout() + " (submitTimeout); execution #" + seq
                        + " was not started. An actor may be stuck after its last method returned");
            }
            if (++tries < 64) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(10_000);
            }
        }
        return true;
    }

    private void ensureOpen() {
        int s = state.get();
        if (s != OPEN && s != RESTARTING) {
            RuntimeException t = terminal.get();
            throw t instanceof ActorDiedException died ? new ActorDiedException(died.getMessage(), died)
                    : new GraphClosedException(name + " is closed; compile the graph again to run it");
        }
    }

    /** @return false if the graph began restarting while it waited */
    private boolean awaitCapacity(long deadline) {
        while (submitted - collected >= slots) {
            boolean ready = await(null, deadline);
            if (state.get() == RESTARTING) {
                return false;
            }
            ensureOpen();
            if (!ready) {
                throw new CapacityExceededException(name + ": " + slots + " executions in flight (maxInflight) and none "
                        + "finished within " + options.submitTimeout() + " (submitTimeout); execution #" + submitted
                        + " was not started. An actor may be slow or stuck; raise CompileOptions.maxInflight or "
                        + "submitTimeout if the load is expected");
            }
        }
        return true;
    }

    /** Called by {@link GraphFuture#get}. */
    void awaitResult(GraphFuture<?> future, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        if (!await(future, deadline)) {
            throw new ChannelTimeoutException(name + ": execution #" + future.sequence() + " did not finish within "
                    + timeout + " (getTimeout); it is still running: call get again, or look for an actor that is "
                    + "slow or stuck");
        }
    }

    /**
     * Waits until {@code future} is done (or, with no future, until one more execution fits in
     * flight), collecting results meanwhile when no other thread does and the graph is open. The
     * collector completes the {@code CompletableFuture}s of {@code executeAsync} only after it let
     * go of collecting, so that their callbacks may execute, or wait for, this graph. While the graph
     * restarts or closes, nobody collects: the restart or the close settles the futures.
     *
     * @return false on timeout
     */
    private boolean await(GraphFuture<?> future, long deadline) {
        while (true) {
            if (state.get() == OPEN && collecting.compareAndSet(false, true)) {
                int outcome; // 1 ready, 0 timed out, -1 async results to publish first, 2 the graph left OPEN
                List<GraphFuture<?>> settled;
                try {
                    while (true) {
                        if (state.get() != OPEN) {
                            outcome = 2;
                            break;
                        }
                        int work = collect();
                        if (ready(future)) {
                            outcome = 1;
                            break;
                        }
                        if (!settledAsync.isEmpty()) {
                            outcome = -1;
                            break;
                        }
                        if (System.nanoTime() - deadline > 0) {
                            outcome = 0;
                            break;
                        }
                        driverIdle.idle(work);
                    }
                } finally {
                    settled = stopCollecting();
                }
                publish(settled);
                if (outcome == 0 || outcome == 1) {
                    return outcome == 1;
                }
                continue;
            }
            // Another thread collects for us, or the graph restarts or closes: wait for our future to be settled.
            if (ready(future)) {
                return true;
            }
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(20_000);
        }
    }

    private boolean ready(GraphFuture<?> future) {
        return future != null ? future.isDone() : submitted - collected < slots || state.get() != OPEN;
    }

    /** Gives up the collector role; returns the async futures it settled, to publish once it let go. */
    private List<GraphFuture<?>> stopCollecting() {
        List<GraphFuture<?>> settled = settledAsync.isEmpty() ? List.of() : List.copyOf(settledAsync);
        settledAsync.clear();
        driverIdle.reset();
        collecting.set(false);
        return settled;
    }

    private static void publish(List<GraphFuture<?>> settled) {
        // By index: a for-each allocated an iterator of the empty list on every execution (32 B, -prof gc).
        for (int i = 0; i < settled.size(); i++) {
            settled.get(i).publish();
        }
    }

    /** Moves finished results from the output channels into their futures; collector thread only. */
    private int collect() {
        Deployment d = live;
        Channel[] outChannels = d.outChannels;
        int[] outReaders = d.outReaders;
        boolean[] outCrosses = d.outCrosses;
        Object[] outValues = d.outValues;
        int work = 0;
        long seq = collected;
        long limit = submitted;
        while (seq < limit) {
            long at = seq - base;
            while (outProgress < outChannels.length) {
                Object v = outChannels[outProgress].poll(outReaders[outProgress], at);
                if (v == Channel.NOT_READY) {
                    return work;
                }
                // A value read in place from shared memory is valid until released: the future keeps a copy.
                outValues[outProgress] = !outCrosses[outProgress] ? v
                        : v instanceof RemoteError e ? TaskError.fromRemote(e) : Codecs.owned(v);
                outChannels[outProgress].release(outReaders[outProgress], at);
                outProgress++;
            }
            int slot = (int) (seq % slots);
            GraphFuture<?> future = pending[slot];
            pending[slot] = null;
            outProgress = 0;
            collected = ++seq;
            Object result = result(d);
            observe(future, result);
            future.complete(result);
            if (future.isAsync()) {
                asyncPending.decrementAndGet();
                settledAsync.add(future);
            }
            work++;
        }
        return work;
    }

    /** Records a finished execution in the statistics, the trace and JFR; before its future completes. */
    private void observe(GraphFuture<?> future, Object result) {
        boolean failed = result instanceof TaskError;
        long at = future.submittedAt;
        if (at != 0) {
            long now = System.nanoTime();
            if (latency != null) {
                latency.record(now - at, failed);
            }
            TraceWindow window = probe.trace();
            if (window != null) {
                window.executions().add(failed ? "execution (failed)" : "execution", future.sequence(), at, now);
            }
        }
        KilnEvents.Execution e = future.event;
        if (e != null) {
            future.event = null;
            e.end();
            if (e.shouldCommit()) {
                e.graph = name;
                e.sequence = future.sequence();
                e.failed = failed;
                e.commit();
            }
        }
    }

    private static Object result(Deployment d) {
        Object[] outValues = d.outValues;
        if (!d.plan().multiOutput()) {
            Object v = outValues[0];
            outValues[0] = null;
            return v;
        }
        int[] outPosition = d.outPosition;
        Object[] list = new Object[outPosition.length];
        for (int p = 0; p < list.length; p++) {
            Object v = outValues[outPosition[p]];
            if (v instanceof TaskError) {
                return v; // every output of a failed execution fails
            }
            list[p] = v;
        }
        Arrays.fill(outValues, null);
        return Collections.unmodifiableList(Arrays.asList(list));
    }

    private void ensureCompleter() {
        Thread t = completer;
        if (t == null) {
            t = Thread.ofPlatform().name("kiln-driver-" + name).daemon(true).unstarted(this::completeAsync);
            completer = t;
            t.start();
        } else {
            LockSupport.unpark(t);
        }
    }

    /** The driver thread of {@code executeAsync}: collects while async executions are pending and the graph is open. */
    private void completeAsync() {
        while (true) {
            int s = state.get();
            if (s == CLOSED || s == DIED) {
                return;
            }
            if (s == OPEN && asyncPending.get() > 0 && collecting.compareAndSet(false, true)) {
                List<GraphFuture<?>> settled;
                try {
                    while (asyncPending.get() > 0 && state.get() == OPEN && settledAsync.isEmpty()) {
                        driverIdle.idle(collect());
                    }
                } finally {
                    settled = stopCollecting();
                }
                publish(settled);
            } else {
                LockSupport.parkNanos(s == OPEN && asyncPending.get() > 0 ? 20_000 : 20_000_000);
            }
        }
    }

    /**
     * This graph as one stage of a {@link java.util.concurrent.Flow} pipeline (Reactive Streams, which Pekko Streams,
     * Reactor and RxJava bridge to): each element from upstream is one execution, each result goes downstream in
     * input order. Same as {@link #asProcessor(java.util.function.Function) asProcessor(null)}: the first execution
     * that fails fails the stream.
     *
     * @return a new processor, for one upstream and one downstream subscriber
     * @throws IllegalArgumentException if the graph takes several input arguments
     */
    public java.util.concurrent.Flow.Processor<I, O> asProcessor() {
        return asProcessor(null);
    }

    /**
     * This graph as one stage of a {@link java.util.concurrent.Flow} pipeline: each element from upstream is one
     * execution ({@link #executeAsync(Object)}), each result goes downstream in input order. The contract:
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
     * @throws IllegalArgumentException if the graph takes several input arguments
     */
    public java.util.concurrent.Flow.Processor<I, O> asProcessor(
            java.util.function.Function<? super RuntimeException, ? extends O> failureValue) {
        checkArity(1);
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
        if (terminal.get() == null && terminal.compareAndSet(null, new GraphClosedException(name + " was closed"))) {
            state.set(CLOSED);
            terminate(true);
            Thread r = restarter;
            if (r != null && r != Thread.currentThread()) {
                kiln.wakeWaiters(); // a restart waiting for a joined worker gives up
                try {
                    r.join(options.teardownTimeout());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /** {@return whether {@link #close()} was called or an actor died and the graph did not restart} */
    public boolean isClosed() {
        int s = state.get();
        return s == CLOSED || s == DIED;
    }

    /**
     * A loop of deployment {@code d} in this JVM died, on its actor's thread.
     *
     * @param d     the deployment
     * @param actor the actor
     * @param cause what it died of
     */
    void actorDied(Deployment d, ActorThread actor, Throwable cause) {
        failed(d, "actor " + actor.name() + " of " + name + " died of " + cause, cause);
    }

    /**
     * A worker reported that deployment {@code deploymentId} of this graph lost an actor or a peer; stale reports
     * (of a deployment a restart replaced) are ignored. Called by the runtime on its control-plane thread.
     *
     * @param deploymentId the deployment's id
     * @param why          what happened, naming the actor or the worker
     */
    void reported(long deploymentId, String why) {
        Deployment d = live;
        if (d.id() == deploymentId) {
            failed(d, why, null);
            return;
        }
        Deployment n = next;
        if (n != null && n.id() == deploymentId) {
            n.fail(why); // the restart that starts it sees this
        }
    }

    /**
     * A worker JVM ended: the deployment fails if it had actors there. Called by the runtime on its control-plane or
     * process-reaper thread.
     *
     * @param worker the worker
     * @param why    why, naming the worker
     */
    void workerDied(RemoteHost worker, String why) {
        Deployment d = live;
        if (d.uses(worker)) {
            failed(d, why, null);
        }
        Deployment n = next;
        if (n != null && n.uses(worker)) {
            n.fail(why);
        }
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
        d.fail(why);
        if (d != live || state.get() == STARTING) {
            return; // a replaced deployment, or one still being started: whoever starts it checks its failure
        }
        if (!policy.restart()) {
            died(new ActorDiedException(why + "; " + name + " is closed: create new actors and compile again", cause));
            return;
        }
        if (!state.compareAndSet(OPEN, RESTARTING)) {
            return; // restarting already, or closed
        }
        String limit = admitRestart();
        if (limit != null) {
            died(new ActorDiedException(why + "; " + limit, cause));
            return;
        }
        int number = restartsBegun.incrementAndGet();
        d.stopLoops();
        driverWaker.signal();
        LockSupport.unpark(completer);
        LOG.log(System.Logger.Level.WARNING, () -> name + ": " + printable(why) + "; restarting (restart " + number
                + ", " + policy + ")");
        Thread t = Thread.ofPlatform().name("kiln-restart-" + name).daemon(true)
                .unstarted(() -> restart(d, why, cause, number));
        restarter = t;
        t.start();
    }

    /** @return null if one more restart fits the policy's limit (and counts it), else why the graph must die */
    private String admitRestart() {
        long now = System.nanoTime();
        synchronized (restartTimes) {
            while (!restartTimes.isEmpty() && now - restartTimes.peekFirst() > policy.window().toNanos()) {
                restartTimes.pollFirst();
            }
            if (restartTimes.size() >= policy.maxRestarts()) {
                return name + " restarted " + restartTimes.size() + " times within " + policy.window() + ", the limit "
                        + "of its ActorDeathPolicy (CompileOptions.onActorDeath), so it is closed: find out why its "
                        + "actors die, or raise the limit (ActorDeathPolicy.RESTART.limit)";
            }
            restartTimes.addLast(now);
            return null;
        }
    }

    /**
     * The restart thread: settles the executions of the old deployment and stops it, recreates the dead actors,
     * compiles the plan again for where they live now, starts a new deployment and opens the graph on it. A restart
     * that fails because an actor or worker died meanwhile (a new child JVM killed while it started, a worker lost
     * while it prepared its part) is tried again, within the policy's limit; any other failure (no host for an actor
     * in time, a factory that throws, the runtime closing) fails the graph.
     */
    private void restart(Deployment old, String why, Throwable cause, int first) {
        long began = System.nanoTime();
        if (!retire(old, why, cause, first)) {
            return;
        }
        old.stop(true, true);
        List<Integer> actors = old.actorIds();
        int number = first;
        while (state.get() == RESTARTING) {
            Deployment d = null;
            boolean held = false;
            boolean deploying = false;
            try {
                List<String> recreated = kiln.recreateDead(actors, policy.placementTimeout(),
                        () -> state.get() != RESTARTING);
                if (state.get() != RESTARTING) {
                    return; // closed meanwhile: the recreated actors stay free
                }
                deploying = true;
                d = kiln.redeploy(this, output, options, name + "-r" + number);
                next = d;
                d.hold();
                held = true;
                d.start();
                if (!open(d)) {
                    d.stop(true, true); // closed meanwhile
                    return;
                }
                int n = number;
                boolean replanned = !placements(d).equals(placements(old));
                LOG.log(System.Logger.Level.INFO, () -> name + " restarted (restart " + n + ") in "
                        + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - began) + " ms: "
                        + (recreated.isEmpty() ? "no actor had to be recreated" : "recreated " + String.join(", ",
                        recreated)) + (replanned ? "; the plan changed with the placement" : "")
                        + "; executions from #" + submitted + " run on the new deployment");
                String failure = d.failure();
                if (failure != null) {
                    failed(d, failure, null); // it failed before it was live: restart again
                }
                return;
            } catch (RuntimeException e) {
                next = null;
                if (d != null) {
                    if (held) {
                        d.stop(true, true);
                    }
                    d.release();
                }
                if (state.get() != RESTARTING) {
                    return;
                }
                // Died again meanwhile: a worker lost while it created an actor or set up its part, an actor dead.
                List<String> dead = kiln.deadActors(actors);
                boolean again = deploying ? !dead.isEmpty() : causedByDeath(e);
                String limit = again ? admitRestart() : null;
                if (!again || limit != null) {
                    died(new ActorDiedException(why + "; " + name + " could not restart: " + e.getMessage()
                            + (limit != null ? "; " + limit : "; it is closed: create new actors and compile again"),
                            cause));
                    return;
                }
                number = restartsBegun.incrementAndGet();
                int n = number;
                LOG.log(System.Logger.Level.WARNING, () -> name + ": restart failed (" + printable(e.getMessage())
                        + ")" + (dead.isEmpty() ? "" : " as " + printable(String.join(", ", dead)) + " died")
                        + "; trying again (restart " + n + ")");
            }
        }
    }

    /** @return whether {@code e} comes from a worker or actor that died (not from a factory, a placement, a bug) */
    private static boolean causedByDeath(Throwable e) {
        for (Throwable c = e; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof ActorDiedException || c instanceof RemoteHost.WorkerDeathException) {
                return true;
            }
        }
        return false;
    }

    /**
     * First step of a restart: takes both driver roles, collects the results the old deployment already
     * published, fails every other execution in flight with {@link GraphRestartedException} and moves the
     * counters past them. Async futures are completed on another thread, where their callbacks may wait for the
     * restart.
     *
     * @return false if the graph closed meanwhile, or a driver thread did not let go of collecting (it then died)
     */
    private boolean retire(Deployment old, String why, Throwable cause, int number) {
        List<GraphFuture<?>> toPublish = new ArrayList<>();
        submitLock.lock();
        try {
            if (state.get() != RESTARTING) {
                return false;
            }
            if (!takeCollector()) {
                died(new ActorDiedException(why + "; " + name + " could not restart: a driver thread did not stop "
                        + "collecting results within " + options.teardownTimeout() + " (teardownTimeout)", cause));
                return false;
            }
            try {
                try {
                    collect();
                } catch (RuntimeException e) {
                    // The old channels failed: what they did not deliver is lost with the rest.
                }
                toPublish.addAll(settledAsync);
                settledAsync.clear();
                String lost = " of " + name + " was lost: " + why + "; " + name + " restarts (restart " + number
                        + ") and takes new executions: submit it again";
                for (long seq = collected; seq < submitted; seq++) {
                    int slot = (int) (seq % slots);
                    GraphFuture<?> f = pending[slot];
                    pending[slot] = null;
                    if (f != null && f.sequence() == seq
                            && f.lose(new GraphRestartedException("execution #" + seq + lost, seq, number, cause))
                            && f.isAsync()) {
                        asyncPending.decrementAndGet();
                        toPublish.add(f);
                    }
                }
                collected = submitted;
                outProgress = 0;
                Arrays.fill(old.outValues, null);
            } finally {
                driverIdle.reset();
                collecting.set(false);
            }
        } finally {
            submitLock.unlock();
        }
        if (!toPublish.isEmpty()) {
            Thread.ofVirtual().name("kiln-restart-callbacks-" + name).start(() -> publish(toPublish));
        }
        return true;
    }

    /** Last step of a restart: makes {@code d} the live deployment and opens the graph; false if it closed meanwhile. */
    private boolean open(Deployment d) {
        submitLock.lock();
        try {
            if (state.get() != RESTARTING || !takeCollector()) {
                return false;
            }
            try {
                // live first: a report about the old deployment from now on is stale, one about d waits for OPEN.
                live = d;
                next = null;
                base = submitted;
                liveBase = base;
                outProgress = 0;
                if (!state.compareAndSet(RESTARTING, OPEN)) {
                    return false;
                }
                restartsDone++;
                deployed.signalAll();
                return true;
            } finally {
                collecting.set(false);
            }
        } finally {
            submitLock.unlock();
        }
    }

    /** Takes the collector role, waiting up to {@code teardownTimeout} for a collector to notice the graph left OPEN. */
    private boolean takeCollector() {
        long deadline = System.nanoTime() + options.teardownTimeout().toNanos();
        while (!collecting.compareAndSet(false, true)) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            driverWaker.signal();
            LockSupport.parkNanos(100_000);
        }
        return true;
    }

    private void died(ActorDiedException died) {
        if (terminal.compareAndSet(null, died)) {
            state.set(DIED);
            terminate(false);
        }
    }

    private RuntimeException terminalFor(long seq) {
        RuntimeException t = terminal.get();
        if (t instanceof ActorDiedException died) {
            return new ActorDiedException("execution #" + seq + " lost: " + died.getMessage(), died.getCause());
        }
        return new GraphClosedException(name + " was closed before execution #" + seq + " finished");
    }

    private void terminate(boolean waitForLoops) {
        live.stopLoops();
        LockSupport.unpark(completer);
        driverWaker.signal();
        long end = submitted;
        for (long seq = collected; seq < end; seq++) {
            GraphFuture<?> f = pending[(int) (seq % slots)];
            if (f != null && f.sequence() == seq) {
                f.fail(terminalFor(seq));
            }
        }
        kiln.forget(this);
        if (waitForLoops) {
            tearDown();
        } else {
            // Called on a dying actor's thread or the control plane's: tear down elsewhere, never waiting here.
            Thread.ofVirtual().name("kiln-teardown-" + name).start(this::tearDown);
        }
    }

    /**
     * Stops the live deployment for good: waits for a submit in progress, wakes executes waiting for a restart,
     * takes the collector role for good (later waiters find their futures failed without collecting), then stops
     * the deployment in every JVM. If a collector is stuck, its channels are left to the GC rather than pulled away.
     */
    private void tearDown() {
        boolean abort = state.get() == DIED; // after a death, NCCL transfers whose peer is gone would wait forever
        boolean collector;
        Deployment d;
        submitLock.lock();
        try {
            deployed.signalAll();
            collector = takeCollector();
            d = live;
        } finally {
            submitLock.unlock();
        }
        d.stop(abort, collector);
    }

    private static List<dev.kiln.compiler.Topology.ActorPlacement> placements(Deployment d) {
        return d.plan().schedules().stream().map(ExecutionPlan.ActorSchedule::placement).toList();
    }

    /** Log lines about peers' reports: control characters escaped, length bounded. */
    private static String printable(String s) {
        String text = String.valueOf(s);
        StringBuilder b = new StringBuilder(Math.min(text.length(), 500));
        for (int i = 0; i < text.length() && b.length() < 500; i++) {
            char c = text.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        return text.length() > 500 ? b + "..." : b.toString();
    }

    @Override
    public String toString() {
        return name;
    }
}
