package dev.kiln.bench;

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

import java.util.concurrent.TimeUnit;

/**
 * Executions per second with pipelining: {@code window} executions stay in flight (the compiled
 * graph's {@code maxInflight} is {@code window}). {@code @Setup} starts {@code window - 1}; each
 * operation submits one and waits for the oldest, so one operation is one finished execution
 * and the window never drains between operations. {@code window} 1 is a round trip at a time.
 * With {@code -prof gc}, {@code gc.alloc.rate.norm} is bytes allocated per execution.
 *
 * <p>The compiled path runs every scenario; the baselines run the four shapes (a tensor
 * travels by reference on every in-process path, so their tensor rows would repeat SINGLE).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class ThroughputBenchmark {

    /** Opens and closes the path of a throughput state. */
    abstract static class Pipeline {
        Path path;
        long next;

        void open(BenchmarkParams params, Scenario scenario, String idle, int window) {
            path = Path.open(LatencyBenchmark.method(params), scenario, scenario.idle(idle), window, window);
        }

        /** Stops the path (executions still in flight are dropped). */
        @TearDown(Level.Trial)
        public void tearDown() {
            path.close();
        }

        long oneMore() {
            next = (next + 1) & 127;
            path.submit(next);
            return path.next();
        }
    }

    /** A compiled graph of any scenario. */
    @State(Scope.Benchmark)
    public static class Compiled extends Pipeline {
        /** What one execution does. */
        @Param({"SINGLE", "CHAIN4", "SCATTER4", "ARGS8", "TENSOR_4K", "TENSOR_1M", "TENSOR_64M"})
        public Scenario scenario;
        /** How actor loops and the driver wait. */
        @Param(Scenario.AUTO)
        public String idle;
        /** Executions in flight, and the graph's {@code maxInflight}. */
        @Param({"1", "4", "16"})
        public int window;

        /**
         * @param params the benchmark being run
         */
        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) {
            open(params, scenario, idle, window);
        }
    }

    /** A baseline of one of the four shapes. */
    @State(Scope.Benchmark)
    public static class Baseline extends Pipeline {
        /** What one execution does. */
        @Param({"SINGLE", "CHAIN4", "SCATTER4", "ARGS8"})
        public Scenario scenario;
        /** How the Disruptor's threads wait (the other baselines park). */
        @Param(Scenario.AUTO)
        public String idle;
        /** Executions in flight. */
        @Param({"1", "4", "16"})
        public int window;

        /**
         * @param params the benchmark being run
         */
        @Setup(Level.Trial)
        public void setUp(BenchmarkParams params) {
            open(params, scenario, idle, window);
        }
    }

    /**
     * @param s the compiled graph
     * @return the oldest execution's result
     */
    @Benchmark
    public long compiled(Compiled s) {
        return s.oneMore();
    }

    /**
     * @param s the compiled graph, run by submit and take (the allocation-free path)
     * @return the oldest execution's result
     */
    @Benchmark
    public long compiledTake(Compiled s) {
        return s.oneMore();
    }

    /**
     * @param s the actors, called through {@code kiln.call}
     * @return the oldest execution's result
     */
    @Benchmark
    public long dynamic(Baseline s) {
        return s.oneMore();
    }

    /**
     * @param s the executors
     * @return the oldest execution's result
     */
    @Benchmark
    public long executor(Baseline s) {
        return s.oneMore();
    }

    /**
     * @param s the Pekko actors
     * @return the oldest execution's result
     */
    @Benchmark
    public long pekko(Baseline s) {
        return s.oneMore();
    }

    /**
     * @param s the Disruptor
     * @return the oldest execution's result
     */
    @Benchmark
    public long disruptor(Baseline s) {
        return s.oneMore();
    }
}
