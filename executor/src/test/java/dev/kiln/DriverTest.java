package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.InputNode2;
import dev.kiln.graph.Node;
import dev.kiln.graph.Tuple2;
import dev.kiln.graph.Tuple3;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver: the allocation-free submit/take path, the single-writer path and its fallback, futures. */
@Timeout(180)
class DriverTest {

    /** Small-integer arithmetic: results stay in the Integer cache, so the actors allocate nothing either. */
    static final class Small {
        int inc(int x) {
            return (x + 1) & 63;
        }

        int twice(int x) {
            return (x * 2) & 63;
        }

        int add(int x, int y) {
            return (x + y) & 63;
        }

        int failOn(int x) {
            if (x == 3) {
                throw new UnsupportedOperationException("no " + x);
            }
            return x;
        }
    }

    /** Waits for its gate, then adds 1. */
    static final class Slow {
        private final CountDownLatch gate;

        Slow(CountDownLatch gate) {
            this.gate = gate;
        }

        int pass(int x) throws InterruptedException {
            if (!gate.await(60, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the test never opened the gate");
            }
            return x + 1;
        }
    }

    private static final int WARM_UP = 30_000;
    private static final int MEASURED = 100_000;
    private static final int WINDOWS = 4;

    /** Bytes allocated so far by the calling thread and the actor threads named {@code kiln-actor-<prefix>...}. */
    private static LongSupplier allocatedBy(String prefix) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        assertTrue(mx.isThreadAllocatedMemorySupported() && mx.isThreadAllocatedMemoryEnabled(),
                "this JVM cannot measure allocation per thread");
        List<Long> ids = new ArrayList<>();
        ids.add(Thread.currentThread().threadId());
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("kiln-actor-" + prefix)) {
                ids.add(t.threadId());
            }
        }
        assertTrue(ids.size() > 1, "found no actor thread named kiln-actor-" + prefix);
        long[] array = ids.stream().mapToLong(Long::longValue).toArray();
        return () -> {
            long sum = 0;
            for (long id : array) {
                sum += mx.getThreadAllocatedBytes(id);
            }
            return sum;
        };
    }

    /**
     * Runs {@code executions} (a count of executions) after a warm-up, in windows of {@link #MEASURED}, and asserts
     * that a window allocated 0 bytes. Up to {@link #WINDOWS} windows: the first use of a rarely taken path (a wait
     * for a slot on a loaded machine) may link a call site once, which allocates once; an allocation per execution
     * shows in every window.
     */
    private static void assertAllocatesNothing(LongSupplier allocated, java.util.function.IntConsumer executions) {
        executions.accept(WARM_UP);
        long[] windows = new long[WINDOWS];
        for (int w = 0; w < WINDOWS; w++) {
            long before = allocated.getAsLong();
            executions.accept(MEASURED);
            windows[w] = allocated.getAsLong() - before;
            if (windows[w] == 0) {
                return;
            }
        }
        throw new AssertionError("bytes allocated by windows of " + MEASURED + " executions: "
                + java.util.Arrays.toString(windows));
    }

    private static ActorOptions named(String name) {
        return ActorOptions.defaults().name(name);
    }

    @Test
    void submitAndTakeAllocateNothingForOneOutput() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new, named("alloc1-a"));
            ActorRef<Small> b = kiln.actor(Small::new, named("alloc1-b"));
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, b.bind(Small::twice, a.bind(Small::inc, in)),
                    CompileOptions.defaults().maxInflight(16))) {
                Integer[] inputs = boxes();
                assertAllocatesNothing(allocatedBy("alloc1-"), count -> {
                    for (int i = 0; i < count; i++) {
                        long seq = g.submit(inputs[i & 63]);
                        int r = g.take(seq);
                        if (r != (((i & 63) + 1) * 2 & 63)) {
                            throw new AssertionError("execution " + i + " returned " + r);
                        }
                    }
                });
            }
        }
    }

    @Test
    void submitAndTakeAllocateNothingForSeveralOutputsAndArgumentsWithEightInFlight() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new, named("alloc2-a"));
            ActorRef<Small> b = kiln.actor(Small::new, named("alloc2-b"));
            InputNode2<Integer, Integer> in = Graph.input2();
            Node<Integer> sum = a.bind(Small::add, in.first(), in.second());
            Node<Integer> other = b.bind(Small::inc, in.second());
            try (CompiledGraph<Tuple2<Integer, Integer>, Tuple3<Integer, Integer, Integer>> g =
                    kiln.compile(in, Graph.outputs(sum, other, sum),
                    CompileOptions.defaults().maxInflight(8))) {
                Integer[] inputs = boxes();
                Object[] args = new Object[2];
                Object[] outputs = new Object[3];
                long[] seqs = new long[8];
                assertAllocatesNothing(allocatedBy("alloc2-"), count -> {
                    for (int round = 0; round < count / 8; round++) {
                        for (int k = 0; k < 8; k++) {
                            int i = round * 8 + k;
                            args[0] = inputs[i & 63];
                            args[1] = inputs[(i >> 3) & 63];
                            seqs[k] = g.submitArgs(args); // the graph copies args: reusing it at once is fine
                        }
                        for (int k = 0; k < 8; k++) {
                            int i = round * 8 + k;
                            g.take(seqs[k], outputs);
                            int x = i & 63;
                            int y = (i >> 3) & 63;
                            if ((int) outputs[0] != ((x + y) & 63) || (int) outputs[1] != ((y + 1) & 63)
                                    || outputs[2] != outputs[0]) {
                                throw new AssertionError("execution " + i + " returned " + List.of(outputs));
                            }
                        }
                    }
                });
            }
        }
    }

    private static Integer[] boxes() {
        Integer[] boxes = new Integer[64];
        for (int i = 0; i < 64; i++) {
            boxes[i] = i;
        }
        return boxes;
    }

    @Test
    void takeReturnsTheResultOfEachSequenceInAnyOrderOnce() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Small::failOn, in),
                    CompileOptions.defaults().maxInflight(4))) {
                long s0 = g.submit(1);
                long s1 = g.submit(2);
                long s2 = g.submit(3);
                assertEquals(2, g.take(s1));
                ActorTaskException e = assertThrows(ActorTaskException.class, () -> g.take(s2));
                assertEquals(s2, e.sequence());
                assertEquals(1, g.take(s0));
                IllegalArgumentException twice = assertThrows(IllegalArgumentException.class, () -> g.take(s1));
                assertTrue(twice.getMessage().contains("taken already"), twice.getMessage());
                assertThrows(IllegalArgumentException.class, () -> g.take(s2 + 100));
                // Results nobody takes keep their slots: the submit that would overwrite one says so.
                for (int i = 0; i < 4; i++) {
                    g.submit(i);
                }
                IllegalStateException full = assertThrows(IllegalStateException.class, () -> g.submit(9));
                assertTrue(full.getMessage().contains("nobody took"), full.getMessage());
            }
        }
    }

    @Test
    void aFailedOutputFailsItsExecutionWithoutWaitingForASlowerSibling() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Slow> slow = kiln.actor(() -> new Slow(gate));
            ActorRef<Small> failing = kiln.actor(Small::new);
            InputNode<Integer> in = Graph.input();
            // The slow output comes first: a driver that collects outputs in order would wait for it.
            try (CompiledGraph<Integer, Tuple2<Integer, Integer>> g = kiln.compile(in,
                    Graph.outputs(slow.bind(Slow::pass, in), failing.bind(Small::failOn, in)),
                    CompileOptions.defaults().maxInflight(2))) {
                GraphFuture<Tuple2<Integer, Integer>> f = g.execute(3);
                ActorTaskException e = assertThrows(ActorTaskException.class, () -> f.get(20, TimeUnit.SECONDS));
                assertEquals(0, e.sequence());
                assertEquals(1, gate.getCount(), "the slow sibling is still waiting for its gate");
                long s = g.submit(3);
                assertThrows(ActorTaskException.class, () -> g.take(s), "take fails fast too");
                assertEquals(1, gate.getCount());
                gate.countDown();
                // The siblings ran to their end and gave their slots back: the graph goes on at full depth.
                for (int i = 4; i < 40; i++) {
                    assertEquals(new Tuple2<>(i + 1, i), g.execute(i).get(20, TimeUnit.SECONDS));
                }
            }
        }
    }

    @Test
    void cancelFailsTheFutureAtOnceAndTheSlotIsReclaimedWhenTheResultArrives() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger calls = new AtomicInteger();
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Slow> slow = kiln.actor(() -> new Slow(gate));
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, slow.bind(Slow::pass, in),
                    CompileOptions.defaults().maxInflight(2))) {
                GraphFuture<Integer> f = g.execute(1);
                assertTrue(f.cancel(false));
                assertTrue(f.isCancelled());
                assertTrue(f.isDone());
                assertEquals(Future.State.CANCELLED, f.state());
                assertThrows(CancellationException.class, () -> f.get(1, TimeUnit.SECONDS));
                assertFalse(f.cancel(true), "cancelled once");
                CompletableFuture<Integer> async = g.executeAsync(5);
                assertTrue(async.cancel(false));
                assertTrue(async.isCancelled());
                gate.countDown();
                // With two slots, the next executions run only once the cancelled ones finished and gave them back.
                for (int i = 0; i < 20; i++) {
                    GraphFuture<Integer> next = g.execute(i);
                    assertEquals(i + 1, next.get(20, TimeUnit.SECONDS));
                    assertEquals(i + 1, next.resultNow());
                    calls.incrementAndGet();
                }
                assertEquals(20, calls.get());
                assertEquals(Future.State.CANCELLED, f.state(), "the result that arrived later was dropped");
                assertEquals(Future.State.CANCELLED, async.state());
            }
        }
    }

    @Test
    void executeAsyncCompletesWithoutAPollingThread() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Small::inc, in))) {
                List<CompletableFuture<Integer>> fs = new ArrayList<>();
                for (int i = 0; i < 50; i++) {
                    fs.add(g.executeAsync(i));
                }
                for (int i = 0; i < 50; i++) {
                    assertEquals((i + 1) & 63, fs.get(i).get(20, TimeUnit.SECONDS));
                }
                Thread driver = Thread.getAllStackTraces().keySet().stream()
                        .filter(t -> t.getName().equals("kiln-driver-" + g)).findFirst().orElseThrow();
                // Nothing pending: the driver thread parks without a timeout (a poller would be TIMED_WAITING).
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (driver.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                assertEquals(Thread.State.WAITING, driver.getState());
                // and wakes up for the next one
                assertEquals(8, g.executeAsync(7).get(20, TimeUnit.SECONDS));
                assertEquals(16, g.executeAsync(7).thenApply(v -> v * 2).get(20, TimeUnit.SECONDS));
            }
        }
    }

    @Test
    void aStageIsOnlyForExecuteAsync() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Small::inc, in))) {
                GraphFuture<Integer> f = g.execute(1);
                IllegalStateException e = assertThrows(IllegalStateException.class, f::stage);
                assertTrue(e.getMessage().contains("executeAsync"), e.getMessage());
                assertEquals(2, f.get(20, TimeUnit.SECONDS));
            }
        }
    }

    /**
     * Several threads submit to one graph (execute, submit/take and executeAsync), starting one after the other so
     * that the graph leaves its single-writer path while the first one runs; every result is exact.
     */
    @Test
    void severalSubmittingThreadsGetExactResults() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new);
            ActorRef<Small> b = kiln.actor(Small::new);
            InputNode2<Integer, Integer> in = Graph.input2();
            Node<Integer> sum = a.bind(Small::add, in.first(), in.second());
            Node<Integer> other = b.bind(Small::inc, in.first());
            try (CompiledGraph<Tuple2<Integer, Integer>, Tuple2<Integer, Integer>> g = kiln.compile(in,
                    Graph.outputs(sum, other),
                    CompileOptions.defaults().maxInflight(8))) {
                int threads = 4;
                int each = 5_000;
                AtomicReference<Throwable> failure = new AtomicReference<>();
                CountDownLatch firstRunning = new CountDownLatch(1);
                List<Thread> workers = new ArrayList<>();
                AtomicInteger done = new AtomicInteger();
                for (int t = 0; t < threads; t++) {
                    int id = t;
                    workers.add(Thread.ofPlatform().name("hammer-" + t).start(() -> {
                        try {
                            Object[] outputs = new Object[2];
                            for (int i = 0; i < each; i++) {
                                if (i == 100 && id == 0) {
                                    firstRunning.countDown();
                                }
                                int x = (i + id) & 63;
                                int y = id;
                                Tuple2<Integer, Integer> expected = new Tuple2<>((x + y) & 63, (x + 1) & 63);
                                switch ((i + id) % 3) {
                                    case 0 -> assertEquals(expected, g.execute(new Tuple2<>(x, y)).get(20, TimeUnit.SECONDS));
                                    case 1 -> {
                                        long seq = g.submitArgs(x, y);
                                        g.take(seq, outputs);
                                        assertEquals(expected, new Tuple2<>(outputs[0], outputs[1]));
                                    }
                                    default -> assertEquals(expected, g.executeAsync(new Tuple2<>(x, y)).get(20, TimeUnit.SECONDS));
                                }
                                done.incrementAndGet();
                            }
                        } catch (Throwable e) {
                            failure.compareAndSet(null, e);
                        }
                    }));
                    if (t == 0) {
                        assertTrue(firstRunning.await(60, TimeUnit.SECONDS));
                    }
                }
                for (Thread w : workers) {
                    w.join(TimeUnit.SECONDS.toMillis(150));
                    assertFalse(w.isAlive(), w + " did not finish");
                }
                if (failure.get() != null) {
                    throw new AssertionError("a submitting thread failed", failure.get());
                }
                assertEquals(threads * each, done.get());
            }
        }
    }

    @Test
    void aFutureIsAFuture() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Small> a = kiln.actor(Small::new);
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, a.bind(Small::failOn, in))) {
                Future<Integer> ok = g.execute(5);
                assertEquals(5, ok.get(20, TimeUnit.SECONDS));
                assertEquals(Future.State.SUCCESS, ok.state());
                GraphFuture<Integer> bad = g.execute(3);
                assertThrows(ActorTaskException.class, () -> bad.get(20, TimeUnit.SECONDS));
                assertEquals(Future.State.FAILED, bad.state());
                assertInstanceOf(ActorTaskException.class, bad.exceptionNow());
                assertThrows(IllegalStateException.class, bad::resultNow);
                ExecutionException e = assertThrows(ExecutionException.class,
                        () -> g.executeAsync(3).get(20, TimeUnit.SECONDS));
                assertInstanceOf(ActorTaskException.class, e.getCause());
                assertEquals(5, ((GraphFuture<Integer>) ok).resultNow());
            }
        }
    }
}
