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

import java.util.concurrent.TimeUnit;

/**
 * A chain of four actors whose calls cost unequal times, as the README demo's stages do: 6, 1.5, 9 and 36 us of
 * spinning ({@link Stage#work}; the demo's measured costs), 8 executions in flight, compiled with the default threads
 * ({@code threads=auto}: on 2 cores, two threads of two actors each, the heavy stages offered to both), a thread per
 * actor ({@code own}) and one thread ({@code one}), against the same four calls in turn on the JMH thread
 * ({@link #sequential}). Executions per second. On 2 cores a pipeline passes at most one execution per 36 us (the
 * slowest stage: about 27,800 per s), the sequential calls one per 52.5 us (about 19,000 per s).
 */
public class UnequalStagesBenchmark {

    /** What a call of each of the four actors costs, in nanoseconds. */
    static final long[] COSTS_NS = {6_000, 1_500, 9_000, 36_000};

    /** The compiled chain, 8 in flight. */
    @State(Scope.Benchmark)
    public static class Compiled {
        /** {@code auto}: the default; {@code own}: a thread per actor; {@code one}: every actor on one thread. */
        @Param({ChainGraph.AUTO, ChainGraph.OWN, ChainGraph.ONE})
        public String threads;
        ChainGraph chain;

        /** Starts the actors, compiles and checks the chain, and starts 7 executions. */
        @Setup(Level.Trial)
        public void setUp() {
            chain = new ChainGraph(COSTS_NS.length, COSTS_NS.length, threads, 8, 8, COSTS_NS);
        }

        /** Stops the chain (executions still in flight are dropped). */
        @TearDown(Level.Trial)
        public void tearDown() {
            chain.close();
        }
    }

    /** The four stages, called in turn by the JMH thread. */
    @State(Scope.Thread)
    public static class Sequential {
        final Stage[] stages = new Stage[COSTS_NS.length];
        long next;

        /** Makes the stages. */
        @Setup(Level.Trial)
        public void setUp() {
            for (int i = 0; i < stages.length; i++) {
                stages[i] = new Stage(i, COSTS_NS[i]);
            }
        }
    }

    /**
     * @param s the chain, 8 in flight
     * @return the oldest execution's result
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public long compiled(Compiled s) {
        return s.chain.oneMore();
    }

    /**
     * @param s the stages
     * @return the four calls' result
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public long sequential(Sequential s) {
        long x = s.next = (s.next + 1) & 127;
        for (Stage stage : s.stages) {
            x = stage.work(x);
        }
        return x;
    }
}
