package dev.kiln.bench;

import dev.kiln.CompiledGraph;
import dev.kiln.GraphFuture;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.ExecutionPlan.ActorSchedule;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;

import java.util.ArrayList;
import java.util.List;

/**
 * A compiled chain of {@code calls} {@link Stage#step} calls visiting {@code actors} actors round-robin (call
 * {@code i} on actor {@code i % actors}), every actor in the driver's JVM ({@code Kiln.local()}), default options
 * but {@code maxInflight} and {@code actorThreads}. The JMH thread is the driver: {@link #oneMore} keeps
 * {@code window} executions in flight, as {@link ThroughputBenchmark} does. Checked against the chain computed on
 * the calling thread before it is measured. Driven by one thread; not thread-safe.
 */
final class ChainGraph implements AutoCloseable {

    /** The JMH parameter value for a thread per actor ({@link CompileOptions#THREAD_PER_ACTOR}). */
    static final String OWN = "own";
    /** The JMH parameter value for the default, {@link CompileOptions#AUTO_THREADS}: shared beyond the cores. */
    static final String AUTO = "auto";
    /** The JMH parameter value for every actor on one thread: {@code actorThreads(1)}. */
    static final String ONE = "one";

    private final int calls;
    private final int actors;
    private final Kiln kiln;
    private final CompiledGraph<Long, Long> graph;
    private final GraphFuture<?>[] ring;
    private final int window;
    private long submitted;
    private long finished;
    private long next;

    /**
     * Starts the actors, compiles the chain, checks it, and leaves {@code window - 1} executions in flight.
     *
     * @param calls    calls in the chain, >= 1
     * @param actors   actors they visit, 1 to {@code calls}
     * @param threads  {@link #OWN}, {@link #AUTO} or {@link #ONE}
     * @param window   executions in flight (one operation finishes one)
     * @param inflight the graph's {@code maxInflight}, at least {@code window}
     * @throws IllegalStateException on a wrong result
     */
    ChainGraph(int calls, int actors, String threads, int window, int inflight) {
        this(calls, actors, threads, window, inflight, new long[actors]);
    }

    /**
     * As {@link #ChainGraph(int, int, String, int, int)}, each call spinning for its actor's {@code busyNs}
     * ({@link Stage#work}).
     *
     * @param busyNs how long a call of each actor spins, in nanoseconds, one per actor
     */
    ChainGraph(int calls, int actors, String threads, int window, int inflight, long[] busyNs) {
        this.calls = calls;
        this.actors = actors;
        this.window = window;
        this.ring = new GraphFuture<?>[window];
        CompileOptions options = CompileOptions.defaults().maxInflight(inflight).actorThreads(switch (threads) {
            case OWN -> CompileOptions.THREAD_PER_ACTOR;
            case AUTO -> CompileOptions.AUTO_THREADS;
            case ONE -> 1;
            default -> throw new IllegalArgumentException("threads is " + OWN + ", " + AUTO + " or " + ONE + ", got "
                    + threads);
        });
        this.kiln = Kiln.local();
        try {
            List<ActorRef<Stage>> stages = new ArrayList<>();
            for (int i = 0; i < actors; i++) {
                int salt = i;
                long busy = busyNs[i];
                stages.add(kiln.actor(() -> new Stage(salt, busy)));
            }
            InputNode<Long> in = Graph.input();
            Node<Long> x = in;
            for (int i = 0; i < calls; i++) {
                x = busyNs[i % actors] == 0 ? stages.get(i % actors).bind(Stage::step, x)
                        : stages.get(i % actors).bind(Stage::work, x);
            }
            this.graph = kiln.compile(in, x, options);
            check();
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        long carriers = graph.plan().schedules().stream().filter(s -> !s.sharesThread()).count();
        System.out.println("chain of " + calls + " calls over " + actors + " actors, threads " + threads + ": "
                + carriers + " actor threads in the plan ("
                + graph.plan().schedules().stream().filter(ActorSchedule::sharesThread).count() + " actors share)");
    }

    /** @return the oldest execution's result, after submitting one more (the window stays full) */
    long oneMore() {
        next = (next + 1) & 127;
        submit(next);
        return take();
    }

    private void submit(long x) {
        ring[(int) (submitted++ % window)] = graph.execute(x);
    }

    private long take() {
        int at = (int) (finished++ % window);
        long result = (Long) ring[at].get();
        ring[at] = null;
        return result;
    }

    /** Runs three windows of executions against the chain computed here; leaves {@code window - 1} in flight. */
    private void check() {
        for (int i = 0; i < 3 * window; i++) {
            long x = (i * 37 + 5) & 127;
            submit(x);
            if (submitted - finished == window) {
                verify();
            }
        }
        while (submitted - finished > window - 1) {
            verify();
        }
    }

    private void verify() {
        long x = ((finished * 37) + 5) & 127;
        long want = x;
        for (int i = 0; i < calls; i++) {
            want = new Stage(i % actors).step(want);
        }
        long got = take();
        if (got != want) {
            throw new IllegalStateException("chain of " + calls + " over " + actors + ": input " + x + " gave " + got
                    + ", expected " + want);
        }
    }

    @Override
    public void close() {
        if (graph != null) {
            graph.close();
        }
        kiln.close();
    }
}
