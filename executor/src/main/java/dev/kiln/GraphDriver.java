package dev.kiln;

import dev.kiln.ResultCell.Failure;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.GraphCompiler;
import dev.kiln.executor.GraphLoop;
import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.KilnEvents;
import dev.kiln.executor.LatencyRecorder;
import dev.kiln.executor.SingleWriter;
import dev.kiln.executor.TaskError;
import dev.kiln.graph.Node;
import dev.kiln.transport.Channel;
import dev.kiln.transport.KilnIdleStrategy;
import dev.kiln.transport.Waker;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BiConsumer;

import static dev.kiln.GraphState.CLOSED;
import static dev.kiln.GraphState.DIED;
import static dev.kiln.GraphState.OPEN;
import static dev.kiln.GraphState.RESTARTING;
import static dev.kiln.ResultCell.FREE;
import static dev.kiln.ResultCell.HOLD;
import static dev.kiln.ResultCell.READY;
import static dev.kiln.ResultCell.WAITING;

/**
 * The driver of a compiled graph: submits executions into the live deployment's input channel and collects their
 * outputs into preallocated result cells, from which it completes futures or hands results to {@code take}. It also
 * gives the lifecycle what a restart or a close needs: the executions in flight settled, the deployment swapped, the
 * driver's roles taken for good.
 *
 * <p>The outputs are moved into the cells and the outcomes delivered by its {@link ResultCollector}, on whichever
 * thread collects. Threads, as {@link CompiledGraph} describes them to users: the first thread that submits or
 * waits owns the single-writer path (plain writes and release stores, no lock, no CAS); from the first time another thread
 * submits or waits, or {@code executeAsync} is called, every submit takes {@link #submitLock} and results are
 * collected by one thread at a time, the holder of the collector role ({@link #collecting}). The restart thread and
 * the teardown take both roles (the submit lock and the collector role) before they touch the cells, the counters or
 * the live deployment. The {@link AsyncCompleter} collects with the collector role. Reads for statistics may come
 * from any thread.
 */
final class GraphDriver {

    /** Only asked whether JFR records executions: an execution's event is allocated only when it does. */
    private static final KilnEvents.Execution EXECUTION_EVENTS = new KilnEvents.Execution();

    /** The graph's name. */
    private final String name;
    private final Node<?> output;
    private final CompileOptions options;
    private final GraphState state;
    private final int slots;
    /** The result cells, one per slot, preallocated: {@code cells[seq & mask]}; at least {@link #slots} of them. */
    private final ResultCell[] cells;
    private final int mask;
    /** The argument arrays of multi-argument executions, preallocated: {@code argSlots[seq & argMask]}. */
    private final Object[][] argSlots;
    private final int argMask;
    /** The single-writer path's hand-off: its owner, and whether a second thread closed it for good. */
    private final SingleWriter writer = new SingleWriter();
    private final Waker driverWaker;
    private final KilnIdleStrategy driverIdle;
    private final ReentrantLock submitLock = new ReentrantLock();
    /** Signalled under {@link #submitLock} when a restart ends, or the graph stops for good. */
    private final Condition deployed = submitLock.newCondition();
    private final AtomicBoolean collecting = new AtomicBoolean();
    private final AsyncCompleter completer;
    /** Moves outputs into the cells and delivers the outcomes. */
    private final ResultCollector collector;
    /** The graph's statistics and trace window in this JVM. */
    private final GraphProbe probe;
    /** Executions' latencies and failures, recorded by the collector; null when statistics are off. */
    private final LatencyRecorder latency;
    private volatile long submitted;
    /** The deployment that runs; a restart replaces it while it holds the submit lock and the collector role. */
    private volatile Deployment live;
    /** The graph's sequence number of {@link #live}'s execution 0; read and written under the driver's roles. */
    private long base;
    /** {@link #base}, for statistics on other threads. */
    private volatile long liveBase;

    /**
     * A driver of {@code first}, which is wired but not started.
     *
     * @param name     the graph's name
     * @param output   the graph's result node
     * @param options  the graph's options
     * @param state    the graph's state
     * @param waker    the waker of the driver's threads, which the deployments' channels signal
     * @param probe    the graph's instrumentation in this JVM
     * @param first    the first deployment
     * @param peerLost told when an output's writer in another JVM is lost
     */
    GraphDriver(String name, Node<?> output, CompileOptions options, GraphState state, Waker waker, GraphProbe probe,
                Deployment first, BiConsumer<Deployment, String> peerLost) {
        this.name = name;
        this.output = output;
        this.options = options;
        this.state = state;
        this.slots = options.maxInflight();
        this.driverWaker = waker;
        this.driverIdle = new KilnIdleStrategy(options.idle(), driverWaker, this::sleepOnOutput, false);
        this.probe = probe;
        this.latency = options.statistics() ? new LatencyRecorder() : null;
        this.completer = new AsyncCompleter(name, state, this);
        int size = Integer.highestOneBit(Math.max(1, slots - 1)) << 1;
        if (slots == 1) {
            size = 1;
        }
        this.mask = size - 1;
        this.live = first;
        int outputs = first.outChannels.length;
        this.cells = new ResultCell[size];
        for (int i = 0; i < size; i++) {
            cells[i] = new ResultCell(outputs, first.plan().outputs().size());
        }
        this.collector = new ResultCollector(name, output, cells, mask, outputs, probe, latency, peerLost);
        int arity = first.plan().inputArity();
        // Twice the cells: an argument array is reused only once its input slot was released (Channel.isFree),
        // whatever power of two the channel rounds maxInflight up to.
        this.argSlots = arity < 2 ? new Object[0][] : new Object[2 * size][arity];
        this.argMask = 2 * size - 1;
    }

    /** @return the deployment that runs now */
    Deployment live() {
        return live;
    }

    /** @return how many executions were started */
    long submitted() {
        return submitted;
    }

    /** @return how many executions were collected */
    long collected() {
        return collector.collected();
    }

    /** @return the graph's sequence number of the live deployment's execution 0 */
    long liveBase() {
        return liveBase;
    }

    /** @return the executions' latencies and failures, or null when statistics are off */
    LatencyRecorder latency() {
        return latency;
    }

    /** @return the maximum number of executions in flight */
    int slots() {
        return slots;
    }

    /** Wakes the driver's waiting threads and the async completer, to look at the state again. */
    void wake() {
        driverWaker.signal();
        completer.wake();
    }

    /**
     * The allocation-free path for several arguments: copies them into the slot's array and starts the execution.
     *
     * @param args the arguments
     * @return the execution's sequence number
     */
    long submitArgs(Object[] args) {
        if (args.length < 2) {
            throw new IllegalArgumentException(name + ": submitArgs takes the arguments of a graph of 2 or more "
                    + "(Graph.input2() to input8()), got " + args.length + "; use submit(input) for a graph of one");
        }
        checkArity(args.length);
        return start(args[0], args[1], args, 2, true, null);
    }

    /**
     * Waits for the result of {@code sequence} and gives its cell back.
     *
     * @param sequence what {@code submit} returned
     * @return the result: the output's value, or the tuple or list of the outputs
     */
    Object take(long sequence) {
        ResultCell c = awaitTake(sequence);
        Object r = c.result;
        Object value = r != null || !live.plan().multiOutput() ? r
                : GraphCompiler.outputValue(output, c.kept.clone());
        giveBack(c);
        return report(value, sequence);
    }

    /**
     * Waits for the result of {@code sequence}, copies its outputs into {@code outputs} and gives its cell back.
     *
     * @param sequence what {@code submit} returned
     * @param outputs  receives output {@code i} at index {@code i}
     */
    void take(long sequence, Object[] outputs) {
        int n = live.plan().outputs().size();
        if (outputs.length < n) {
            throw new IllegalArgumentException(name + " has " + n + " outputs; take(sequence, outputs) got an "
                    + "array of " + outputs.length);
        }
        ResultCell c = awaitTake(sequence);
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

    /**
     * Starts an execution of {@code input}: for a graph of several arguments, a {@code Tuple2} to {@code Tuple8}
     * whose components go into the slot's argument array.
     */
    long startInput(Object input, GraphFuture<?> future) {
        if (live.plan().inputArity() <= 1) {
            return start(input, null, null, 0, false, future);
        }
        Object[] record = (Object[]) GraphCompiler.inputRecord(live.plan(), input);
        return start(record[0], record[1], record, 2, true, future);
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
            if (seq - collector.collected() >= slots) {
                collect();
                if (seq - collector.collected() >= slots) {
                    return -1;
                }
            }
            ResultCell c = cells[(int) seq & mask];
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
    private void prepare(ResultCell c, long seq, GraphFuture<?> future) {
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
            ResultCell c = cells[(int) seq & mask];
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
                if (submitted - collector.collected() >= slots && !awaitCapacity(deadline)) {
                    continue; // a restart began meanwhile
                }
                // Read after waiting: a callback run meanwhile on this thread may have submitted (the lock is reentrant).
                long seq = submitted;
                Deployment d = live;
                ResultCell c = cells[(int) seq & mask];
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
                    collector.asyncSubmitted(); // before the collector can see the execution
                }
                submitted = seq + 1;
                int s = state.get();
                if ((s == CLOSED || s == DIED) && future != null) {
                    future.fail(state.terminalFor(seq)); // closed while we published: nobody else will finish it
                }
                if (future != null && future.isAsync()) {
                    completer.start();
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
    private boolean awaitCell(ResultCell c, long seq, long deadline) {
        int tries = 0;
        while ((int) HOLD.getAcquire(c) != FREE) {
            if (state.get() == RESTARTING) {
                return false;
            }
            state.ensureOpen();
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
        state.ensureOpen();
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
                state.ensureOpen();
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

    /** @return false if the graph began restarting while it waited */
    private boolean awaitCapacity(long deadline) {
        while (submitted - collector.collected() >= slots) {
            boolean ready = await(null, -1, deadline);
            if (state.get() == RESTARTING) {
                return false;
            }
            state.ensureOpen();
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
                        if (collector.hasSettled()) {
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
            if (state.isClosed()) {
                if (future != null) {
                    future.fail(state.terminalFor(future.sequence())); // a submit that raced with the close
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
        return submitted - collector.collected() < slots || state.get() != OPEN;
    }

    /** Gives up the collector role; returns the async futures it settled, to publish once it let go. */
    private List<GraphFuture<?>> stopCollecting() {
        List<GraphFuture<?>> settled = collector.drainSettled();
        driverIdle.reset();
        collecting.set(false);
        if (collector.asyncPending() > 0) {
            completer.wake(); // it may have found the role taken: its turn
        }
        return settled;
    }

    private static void publish(List<GraphFuture<?>> settled) {
        // By index: a for-each allocated an iterator of the empty list on every execution (32 B, -prof gc).
        for (int i = 0; i < settled.size(); i++) {
            settled.get(i).publish();
        }
    }

    /** Collects from the live deployment; the collecting thread only (see {@link ResultCollector#collect}). */
    private int collect() {
        return collector.collect(live, submitted, base);
    }

    private ResultCell awaitTake(long sequence) {
        ResultCell c = cells[(int) sequence & mask];
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
                c.result = new Failure(state.terminalFor(sequence)); // closed or died: nobody will collect it
            }
        }
        return c;
    }

    private static void giveBack(ResultCell c) {
        c.result = null;
        Arrays.fill(c.kept, null);
        HOLD.setRelease(c, FREE);
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

    /** The driver's idle sleep while it waits for an output written in another JVM. */
    private boolean sleepOnOutput(long nanos) {
        return collector.sleepOnOutput(live, submitted, base, nanos);
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

    /**
     * One turn of the async completer: while async executions are pending and the graph is open, collects with the
     * collector role, then publishes what it settled.
     *
     * @return false if there was nothing to do (or another thread collects): the completer may park
     */
    boolean collectAsync() {
        if (state.get() != OPEN || collector.asyncPending() <= 0 || !collecting.compareAndSet(false, true)) {
            return false;
        }
        List<GraphFuture<?>> settled;
        try {
            while (collector.asyncPending() > 0 && state.get() == OPEN && !collector.hasSettled()) {
                driverIdle.idle(collect());
            }
        } finally {
            settled = stopCollecting();
        }
        publish(settled);
        return true;
    }

    /**
     * First step of a restart: takes both driver roles, collects the results the old deployment already
     * published, fails every other execution in flight with {@link GraphRestartedException} and moves the
     * counters past them. Async futures are completed on another thread, where their callbacks may wait for the
     * restart.
     *
     * @param why    what happened
     * @param cause  the actor's error, or null
     * @param number the restart's number
     * @return 1 if retired, 0 if the graph closed meanwhile, -1 if a driver thread did not let go of collecting
     */
    int retire(String why, Throwable cause, int number) {
        List<GraphFuture<?>> toPublish = new ArrayList<>();
        submitLock.lock();
        try {
            if (state.get() != RESTARTING) {
                return 0;
            }
            writer.revoke(driverWaker::signal);
            if (!takeCollector()) {
                return -1;
            }
            try {
                try {
                    collect();
                } catch (RuntimeException e) {
                    // The old channels failed: what they did not deliver is lost with the rest.
                }
                toPublish.addAll(collector.drainSettled());
                String lost = " of " + name + " was lost: " + why + "; " + name + " restarts (restart " + number
                        + ") and takes new executions: submit it again";
                collector.loseInFlight(submitted, lost, number, cause, toPublish);
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
        return 1;
    }

    /**
     * Last step of a restart: makes {@code d} the live deployment and opens the graph.
     *
     * @param d      the new deployment, started
     * @param opened run once the graph is open, before waiting submitters are woken
     * @return false if the graph closed meanwhile
     */
    boolean open(Deployment d, Runnable opened) {
        submitLock.lock();
        try {
            if (state.get() != RESTARTING || !takeCollector()) {
                return false;
            }
            try {
                // live first: a report about the old deployment from now on is stale, one about d waits for OPEN.
                live = d;
                base = submitted;
                liveBase = base;
                if (!state.compareAndSet(RESTARTING, OPEN)) {
                    return false;
                }
                writer.reopen(); // the owner may use the single-writer path again, unless a second thread came
                opened.run();
                deployed.signalAll();
                completer.wake();
                return true;
            } finally {
                collecting.set(false);
            }
        } finally {
            submitLock.unlock();
        }
    }

    /**
     * The graph stopped for good: stops the live deployment's loops here, wakes the driver's threads and fails the
     * futures in flight. Any thread; never waits.
     */
    void stopped() {
        live.stopLoops();
        completer.wake();
        driverWaker.signal();
        long end = submitted;
        for (long seq = collector.collected(); seq < end; seq++) {
            // A racy read, repaired by the waiters: a future or a take that finds the graph closed fails itself.
            GraphFuture<?> f = cells[(int) seq & mask].future;
            if (f != null && f.sequence() == seq) {
                f.fail(state.terminalFor(seq));
            }
        }
    }

    /**
     * Stops the live deployment for good: waits for a submit in progress, wakes executes waiting for a restart,
     * takes the collector role for good (later waiters find their futures failed without collecting), then stops
     * the deployment in every JVM. If a collector is stuck, its channels are left to the GC rather than pulled away.
     */
    void tearDown() {
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

    private static final VarHandle SUBMITTED;

    static {
        try {
            SUBMITTED = MethodHandles.lookup().findVarHandle(GraphDriver.class, "submitted", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
