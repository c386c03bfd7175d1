package dev.kiln.bench;

import dev.kiln.CompiledGraph;
import dev.kiln.Kiln;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.stream.javadsl.JavaFlowSupport;
import org.apache.pekko.stream.javadsl.Sink;
import org.apache.pekko.stream.javadsl.Source;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * Four stages as one stage of a Pekko Streams graph, two ways: Pekko's own {@code mapAsync(16)} of a
 * {@link CompletableFuture} that runs the four {@link Stage} steps one after another on Pekko's default dispatcher
 * (the baseline), and a compiled Kiln graph of four actors, {@code maxInflight(16)}, plugged in as a
 * {@code java.util.concurrent.Flow.Processor} ({@link CompiledGraph#asProcessor()} through Pekko's
 * {@code JavaFlowSupport}). Each operation runs a stream of {@link #ELEMENTS} elements to completion (materializing
 * it, and for Kiln a new processor, each time), so the score is elements per second, and {@code -prof gc}'s
 * {@code gc.alloc.rate.norm} is bytes per element. Inputs stay in {@code Long}'s box cache, as in the other
 * benchmarks. Both are checked against the four steps computed here before they are measured.
 *
 * <pre>
 * java ... -jar jmh-benchmarks/target/benchmarks.jar FlowStageBenchmark -f 1 -wi 3 -w 2s -i 5 -r 2s -prof gc
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class FlowStageBenchmark {

    /** Elements per stream: one operation. */
    static final int ELEMENTS = 10_000;
    /** Elements in flight in either stage: mapAsync's parallelism, Kiln's maxInflight. */
    static final int INFLIGHT = 16;

    private final Stage[] stages = {new Stage(0), new Stage(1), new Stage(2), new Stage(3)};
    private ActorSystem system;
    private Executor dispatcher;
    private Kiln kiln;
    private CompiledGraph<Long, Long> graph;
    private long expectedSum;

    /** Starts the actor system and the Kiln graph, and checks both paths once. */
    @Setup(Level.Trial)
    public void setUp() throws Exception {
        system = ActorSystem.create("flow-stage");
        dispatcher = system.dispatcher();
        kiln = Kiln.local();
        InputNode<Long> in = Graph.input();
        Node<Long> x = in;
        for (int i = 0; i < 4; i++) {
            int salt = i;
            ActorRef<Stage> actor = kiln.actor(() -> new Stage(salt));
            x = actor.bind(Stage::step, x);
        }
        graph = kiln.compile(in, x, CompileOptions.defaults().maxInflight(INFLIGHT));
        for (int i = 0; i < ELEMENTS; i++) {
            expectedSum += steps(i & 127);
        }
        check("mapAsync", pekkoMapAsync());
        check("Kiln processor", kilnProcessor());
    }

    private void check(String path, long sum) {
        if (sum != expectedSum) {
            throw new IllegalStateException(path + ": the stream's results sum to " + sum + ", expected " + expectedSum);
        }
    }

    private long steps(long x) {
        return stages[3].step(stages[2].step(stages[1].step(stages[0].step(x))));
    }

    /** {@return the sum of the stream's results} Baseline: the four steps in a future per element, 16 at a time. */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public long pekkoMapAsync() throws Exception {
        return Source.range(0, ELEMENTS - 1)
                .map(i -> (long) (i & 127))
                .mapAsync(INFLIGHT, v -> CompletableFuture.supplyAsync(() -> stages[0].step(v), dispatcher)
                        .thenApplyAsync(stages[1]::step, dispatcher)
                        .thenApplyAsync(stages[2]::step, dispatcher)
                        .thenApplyAsync(stages[3]::step, dispatcher))
                .runWith(Sink.fold(0L, Long::sum), system)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    /** {@return the sum of the stream's results} The four steps as a Kiln graph, through its Flow processor. */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public long kilnProcessor() throws Exception {
        return Source.range(0, ELEMENTS - 1)
                .map(i -> (long) (i & 127))
                .via(JavaFlowSupport.Flow.fromProcessor(graph::asProcessor))
                .runWith(Sink.fold(0L, Long::sum), system)
                .toCompletableFuture().get(60, TimeUnit.SECONDS);
    }

    /** Closes the graph and terminates the actor system. */
    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        kiln.close();
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(60, TimeUnit.SECONDS);
    }
}
