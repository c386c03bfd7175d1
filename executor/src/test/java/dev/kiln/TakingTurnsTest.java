package dev.kiln;

import dev.kiln.compiler.CompileOptions;
import dev.kiln.graph.ActorRef;
import dev.kiln.graph.Graph;
import dev.kiln.graph.InputNode;
import dev.kiln.graph.Node;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Threads that share actors take turns at a heavy one: its methods run on more than one thread, never two at once,
 * in execution order, with dynamic calls between them; a graph closed meanwhile leaves its actors whole.
 */
class TakingTurnsTest {

    /** A stage of a few nanoseconds. */
    static final class Light {
        int apply(int x) {
            return x + 1;
        }
    }

    /**
     * An actor that checks it is never entered twice at once and sees its executions in order (the input's upper bits
     * count them), and notes the threads that ran it.
     */
    abstract static class Checked {
        final Set<String> threads = ConcurrentHashMap.newKeySet();
        final AtomicBoolean inside = new AtomicBoolean();
        final AtomicLong overlaps = new AtomicLong();
        /** Plain on purpose: each call must see the previous one's write, whichever thread ran it. */
        int last = -1;
        long outOfOrder;

        /** Enters a call of execution {@code x >> 8}, or a dynamic call for a negative {@code x}. */
        final void enter(int x) {
            if (!inside.compareAndSet(false, true)) {
                overlaps.incrementAndGet();
            }
            if (x >= 0) {
                threads.add(Thread.currentThread().getName());
                int k = x >> 8;
                if (last >= 0 && k != last + 1) {
                    outOfOrder++;
                }
                last = k;
            }
        }

        final void leave() {
            inside.set(false);
        }

        static void spin(long nanos) {
            long until = System.nanoTime() + nanos;
            while (System.nanoTime() - until < 0) {
                Thread.onSpinWait();
            }
        }

        long outOfOrder() {
            return outOfOrder;
        }
    }

    /** A stage of about 50 us. */
    static final class Heavy extends Checked {
        long pokes;

        int apply(int x) {
            enter(x);
            try {
                spin(50_000);
                return x * 2;
            } finally {
                leave();
            }
        }

        long poke() {
            enter(-1);
            try {
                return ++pokes;
            } finally {
                leave();
            }
        }
    }

    /**
     * A chain of four stages on two threads, {@code heavyAt} the heavy one: 0 is a carrier's own actor, 3 a guest.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 3})
    @Timeout(120)
    void aHeavyStageRunsOnBothThreadsOneCallAtATimeInOrder(int heavyAt) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            Heavy heavy = new Heavy();
            ActorRef<Heavy> h = kiln.actor(() -> heavy);
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = chain(kiln, in, heavyAt, n -> h.bind(Heavy::apply, n), new ArrayList<>());
            CompileOptions options = CompileOptions.defaults().actorThreads(2).maxInflight(8);
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, x, options)) {
                assertEquals(2, g.plan().schedules().stream().filter(s -> !s.sharesThread()).count(),
                        g.plan()::toString);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                int next = 0;
                long poked = 0;
                while (next < 2_000 || heavy.threads.size() < 2 && System.nanoTime() < deadline) {
                    CompletableFuture<Long> poke = kiln.call(h, Heavy::poke);
                    List<GraphFuture<Integer>> window = new ArrayList<>();
                    for (int i = 0; i < 200; i++, next++) {
                        window.add(g.execute(next << 8));
                        if (window.size() == 8) {
                            check(window.removeFirst(), next - 7, heavyAt);
                        }
                    }
                    for (int i = 0; i < window.size(); i++) {
                        check(window.get(i), next - window.size() + i, heavyAt);
                    }
                    assertEquals(++poked, poke.get(10, TimeUnit.SECONDS));
                }
                assertTrue(heavy.threads.size() >= 2, "the heavy stage ran only on " + heavy.threads + " in " + next
                        + " executions");
            }
            assertEquals(0, heavy.overlaps.get(), "calls of the heavy actor overlapped");
            assertEquals(0L, kiln.call(h, Heavy::outOfOrder).get(10, TimeUnit.SECONDS),
                    "executions reached the heavy actor out of order");
        }
    }

    /**
     * A chain of four stages from {@code in}: {@code special} at {@code at}, {@link Light} stages elsewhere, taken from
     * {@code lights} in order, which gets new ones where it runs short.
     */
    private static Node<Integer> chain(Kiln kiln, Node<Integer> in, int at, UnaryOperator<Node<Integer>> special,
                                       List<ActorRef<Light>> lights) {
        Node<Integer> x = in;
        for (int k = 0, l = 0; k < 4; k++) {
            if (k == at) {
                x = special.apply(x);
            } else {
                if (l == lights.size()) {
                    lights.add(kiln.actor(Light::new));
                }
                x = lights.get(l++).bind(Light::apply, x);
            }
        }
        return x;
    }

    private static void check(GraphFuture<Integer> f, int i, int heavyAt) throws Exception {
        int v = i << 8;
        for (int k = 0; k < 4; k++) {
            v = k == heavyAt ? v * 2 : v + 1;
        }
        assertEquals(v, f.get(10, TimeUnit.SECONDS), "execution " + i);
    }

    /** A stage of about 50 us that dies of an error, the first time a thread other than its first runs it. */
    static final class Fragile extends Checked {
        private Thread first;

        int apply(int x) {
            enter(x);
            try {
                spin(50_000);
                if (first == null) {
                    first = Thread.currentThread();
                } else if (Thread.currentThread() != first) {
                    throw new StackOverflowError("test");
                }
                return x * 2;
            } finally {
                leave();
            }
        }
    }

    /**
     * An actor that dies on another thread's turn (an error a method cannot turn into a task error) dies as it would
     * on its own thread: the executions fail with {@link ActorDiedException} naming it and its error, and the graph's
     * other actors, the thread that took the turn included, live on.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 3})
    @Timeout(120)
    void anActorThatDiesOnATurnDiesAsOnItsOwnThread(int heavyAt) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            ActorRef<Fragile> fragile = kiln.actor(Fragile::new);
            List<ActorRef<Light>> lights = new ArrayList<>();
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = chain(kiln, in, heavyAt, n -> fragile.bind(Fragile::apply, n), lights);
            CompiledGraph<Integer, Integer> g = kiln.compile(in, x, CompileOptions.defaults().actorThreads(2)
                    .maxInflight(8));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            ActorDiedException died = null;
            List<GraphFuture<Integer>> window = new ArrayList<>();
            for (int i = 0; died == null && System.nanoTime() < deadline; i++) {
                window.add(g.execute(i << 8));
                if (window.size() == 8) {
                    try {
                        window.removeFirst().get(10, TimeUnit.SECONDS);
                    } catch (ActorDiedException e) {
                        died = e;
                    }
                }
            }
            assertTrue(died != null, "the actor never ran on a second thread");
            assertTrue(died.getMessage().contains(fragile.name()), died.getMessage());
            boolean byItsError = false;
            for (Throwable c = died; c != null; c = c.getCause()) {
                byItsError |= c instanceof StackOverflowError && "test".equals(c.getMessage());
            }
            assertTrue(byItsError, "caused by the actor's error: " + died);
            assertTrue(g.isClosed());
            for (ActorRef<Light> light : lights) {
                KilnTestSupport.awaitTrue("the surviving actors leave the dead graph", KilnTestSupport.SOON, () -> {
                    try {
                        return kiln.call(light, Light::apply, 1).get(10, TimeUnit.SECONDS) == 2;
                    } catch (IllegalStateException held) {
                        return false;
                    } catch (Exception e) {
                        throw new AssertionError(e);
                    }
                });
            }
        }
    }

    /** Closing a graph while its threads take turns gives every actor back whole: calls and a new graph work. */
    @ParameterizedTest
    @ValueSource(ints = {0, 3})
    @Timeout(120)
    void closingWhileThreadsTakeTurnsLeavesTheActorsWhole(int heavyAt) throws Exception {
        try (Kiln kiln = Kiln.local()) {
            Heavy heavy = new Heavy();
            ActorRef<Heavy> h = kiln.actor(() -> heavy);
            List<ActorRef<Light>> lights = new ArrayList<>();
            CompileOptions options = CompileOptions.defaults().actorThreads(2).maxInflight(8);
            for (int round = 0; round < 3; round++) {
                InputNode<Integer> in = Graph.input();
                Node<Integer> x = chain(kiln, in, heavyAt, n -> h.bind(Heavy::apply, n), lights);
                CompiledGraph<Integer, Integer> g = kiln.compile(in, x, options);
                List<GraphFuture<Integer>> pending = new ArrayList<>();
                for (int i = 0; i < 400; i++) {
                    pending.add(g.execute(i << 8));
                    if (pending.size() == 8) {
                        pending.removeFirst().get(10, TimeUnit.SECONDS);
                    }
                }
                g.close(); // with executions in flight, while the threads may be taking turns
                heavy.last = -1; // the next graph starts its executions at 0 again
                assertEquals(round + 1L, kiln.call(h, Heavy::poke).get(10, TimeUnit.SECONDS));
                assertEquals(2, kiln.call(lights.getFirst(), Light::apply, 1).get(10, TimeUnit.SECONDS));
            }
            assertEquals(0, heavy.overlaps.get(), "calls of the heavy actor overlapped");
        }
    }

    /** A stage that is heavy (20 us) for 1,000 executions, then light for 1,000, and so on, from {@code phase}. */
    static final class Flip extends Checked {
        final int phase;

        Flip(int phase) {
            this.phase = phase;
        }

        int apply(int x) {
            enter(x);
            try {
                if (((x >> 8) / 1_000 + phase) % 2 == 0) {
                    spin(20_000);
                }
                return x + phase + 1;
            } finally {
                leave();
            }
        }
    }

    /** Joins the three branches. */
    static final class Join {
        int join(int b, int c, int d) {
            return b + 3 * c + 7 * d;
        }
    }

    /**
     * A scatter-gather whose branches turn heavy and light again while it runs: offers come and go on channels with
     * several readers and on a join, and every result, order and one-call-at-a-time rule holds throughout.
     */
    @org.junit.jupiter.api.Test
    @Timeout(120)
    void aScatterGatherWhoseBranchesTurnHeavyAndLightKeepsItsResults() throws Exception {
        try (Kiln kiln = Kiln.local()) {
            List<Flip> flips = List.of(new Flip(0), new Flip(1), new Flip(0));
            InputNode<Integer> in = Graph.input();
            Node<Integer> x = kiln.actor(Light::new).bind(Light::apply, in);
            List<ActorRef<Flip>> branches = new ArrayList<>();
            for (Flip f : flips) {
                branches.add(kiln.actor(() -> f));
            }
            Node<Integer> b = branches.get(0).bind(Flip::apply, x);
            Node<Integer> c = branches.get(1).bind(Flip::apply, x);
            Node<Integer> d = branches.get(2).bind(Flip::apply, x);
            Node<Integer> out = kiln.actor(Join::new).bind(Join::join, b, c, d);
            CompileOptions options = CompileOptions.defaults().actorThreads(2).maxInflight(8);
            try (CompiledGraph<Integer, Integer> g = kiln.compile(in, out, options)) {
                List<GraphFuture<Integer>> window = new ArrayList<>();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                int started = 0;
                int done = 0;
                while (started < 6_000 || flips.stream().allMatch(f -> f.threads.size() < 2)
                        && System.nanoTime() < deadline) {
                    int until = started + 2_000;
                    while (done < until) {
                        if (window.size() == 8 || started == until) {
                            int v = (done << 8) + 1;
                            assertEquals((v + 1) + 3 * (v + 2) + 7 * (v + 1),
                                    window.removeFirst().get(10, TimeUnit.SECONDS), "execution " + done);
                            done++;
                        }
                        if (started < until) {
                            window.add(g.execute(started++ << 8));
                        }
                    }
                }
            }
            for (int k = 0; k < flips.size(); k++) {
                assertEquals(0, flips.get(k).overlaps.get(), "calls of branch " + k + " overlapped");
                assertEquals(0L, kiln.call(branches.get(k), Flip::outOfOrder).get(10, TimeUnit.SECONDS),
                        "executions reached branch " + k + " out of order");
            }
            assertTrue(flips.stream().anyMatch(f -> f.threads.size() >= 2),
                    "no heavy branch ran on both threads: " + flips.stream().map(f -> f.threads).toList());
        }
    }
}
