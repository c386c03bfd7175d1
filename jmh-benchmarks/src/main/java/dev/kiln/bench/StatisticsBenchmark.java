package dev.kiln.bench;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
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
 * The cost of a graph's statistics ({@code CompileOptions.statistics}) on the single-actor round trip in one JVM:
 * the same graph compiled with statistics on and off, in the same run. JFR is not recording, so this also measures
 * the JFR events' cost while off (their {@code isEnabled()} tests are in both). The ratio is in docs/benchmarks.md.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@State(Scope.Benchmark)
public class StatisticsBenchmark {

    /** Whether the graph keeps statistics. */
    @Param({"true", "false"})
    public boolean statistics;

    /** How the waiting threads idle. */
    @Param({"BACKOFF"})
    public IdleMode idle;

    private Kiln kiln;
    private CompiledGraph<Long, Long> graph;
    private long x;

    /** Compiles the single-actor graph. */
    @Setup(Level.Trial)
    public void setUp() {
        kiln = Kiln.local();
        ActorRef<Stage> stage = kiln.actor(() -> new Stage(0));
        InputNode<Long> in = Graph.input();
        graph = kiln.compile(in, stage.bind(Stage::step, in), CompileOptions.defaults().idle(idle).statistics(statistics));
    }

    /** Closes the runtime. */
    @TearDown(Level.Trial)
    public void tearDown() {
        graph.close();
        kiln.close();
    }

    /** @return one round trip's result */
    @Benchmark
    public long roundTrip() {
        x = (x + 1) & 127;
        return graph.execute(x).get();
    }
}
