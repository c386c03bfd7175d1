package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import org.reactivestreams.tck.TestEnvironment;
import org.reactivestreams.tck.flow.IdentityFlowProcessorVerification;
import org.testng.annotations.AfterClass;
import org.testng.annotations.AfterMethod;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Flow;

/**
 * The Reactive Streams TCK for {@code Flow} (TestNG, run on the JUnit Platform by the testng engine) against
 * {@link CompiledGraph#asProcessor()} over a one-actor identity graph: the publisher rules, the subscriber rules
 * (whitebox) and the processor rules. Every processor gets its own graph (and actor), closed after the test, so that
 * executions a test left behind do not use the next test's {@code maxInflight}.
 */
public class GraphProcessorTckTest extends IdentityFlowProcessorVerification<Integer> {

    /** The identity stage. */
    static final class Echo {
        int echo(int x) {
            return x;
        }
    }

    private final Kiln kiln = Kiln.local();
    private final List<CompiledGraph<Integer, Integer>> graphs = new ArrayList<>();
    private final ExecutorService executor = Executors.newFixedThreadPool(4);

    public GraphProcessorTckTest() {
        // 1 s for signals that must come (this machine is shared and slow), 200 ms for signals that must not.
        super(new TestEnvironment(1_000, 200));
    }

    @Override
    protected Flow.Processor<Integer, Integer> createIdentityFlowProcessor(int bufferSize) {
        ActorRef<Echo> echo = kiln.actor(Echo::new);
        InputNode<Integer> in = Graph.input();
        CompiledGraph<Integer, Integer> graph = kiln.compile(in, echo.bind(Echo::echo, in),
                CompileOptions.defaults().maxInflight(bufferSize));
        synchronized (graphs) {
            graphs.add(graph);
        }
        return graph.asProcessor();
    }

    @Override
    protected Flow.Publisher<Integer> createFailedFlowPublisher() {
        Flow.Processor<Integer, Integer> processor = createIdentityFlowProcessor(4);
        processor.onSubscribe(new Flow.Subscription() {
            @Override
            public void request(long n) {
            }

            @Override
            public void cancel() {
            }
        });
        processor.onError(new IllegalStateException("the upstream failed (a failed publisher for the TCK)"));
        return processor;
    }

    @Override
    public ExecutorService publisherExecutorService() {
        return executor;
    }

    @Override
    public long maxSupportedSubscribers() {
        return 1; // a processor serves one stream: asProcessor() again for another
    }

    @Override
    public Integer createElement(int element) {
        return element;
    }

    @AfterMethod
    public void closeGraphs() {
        synchronized (graphs) {
            graphs.forEach(CompiledGraph::close);
            graphs.clear();
        }
    }

    @AfterClass
    public void closeKiln() {
        executor.shutdownNow();
        kiln.close();
    }
}
