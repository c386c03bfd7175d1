package dev.kiln.bench;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Round trip of one execution through {@code actors} actors in a chain (1: a single actor,
 * 4: a chain of four), three ways side by side:
 *
 * <ul>
 *   <li>{@code compiled}: a compiled graph, {@code g.execute(x).get()}, for each {@link IdleMode} in {@code idle};
 *   <li>{@code dynamic}: {@code kiln.call} per actor, each future's completion starting the next call;
 *   <li>{@code executor}: the plain-JDK baseline, one single-thread {@link ExecutorService} per
 *       actor and a {@link CompletableFuture} chain ({@code supplyAsync}, then {@code thenApplyAsync}).
 * </ul>
 *
 * <p>Every path calls the same {@link Stage#step} on the same number of threads and returns
 * the chain's result (JMH consumes it). Each state checks its path against {@link Stage#chain}
 * in {@code @Setup}. Sample time: JMH times single operations and reports percentiles.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class RoundTripBenchmark {

    /** A compiled chain of {@code actors} actors. */
    @State(Scope.Benchmark)
    public static class Compiled {
        /** Actors in the chain. */
        @Param({"1", "4"})
        public int actors;
        /** How the actor loops and the driver idle. */
        @Param({"SPIN", "BACKOFF"})
        public IdleMode idle;

        Kiln kiln;
        CompiledGraph<Long, Long> graph;
        long next;

        /** Starts the actors and compiles the chain. */
        @Setup(Level.Trial)
        public void setUp() {
            kiln = Kiln.local();
            InputNode<Long> in = Graph.input();
            Node<Long> x = null;
            for (int i = 0; i < actors; i++) {
                ActorRef<Stage> stage = kiln.actor(Stage::new);
                x = x == null ? stage.bind(Stage::step, in) : stage.bind(Stage::step, x);
            }
            graph = kiln.compile(x, CompileOptions.defaults().idle(idle));
            check(graph.execute(42L).get(), actors);
        }

        /** Closes the graph and the runtime. */
        @TearDown(Level.Trial)
        public void tearDown() {
            graph.close();
            kiln.close();
        }
    }

    /** The same chain on the dynamic path. */
    @State(Scope.Benchmark)
    public static class Dynamic {
        /** Actors in the chain. */
        @Param({"1", "4"})
        public int actors;

        Kiln kiln;
        ActorRef<Stage> first;
        /** Step i + 1 of the chain: calls actor i + 1 with actor i's result. */
        Function<Long, CompletableFuture<Long>>[] then;
        long next;

        /** Starts the actors. */
        @Setup(Level.Trial)
        @SuppressWarnings("unchecked")
        public void setUp() {
            kiln = Kiln.local();
            first = kiln.actor(Stage::new);
            then = new Function[actors - 1];
            for (int i = 0; i < then.length; i++) {
                ActorRef<Stage> stage = kiln.actor(Stage::new);
                then[i] = v -> kiln.call(stage, Stage::step, v);
            }
            check(call(42L), actors);
        }

        long call(long x) {
            CompletableFuture<Long> f = kiln.call(first, Stage::step, x);
            for (Function<Long, CompletableFuture<Long>> step : then) {
                f = f.thenCompose(step);
            }
            return f.join();
        }

        /** Ends the actors. */
        @TearDown(Level.Trial)
        public void tearDown() {
            kiln.close();
        }
    }

    /** The same chain on single-thread executors and {@link CompletableFuture}s, without Kiln. */
    @State(Scope.Benchmark)
    public static class Executor {
        /** Actors in the chain. */
        @Param({"1", "4"})
        public int actors;

        ExecutorService[] executors;
        Stage first;
        /** Stage i + 1's step, run on executor i + 1. */
        Function<Long, Long>[] then;
        long next;

        /** Starts one single-thread executor per actor. */
        @Setup(Level.Trial)
        @SuppressWarnings("unchecked")
        public void setUp() {
            executors = new ExecutorService[actors];
            for (int i = 0; i < actors; i++) {
                String name = "executor-actor-" + i;
                executors[i] = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().name(name).daemon(true).unstarted(r));
            }
            first = new Stage();
            then = new Function[actors - 1];
            for (int i = 0; i < then.length; i++) {
                Stage stage = new Stage();
                then[i] = stage::step;
            }
            check(call(42L), actors);
        }

        long call(long x) {
            CompletableFuture<Long> f = CompletableFuture.supplyAsync(() -> first.step(x), executors[0]);
            for (int i = 0; i < then.length; i++) {
                f = f.thenApplyAsync(then[i], executors[i + 1]);
            }
            return f.join();
        }

        /** Stops the executors. */
        @TearDown(Level.Trial)
        public void tearDown() throws InterruptedException {
            for (ExecutorService e : executors) {
                e.shutdownNow();
                e.awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * One execution of the compiled chain.
     *
     * @param s the graph
     * @return the chain's result
     */
    @Benchmark
    public long compiled(Compiled s) {
        s.next = (s.next + 1) & 127;
        return s.graph.execute(s.next).get();
    }

    /**
     * The chain through {@code kiln.call}.
     *
     * @param s the actors
     * @return the chain's result
     */
    @Benchmark
    public long dynamic(Dynamic s) {
        s.next = (s.next + 1) & 127;
        return s.call(s.next);
    }

    /**
     * The chain through executors.
     *
     * @param s the executors
     * @return the chain's result
     */
    @Benchmark
    public long executor(Executor s) {
        s.next = (s.next + 1) & 127;
        return s.call(s.next);
    }

    private static void check(long got, int actors) {
        long want = Stage.chain(42L, actors);
        if (got != want) {
            throw new IllegalStateException("the chain of " + actors + " returned " + got + ", expected " + want);
        }
    }
}
