package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.executor.ActorThread;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.KilnEvents;
import dev.kiln.executor.LatencyRecorder;
import dev.kiln.executor.TraceWindow;
import dev.kiln.executor.RemoteHost;
import dev.kiln.executor.SingleWriter;
import dev.kiln.executor.TaskError;
import dev.kiln.graph.Node;
import dev.kiln.transport.Channel;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.Waker;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
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
    /** The result cells, one per slot, preallocated: {@code cells[seq & mask]}; at least {@link #slots} of them. */
    private final Cell[] cells;
    private final int mask;
    /** The argument arrays of multi-argument executions, preallocated: {@code argSlots[seq & argMask]}. */
    private final Object[][] argSlots;
    private final int argMask;
    /** Per distinct output, the next sequence of the graph to read from it; collecting thread only. */
    private final long[] outDone;
    /** The single-writer path's hand-off: its owner, and whether a second thread closed it for good. */
    private final SingleWriter writer = new SingleWriter();
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
        int size = Integer.highestOneBit(Math.max(1, slots - 1)) << 1;
        if (slots == 1) {
            size = 1;
        }
        this.mask = size - 1;
        this.probe = new GraphProbe(name, options.statistics());
        this.latency = options.statistics() ? new LatencyRecorder() : null;
        this.live = deploy.apply(this);
        ExecutionPlan plan = live.plan();
        int outputs = live.outChannels.length;
        this.cells = new Cell[size];
        for (int i = 0; i < size; i++) {
            cells[i] = new Cell(outputs, plan.outputs().size());
        }
        this.outDone = new long[outputs];
        int arity = plan.inputArity();
        // Twice the cells: an argument array is reused only once its input slot was released (Channel.isFree),
        // whatever power of two the channel rounds maxInflight up to.
        this.argSlots = arity < 2 ? new Object[0][] : new Object[2 * size][arity];
        this.argMask = 2 * size - 1;
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
     * method of each actor in this JVM (histograms of a sample: the first and then one in 8 of the executions and
     * calls), executions in flight and queued at each actor. Costs a few counter writes per method call, and two
     * clock reads per timed one, while the graph runs; any thread.
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
                methods.add(new GraphStatistics.MethodStatistics(m, r.calls(), r.failures(), h));
            });
            actors.add(new GraphStatistics.ActorStatistics(a.name(), queued, methods));
        }
        LatencyHistogram h = latency.snapshot();
        return new GraphStatistics(name, sub, latency.calls(), latency.failures(), (int) Math.max(0, sub - col), slots,
                h, actors);
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
        long limit = submitted;
        for (int o = 0; o < d.outChannels.length; o++) {
            if (outDone[o] < limit) {
                if (!d.outCrosses[o]) {
                    return false; // an in-process writer unparks the driver
                }
                if (!d.outChannels[o].awaitPublished(d.outReaders[o], outDone[o] - base, nanos)) {
                    String lost = d.outChannels[o].peerLoss(d.outReaders[o]);
                    if (lost != null) {
                        failed(d, lost, null);
                    }
                }
                return true;
            }
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
        startInput(input, f);
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
        startInput(input, f);
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
        return startInput(input, null);
    }

    /**
     * Starts an execution of {@code input}: for a graph of several arguments, a {@code Tuple2} to {@code Tuple8}
     * whose components go into the slot's argument array.
     */
    private long startInput(Object input, GraphFuture<?> future) {
        if (live.plan().inputArity() <= 1) {
            return start(input, null, null, 0, false, future);
        }
        Object[] record = (Object[]) GraphCompiler.inputRecord(live.plan(), input);
        return start(record[0], record[1], record, 2, true, future);
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
        if (args.length < 2) {
            throw new IllegalArgumentException(name + ": submitArgs takes the arguments of a graph of 2 or more "
                    + "(Graph.input2() to input8()), got " + args.length + "; use submit(input) for a graph of one");
        }
        checkArity(args.length);
        return start(args[0], args[1], args, 2, true, null);
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
        Cell c = awaitTake(sequence);
        Object r = c.result;
        Object value = r != null || !live.plan().multiOutput() ? r
                : GraphCompiler.outputValue(output, c.kept.clone());
        giveBack(c);
        return (O) report(value, sequence);
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
        int n = live.plan().outputs().size();
        if (outputs.length < n) {
            throw new IllegalArgumentException(name + " has " + n + " outputs; take(sequence, outputs) got an "
                    + "array of " + outputs.length);
        }
        Cell c = awaitTake(sequence);
        Object r = c.result;
        boolean multi = live.plan().multiOutput();
        if (multi && r == null) {
            System.arraycopy(c.kept, 0, outputs, 0, n);
        }
        giveBack(c);
        Object v = report(r, sequence);
        if (!multi) {
            outputs[0] = v;
        }
    }

    /** A kept failure thrown, with the caller's stack on top; or the value. */
    private static Object report(Object value, long sequence) {
        if (value instanceof TaskError error) {
            throw new ActorTaskException(error.actor(), error.method(), error.sequence(), error.cause());
        }
        if (value instanceof Failure f) {
            RuntimeException e = f.error();
            throw switch (e) {
                case ActorDiedException d -> new ActorDiedException(d.getMessage(), d);
                case GraphClosedException g -> new GraphClosedException(g.getMessage(), g);
                case GraphRestartedException g -> new GraphRestartedException(g.getMessage(), g.sequence(),
                        g.restart(), g);
                default -> e;
            };
        }
        return value;
    }

    private Cell awaitTake(long sequence) {
        Cell c = cells[(int) sequence & mask];
        if (sequence < 0 || sequence >= submitted || c.seq != sequence || c.future != null
                || (int) HOLD.getAcquire(c) == FREE) {
            throw new IllegalArgumentException(name + ": execution #" + sequence + " was not started by submit, or "
                    + "was taken already; take each sequence that submit returned once");
        }
        if ((int) HOLD.getAcquire(c) != READY) {
            long deadline = System.nanoTime() + options.getTimeout().toNanos();
            boolean ready = writer.owned() ? ownerAwait(null, sequence, deadline) : awaitShared(null, sequence, deadline);
            if (!ready) {
                throw new ChannelTimeoutException(name + ": execution #" + sequence + " did not finish within "
                        + options.getTimeout() + " (getTimeout); it is still running: take it again, or look for an "
                        + "actor that is slow or stuck");
            }
            if ((int) HOLD.getAcquire(c) != READY) {
                c.result = new Failure(terminalFor(sequence)); // closed or died: nobody will collect it
            }
        }
        return c;
    }

    private static void giveBack(Cell c) {
        c.result = null;
        Arrays.fill(c.kept, null);
        HOLD.setRelease(c, FREE);
    }

    private void checkArity(int given) {
        int arity = live.plan().inputArity();
        if (given != arity) {
            throw new IllegalArgumentException(name + " takes " + arity + " input argument" + (arity == 1 ? "" : "s")
                    + " (a graph built on Graph.input" + arity + "()), submitArgs got " + given);
        }
    }

    /**
     * Starts an execution: on the owner's single-writer path when it can go at once, else on the locked path.
     *
     * @param a0       the input, or argument 0 when {@code args}
     * @param a1       argument 1 when {@code args}
     * @param rest     the arguments from 2 on start at {@code rest[from]}, when {@code args}
     * @param from     where they start
     * @param args     whether the graph takes several arguments
     * @param future   the execution's future, or null for {@link #submit}
     * @return the execution's sequence number
     */
    private long start(Object a0, Object a1, Object[] rest, int from, boolean args, GraphFuture<?> future) {
        boolean mine = writer.owned();
        if (future != null && future.isAsync()) {
            // The async driver thread collects with the collector role: nobody may collect on the owner's path.
            share();
        } else if (mine) {
            long seq = tryFast(a0, a1, rest, from, args, future);
            if (seq >= 0) {
                return seq;
            }
        } else {
            share();
        }
        return startLocked(a0, a1, rest, from, args, future);
    }

    /**
     * The single-writer path: {@link SingleWriter#enter()} (one volatile store, so that a second thread, a restart
     * or a close waits for the owner to leave), then plain writes and release stores only; no lock, no CAS, no
     * allocation. Gives up (returns -1, nothing started) whenever it would have to wait.
     */
    private long tryFast(Object a0, Object a1, Object[] rest, int from, boolean args, GraphFuture<?> future) {
        if (!writer.enter()) {
            return -1;
        }
        try {
            if (state.get() != OPEN) {
                return -1;
            }
            long seq = submitted;
            if (seq - collected >= slots) {
                collect();
                if (seq - collected >= slots) {
                    return -1;
                }
            }
            Cell c = cells[(int) seq & mask];
            if ((int) HOLD.getAcquire(c) != FREE) {
                return -1; // an untaken result: the locked path says so
            }
            Deployment d = live;
            Object record = a0;
            if (args) {
                if (!d.input.isFree(seq - base)) {
                    return -1;
                }
                record = fillArgs(seq, a0, a1, rest, from);
            }
            prepare(c, seq, future);
            if (!offer(d, seq, record)) {
                c.future = null;
                HOLD.setRelease(c, FREE);
                return -1;
            }
            SUBMITTED.setRelease(this, seq + 1);
            return seq;
        } finally {
            writer.exit();
        }
    }

    /** Sets up the cell of {@code seq} for a new execution; it is FREE and collected. */
    private void prepare(Cell c, long seq, GraphFuture<?> future) {
        c.seq = seq;
        c.settled = false;
        c.future = future;
        if (future != null) {
            future.sequence = seq;
        } else {
            HOLD.setRelease(c, WAITING);
        }
        c.submittedAt = latency != null && latency.timeNext() || probe.trace() != null ? System.nanoTime() : 0;
        if (EXECUTION_EVENTS.isEnabled()) {
            KilnEvents.Execution e = new KilnEvents.Execution();
            e.begin();
            c.event = e;
        }
    }

    /** Offers the input; an input that cannot cross to another JVM fails with what to do, and nothing started. */
    private boolean offer(Deployment d, long seq, Object record) {
        try {
            return d.input.offer(seq - base, record);
        } catch (RuntimeException e) {
            Cell c = cells[(int) seq & mask];
            c.future = null;
            c.event = null;
            HOLD.setRelease(c, FREE);
            if (d.inputCrosses && e instanceof IllegalArgumentException) {
                throw new IllegalArgumentException(name + ": cannot send the input of execution #" + seq
                        + " to another JVM, it was not started: " + GraphLoop.explain(e), e);
            }
            throw e;
        }
    }

    /** Copies the arguments into the preallocated array of {@code seq}; its input slot must be free. */
    private Object[] fillArgs(long seq, Object a0, Object a1, Object[] rest, int from) {
        Object[] a = argSlots[(int) seq & argMask];
        a[0] = a0;
        a[1] = a1;
        System.arraycopy(rest, from, a, 2, a.length - 2);
        return a;
    }

    /**
     * A second thread uses the driver (or {@code executeAsync} starts its driver thread): no thread uses the
     * single-writer path any more, even after a restart. Takes the submit lock once per graph.
     */
    private void share() {
        if (writer.isShared()) {
            return;
        }
        submitLock.lock();
        try {
            writer.share(driverWaker::signal);
        } finally {
            submitLock.unlock();
        }
    }

    private long startLocked(Object a0, Object a1, Object[] rest, int from, boolean args, GraphFuture<?> future) {
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
                Cell c = cells[(int) seq & mask];
                if ((int) HOLD.getAcquire(c) != FREE && !awaitCell(c, seq, deadline)) {
                    continue; // a restart began
                }
                Object record = a0;
                if (args) {
                    int r = awaitInputSlot(d, seq, deadline);
                    if (r < 0) {
                        continue; // a restart began
                    }
                    record = fillArgs(seq, a0, a1, rest, from);
                }
                prepare(c, seq, future);
                if (!offer(d, seq, record) && !offerSlowly(d, seq, record, deadline)) {
                    c.future = null; // a restart began: submit to the next deployment
                    c.event = null;
                    HOLD.setRelease(c, FREE);
                    continue;
                }
                if (future != null && future.isAsync()) {
                    asyncPending.incrementAndGet(); // before the collector can see the execution
                }
                submitted = seq + 1;
                int s = state.get();
                if ((s == CLOSED || s == DIED) && future != null) {
                    future.fail(terminalFor(seq)); // closed while we published: nobody else will finish it
                }
                if (future != null && future.isAsync()) {
                    ensureCompleter();
                }
                return seq;
            }
        } finally {
            submitLock.unlock();
        }
    }

    /**
     * The cell of {@code seq} still holds an untaken result of {@code submit}. On the shared path another thread may
     * be about to take it: waits for that until {@code deadline}. A graph used by one thread fails at once: only this
     * thread could take it.
     *
     * @return false if a restart began meanwhile
     * @throws IllegalStateException if the result was not taken
     */
    private boolean awaitCell(Cell c, long seq, long deadline) {
        int tries = 0;
        while ((int) HOLD.getAcquire(c) != FREE) {
            if (state.get() == RESTARTING) {
                return false;
            }
            ensureOpen();
            boolean shared = writer.isShared();
            if (!shared || System.nanoTime() - deadline > 0) {
                throw new IllegalStateException(name + ": the slot of execution #" + seq + " still holds the "
                        + "result of execution #" + c.seq + ", which nobody took" + (shared ? " within "
                        + options.submitTimeout() + " (submitTimeout)" : "") + ": take every sequence that submit "
                        + "returned before submitting maxInflight (" + slots + ") more");
            }
            if (++tries < 64) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(10_000);
            }
        }
        return true;
    }

    /** Waits until the input slot of {@code seq} is free; -1 if a restart began meanwhile. */
    private int awaitInputSlot(Deployment d, long seq, long deadline) {
        int tries = 0;
        while (!d.input.isFree(seq - base)) {
            if (!backOffForInputSlot(++tries, seq, deadline)) {
                return -1;
            }
        }
        return 0;
    }

    /**
     * One wait for the input slot of {@code seq}: spins a little, then parks 10 us.
     *
     * @return false if a restart began
     * @throws CapacityExceededException past {@code deadline}
     */
    private boolean backOffForInputSlot(int tries, long seq, long deadline) {
        if (state.get() == RESTARTING) {
            return false;
        }
        ensureOpen();
        if (System.nanoTime() - deadline > 0) {
            throw new CapacityExceededException(name + ": the input slot of execution #" + (seq - slots)
                    + " was not released within " + options.submitTimeout() + " (submitTimeout); execution #" + seq
                    + " was not started. An actor may be stuck after its last method returned");
        }
        if (tries < 64) {
            Thread.onSpinWait();
        } else {
            LockSupport.parkNanos(10_000);
        }
        return true;
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
        while (!offer(d, seq, record)) {
            if (!backOffForInputSlot(++tries, seq, deadline)) {
                return false;
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
            boolean ready = await(null, -1, deadline);
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
        boolean ready = writer.owned() ? ownerAwait(future, -1, deadline) : awaitShared(future, -1, deadline);
        if (!ready) {
            throw new ChannelTimeoutException(name + ": execution #" + future.sequence() + " did not finish within "
                    + timeout + " (getTimeout); it is still running: call get again, or look for an actor that is "
                    + "slow or stuck");
        }
    }

    /** A thread other than the owner waits: the graph leaves the single-writer path for good, then waits. */
    private boolean awaitShared(GraphFuture<?> future, long takeSeq, long deadline) {
        share();
        return await(future, takeSeq, deadline);
    }

    /**
     * The owner waits on the single-writer path, collecting without the collector role; falls back to
     * {@link #await} once the path is revoked or the graph leaves OPEN.
     */
    private boolean ownerAwait(GraphFuture<?> future, long takeSeq, long deadline) {
        if (!writer.enter()) {
            return await(future, takeSeq, deadline);
        }
        try {
            while (writer.isOpen() && state.get() == OPEN) {
                int work = collect();
                if (ready(future, takeSeq)) {
                    driverIdle.reset();
                    return true;
                }
                if (System.nanoTime() - deadline > 0) {
                    driverIdle.reset();
                    return false;
                }
                driverIdle.idle(work);
            }
            driverIdle.reset();
        } finally {
            writer.exit();
        }
        return await(future, takeSeq, deadline);
    }

    /**
     * Waits until {@code future} is done (or the cell of {@code takeSeq} holds its result; or, with neither, until
     * one more execution fits in flight), collecting results meanwhile when no other thread does and the graph is
     * open. The collector completes the stages of {@code executeAsync} only after it let go of collecting, so that
     * their callbacks may execute, or wait for, this graph. While the graph restarts or closes, nobody collects: the
     * restart or the close settles the futures.
     *
     * @return false on timeout
     */
    private boolean await(GraphFuture<?> future, long takeSeq, long deadline) {
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
                        if (ready(future, takeSeq)) {
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
            if (ready(future, takeSeq)) {
                return true;
            }
            if (isClosed()) {
                if (future != null) {
                    future.fail(terminalFor(future.sequence())); // a submit that raced with the close
                }
                return true;
            }
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(20_000);
        }
    }

    private boolean ready(GraphFuture<?> future, long takeSeq) {
        if (future != null) {
            return future.isDone();
        }
        if (takeSeq >= 0) {
            return (int) HOLD.getAcquire(cells[(int) takeSeq & mask]) == READY;
        }
        return submitted - collected < slots || state.get() != OPEN;
    }

    /** Gives up the collector role; returns the async futures it settled, to publish once it let go. */
    private List<GraphFuture<?>> stopCollecting() {
        List<GraphFuture<?>> settled = settledAsync.isEmpty() ? List.of() : List.copyOf(settledAsync);
        settledAsync.clear();
        driverIdle.reset();
        collecting.set(false);
        if (asyncPending.get() > 0) {
            LockSupport.unpark(completer); // it may have found the role taken: its turn
        }
        return settled;
    }

    private static void publish(List<GraphFuture<?>> settled) {
        // By index: a for-each allocated an iterator of the empty list on every execution (32 B, -prof gc).
        for (int i = 0; i < settled.size(); i++) {
            settled.get(i).publish();
        }
    }

    /**
     * Moves finished outputs from the output channels into their cells; the collecting thread only (the owner on
     * its single-writer path, else the holder of the collector role). Each output channel is read as far as it
     * got, so an output that failed settles its execution at once (fail fast) while slower sibling outputs are still
     * running; an execution's slot is reclaimed once every output of it arrived, in order.
     */
    private int collect() {
        Deployment d = live;
        Channel[] outChannels = d.outChannels;
        int[] outReaders = d.outReaders;
        boolean[] outCrosses = d.outCrosses;
        int n = outChannels.length;
        long limit = submitted;
        long b = base;
        int work = 0;
        for (int o = 0; o < n; o++) {
            long seq = outDone[o];
            while (seq < limit) {
                Object v = outChannels[o].poll(outReaders[o], seq - b);
                if (v == Channel.NOT_READY) {
                    break;
                }
                // A value read in place from shared memory is valid until released: the cell keeps a copy.
                Object owned = !outCrosses[o] ? v : v instanceof RemoteError e ? TaskError.fromRemote(e) : Codecs.owned(v);
                outChannels[o].release(outReaders[o], seq - b);
                Cell c = cells[(int) seq & mask];
                c.values[o] = owned;
                c.arrived++;
                if (owned instanceof TaskError && !c.settled) {
                    settle(c, d, owned); // fail fast: the sibling outputs are not waited for
                }
                seq++;
            }
            work += (int) (seq - outDone[o]);
            outDone[o] = seq;
        }
        long col = collected;
        long start = col;
        while (col < limit) {
            Cell c = cells[(int) col & mask];
            if (c.arrived < n) {
                break;
            }
            if (!c.settled) {
                settle(c, d, null);
            }
            c.arrived = 0;
            Object[] values = c.values;
            for (int o = 0; o < n; o++) {
                values[o] = null;
            }
            col++;
        }
        if (col != start) {
            COLLECTED.setRelease(this, col);
        }
        return work;
    }

    /**
     * Delivers the outcome of the cell's execution: into its future, or kept in the cell for {@link #take}.
     *
     * @param failure the failed output when it fails fast, else null: the outcome is read from the cell's values
     */
    private void settle(Cell c, Deployment d, Object failure) {
        c.settled = true;
        boolean multi = d.plan().multiOutput();
        Object[] values = c.values;
        int[] outPosition = d.outPosition;
        Object outcome = failure;
        if (outcome == null) {
            if (!multi) {
                outcome = values[0];
            } else {
                for (int p = 0; p < outPosition.length && outcome == null; p++) {
                    if (values[outPosition[p]] instanceof TaskError e) {
                        outcome = e; // every output of a failed execution fails
                    }
                }
            }
        }
        observe(c, outcome instanceof TaskError);
        GraphFuture<?> f = c.future;
        if (f != null) {
            c.future = null;
            Object result = outcome;
            if (multi && outcome == null) {
                Object[] list = new Object[outPosition.length];
                for (int p = 0; p < list.length; p++) {
                    list[p] = values[outPosition[p]];
                }
                result = GraphCompiler.outputValue(output, list);
            }
            f.complete(result); // false if it was cancelled: the result is dropped
            if (f.isAsync()) {
                asyncPending.decrementAndGet();
                settledAsync.add(f);
            }
            return;
        }
        c.result = outcome;
        if (multi && outcome == null) {
            for (int p = 0; p < outPosition.length; p++) {
                c.kept[p] = values[outPosition[p]];
            }
        }
        HOLD.setRelease(c, READY);
    }

    /** Records a finished execution in the statistics, the trace and JFR; before its outcome is delivered. */
    private void observe(Cell c, boolean failed) {
        long at = c.submittedAt;
        if (at == 0 && latency != null) {
            latency.count(failed);
        }
        if (at != 0) {
            long now = System.nanoTime();
            if (latency != null) {
                latency.record(now - at, failed);
            }
            TraceWindow window = probe.trace();
            if (window != null) {
                window.executions().add(failed ? "execution (failed)" : "execution", c.seq, at, now);
            }
        }
        KilnEvents.Execution e = c.event;
        if (e != null) {
            c.event = null;
            e.end();
            if (e.shouldCommit()) {
                e.graph = name;
                e.sequence = c.seq;
                e.failed = failed;
                e.commit();
            }
        }
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

    /**
     * The driver thread of {@code executeAsync}: collects while async executions are pending and the graph is open,
     * waiting for outputs with the graph's idle strategy; otherwise it parks until an async submit, a collector that
     * lets go while async executions are pending, a restart that ends, or the close unparks it.
     */
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
                LockSupport.park(this);
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
            writer.revoke(driverWaker::signal);
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
                    Cell c = cells[(int) seq & mask];
                    GraphFuture<?> f = c.future;
                    c.future = null;
                    c.event = null;
                    c.arrived = 0;
                    Arrays.fill(c.values, null);
                    if (c.settled || c.seq != seq) {
                        continue;
                    }
                    c.settled = true;
                    GraphRestartedException e = new GraphRestartedException("execution #" + seq + lost, seq, number,
                            cause);
                    if (f == null) {
                        c.result = new Failure(e); // for take
                        HOLD.setRelease(c, READY);
                    } else if (f.lose(e) && f.isAsync()) {
                        asyncPending.decrementAndGet();
                        toPublish.add(f);
                    }
                }
                collected = submitted;
                Arrays.fill(outDone, submitted);
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
                if (!state.compareAndSet(RESTARTING, OPEN)) {
                    return false;
                }
                writer.reopen(); // the owner may use the single-writer path again, unless a second thread came
                restartsDone++;
                deployed.signalAll();
                LockSupport.unpark(completer);
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
            // A racy read, repaired by the waiters: a future or a take that finds the graph closed fails itself.
            GraphFuture<?> f = cells[(int) seq & mask].future;
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
            writer.revoke(driverWaker::signal);
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

    private static final VarHandle SUBMITTED;
    private static final VarHandle COLLECTED;
    private static final VarHandle HOLD;
    /** A cell's hold: no execution for {@link #take}, one in flight, its outcome waiting to be taken. */
    private static final int FREE = 0;
    private static final int WAITING = 1;
    private static final int READY = 2;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            SUBMITTED = l.findVarHandle(CompiledGraph.class, "submitted", long.class);
            COLLECTED = l.findVarHandle(CompiledGraph.class, "collected", long.class);
            HOLD = l.findVarHandle(Cell.class, "hold", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /**
     * The preallocated state of one slot: the execution in it, its outputs as they arrive, and its outcome until it
     * is delivered (into its future, or kept for {@link #take}). Written by the submitting thread before the
     * execution is published and by the collecting thread after; {@link #hold} hands a kept outcome to the taker.
     */
    private static final class Cell {
        long seq = -1;
        GraphFuture<?> future;
        /** The outputs of the execution so far, by distinct output channel; until the slot is reclaimed. */
        final Object[] values;
        int arrived;
        /** Whether the outcome was delivered (a failed output settles it before its siblings arrive). */
        boolean settled;
        /** For take: the single result, or the failure ({@link TaskError}, {@link Failure}); null for kept outputs. */
        Object result;
        /** For take on a graph of several outputs: the values by output position. */
        final Object[] kept;
        /** FREE, WAITING or READY; release/acquire. */
        int hold;
        long submittedAt;
        KilnEvents.Execution event;

        Cell(int outputs, int positions) {
            values = new Object[outputs];
            kept = new Object[positions];
        }
    }

    /** A failure kept in a cell for {@link #take}, told apart from a result that happens to be an exception. */
    private record Failure(RuntimeException error) {
    }
}
