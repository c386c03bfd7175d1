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
 * A chain with one actor per stage ({@code length} actors, {@link Stage#step} each, all in the driver's JVM), each
 * actor on a thread of its own ({@code threads=own}: {@code CompileOptions.THREAD_PER_ACTOR}) against the default
 * ({@code threads=auto}: actors share threads once they outnumber the cores), in the same run. Two measures:
 * {@link #pipelined} executions per second with 16 in flight ({@code maxInflight} 16), and {@link #oneAtATime}
 * microseconds per execution with 1 in flight ({@code maxInflight} 10, the default). Default idle mode (BACKOFF).
 * The ratio of auto over own per length is in docs/benchmarks.md.
 */
public class ChainScanBenchmark {

    /** Opens and closes the chain of a state; the parameters both states share. */
    @State(Scope.Benchmark)
    public abstract static class Chain {
        /** Actors in the chain, one call each. */
        @Param({"1", "2", "4", "8", "16", "32"})
        public int length;
        /** {@code own}: a thread per actor; {@code auto}: the default, threads shared beyond the cores. */
        @Param({ChainGraph.OWN, ChainGraph.AUTO})
        public String threads;
        ChainGraph chain;

        /** Stops the chain (executions still in flight are dropped). */
        @TearDown(Level.Trial)
        public void tearDown() {
            chain.close();
        }
    }

    /** 16 executions in flight. */
    @State(Scope.Benchmark)
    public static class Pipelined extends Chain {

        /** Starts the actors, compiles and checks the chain, and starts 15 executions. */
        @Setup(Level.Trial)
        public void setUp() {
            chain = new ChainGraph(length, length, threads, 16, 16);
        }
    }

    /** One execution at a time. */
    @State(Scope.Benchmark)
    public static class OneAtATime extends Chain {

        /** Starts the actors, compiles and checks the chain. */
        @Setup(Level.Trial)
        public void setUp() {
            chain = new ChainGraph(length, length, threads, 1, 10);
        }
    }

    /**
     * @param s the chain, 16 in flight
     * @return the oldest execution's result
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    public long pipelined(Pipelined s) {
        return s.chain.oneMore();
    }

    /**
     * @param s the chain, 1 in flight
     * @return the execution's result
     */
    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.MICROSECONDS)
    public long oneAtATime(OneAtATime s) {
        return s.chain.oneMore();
    }
}
