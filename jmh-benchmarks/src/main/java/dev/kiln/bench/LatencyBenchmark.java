package dev.kiln.bench;

import dev.kiln.compiler.CompileOptions;
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
import org.openjdk.jmh.infra.BenchmarkParams;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

/**
 * Latency of one execution, waited for on the JMH thread: {@link Mode#SampleTime} times single
 * operations and reports percentiles (median, p99). One benchmark method per {@link Path}, all
 * with the same body; the method's name picks the path in {@code @Setup}. Each path is checked
 * against {@link Scenario#expected} before it is measured. Plus the two floors: Aeron IPC
 * ping-pong between two JVMs, and {@code MemorySegment.copy} of a tensor's bytes.
 *
 * <p>The compiled graph runs with {@code CompileOptions.defaults()} ({@code maxInflight} 10) and
 * the idle mode of {@code idle}; {@value Scenario#AUTO} is {@code SPIN} where every waiting
 * thread has a core, else {@code BACKOFF} (see {@link Scenario#idle}).
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class LatencyBenchmark {

    /** A path running one scenario, one execution at a time. */
    @State(Scope.Benchmark)
    public static class Run {
        /** What one execution does. */
        @Param({"SINGLE", "CHAIN4", "SCATTER4", "ARGS8", "TENSOR_4K", "TENSOR_1M", "TENSOR_64M"})
        public Scenario scenario;
        /** How Kiln's actor loops and driver, and the Disruptor's threads, wait. */
        @Param(Scenario.AUTO)
        public String idle;

        Path path;
        long next;

        /**
         * Opens the path the benchmark method names and checks its results.
         *
         * @param params the benchmark being run
         */
        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) {
            path = Path.open(method(params), scenario, scenario.idle(idle), 1, CompileOptions.defaults().maxInflight());
        }

        /** Stops the path. */
        @TearDown(Level.Trial)
        public void tearDown() {
            path.close();
        }

        long roundTrip() {
            next = (next + 1) & 127;
            path.submit(next);
            return path.next();
        }
    }

    /** The actors in a worker JVM: the driver's JVM and the worker's, through shared memory or the control plane. */
    @State(Scope.Benchmark)
    public static class Worker {
        /** What one execution does (dynamic calls carry at most 8 MiB, so no 64 MiB tensor). */
        @Param({"SINGLE", "TENSOR_4K", "TENSOR_1M"})
        public Scenario scenario;
        /** How Kiln's actor loops and driver wait. */
        @Param(Scenario.AUTO)
        public String idle;

        Run run = new Run();

        /**
         * Starts the worker JVM, the actors and the path the benchmark method names.
         *
         * @param params the benchmark being run
         */
        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) {
            run.path = Path.open(method(params), scenario, scenario.idle(idle), 1, CompileOptions.defaults().maxInflight());
        }

        /** Stops the path and its worker JVM. */
        @TearDown(Level.Trial)
        public void tearDown() {
            run.path.close();
        }
    }

    /** The Aeron ping-pong: a second JVM, one hop there and one back. */
    @State(Scope.Benchmark)
    public static class Ipc {
        /** How both JVMs' polling threads wait. */
        @Param(Scenario.AUTO)
        public String idle;

        Path path;
        long next;

        /** Starts the media driver and the other JVM, and checks the answers. */
        @Setup(Level.Trial)
        public void setUp() {
            path = Path.open("aeron", Scenario.SINGLE, Scenario.SINGLE.idle(idle), 1, 1);
        }

        /** Stops the other JVM and the media driver. */
        @TearDown(Level.Trial)
        public void tearDown() {
            path.close();
        }
    }

    /** Two off-heap segments of a tensor's size. */
    @State(Scope.Benchmark)
    public static class Copy {
        /** The tensor scenario whose bytes are copied. */
        @Param({"TENSOR_4K", "TENSOR_1M", "TENSOR_64M"})
        public Scenario scenario;

        Arena arena;
        MemorySegment from;
        MemorySegment to;

        /** Allocates and fills the segments. */
        @Setup(Level.Trial)
        public void setUp() {
            arena = Arena.ofShared();
            from = arena.allocate(scenario.tensorBytes(), 64);
            to = arena.allocate(scenario.tensorBytes(), 64);
            from.fill((byte) 7);
            to.fill((byte) 1);
        }

        /** Frees the segments. */
        @TearDown(Level.Trial)
        public void tearDown() {
            arena.close();
        }
    }

    static String method(BenchmarkParams params) {
        String name = params.getBenchmark();
        return name.substring(name.lastIndexOf('.') + 1);
    }

    /**
     * @param r the compiled graph
     * @return the execution's result
     */
    @Benchmark
    public long compiled(Run r) {
        return r.roundTrip();
    }

    /**
     * @param r the compiled graph, run by submit and take (the allocation-free path)
     * @return the execution's result
     */
    @Benchmark
    public long compiledTake(Run r) {
        return r.roundTrip();
    }

    /**
     * @param r the actors, called through {@code kiln.call}
     * @return the execution's result
     */
    @Benchmark
    public long dynamic(Run r) {
        return r.roundTrip();
    }

    /**
     * @param w the compiled graph, its actor in a worker JVM
     * @return the execution's result
     */
    @Benchmark
    public long compiledWorker(Worker w) {
        return w.run.roundTrip();
    }

    /**
     * @param w the actor in a worker JVM, called through {@code kiln.call}
     * @return the execution's result
     */
    @Benchmark
    public long dynamicWorker(Worker w) {
        return w.run.roundTrip();
    }

    /**
     * @param r the executors
     * @return the execution's result
     */
    @Benchmark
    public long executor(Run r) {
        return r.roundTrip();
    }

    /**
     * @param r the Pekko actors
     * @return the execution's result
     */
    @Benchmark
    public long pekko(Run r) {
        return r.roundTrip();
    }

    /**
     * @param r the Disruptor
     * @return the execution's result
     */
    @Benchmark
    public long disruptor(Run r) {
        return r.roundTrip();
    }

    /**
     * @param s the publication, subscription and other JVM
     * @return the answer
     */
    @Benchmark
    public long aeron(Ipc s) {
        s.next = (s.next + 1) & 127;
        s.path.submit(s.next);
        return s.path.next();
    }

    /**
     * @param c the two segments
     */
    @Benchmark
    public void memcpy(Copy c) {
        MemorySegment.copy(c.from, 0, c.to, 0, c.from.byteSize());
    }
}
