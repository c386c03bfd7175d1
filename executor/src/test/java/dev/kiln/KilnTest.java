package dev.kiln;

import dev.kiln.compiler.ActorDeathPolicy;
import dev.kiln.compiler.CompileOptions;
import dev.kiln.compiler.GraphCompileException;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class KilnTest {

    /** Plain arithmetic, a failing method, and what thread and thread-local state it runs with. */
    static final class Calc {
        static final ThreadLocal<String> CREATED_BY = new ThreadLocal<>();
        private final Thread home;

        Calc() {
            home = Thread.currentThread();
            CREATED_BY.set("calc@" + home.getName());
        }

        int zero() {
            return 42;
        }

        int one(int a) {
            return a + 1;
        }

        int two(int a, int b) {
            return a * b;
        }

        String three(String a, int b, Integer c) {
            return a + b + c;
        }

        int boom(int x) throws IOException {
            throw new IOException("boom " + x);
        }

        String thread(int ignored) {
            assertSame(home, Thread.currentThread(), "every call runs on the thread that created the actor");
            return Thread.currentThread().getName();
        }

        String threadLocal(int ignored) {
            return CREATED_BY.get();
        }
    }

    /** Waits on a latch; unblocked by the test. */
    static final class Blocker {
        private final CountDownLatch latch;

        Blocker(CountDownLatch latch) {
            this.latch = latch;
        }

        int block(int x) throws InterruptedException {
            latch.await(60, TimeUnit.SECONDS);
            return x;
        }
    }

    private static Node<Integer> pair(InputNode<Integer> in, ActorRef<Calc> first, ActorRef<Calc> second) {
        return second.bind(Calc::one, first.bind(Calc::one, in));
    }

    @Test
    void anActorServesSeveralOpenGraphsAndClosingOneLeavesTheOthers() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            InputNode<Integer> in1 = Graph.input();
            CompiledGraph<Integer, Integer> first = kiln.compile(in1, b.bind(Calc::one, in1));
            InputNode<Integer> in2 = Graph.input();
            CompiledGraph<Integer, Integer> second = kiln.compile(in2, pair(in2, a, b));
            InputNode<Integer> in3 = Graph.input();
            CompiledGraph<Integer, Integer> third = kiln.compile(in3, b.bind(Calc::boom, in3));
            List<GraphFuture<Integer>> f1 = new ArrayList<>();
            List<GraphFuture<Integer>> f2 = new ArrayList<>();
            for (int i = 0; i < 1_000; i++) {
                f1.add(first.execute(i));
                f2.add(second.execute(i));
                if (f1.size() == 8) {
                    for (int k = 0; k < 8; k++) {
                        int n = i - 7 + k;
                        assertEquals(n + 1, f1.get(k).get(Duration.ofSeconds(10)));
                        assertEquals(n + 2, f2.get(k).get(Duration.ofSeconds(10)));
                    }
                    f1.clear();
                    f2.clear();
                }
            }
            // one graph's failures are its own
            assertThrows(ActorTaskException.class, () -> third.execute(1).get(Duration.ofSeconds(10)));
            assertEquals(6, first.execute(5).get(Duration.ofSeconds(10)));
            first.close();
            third.close();
            assertEquals(7, second.execute(5).get(Duration.ofSeconds(10)), "closing the others leaves it running");
            second.close();
        }
    }

    @Test
    void aGraphThatRestartsItsActorsNeedsThemAlone() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            InputNode<Integer> in1 = Graph.input();
            CompileOptions restart = CompileOptions.defaults().onActorDeath(ActorDeathPolicy.RESTART);
            try (CompiledGraph<Integer, Integer> first = kiln.compile(in1, b.bind(Calc::one, in1))) {
                InputNode<Integer> in2 = Graph.input();
                Node<Integer> second = pair(in2, a, b);
                GraphCompileException e = assertThrows(GraphCompileException.class,
                        () -> kiln.compile(in2, second, restart));
                assertTrue(e.getMessage().contains(first.toString()) && e.getMessage().contains("RESTART")
                        && e.getMessage().contains("close that graph first"), e.getMessage());
                assertEquals(b.name(), e.node());
                assertEquals(2, first.execute(1).get(Duration.ofSeconds(10)), "the first graph is unaffected");
            }
            InputNode<Integer> in3 = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in3, pair(in3, a, b), restart)) {
                assertEquals(3, g.execute(1).get(Duration.ofSeconds(10)));
                InputNode<Integer> in4 = Graph.input();
                GraphCompileException e = assertThrows(GraphCompileException.class,
                        () -> kiln.compile(in4, a.bind(Calc::one, in4)));
                assertTrue(e.getMessage().contains(g.toString()) && e.getMessage().contains("RESTART"), e.getMessage());
            }
        }
    }

    @Test
    void aFailedCompileLeavesItsActorsFree() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            InputNode<Integer> in1 = Graph.input();
            InputNode<Integer> failing = Graph.input();
            CompileOptions restart = CompileOptions.defaults().onActorDeath(ActorDeathPolicy.RESTART);
            try (CompiledGraph<Integer, Integer> holder = kiln.compile(in1, b.bind(Calc::one, in1))) {
                // a is held first, then b cannot be: a graph that restarts its actors needs them alone
                assertThrows(GraphCompileException.class, () -> kiln.compile(failing, pair(failing, a, b), restart));
                assertEquals(5, holder.execute(4).get(10, TimeUnit.SECONDS));
                // a took part in the failed compile only: it must be free for a graph that needs it alone
                assertEquals(2, kiln.call(a, Calc::one, 1).get(10, TimeUnit.SECONDS));
                InputNode<Integer> in2 = Graph.input();
                try (CompiledGraph<Integer, Integer> alone = kiln.compile(in2, a.bind(Calc::one, in2), restart)) {
                    assertEquals(8, alone.execute(7).get(10, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void nodesCanBeCompiledOnce() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = a.bind(Calc::one, in);
            kiln.compile(in, x).close();
            GraphCompileException again = assertThrows(GraphCompileException.class, () -> kiln.compile(in, x));
            assertTrue(again.getMessage().contains("compiled once"), again.getMessage());
            Node<Integer> y = b.bind(Calc::one, x); // binding on a compiled node builds nothing compilable
            assertThrows(GraphCompileException.class, () -> kiln.compile(in, y));
            InputNode<Integer> in3 = Graph.input();
            try (CompiledGraph<Integer, Integer> fresh = kiln.compile(in3, pair(in3, a, b))) {
                assertEquals(12, fresh.execute(10).get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void actorsOfAnotherOrAClosedKilnDoNotCompile() {
        try (Kiln other = Kiln.local(); Kiln kiln = Kiln.local()) {
            ActorRef<Calc> foreign = other.actor(Calc::new);
            ActorRef<Calc> mine = kiln.actor(Calc::new);
            InputNode<Integer> in1 = Graph.input();
            GraphCompileException e = assertThrows(GraphCompileException.class,
                    () -> kiln.compile(in1, foreign.bind(Calc::one, in1)));
            assertTrue(e.getMessage().contains(foreign.name()), e.getMessage());
            InputNode<Integer> in2 = Graph.input();
            assertThrows(GraphCompileException.class, () -> kiln.compile(in2, pair(in2, mine, foreign)));
            assertThrows(IllegalArgumentException.class, () -> kiln.call(foreign, Calc::zero));

            Kiln closed = Kiln.local();
            ActorRef<Calc> orphan = closed.actor(Calc::new);
            closed.close();
            InputNode<Integer> orphanIn = Graph.input();
            GraphCompileException fromClosed = assertThrows(GraphCompileException.class,
                    () -> kiln.compile(orphanIn, orphan.bind(Calc::one, orphanIn)));
            assertTrue(fromClosed.getMessage().contains("not hosted"), fromClosed.getMessage());
            assertThrows(IllegalStateException.class, () -> closed.actor(Calc::new));
            assertThrows(IllegalStateException.class, () -> closed.compile(in2, mine.bind(Calc::one, in2)));
            ExecutionException stopped = assertThrows(ExecutionException.class,
                    () -> closed.call(orphan, Calc::zero).get(10, TimeUnit.SECONDS));
            assertInstanceOf(ActorDiedException.class, stopped.getCause());
            // our own actor was never touched
            InputNode<Integer> in3 = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in3, mine.bind(Calc::one, in3))) {
                assertEquals(1, g.execute(0).get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void closingTheKilnClosesItsGraphsAndEndsItsThreads() throws Exception {
        CountDownLatch latch = new CountDownLatch(1);
        Kiln kiln = Kiln.local();
        CompiledGraph<Integer, Integer> blocked;
        CompiledGraph<Integer, Integer> idle;
        GraphFuture<Integer> pending;
        CompletableFuture<Integer> pendingAsync;
        try (kiln) {
            ActorRef<Blocker> blocker = kiln.actor(() -> new Blocker(latch));
            ActorRef<Calc> a = kiln.actor(Calc::new);
            ActorRef<Calc> b = kiln.actor(Calc::new);
            ActorRef<Calc> spare = kiln.actor(Calc::new, ActorOptions.defaults().name("spare"));
            InputNode<Integer> in = Graph.input();
            blocked = kiln.compile(in, a.bind(Calc::one, blocker.bind(Blocker::block, in)),
                    CompileOptions.defaults().teardownTimeout(Duration.ofMillis(500)));
            InputNode<Integer> in2 = Graph.input();
            idle = kiln.compile(in2, pair(in2, b, spare));
            assertEquals(7, idle.executeAsync(5).get(10, TimeUnit.SECONDS)); // starts a driver thread
            pending = blocked.execute(1);
            pendingAsync = blocked.executeAsync(2);
            CompiledGraph<Integer, Integer> closing = blocked;
            // once close gave up on the blocked method, let it return so the actor thread ends soon
            Thread.ofPlatform().daemon().start(() -> {
                KilnTestSupport.awaitTrue("the Kiln closes the graph", KilnTestSupport.SOON, closing::isClosed);
                latch.countDown();
            });
            assertTrue(KilnTestSupport.liveKilnThreads().contains("kiln-actor-spare"), () -> "" + KilnTestSupport.liveKilnThreads());
        } finally {
            latch.countDown(); // in any case
        }
        assertTrue(blocked.isClosed());
        assertTrue(idle.isClosed());
        assertThrows(GraphClosedException.class, () -> pending.get(10, TimeUnit.SECONDS));
        ExecutionException e = assertThrows(ExecutionException.class, () -> pendingAsync.get(10, TimeUnit.SECONDS));
        assertInstanceOf(GraphClosedException.class, e.getCause());
        assertThrows(GraphClosedException.class, () -> idle.execute(1));
        kiln.close(); // idempotent
        KilnTestSupport.awaitNoKilnThreads();
    }

    /** Takes a little while per call. */
    static final class Slow {
        int nap(int x) throws InterruptedException {
            Thread.sleep(20);
            return x;
        }
    }

    @Test
    void closingTheKilnFailsQueuedDynamicCalls() throws Exception {
        List<CompletableFuture<Integer>> calls = new ArrayList<>();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Slow> slow = kiln.actor(Slow::new);
            for (int i = 0; i < 100; i++) {
                calls.add(kiln.call(slow, Slow::nap, i));
            }
            calls.getFirst().get(10, TimeUnit.SECONDS); // the actor is working through its mailbox
        }
        KilnTestSupport.awaitNoKilnThreads();
        int ran = 0;
        for (CompletableFuture<Integer> c : calls) {
            assertTrue(c.isDone(), "every call is finished once the Kiln is closed");
            try {
                c.get(10, TimeUnit.SECONDS);
                ran++;
            } catch (ExecutionException e) {
                assertInstanceOf(ActorDiedException.class, e.getCause());
            }
        }
        assertTrue(ran < 50, "calls still queued when the Kiln closed fail instead of running: " + ran + " ran");
    }

    @Test
    void dynamicCallsWithZeroToThreeArguments() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> c = kiln.actor(Calc::new);
            assertEquals(42, kiln.call(c, Calc::zero).get(10, TimeUnit.SECONDS));
            assertEquals(8, kiln.call(c, Calc::one, 7).get(10, TimeUnit.SECONDS));
            assertEquals(42, kiln.call(c, Calc::two, 6, 7).get(10, TimeUnit.SECONDS));
            assertEquals("x1null", kiln.call(c, Calc::three, "x", 1, null).get(10, TimeUnit.SECONDS));
            List<CompletableFuture<Integer>> many = new ArrayList<>();
            for (int i = 0; i < 1000; i++) {
                many.add(kiln.call(c, Calc::one, i));
            }
            for (int i = 0; i < many.size(); i++) {
                assertEquals(i + 1, many.get(i).get(10, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void dynamicCallExceptionsBecomeActorTaskExceptions() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> c = kiln.actor(Calc::new, ActorOptions.defaults().name("calc"));
            assertEquals(1, kiln.call(c, Calc::one, 0).get(10, TimeUnit.SECONDS));
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> kiln.call(c, Calc::boom, 3).get(10, TimeUnit.SECONDS));
            ActorTaskException task = assertInstanceOf(ActorTaskException.class, e.getCause());
            assertEquals("calc", task.actor());
            assertTrue(task.method().endsWith("Calc.boom"), task.method());
            assertEquals(1, task.sequence(), "the actor's second dynamic call");
            assertEquals("boom 3", assertInstanceOf(IOException.class, task.getCause()).getMessage());
            assertEquals(5, kiln.call(c, Calc::one, 4).get(10, TimeUnit.SECONDS), "the actor lives on");
        }
    }

    /** Counts the executions it took part in. */
    static final class Counter {
        private int count;

        int add(int x) {
            count++;
            return x + 1;
        }

        int count() {
            return count;
        }
    }

    @Test
    void dynamicCallsToAnActorInAnOpenGraphRunBetweenItsExecutions() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Counter> c = kiln.actor(Counter::new);
            ActorRef<Counter> d = kiln.actor(Counter::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Counter::add, c.bind(Counter::add, in)),
                    CompileOptions.defaults().maxInflight(8))) {
                List<GraphFuture<Integer>> results = new ArrayList<>();
                List<CompletableFuture<Integer>> counts = new ArrayList<>();
                for (int i = 0; i < 2_000; i++) {
                    results.add(g.execute(i));
                    if (i % 100 == 0) {
                        counts.add(kiln.call(c, Counter::count));
                    }
                    if (results.size() == 8) {
                        for (GraphFuture<Integer> f : results) {
                            f.get(Duration.ofSeconds(10));
                        }
                        results.clear();
                    }
                }
                for (GraphFuture<Integer> f : results) {
                    f.get(Duration.ofSeconds(10));
                }
                int previous = -1;
                for (CompletableFuture<Integer> count : counts) {
                    int seen = count.get(10, TimeUnit.SECONDS);
                    assertTrue(seen >= previous && seen <= 2_000, "whole executions, in order: " + seen);
                    previous = seen;
                }
                assertEquals(2_000, kiln.call(c, Counter::count).get(10, TimeUnit.SECONDS));
                assertEquals(2_000, kiln.call(d, Counter::count).get(10, TimeUnit.SECONDS));
                assertEquals(3, g.execute(1).get(Duration.ofSeconds(10)), "the graph runs on");
            }
        }
    }

    @Test
    void compiledAndDynamicCallsRunOnTheSameActorThread() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Calc> c = kiln.actor(Calc::new, ActorOptions.defaults().name("home"));
            String dynamicThread = kiln.call(c, Calc::thread, 0).get(10, TimeUnit.SECONDS);
            assertEquals("kiln-actor-home", dynamicThread);
            assertEquals("calc@kiln-actor-home", kiln.call(c, Calc::threadLocal, 0).get(10, TimeUnit.SECONDS));
            InputNode<Integer> in = Graph.input();
            Node<String> thread = c.bind(Calc::thread, in);
            Node<String> local = c.bind(Calc::threadLocal, in);
            try (CompiledGraph<Integer, List<Object>> g = kiln.compile(in, Graph.outputs(List.of(thread, local)))) {
                for (int i = 0; i < 10; i++) {
                    assertEquals(List.of(dynamicThread, "calc@kiln-actor-home"), g.execute(i).get(10, TimeUnit.SECONDS));
                }
            }
            assertEquals(dynamicThread, kiln.call(c, Calc::thread, 0).get(10, TimeUnit.SECONDS));
        }
    }

    @Test
    void aThrowingFactoryFailsWithActorCreationException() {
        try (Kiln kiln = Kiln.local()) {
            dev.kiln.ActorFactory<Calc> checked = () -> {
                throw new IOException("no disk");
            };
            ActorCreationException e = assertThrows(ActorCreationException.class,
                    () -> kiln.actor(checked, ActorOptions.defaults().name("broken")));
            assertEquals("no disk", assertInstanceOf(IOException.class, e.getCause()).getMessage());
            assertTrue(e.getMessage().contains("broken"), e.getMessage());

            dev.kiln.ActorFactory<Calc> unchecked = () -> {
                throw new IllegalStateException("bad config");
            };
            ActorCreationException e2 = assertThrows(ActorCreationException.class, () -> kiln.actor(unchecked));
            assertInstanceOf(IllegalStateException.class, e2.getCause());

            dev.kiln.ActorFactory<Calc> nothing = () -> null;
            assertThrows(ActorCreationException.class, () -> kiln.actor(nothing));

            // the name of a failed actor is free again
            ActorRef<Calc> ok = kiln.actor(Calc::new, ActorOptions.defaults().name("broken"));
            assertEquals("broken", ok.name());
        }
    }

    @Test
    void actorNamesAreUnique() {
        try (Kiln kiln = Kiln.local(); Kiln other = Kiln.local()) {
            ActorRef<Calc> first = kiln.actor(Calc::new, ActorOptions.defaults().name("worker"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> kiln.actor(Calc::new, ActorOptions.defaults().name("worker")));
            assertTrue(e.getMessage().contains("worker"), e.getMessage());
            assertEquals("worker", other.actor(Calc::new, ActorOptions.defaults().name("worker")).name(),
                    "names are unique per Kiln");
            ActorRef<Calc> x = kiln.actor(Calc::new);
            ActorRef<Calc> y = kiln.actor(Calc::new);
            assertNotEquals(x.name(), y.name());
            assertTrue(x.name().startsWith("calc-"), x.name());
            assertEquals(Calc.class, first.type());
            assertSame(kiln, first.owner());
            assertThrows(IllegalArgumentException.class, () -> ActorOptions.defaults().name(" "));
        }
    }
}
