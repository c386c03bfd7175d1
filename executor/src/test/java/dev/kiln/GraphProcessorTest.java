package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.Tuple2;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;
import java.util.concurrent.SubmissionPublisher;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class GraphProcessorTest {

    private static final int MAX_INFLIGHT = 4;
    private static final Duration WAIT = Duration.ofSeconds(60);

    /** Adds 1, fails on multiples of 7 plus 3; counts the calls that entered. */
    static final class Step {
        final AtomicLong entered;

        Step(AtomicLong entered) {
            this.entered = entered;
        }

        int inc(int x) {
            entered.incrementAndGet();
            return x + 1;
        }

        int add(int x, int y) {
            return x + y;
        }

        int failSome(int x) {
            if (x % 7 == 3) {
                throw new UnsupportedOperationException("no " + x);
            }
            return x * 2;
        }
    }

    /**
     * Emits 0, 1, ... up to {@code count} (or without end), only as requested, on the requesting thread; counts what
     * it produced and whether it was cancelled.
     */
    static final class Range implements Flow.Publisher<Integer> {
        final int count;
        final AtomicLong produced = new AtomicLong();
        final AtomicBoolean cancelled = new AtomicBoolean();
        final RuntimeException failAtEnd;

        Range(int count, RuntimeException failAtEnd) {
            this.count = count;
            this.failAtEnd = failAtEnd;
        }

        @Override
        public void subscribe(Flow.Subscriber<? super Integer> s) {
            AtomicLong demand = new AtomicLong();
            AtomicInteger wip = new AtomicInteger();
            s.onSubscribe(new Flow.Subscription() {
                @Override
                public void request(long n) {
                    demand.getAndAdd(n);
                    if (wip.getAndIncrement() != 0) {
                        return;
                    }
                    do {
                        while (demand.get() > 0 && !cancelled.get() && produced.get() < count) {
                            demand.decrementAndGet();
                            s.onNext((int) produced.getAndIncrement());
                        }
                        if (produced.get() == count && !cancelled.getAndSet(true)) {
                            if (failAtEnd == null) {
                                s.onComplete();
                            } else {
                                s.onError(failAtEnd);
                            }
                        }
                    } while (wip.decrementAndGet() != 0);
                }

                @Override
                public void cancel() {
                    cancelled.set(true);
                }
            });
        }
    }

    /** Records what it gets; requests {@code batch} at a time, after each batch was received. */
    static class Recorder implements Flow.Subscriber<Integer> {
        final List<Integer> values = new ArrayList<>();
        final CompletableFuture<Throwable> done = new CompletableFuture<>(); // null on completion
        final int batch;
        final int cancelAfter;
        final Range upstream;
        long maxAhead;
        boolean slow;
        Flow.Subscription subscription;
        int inBatch;

        Recorder(int batch, int cancelAfter, Range upstream) {
            this.batch = batch;
            this.cancelAfter = cancelAfter;
            this.upstream = upstream;
        }

        @Override
        public void onSubscribe(Flow.Subscription s) {
            subscription = s;
            s.request(batch);
        }

        @Override
        public void onNext(Integer item) {
            values.add(item);
            if (upstream != null) {
                // Pulled from upstream and not yet here: what the processor holds (in the graph or waiting).
                maxAhead = Math.max(maxAhead, upstream.produced.get() - values.size());
            }
            if (values.size() == cancelAfter) {
                subscription.cancel();
                done.complete(null);
                return;
            }
            if (slow) {
                LockSupport.parkNanos(20_000);
            }
            if (++inBatch == batch) {
                inBatch = 0;
                subscription.request(batch);
            }
        }

        @Override
        public void onError(Throwable t) {
            done.complete(t);
        }

        @Override
        public void onComplete() {
            done.complete(null);
        }

        Throwable await() throws Exception {
            return done.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        }
    }

    private Kiln kiln;
    private AtomicLong entered;
    private CompiledGraph<Integer, Integer> incGraph;
    private CompiledGraph<Integer, Integer> failGraph;

    @BeforeEach
    void start() {
        kiln = Kiln.local();
        entered = new AtomicLong();
        ActorRef<Step> a = kiln.actor(() -> new Step(entered));
        ActorRef<Step> b = kiln.actor(() -> new Step(new AtomicLong()));
        InputNode<Integer> in = Graph.input();
        CompileOptions options = CompileOptions.defaults().maxInflight(MAX_INFLIGHT);
        incGraph = kiln.compile(in, b.bind(Step::inc, a.bind(Step::inc, in)), options);
        ActorRef<Step> c = kiln.actor(() -> new Step(new AtomicLong()));
        InputNode<Integer> in2 = Graph.input();
        failGraph = kiln.compile(in2, c.bind(Step::failSome, in2), options);
    }

    @AfterEach
    void stop() {
        kiln.close();
    }

    @Test
    void emitsEveryResultInOrderAndHoldsAtMostMaxInflightWithASlowDownstream() throws Exception {
        Range range = new Range(5_000, null);
        Recorder slow = new Recorder(64, -1, range); // asks for much, takes each one slowly
        slow.slow = true;
        Flow.Processor<Integer, Integer> p = incGraph.asProcessor();
        p.subscribe(slow);
        range.subscribe(p);
        assertNull(slow.await());
        assertEquals(5_000, slow.values.size());
        for (int i = 0; i < 5_000; i++) {
            assertEquals(i + 2, slow.values.get(i));
        }
        assertTrue(slow.maxAhead <= MAX_INFLIGHT, "held " + slow.maxAhead + " > maxInflight " + MAX_INFLIGHT);
        assertTrue(slow.maxAhead >= 2, "never ran ahead of downstream: " + slow.maxAhead);
    }

    @Test
    void requestsNothingUpstreamBeforeDownstreamDemand() throws Exception {
        Range range = new Range(100, null);
        Flow.Processor<Integer, Integer> p = incGraph.asProcessor();
        range.subscribe(p);
        Recorder r = new Recorder(3, 3, range);
        p.subscribe(r);
        assertNull(r.await());
        assertEquals(List.of(2, 3, 4), r.values);
        assertTrue(range.produced.get() <= 3 + MAX_INFLIGHT, "produced " + range.produced.get());
    }

    @Test
    void aFailedExecutionFailsTheStreamAfterTheResultsBeforeIt() throws Exception {
        Range range = new Range(100, null);
        Recorder r = new Recorder(16, -1, range);
        Flow.Processor<Integer, Integer> p = failGraph.asProcessor();
        p.subscribe(r);
        range.subscribe(p);
        ActorTaskException e = assertInstanceOf(ActorTaskException.class, r.await());
        assertInstanceOf(UnsupportedOperationException.class, e.getCause());
        assertEquals(List.of(0, 2, 4), r.values);
        assertTrue(range.cancelled.get());
        assertEquals(22, failGraph.execute(11).get(WAIT)); // the graph runs on
    }

    @Test
    void aFailureValueTakesTheFailedElementsPlace() throws Exception {
        Range range = new Range(100, null);
        Recorder r = new Recorder(16, -1, range);
        Flow.Processor<Integer, Integer> p = failGraph.asProcessor(e -> e instanceof ActorTaskException ? -1 : -2);
        p.subscribe(r);
        range.subscribe(p);
        assertNull(r.await());
        assertEquals(100, r.values.size());
        for (int i = 0; i < 100; i++) {
            assertEquals(i % 7 == 3 ? -1 : i * 2, r.values.get(i), "element " + i);
        }
    }

    @Test
    void aFailureValueOfNullFailsTheStream() throws Exception {
        Recorder r = new Recorder(16, -1, null);
        Flow.Processor<Integer, Integer> p = failGraph.asProcessor(e -> null);
        p.subscribe(r);
        new Range(100, null).subscribe(p);
        assertTrue(assertInstanceOf(NullPointerException.class, r.await()).getMessage().contains("returned null"));
        assertEquals(List.of(0, 2, 4), r.values);
    }

    @Test
    void aFailureValueThatThrowsFailsTheStreamWithItsException() throws Exception {
        Range range = new Range(100, null);
        Recorder r = new Recorder(16, -1, range);
        IllegalStateException mappingBroke = new IllegalStateException("mapping broke");
        Flow.Processor<Integer, Integer> p = failGraph.asProcessor(e -> {
            throw mappingBroke;
        });
        p.subscribe(r);
        range.subscribe(p);
        assertEquals(mappingBroke, r.await());
        assertInstanceOf(ActorTaskException.class, mappingBroke.getSuppressed()[0]);
        assertEquals(List.of(0, 2, 4), r.values);
        assertTrue(range.cancelled.get());
    }

    @Test
    void upstreamErrorComesAfterTheResultsInFlight() throws Exception {
        IllegalStateException boom = new IllegalStateException("upstream broke");
        Range range = new Range(50, boom);
        Recorder r = new Recorder(50, -1, range);
        Flow.Processor<Integer, Integer> p = incGraph.asProcessor();
        p.subscribe(r);
        range.subscribe(p);
        assertEquals(boom, r.await());
        assertEquals(50, r.values.size());
        assertEquals(51, r.values.getLast());
    }

    @Test
    void cancellationStopsUpstreamAndLeavesTheGraphUsable() throws Exception {
        Range range = new Range(Integer.MAX_VALUE, null);
        Recorder r = new Recorder(8, 20, range);
        Flow.Processor<Integer, Integer> p = incGraph.asProcessor();
        p.subscribe(r);
        range.subscribe(p);
        assertNull(r.await());
        // The recorder cancels inside onNext; the processor cancels upstream when that onNext returns.
        KilnTestSupport.awaitTrue("upstream cancelled", WAIT, range.cancelled::get);
        long produced = range.produced.get();
        assertTrue(produced <= 20 + 8 + MAX_INFLIGHT, "produced " + produced);
        assertEquals(7, incGraph.execute(5).get(WAIT));
        KilnTestSupport.awaitTrue("in-flight executions of the cancelled stream end", WAIT,
                () -> incGraph.statistics().inFlight() == 0);
        assertEquals(produced + 1, incGraph.statistics().submitted(), "submitted after cancel");
        assertEquals(20, r.values.size());
    }

    @Test
    void aSecondSubscriberAndABadRequestGetOnError() throws Exception {
        Flow.Processor<Integer, Integer> p = incGraph.asProcessor();
        Recorder first = new Recorder(1, -1, null);
        p.subscribe(first);
        Recorder second = new Recorder(1, -1, null);
        p.subscribe(second);
        assertInstanceOf(IllegalStateException.class, second.await());

        Flow.Processor<Integer, Integer> q = incGraph.asProcessor();
        Range range = new Range(10, null);
        Recorder bad = new Recorder(1, -1, range) {
            @Override
            public void onSubscribe(Flow.Subscription s) {
                s.request(0);
            }
        };
        q.subscribe(bad);
        range.subscribe(q);
        assertTrue(assertInstanceOf(IllegalArgumentException.class, bad.await()).getMessage().contains("3.9"));
        assertTrue(range.cancelled.get());
    }

    @Test
    void aGraphOfSeveralArgumentsTakesTheirTupleAsItsElement() throws Exception {
        ActorRef<Step> a = kiln.actor(() -> new Step(new AtomicLong()));
        InputNode2<Integer, Integer> in = Graph.input2();
        CompiledGraph<Tuple2<Integer, Integer>, Integer> two = kiln.compile(in,
                a.bind(Step::add, in.first(), in.second()));
        Recorder out = new Recorder(8, -1, null);
        Flow.Processor<Tuple2<Integer, Integer>, Integer> p = two.asProcessor();
        p.subscribe(out);
        try (SubmissionPublisher<Tuple2<Integer, Integer>> source = new SubmissionPublisher<>()) {
            source.subscribe(p);
            for (int i = 0; i < 100; i++) {
                source.submit(new Tuple2<>(i, 2 * i));
            }
        } // closing completes the stream after the elements
        assertNull(out.await());
        assertEquals(IntStream.range(0, 100).map(i -> 3 * i).boxed().toList(), out.values);
    }
}
