package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(120)
class GraphFutureTest {

    /** Doubles once the latch is open; fails for negative inputs. */
    static final class Doubler {
        private final CountDownLatch open;

        Doubler(CountDownLatch open) {
            this.open = open;
        }

        int twice(int x) throws InterruptedException {
            if (!open.await(60, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the test never opened the latch");
            }
            if (x < 0) {
                throw new ArithmeticException("negative " + x);
            }
            return 2 * x;
        }
    }

    /** Adds 1. */
    static final class Inc {
        int inc(int x) {
            return x + 1;
        }
    }

    private static CountDownLatch opened() {
        CountDownLatch latch = new CountDownLatch(1);
        latch.countDown();
        return latch;
    }

    @Test
    void getTimesOutAndTheExecutionGoesOn() {
        CountDownLatch open = new CountDownLatch(1);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Doubler> d = kiln.actor(() -> new Doubler(open));
            InputNode<Integer> in = Graph.input();
            CompileOptions options = CompileOptions.defaults().getTimeout(Duration.ofMillis(100));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Doubler::twice, in), options)) {
                GraphFuture<Integer> f = g.execute(21);
                ChannelTimeoutException e = assertThrows(ChannelTimeoutException.class, f::get);
                assertTrue(e.getMessage().contains("getTimeout"), e.getMessage());
                assertTrue(e.getMessage().contains("#0"), e.getMessage());
                assertThrows(ChannelTimeoutException.class, () -> f.get(50, TimeUnit.MILLISECONDS));
                assertThrows(ChannelTimeoutException.class, () -> f.get(Duration.ofMillis(50)));
                assertFalse(f.isDone());
                assertTrue(f.toString().contains("pending"), f.toString());
                open.countDown();
                assertEquals(42, f.get(10, TimeUnit.SECONDS));
                assertTrue(f.isDone());
                assertTrue(f.toString().contains("done"), f.toString());
            }
        }
    }

    @Test
    void aFutureCanBeReadManyTimes() {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Doubler> d = kiln.actor(() -> new Doubler(opened()));
            InputNode<Integer> in = Graph.input();
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, d.bind(Doubler::twice, in))) {
                GraphFuture<Integer> ok = g.execute(4);
                GraphFuture<Integer> bad = g.execute(-4);
                assertEquals(0, ok.sequence());
                assertEquals(1, bad.sequence());
                Integer first = ok.get(10, TimeUnit.SECONDS);
                assertEquals(8, first);
                assertSame(first, ok.get(10, TimeUnit.SECONDS));
                for (int i = 0; i < 3; i++) {
                    ActorTaskException e = assertThrows(ActorTaskException.class, () -> bad.get(10, TimeUnit.SECONDS));
                    assertEquals(1, e.sequence());
                    assertEquals("negative -4", e.getCause().getMessage());
                }
                assertTrue(bad.toString().contains("failed"), bad.toString());
            }
        }
    }

    @Test
    void futuresMayBeReadInAnyOrderFromAnyThread() throws Exception {
        int threads = 3;
        int maxInflight = 12;
        ExecutorService readers = Executors.newFixedThreadPool(threads);
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Doubler> d = kiln.actor(() -> new Doubler(opened()));
            ActorRef<Inc> inc = kiln.actor(Inc::new);
            InputNode<Integer> in = Graph.input();
            Node<Integer> out = inc.bind(Inc::inc, d.bind(Doubler::twice, in));
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, CompileOptions.defaults().maxInflight(maxInflight))) {
                for (int round = 0; round < 300; round++) {
                    List<GraphFuture<Integer>> window = new ArrayList<>();
                    int base = round * maxInflight;
                    for (int j = 0; j < maxInflight; j++) {
                        window.add(g.execute(base + j));
                    }
                    List<Future<?>> reads = new ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        int thread = t;
                        reads.add(readers.submit(() -> {
                            for (int j = maxInflight - 1 - thread; j >= 0; j -= threads) {
                                assertEquals(2 * (base + j) + 1, window.get(j).get(10, TimeUnit.SECONDS));
                            }
                            return null;
                        }));
                    }
                    for (Future<?> r : reads) {
                        r.get(30, TimeUnit.SECONDS);
                    }
                    for (int j = 0; j < maxInflight; j++) {
                        assertTrue(window.get(j).isDone());
                    }
                }
            }
        } finally {
            readers.shutdownNow();
            assertTrue(readers.awaitTermination(10, TimeUnit.SECONDS));
        }
    }
}
