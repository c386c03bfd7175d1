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
 * A 1,000-call graph over 50 actors: a chain of 1,000 {@link Stage#step} calls visiting the actors round-robin
 * (call {@code i} on actor {@code i % 50}, all in the driver's JVM), so every call hands its value to another
 * actor. Microseconds per execution with 1 in flight ({@code maxInflight} 10, the default), each actor on a thread
 * of its own ({@code threads=own}) against the default ({@code threads=auto}: shared beyond the cores) and all on one
 * thread ({@code threads=one}), in the same run. Default idle mode (BACKOFF).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@State(Scope.Benchmark)
public class ManyCallsBenchmark {

    /** Calls in the graph. */
    static final int CALLS = 1_000;
    /** Actors they visit. */
    static final int ACTORS = 50;

    /**
     * {@code own}: a thread per actor; {@code auto}: the default, threads shared beyond the cores; {@code one}: all
     * actors on one thread ({@code actorThreads(1)}).
     */
    @Param({ChainGraph.OWN, ChainGraph.AUTO, ChainGraph.ONE})
    public String threads;

    private ChainGraph chain;

    /** Starts the actors, compiles and checks the graph. */
    @Setup(Level.Trial)
    public void setUp() {
        chain = new ChainGraph(CALLS, ACTORS, threads, 1, 10);
    }

    /** Stops the graph and its actors. */
    @TearDown(Level.Trial)
    public void tearDown() {
        chain.close();
    }

    /** @return the execution's result */
    @Benchmark
    public long execute() {
        return chain.oneMore();
    }
}
