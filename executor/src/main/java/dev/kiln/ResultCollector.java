package dev.kiln;

import dev.kiln.compiler.GraphCompiler;
import dev.kiln.executor.Codecs;
import dev.kiln.executor.GraphProbe;
import dev.kiln.executor.KilnEvents;
import dev.kiln.executor.LatencyRecorder;
import dev.kiln.executor.TaskError;
import dev.kiln.executor.TraceWindow;
import dev.kiln.graph.Node;
import dev.kiln.transport.Channel;
import dev.kiln.transport.RemoteError;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;

import static dev.kiln.ResultCell.HOLD;
import static dev.kiln.ResultCell.READY;

/**
 * Result collection of a compiled graph: moves finished outputs from the output channels into the result cells and
 * delivers each execution's outcome, into its future or kept in its cell for {@code take}; records it in the
 * statistics, the trace and JFR. Counts the executions collected, and the async executions pending.
 *
 * <p>{@link #collect}, {@link #sleepOnOutput}, {@link #drainSettled} and {@link #loseInFlight} are called by the
 * collecting thread only (the owner on its single-writer path, else the holder of the driver's collector role, or a
 * restart that took it); {@link #collected}, {@link #asyncPending} and {@link #asyncSubmitted} by any thread.
 */
final class ResultCollector {

    /** The graph's name. */
    private final String name;
    private final Node<?> output;
    private final ResultCell[] cells;
    private final int mask;
    /** Per distinct output, the next sequence of the graph to read from it; collecting thread only. */
    private final long[] outDone;
    /** The graph's statistics and trace window in this JVM. */
    private final GraphProbe probe;
    /** Executions' latencies and failures, recorded by the collecting thread; null when statistics are off. */
    private final LatencyRecorder latency;
    /** Told when an output's writer in another JVM is lost: the deployment fails. */
    private final BiConsumer<Deployment, String> peerLost;
    /** Async futures settled by the collector and not yet published; collecting thread only. */
    private final List<GraphFuture<?>> settledAsync = new ArrayList<>();
    private final AtomicInteger asyncPending = new AtomicInteger();
    private volatile long collected;

    /**
     * @param name     the graph's name
     * @param output   the graph's result node
     * @param cells    the result cells, {@code cells[seq & mask]}
     * @param mask     their index mask
     * @param outputs  how many distinct output channels the graph reads
     * @param probe    the graph's instrumentation in this JVM
     * @param latency  the executions' latencies, or null when statistics are off
     * @param peerLost told when an output's writer in another JVM is lost
     */
    ResultCollector(String name, Node<?> output, ResultCell[] cells, int mask, int outputs, GraphProbe probe,
                    LatencyRecorder latency, BiConsumer<Deployment, String> peerLost) {
        this.name = name;
        this.output = output;
        this.cells = cells;
        this.mask = mask;
        this.outDone = new long[outputs];
        this.probe = probe;
        this.latency = latency;
        this.peerLost = peerLost;
    }

    /** @return how many executions were collected: their slots are free again */
    long collected() {
        return collected;
    }

    /** @return how many async executions wait for their outcome */
    int asyncPending() {
        return asyncPending.get();
    }

    /** An async execution is about to be published; before the collector can see it. */
    void asyncSubmitted() {
        asyncPending.incrementAndGet();
    }

    /** @return whether async futures were settled and wait to be published */
    boolean hasSettled() {
        return !settledAsync.isEmpty();
    }

    /** @return the async futures settled since the last call, to publish once the collector let go */
    List<GraphFuture<?>> drainSettled() {
        List<GraphFuture<?>> settled = settledAsync.isEmpty() ? List.of() : List.copyOf(settledAsync);
        settledAsync.clear();
        return settled;
    }

    /**
     * Moves finished outputs from the output channels into their cells; the collecting thread only (the owner on
     * its single-writer path, else the holder of the collector role). Each output channel is read as far as it
     * got, so an output that failed settles its execution at once (fail fast) while slower sibling outputs are still
     * running; an execution's slot is reclaimed once every output of it arrived, in order.
     *
     * @param d     the live deployment
     * @param limit the executions submitted so far
     * @param b     the graph's sequence of {@code d}'s execution 0
     * @return how many outputs it moved
     */
    int collect(Deployment d, long limit, long b) {
        Channel[] outChannels = d.outChannels;
        int[] outReaders = d.outReaders;
        boolean[] outCrosses = d.outCrosses;
        int n = outChannels.length;
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
                ResultCell c = cells[(int) seq & mask];
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
            ResultCell c = cells[(int) col & mask];
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
     * Delivers the outcome of the cell's execution: into its future, or kept in the cell for {@code take}.
     *
     * @param failure the failed output when it fails fast, else null: the outcome is read from the cell's values
     */
    private void settle(ResultCell c, Deployment d, Object failure) {
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
    private void observe(ResultCell c, boolean failed) {
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

    /**
     * The driver's sleep while it waits for an output written in another JVM, whose writer cannot
     * unpark it. A writer on another host that stays unreachable fails the deployment.
     *
     * @param d     the live deployment
     * @param limit the executions submitted so far
     * @param base  the graph's sequence of {@code d}'s execution 0
     * @param nanos how long at most
     * @return false if the output waited for is written in this JVM, whose writer signals the driver's waker: the
     *         caller parks instead (BACKOFF for its longest period at once)
     */
    boolean sleepOnOutput(Deployment d, long limit, long base, long nanos) {
        for (int o = 0; o < d.outChannels.length; o++) {
            if (outDone[o] < limit) {
                if (!d.outCrosses[o]) {
                    return false; // an in-process writer unparks the driver
                }
                if (!d.outChannels[o].awaitPublished(d.outReaders[o], outDone[o] - base, nanos)) {
                    String lost = d.outChannels[o].peerLoss(d.outReaders[o]);
                    if (lost != null) {
                        peerLost.accept(d, lost);
                    }
                }
                return true;
            }
        }
        return false;
    }

    /**
     * A restart loses the executions in flight: each one not settled yet fails with
     * {@link GraphRestartedException} (kept for {@code take}, or into its future), and the counters move past them.
     *
     * @param submitted the executions submitted so far
     * @param lost      the end of each failure's message, after {@code "execution #<seq>"}
     * @param number    the restart's number
     * @param cause     the actor's error, or null
     * @param toPublish receives the async futures failed, to publish on another thread
     */
    void loseInFlight(long submitted, String lost, int number, Throwable cause, List<GraphFuture<?>> toPublish) {
        for (long seq = collected; seq < submitted; seq++) {
            ResultCell c = cells[(int) seq & mask];
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
                c.result = new ResultCell.Failure(e); // for take
                HOLD.setRelease(c, READY);
            } else if (f.lose(e) && f.isAsync()) {
                asyncPending.decrementAndGet();
                toPublish.add(f);
            }
        }
        collected = submitted;
        Arrays.fill(outDone, submitted);
    }

    private static final VarHandle COLLECTED;

    static {
        try {
            COLLECTED = MethodHandles.lookup().findVarHandle(ResultCollector.class, "collected", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
}
