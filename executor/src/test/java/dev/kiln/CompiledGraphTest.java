package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple2;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

@Timeout(120)
class CompiledGraphTest {

    /** Adds 1 once its gate opens; counts the calls that entered. */
    static final class Gate {
        private final CountDownLatch open;
        private final AtomicInteger calls;

        Gate(CountDownLatch open, AtomicInteger calls) {
            this.open = open;
            this.calls = calls;
        }

        int pass(int x) throws InterruptedException {
            calls.incrementAndGet();
            if (!open.await(60, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the test never opened the gate");
            }
            return x + 1;
        }
    }

    /** Adds 1 and counts its calls. */
    static final class Inc {
        private final AtomicLong calls;

        Inc(AtomicLong calls) {
            this.calls = calls;
        }

        Inc() {
            this(new AtomicLong());
        }

        int inc(int x) {
            calls.incrementAndGet();
            return x + 1;
        }

        int fail(int x) {
            if (x % 7 == 3) {
                throw new UnsupportedOperationException("no " + x);
            }
            return -x;
        }
    }

    /** Dies of a StackOverflowError on input 5, once the test opens its latch. */
    static final class Fragile {
        private final CountDownLatch arm;

        Fragile(CountDownLatch arm) {
            this.arm = arm;
        }

        int risky(int x) throws InterruptedException {
            if (x == 5) {
                if (!arm.await(60, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("the test never armed the failure");
                }
                throw new StackOverflowError("test");
            }
            return x * 2;
        }
    }

    private static CompileOptions fast() {
        return CompileOptions.defaults().teardownTimeout(Duration.ofMillis(500));
    }

    @Test
    void inFlightBoundRejectsTheExecutionThatDoesNotFit() {
        CountDownLatch open = new CountDownLatch(1);
        AtomicInteger calls = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Gate> gate = kiln.actor(() -> new Gate(open, calls));
            ActorRef<Inc> inc = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = inc.bind(Inc::inc, gate.bind(Gate::pass, in));
            CompileOptions options = CompileOptions.defaults().maxInflight(2).submitTimeout(Duration.ofMillis(200));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, options)) {
                GraphFuture<Integer> f0 = g.execute(0);
                GraphFuture<Integer> f1 = g.execute(1);
                CapacityExceededException e = assertThrows(CapacityExceededException.class, () -> g.execute(2));
                assertTrue(e.getMessage().contains("maxInflight"), e.getMessage());
                assertTrue(e.getMessage().contains("submitTimeout"), e.getMessage());
                assertThrows(CapacityExceededException.class, () -> g.executeAsync(2));
                assertFalse(f0.isDone());
                open.countDown();
                assertEquals(2, f0.get(10, TimeUnit.SECONDS));
                assertEquals(3, f1.get(10, TimeUnit.SECONDS));
                assertEquals(2, calls.get(), "the rejected executions never ran");
                GraphFuture<Integer> f2 = g.execute(10);
                assertEquals(2, f2.sequence(), "a rejected execution takes no sequence number");
                assertEquals(12, f2.get(10, TimeUnit.SECONDS));
                for (int i = 0; i < 100; i++) {
                    assertEquals(i + 2, g.execute(i).get(10, TimeUnit.SECONDS));
                }
                assertEquals(103, calls.get());
            }
        }
    }

    @Test
    void closeFailsUnfinishedFuturesAndLaterExecutes() throws Exception {
        CountDownLatch open = new CountDownLatch(1);
        AtomicInteger calls = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Gate> gate = kiln.actor(() -> new Gate(open, calls));
            ActorRef<Inc> inc = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, inc.bind(Inc::inc, gate.bind(Gate::pass, in)),
                    fast().maxInflight(4));
            List<GraphFuture<Integer>> futures = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                futures.add(g.execute(i));
            }
            CompletableFuture<Integer> async = g.executeAsync(3);
            CompletableFuture<Object> waiter = CompletableFuture.supplyAsync(() -> futures.get(2).get(60, TimeUnit.SECONDS));
            KilnTestSupport.awaitTrue("the gate actor is inside its method", KilnTestSupport.SOON, () -> calls.get() == 1);

            g.close(); // the gate actor is stuck in a method: close gives up waiting after teardownTimeout

            assertTrue(g.isClosed());
            for (GraphFuture<Integer> f : futures) {
                assertTrue(f.isDone());
                GraphClosedException e = assertThrows(GraphClosedException.class, () -> f.get(10, TimeUnit.SECONDS));
                assertTrue(e.getMessage().contains("closed"), e.getMessage());
            }
            ExecutionException asyncFailure = assertThrows(ExecutionException.class, () -> async.get(10, TimeUnit.SECONDS));
            assertInstanceOf(GraphClosedException.class, asyncFailure.getCause());
            ExecutionException waited = assertThrows(ExecutionException.class, () -> waiter.get(10, TimeUnit.SECONDS));
            assertInstanceOf(GraphClosedException.class, waited.getCause());
            assertThrows(GraphClosedException.class, () -> g.execute(9));
            assertThrows(GraphClosedException.class, () -> g.executeAsync(9));
            g.close(); // idempotent

            // the actor leaves the closed graph once its method returns, and is then usable again
            open.countDown();
            awaitDynamicCallsAccepted(kiln, gate);
            assertEquals(8, kiln.call(gate, Gate::pass, 7).get(10, TimeUnit.SECONDS));
            assertEquals(11, kiln.call(inc, Inc::inc, 10).get(10, TimeUnit.SECONDS));
            InputNode<Integer> in2 = Graph.input();
            try (CompiledGraph<Integer, Integer> g2 = kiln.compile(in2, gate.bind(Gate::pass, inc.bind(Inc::inc, in2)))) {
                assertEquals(12, g2.execute(10).get(10, TimeUnit.SECONDS));
            }
        }
    }

    /** Polls until the actor accepts a dynamic call, i.e. no graph holds it any more. */
    private static void awaitDynamicCallsAccepted(Kiln kiln, ActorRef<Gate> gate) {
        KilnTestSupport.awaitTrue("actor " + gate.name() + " leaves its closed graph", KilnTestSupport.SOON, () -> {
            try {
                kiln.call(gate, Gate::pass, 0).get(10, TimeUnit.SECONDS);
                return true;
            } catch (IllegalStateException held) {
                return false;
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
    }

    @Test
    void closeWakesAnExecuteWaitingForCapacity() throws Exception {
        CountDownLatch open = new CountDownLatch(1);
        AtomicInteger calls = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Gate> gate = kiln.actor(() -> new Gate(open, calls));
            InputNode<Integer> in = Graph.input();
            CompiledGraph<Integer, Integer> g = kiln.compile(in, gate.bind(Gate::pass, in),
                    fast().maxInflight(1).submitTimeout(Duration.ofSeconds(60)));
            GraphFuture<Integer> first = g.execute(0);
            CompletableFuture<GraphFuture<Integer>> blocked = CompletableFuture.supplyAsync(() -> g.execute(1));
            KilnTestSupport.awaitTrue("the gate actor is inside its method", KilnTestSupport.SOON, () -> calls.get() == 1);
            g.close();
            ExecutionException e = assertThrows(ExecutionException.class, () -> blocked.get(10, TimeUnit.SECONDS));
            assertInstanceOf(GraphClosedException.class, e.getCause());
            assertThrows(GraphClosedException.class, () -> first.get(10, TimeUnit.SECONDS));
            open.countDown();
        }
        assertEquals(1, calls.get(), "the execution that waited for capacity never ran");
    }

    @Test
    void severalThreadsExecuteAndReadConcurrently() throws Exception {
        int threads = 3;
        int perThread = 3000;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            ActorRef<Inc> b = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b.bind(Inc::inc, a.bind(Inc::inc, in)),
                    CompileOptions.defaults().maxInflight(4))) {
                List<CompletableFuture<Long>> workers = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int base = t * 1_000_000;
                    workers.add(CompletableFuture.supplyAsync(() -> {
                        List<GraphFuture<Integer>> mine = new ArrayList<>();
                        long lastSequence = -1;
                        for (int i = 0; i < perThread; i++) {
                            GraphFuture<Integer> f = g.execute(base + i);
                            assertTrue(f.sequence() > lastSequence, "sequences grow per thread");
                            lastSequence = f.sequence();
                            mine.add(f);
                            if (mine.size() == 3) {
                                for (int j = 0; j < mine.size(); j++) {
                                    assertEquals(base + i - 2 + j + 2, mine.get(j).get(10, TimeUnit.SECONDS));
                                }
                                mine.clear();
                            }
                        }
                        for (GraphFuture<Integer> f : mine) {
                            f.get(10, TimeUnit.SECONDS);
                        }
                        return lastSequence;
                    }, pool));
                }
                long maxSequence = 0;
                for (CompletableFuture<Long> w : workers) {
                    maxSequence = Math.max(maxSequence, w.get(60, TimeUnit.SECONDS));
                }
                assertEquals((long) threads * perThread - 1, maxSequence, "every execution got its own sequence");
            }
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void closingAGraphKeepsItsActorsUsable() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            ActorRef<Inc> b = kiln.actor(Inc::new);
            for (int round = 0; round < 5; round++) {
                InputNode<Integer> in = Graph.input();
                try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b.bind(Inc::inc, a.bind(Inc::inc, in)))) {
                    assertEquals(round + 2, g.execute(round).get(10, TimeUnit.SECONDS));
                    assertEquals(2, kiln.call(a, Inc::inc, 1).get(10, TimeUnit.SECONDS), "between executions");
                }
                // close() waited for the loops to leave: the actors take dynamic calls at once
                assertEquals(round + 1, kiln.call(a, Inc::inc, round).get(10, TimeUnit.SECONDS));
                assertEquals(round + 1, kiln.call(b, Inc::inc, round).get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void multiOutputFailureFailsEveryOutputAndSkipsDownstream() {
        AtomicLong downstream = new AtomicLong();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            ActorRef<Inc> failing = kiln.actor(Inc::new);
            ActorRef<Inc> down = kiln.actor(() -> new Inc(downstream));
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = a.bind(Inc::inc, in);
            Node<Integer> y = failing.bind(Inc::fail, in);
            Node<Integer> z = down.bind(Inc::inc, y);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(x, y, z, x)),
                    CompileOptions.defaults().maxInflight(3))) {
                int failures = 0;
                for (int i = 0; i < 700; i++) {
                    GraphFuture<List<Object>> f = g.execute(i);
                    if (i % 7 == 3) {
                        failures++;
                        ActorTaskException e = assertThrows(ActorTaskException.class, () -> f.get(10, TimeUnit.SECONDS));
                        assertEquals(failing.name(), e.actor());
                        assertTrue(e.method().endsWith("Inc.fail"), e.method());
                        assertEquals(i, e.sequence());
                        assertEquals("no " + i, assertInstanceOf(UnsupportedOperationException.class, e.getCause()).getMessage());
                        // reading again fails the same way
                        assertEquals(i, assertThrows(ActorTaskException.class, () -> f.get(10, TimeUnit.SECONDS)).sequence());
                    } else {
                        assertEquals(List.of(i + 1, -i, 1 - i, i + 1), f.get(10, TimeUnit.SECONDS));
                    }
                }
                assertEquals(700 - failures, downstream.get(), "the call downstream of a failure was skipped");
            }
        }
    }

    @Test
    void aVirtualMachineErrorKillsTheActorAndEveryPendingAndLaterExecution() {
        CountDownLatch arm = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> up = kiln.actor(Inc::new);
            ActorRef<Fragile> fragile = kiln.actor(() -> new Fragile(arm));
            ActorRef<Inc> down = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = down.bind(Inc::inc, fragile.bind(Fragile::risky, up.bind(Inc::inc, in)));
            CompiledGraph<Integer, Integer> g = kiln.compile(in, out, CompileOptions.defaults().maxInflight(8));
            for (int i = 0; i < 4; i++) {
                assertEquals((i + 1) * 2 + 1, g.execute(i).get(10, TimeUnit.SECONDS));
            }
            List<GraphFuture<Integer>> pending = new ArrayList<>();
            for (int i = 4; i < 8; i++) {
                pending.add(g.execute(i)); // input 4 reaches risky as 5
            }
            CompletableFuture<Integer> pendingAsync = g.executeAsync(8);
            arm.countDown();

            for (GraphFuture<Integer> f : pending) {
                ActorDiedException e = assertThrows(ActorDiedException.class, () -> f.get(10, TimeUnit.SECONDS));
                assertTrue(e.getMessage().contains(fragile.name()), e.getMessage());
                assertTrue(causes(e).stream().anyMatch(c -> c instanceof StackOverflowError && "test".equals(c.getMessage())),
                        "caused by the actor's error: " + causes(e));
            }
            ExecutionException asyncFailure = assertThrows(ExecutionException.class,
                    () -> pendingAsync.get(10, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, asyncFailure.getCause());
            assertTrue(g.isClosed());
            assertThrows(ActorDiedException.class, () -> g.execute(1));
            assertThrows(ActorDiedException.class, () -> g.executeAsync(1));

            ExecutionException dynamic = assertThrows(ExecutionException.class,
                    () -> kiln.call(fragile, Fragile::risky, 1).get(10, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, dynamic.getCause());
            // the graph's other actors are freed and live on
            KilnTestSupport.awaitTrue("the surviving actors leave the dead graph", KilnTestSupport.SOON, () -> {
                try {
                    return kiln.call(down, Inc::inc, 1).get(10, TimeUnit.SECONDS) == 2
                            && kiln.call(up, Inc::inc, 2).get(10, TimeUnit.SECONDS) == 3;
                } catch (IllegalStateException held) {
                    return false;
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            InputNode<Integer> in2 = Graph.input();
            dev.kiln.compiler.GraphCompileException refused = assertThrows(dev.kiln.compiler.GraphCompileException.class,
                    () -> kiln.compile(in2, fragile.bind(Fragile::risky, in2)));
            assertTrue(refused.getMessage().contains("is dead") && refused.getMessage().contains("create a new actor"),
                    refused.getMessage());
            g.close();
        } // Kiln.close returns with a dead actor
    }

    /** Dies of a StackOverflowError on input 30, at once. */
    static final class DiesAt30 {
        int f(int x) {
            if (x == 30) {
                throw new StackOverflowError("at 30");
            }
            return x;
        }
    }

    @Test
    void executionsRacingWithADeathAllFailWithActorDiedException() {
        for (int round = 0; round < 60; round++) {
            try (Kiln kiln = Kiln.local()) {
                ActorRef<DiesAt30> a = kiln.actor(DiesAt30::new);
                InputNode<Integer> in = Graph.input();
                try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(DiesAt30::f, in),
                        CompileOptions.defaults().maxInflight(64))) {
                    List<GraphFuture<Integer>> futures = new ArrayList<>();
                    // submit as fast as possible while the actor dies: execute must start failing, and only
                    // with ActorDiedException, never GraphClosedException
                    ActorDiedException refused = assertThrows(ActorDiedException.class, () -> {
                        for (int i = 0; i < 10_000_000; i++) {
                            futures.add(g.execute(i));
                        }
                    }, "round " + round);
                    assertTrue(refused.getMessage().contains(a.name()), refused.getMessage());
                    for (int i = 0; i < futures.size(); i++) {
                        GraphFuture<Integer> f = futures.get(i);
                        if (i < 30) {
                            // finished before the death, or lost with the graph
                            try {
                                assertEquals(i, f.get(10, TimeUnit.SECONDS));
                            } catch (ActorDiedException lost) {
                                // allowed: not collected before the actor died
                            }
                        } else {
                            assertThrows(ActorDiedException.class, () -> f.get(10, TimeUnit.SECONDS),
                                    "round " + round + ", execution " + i);
                        }
                    }
                }
            }
        }
    }

    private static List<Throwable> causes(Throwable t) {
        List<Throwable> chain = new ArrayList<>();
        for (Throwable c = t; c != null && !chain.contains(c); c = c.getCause()) {
            chain.add(c);
        }
        return chain;
    }

    @Test
    void executeAsyncCompletesWithoutAnyGet() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            ActorRef<Inc> b = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b.bind(Inc::inc, a.bind(Inc::inc, in)),
                    CompileOptions.defaults().maxInflight(4))) {
                List<CompletableFuture<String>> chained = new ArrayList<>();
                for (int i = 0; i < 2000; i++) {
                    chained.add(g.executeAsync(i).thenApply(v -> v * 10).thenApply(v -> "v" + v));
                }
                CompletableFuture.allOf(chained.toArray(CompletableFuture<?>[]::new)).get(10, TimeUnit.SECONDS);
                for (int i = 0; i < chained.size(); i++) {
                    assertEquals("v" + (i + 2) * 10, chained.get(i).getNow(null));
                }
            }
        }
    }

    @Test
    void asyncCallbacksMayExecuteOnTheSameGraphWhileItIsFull() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            // a short submitTimeout: a callback that cannot submit fails the test soon instead of stalling it
            CompileOptions options = CompileOptions.defaults().maxInflight(2).submitTimeout(Duration.ofSeconds(5));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Inc::inc, in), options)) {
                List<CompletableFuture<Integer>> chained = new ArrayList<>();
                for (int i = 0; i < 300; i++) {
                    // the main thread keeps the graph full while callbacks submit the second step
                    chained.add(g.executeAsync(i).thenCompose(v -> g.executeAsync(v + 1000))
                            .thenApply(v -> v + g.execute(0).get(10, TimeUnit.SECONDS)));
                }
                CompletableFuture.allOf(chained.toArray(CompletableFuture<?>[]::new)).get(60, TimeUnit.SECONDS);
                for (int i = 0; i < chained.size(); i++) {
                    assertEquals(i + 1002 + 1, chained.get(i).getNow(null));
                }
            }
        }
    }

    @Test
    void executeAsyncFailuresCompleteTheFutureExceptionally() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Inc::fail, in))) {
                List<CompletableFuture<Integer>> fs = new ArrayList<>();
                for (int i = 0; i < 50; i++) {
                    fs.add(g.executeAsync(i));
                }
                CompletableFuture.allOf(fs.toArray(CompletableFuture<?>[]::new))
                        .handle((v, t) -> null).get(10, TimeUnit.SECONDS);
                for (int i = 0; i < fs.size(); i++) {
                    CompletableFuture<Integer> f = fs.get(i);
                    if (i % 7 == 3) {
                        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
                        ActorTaskException task = assertInstanceOf(ActorTaskException.class, e.getCause());
                        assertEquals(i, task.sequence());
                        assertInstanceOf(UnsupportedOperationException.class, task.getCause());
                    } else {
                        assertEquals(-i, f.get(10, TimeUnit.SECONDS));
                    }
                }
            }
        }
    }

    @Test
    void mixingExecuteAndExecuteAsync() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new);
            ActorRef<Inc> b = kiln.actor(Inc::new);
            InputNode2<Integer, Integer> in = Graph.input2();
            Node<Integer> sum = b.bind(Inc::inc, a.bind(Inc::inc, in.first()));
            Node<Integer> other = b.bind(Inc::inc, in.second());
            try (CompiledGraph<Tuple2<Integer, Integer>, Tuple2<Integer, Integer>> g = kiln.compile(in,
                    Graph.outputs(sum, other), CompileOptions.defaults().maxInflight(5))) {
                List<Object> futures = new ArrayList<>();
                for (int i = 0; i < 3000; i++) {
                    Tuple2<Integer, Integer> args = new Tuple2<>(i, -i);
                    futures.add(i % 3 == 0 ? g.executeAsync(args) : g.execute(args));
                }
                // a sync future that nobody reads does not hold back the async ones behind it
                CompletableFuture<?> last = (CompletableFuture<?>) futures.get(2997);
                assertEquals(new Tuple2<>(2999, 1 - 2997), last.get(10, TimeUnit.SECONDS));
                for (int i = futures.size() - 1; i >= 0; i--) {
                    Object expected = new Tuple2<>(i + 2, 1 - i);
                    switch (futures.get(i)) {
                        case CompletableFuture<?> cf -> assertEquals(expected, cf.get(10, TimeUnit.SECONDS));
                        case GraphFuture<?> gf -> assertEquals(expected, gf.get(10, TimeUnit.SECONDS));
                        default -> fail("unexpected " + futures.get(i));
                    }
                }
            }
        }
    }

    @Test
    void planAndDotDescribeTheGraph() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Inc> a = kiln.actor(Inc::new, ActorOptions.defaults().name("first"));
            ActorRef<Inc> b = kiln.actor(Inc::new, ActorOptions.defaults().name("second"));
            InputNode<Integer> in = Graph.input();
            CompileOptions options = CompileOptions.defaults().maxInflight(3);
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b.bind(Inc::inc, a.bind(Inc::inc, in)), options)) {
                assertSame(options, g.options());
                assertEquals(3, g.plan().maxInflight());
                assertEquals(2, g.plan().schedules().size());
                assertEquals(List.of("first", "second"), g.plan().schedules().stream().map(s -> s.name()).toList());
                assertTrue(g.toDot().startsWith("digraph"), g.toDot());
                assertTrue(g.toDot().contains("first.inc"), g.toDot());
            }
        }
    }
}
